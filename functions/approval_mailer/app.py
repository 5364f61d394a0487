"""Mails each approval request of the approval queue, with signed approve and reject links.

The "Ask for approval" state puts the plan and a task token on the queue; each message becomes one
email to the topic. Links are signed with the stack's KMS HMAC key and expire with the approval
timeout; the verifier function behind the public URL checks them. Messages are processed one by one
(Powertools BatchProcessor: a bad message is reported as a batch item failure, retried, then moved to
the dead-letter queue, without holding up the others), and each request is mailed once even when SQS
delivers its message again (Powertools idempotency on the run table, keyed by the task token).
A patch run's request names its patch preview (in the stack's bucket): that mail is the preview itself
with the links, one mail to read and answer.
"""

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from opsflow import approval_mail, bucket, link_signing, notify
from opsflow.approval_links import Link
from opsflow.arns import group_name
from opsflow.errors import error_code
from opsflow.idempotency import config, once
from opsflow.observability import logger, metrics, tracer
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_event

MAILED_RECORDS_DAYS = 15  # longer than the queue keeps a message (14 days): a redelivery is always recognised


class Settings(NotificationSettings, RunTableSettings):
    approval_key_id: str = Field(alias="APPROVAL_KEY_ID", min_length=1)
    approval_url: str = Field(alias="APPROVAL_URL", pattern=r"^https://")


settings = cached_settings(Settings)
processor = BatchProcessor(event_type=EventType.SQS)
idempotency = config(MAILED_RECORDS_DAYS * 86400, key_path="task_token")


class ApprovalRequest(BaseModel):
    """What the state machine's "Ask for approval" state puts on the queue."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_token: str = Field(alias="taskToken", min_length=1)
    execution_arn: str = Field(alias="executionArn")
    target_group_arn: str = Field(alias="targetGroupArn")
    plan: dict[str, Any]
    asked_at: str = Field(alias="askedAt")
    timeout_seconds: int = Field(alias="timeoutSeconds", ge=1)


def preview_text(preview: dict[str, Any]) -> str:
    """The patch preview's text from the stack's bucket; if it cannot be read, why, so the mail still goes."""
    try:
        return bucket.read_text(preview["bucket"], preview["key"])
    except ClientError as exc:
        return approval_mail.preview_unreadable(preview["bucket"], preview["key"], error_code(exc))


def request_email(request: ApprovalRequest, base_url: str) -> tuple[str, str]:
    expires = approval_mail.expires_at(request.asked_at, request.timeout_seconds)
    links = {
        decision: approval_mail.link_url(
            base_url,
            link_signing.sign(
                Link(decision=decision, execution=request.execution_arn, expires=expires, token=request.task_token),
                settings().approval_key_id,
            ),
        )
        for decision in ("approve", "reject")
    }
    group, plan = group_name(request.target_group_arn), request.plan
    if plan.get("preview"):
        text = preview_text(plan["preview"])
        return approval_mail.patch_email(group, plan, request.execution_arn, links, expires, preview_text=text)
    return approval_mail.restart_email(group, plan, request.execution_arn, links, expires)


def mail(request: ApprovalRequest) -> dict[str, Any]:
    cfg = settings()
    subject, body = request_email(request, cfg.approval_url.rstrip("/") + "/")
    notify.publish(cfg.topic_arn, subject, body, rest_is_in=approval_mail.rest_is_in(request.plan))
    metrics.add_metric(name="ApprovalRequested", unit=MetricUnit.Count, value=1)
    return {"mailed": request.execution_arn}


@cache
def mail_once() -> Any:
    """``mail``, made idempotent per task token with records in the run table (built at first use)."""
    return once(mail, settings().table_name, idempotency)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    request = parse_event(ApprovalRequest, json.loads(record.body))
    return dict(mail_once()(request=request))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
