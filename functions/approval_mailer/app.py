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

import base64
import datetime as dt
import json
from functools import cache
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, notify
from opsflow.approval_links import MAC_ALGORITHM, Link
from opsflow.observability import logger, metrics, tracer
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_event

MAILED_RECORDS_DAYS = 15  # longer than the queue keeps a message (14 days): a redelivery is always recognised


class Settings(NotificationSettings, RunTableSettings):
    approval_key_id: str = Field(alias="APPROVAL_KEY_ID", min_length=1)
    approval_url: str = Field(alias="APPROVAL_URL", pattern=r"^https://")


settings = cached_settings(Settings)
processor = BatchProcessor(event_type=EventType.SQS)
idempotency = IdempotencyConfig(event_key_jmespath="task_token", expires_after_seconds=MAILED_RECORDS_DAYS * 86400)


class ApprovalRequest(BaseModel):
    """What the state machine's "Ask for approval" state puts on the queue."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_token: str = Field(alias="taskToken", min_length=1)
    execution_arn: str = Field(alias="executionArn")
    target_group_arn: str = Field(alias="targetGroupArn")
    plan: dict[str, Any]
    asked_at: str = Field(alias="askedAt")
    timeout_seconds: int = Field(alias="timeoutSeconds", ge=1)


def sign(link: Link) -> Link:
    kms = clients.client("kms")
    mac = kms.generate_mac(Message=link.signed_part(), KeyId=settings().approval_key_id, MacAlgorithm=MAC_ALGORITHM)
    return link.model_copy(update={"mac": base64.urlsafe_b64encode(mac["Mac"]).decode()})


def preview_text(preview: dict[str, Any]) -> str:
    """The patch preview's text from the stack's bucket; if it cannot be read, why, so the mail still goes."""
    try:
        body = clients.client("s3").get_object(Bucket=preview["bucket"], Key=preview["key"])["Body"]
        return str(body.read().decode())
    except ClientError as exc:
        return (
            f"The patch preview could not be read (s3://{preview['bucket']}/{preview['key']}: "
            f"{exc.response['Error']['Code']}). Reject unless you know what this run installs.\n"
        )


def patch_email(request: ApprovalRequest, group: str, links: dict[str, str], expires: int) -> tuple[str, str]:
    """One mail for the patch workflow: the patch preview with the approve/reject links.

    The links come before the preview, so a preview too long for SNS is what gets cut, never a link.
    """
    plan, preview = request.plan, request.plan["preview"]
    subject = f"opsflow: approve patching {group}? {preview['findings']}"
    body = (
        f"Patching {group} is waiting for your approval: once approved, the patches below are installed "
        "a batch at a time behind the load balancer, each instance back in service only when healthy.\n\n"
        f"Approve: {links['approve']}\n\nReject: {links['reject']}\n\n"
        f"Without an answer by {dt.datetime.fromtimestamp(expires, dt.UTC):%Y-%m-%d %H:%M} UTC, "
        "nothing is installed and nothing is changed.\n\n"
        f"{plan.get('summary', '')}\n"
        f"Batches: {json.dumps(plan.get('batches', []))}\n"
        f"Execution: {request.execution_arn}\n\n"
        "Patch preview\n=============\n" + preview_text(preview)
    )
    return subject, body


def request_email(request: ApprovalRequest, base_url: str) -> tuple[str, str]:
    asked = dt.datetime.fromisoformat(request.asked_at)
    expires = int(asked.timestamp()) + request.timeout_seconds
    links = {}
    for decision in ("approve", "reject"):
        link = Link(decision=decision, execution=request.execution_arn, expires=expires, token=request.task_token)
        links[decision] = base_url + "?" + urlencode(sign(link).model_dump())
    plan = request.plan
    group = request.target_group_arn.split(":")[-1]
    group = group.split("/")[1] if "/" in group else group
    if plan.get("preview"):
        return patch_email(request, group, links, expires)
    subject = f"opsflow: approve the rolling restart of {group}?"
    body = (
        f"A rolling restart is waiting for your approval.\n\n{plan.get('summary', '')}\n\n"
        + (f"{plan['note']}\n\n" if plan.get("note") else "")
        + f"Batches: {json.dumps(plan.get('batches', []))}\n"
        f"Execution: {request.execution_arn}\n\n"
        f"Approve: {links['approve']}\n\nReject: {links['reject']}\n\n"
        f"Without an answer by {dt.datetime.fromtimestamp(expires, dt.UTC):%Y-%m-%d %H:%M} UTC, "
        "the restart is refused and nothing is changed.\n"
    )
    return subject, body


def mail(request: ApprovalRequest) -> dict[str, Any]:
    cfg = settings()
    subject, body = request_email(request, cfg.approval_url.rstrip("/") + "/")
    preview = request.plan.get("preview")
    rest = f"s3://{preview['bucket']}/{preview['key']}" if preview else "the run's records"
    notify.publish(cfg.topic_arn, subject, body, rest_is_in=rest)
    metrics.add_metric(name="ApprovalRequested", unit=MetricUnit.Count, value=1)
    return {"mailed": request.execution_arn}


@cache
def mail_once() -> Any:
    """``mail``, made idempotent per task token with records in the run table (built at first use).

    The records live beside runs and locks under a partition key of their own (idempotency#<function>).
    """
    store = DynamoDBPersistenceLayer(
        table_name=settings().table_name,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expiresAt",  # the table's TTL attribute: the records expire by themselves
        boto3_client=clients.client("dynamodb"),
    )
    return idempotent_function(data_keyword_argument="request", persistence_store=store, config=idempotency)(mail)


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
