"""Approval by email for restarts that require it (the Step Functions callback pattern).

Two entry points:
- the approval queue (SQS event): each request (plan + task token) becomes an email with an approve
  and a reject link, signed with the stack's KMS HMAC key and valid until the approval times out;
- the function URL: GET shows what is being approved and a confirmation button (mail scanners fetch
  links, so GET never decides); POST checks the signature and the expiry, then calls
  SendTaskSuccess or SendTaskFailure. A task token works once: a replayed link finds it used.
"""

import base64
import datetime as dt
import hashlib
import html
import json
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent, SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsflow import clients, timeutil
from opsflow.errors import InvalidInputError
from opsflow.observability import logger, metrics, tracer
from opsflow.settings import NotificationSettings, cached_settings
from opsflow.validation import parse_event

MAC_ALGORITHM = "HMAC_SHA_256"
Decision = Literal["approve", "reject"]


class Settings(NotificationSettings):
    approval_key_id: str = Field(alias="APPROVAL_KEY_ID", min_length=1)


settings = cached_settings(Settings)


class ApprovalRequest(BaseModel):
    """What the state machine's "Ask for approval" state puts on the queue."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_token: str = Field(alias="taskToken", min_length=1)
    execution_arn: str = Field(alias="executionArn")
    target_group_arn: str = Field(alias="targetGroupArn")
    plan: dict[str, Any]
    asked_at: str = Field(alias="askedAt")
    timeout_seconds: int = Field(alias="timeoutSeconds", ge=1)


class Link(BaseModel):
    """The fields of an approve/reject link; the MAC covers all of them."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    execution: str
    expires: int
    token: str
    mac: str = ""

    def signed_part(self) -> bytes:
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        return f"{self.decision}|{self.execution}|{self.expires}|{digest}".encode()


def sign(link: Link) -> Link:
    kms = clients.client("kms")
    mac = kms.generate_mac(Message=link.signed_part(), KeyId=settings().approval_key_id, MacAlgorithm=MAC_ALGORITHM)
    return link.model_copy(update={"mac": base64.urlsafe_b64encode(mac["Mac"]).decode()})


def verify(link: Link) -> str | None:
    """None when the link is genuine and current; otherwise why not."""
    if link.expires < timeutil.epoch():
        return "This link has expired: the approval timed out and the restart was not started."
    kms = clients.client("kms")
    try:
        kms.verify_mac(
            Message=link.signed_part(),
            KeyId=settings().approval_key_id,
            MacAlgorithm=MAC_ALGORITHM,
            Mac=base64.urlsafe_b64decode(link.mac.encode()),
        )
    except (kms.exceptions.KMSInvalidMacException, ValueError):
        return "This link is not valid (it was altered, or it belongs to another request)."
    return None


def own_url(context: LambdaContext) -> str:
    url = clients.client("lambda").get_function_url_config(FunctionName=context.function_name)["FunctionUrl"]
    return str(url).rstrip("/") + "/"


def request_email(request: ApprovalRequest, base_url: str) -> tuple[str, str]:
    asked = dt.datetime.fromisoformat(request.asked_at)
    expires = int(asked.timestamp()) + request.timeout_seconds
    links = {}
    for decision in ("approve", "reject"):
        link = Link(decision=decision, execution=request.execution_arn, expires=expires, token=request.task_token)
        links[decision] = base_url + "?" + urlencode(sign(link).model_dump())
    plan = request.plan
    group = request.target_group_arn.split(":")[-1]
    subject = f"opsflow: approve the rolling restart of {group.split('/')[1] if '/' in group else group}?"
    body = (
        f"A rolling restart is waiting for your approval.\n\n{plan.get('summary', '')}\n\n"
        f"Batches: {json.dumps(plan.get('batches', []))}\n"
        f"Execution: {request.execution_arn}\n\n"
        f"Approve: {links['approve']}\n\nReject: {links['reject']}\n\n"
        f"Without an answer by {dt.datetime.fromtimestamp(expires, dt.UTC):%Y-%m-%d %H:%M} UTC, "
        "the restart is refused and nothing is changed.\n"
    )
    return subject[:100], body


def handle_queue(event: SQSEvent, context: LambdaContext) -> dict[str, Any]:
    base_url = own_url(context)
    sent = 0
    for record in event.records:
        request = parse_event(ApprovalRequest, json.loads(record.body))
        subject, body = request_email(request, base_url)
        clients.client("sns").publish(TopicArn=settings().topic_arn, Subject=subject, Message=body)
        sent += 1
    metrics.add_metric(name="ApprovalRequested", unit=MetricUnit.Count, value=sent)
    return {"emailsSent": sent}


def page(status: int, title: str, text: str, form: Link | None = None) -> dict[str, Any]:
    button = ""
    if form is not None:
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(str(v), quote=True)}">'
            for k, v in form.model_dump().items()
        )
        label = "Approve the restart" if form.decision == "approve" else "Reject the restart"
        button = f'<form method="post">{hidden}<button type="submit">{label}</button></form>'
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>opsflow</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>"
    )
    return {"statusCode": status, "headers": {"Content-Type": "text/html; charset=utf-8"}, "body": body}


def handle_link(event: LambdaFunctionUrlEvent) -> dict[str, Any]:
    method = event.request_context.http.method
    raw = event.decoded_body if method == "POST" else event.raw_query_string
    try:
        link = Link.model_validate(dict(parse_qsl(raw or "", keep_blank_values=True)))
    except ValidationError:
        return page(400, "Not an approval link", "This address needs the full link from the approval email.")
    problem = verify(link)
    if problem:
        return page(403, "Link not accepted", problem)
    execution = link.execution.rsplit(":", 1)[-1]
    if method != "POST":
        verb = "approve" if link.decision == "approve" else "reject"
        return page(200, f"Confirm: {verb} rolling restart {execution}?", "Nothing happens until you confirm.", link)
    sfn = clients.client("stepfunctions")
    try:
        if link.decision == "approve":
            sfn.send_task_success(
                taskToken=link.token,
                output=json.dumps({"approvedBy": "email link", "at": timeutil.iso_now()}),
            )
        else:
            sfn.send_task_failure(taskToken=link.token, error="Rejected", cause="rejected with the email link")
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken):
        return page(410, "Already answered", "This request was already answered, or it timed out.")
    metrics.add_metric(name="ApprovalAnswered", unit=MetricUnit.Count, value=1)
    done = "approved: the restart starts now" if link.decision == "approve" else "rejected: nothing was changed"
    return page(200, f"Rolling restart {execution} {done}.", "You can close this page.")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("Records"):
        return handle_queue(SQSEvent(event), context)
    if event.get("requestContext", {}).get("http"):
        return handle_link(LambdaFunctionUrlEvent(event))
    raise InvalidInputError("expected an SQS event from the approval queue or a function URL request")
