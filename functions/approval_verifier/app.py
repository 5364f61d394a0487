"""The public URL of the approval links: verifies a link, then answers the waiting task.

GET shows what is being approved and a confirmation button (mail scanners fetch links, so GET never
decides); POST checks the signature and the expiry, then calls SendTaskSuccess or SendTaskFailure. A
task token works once: a replayed link finds it used. This function can only verify (kms:VerifyMac):
the approval mailer signs. A malformed, empty or garbled link is answered 400 or 403, never a 5xx.
"""

import base64
import html
import json
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, ValidationError

from opsflow import clients, timeutil
from opsflow.approval_links import MAC_ALGORITHM, Link
from opsflow.observability import logger, metrics, tracer
from opsflow.settings import EnvSettings, cached_settings

app = LambdaFunctionUrlResolver()


class Settings(EnvSettings):
    approval_key_id: str = Field(alias="APPROVAL_KEY_ID", min_length=1)


settings = cached_settings(Settings)


def verify(link: Link) -> str | None:
    """None when the link is genuine and current; otherwise why not."""
    if link.expires < timeutil.epoch():
        return "This link has expired: the approval timed out and the restart was not started."
    try:
        mac = base64.urlsafe_b64decode(link.mac.encode())
    except ValueError:
        mac = b""
    if not mac:
        return "This link is not valid (its signature is missing or damaged)."
    kms = clients.client("kms")
    try:
        kms.verify_mac(
            Message=link.signed_part(), KeyId=settings().approval_key_id, MacAlgorithm=MAC_ALGORITHM, Mac=mac
        )
    except kms.exceptions.KMSInvalidMacException:
        return "This link is not valid (it was altered, or it belongs to another request)."
    except kms.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] != "ValidationException":  # a MAC of the wrong length, for example
            raise
        return "This link is not valid (its signature is damaged)."
    return None


def page(status: int, title: str, text: str, form: Link | None = None) -> Response[str]:
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
    return Response(status_code=status, content_type=f"{content_types.TEXT_HTML}; charset=utf-8", body=body)


def parse_link(fields: dict[str, str]) -> Link | None:
    try:
        return Link.model_validate(fields)
    except ValidationError:
        return None


def _checked(fields: dict[str, str]) -> tuple[Link | None, Response[str] | None]:
    link = parse_link(fields)
    if link is None:
        return None, page(400, "Not an approval link", "This address needs the full link from the approval email.")
    problem = verify(link)
    return link, page(403, "Link not accepted", problem) if problem else None


@app.get("/")
def confirm() -> Response[str]:
    link, refusal = _checked(dict(app.current_event.query_string_parameters or {}))
    if refusal or link is None:
        return refusal or page(400, "Not an approval link", "")
    verb = "approve" if link.decision == "approve" else "reject"
    execution = link.execution.rsplit(":", 1)[-1]
    return page(200, f"Confirm: {verb} rolling restart {execution}?", "Nothing happens until you confirm.", link)


@app.post("/")
def decide() -> Response[str]:
    link, refusal = _checked(dict(parse_qsl(app.current_event.decoded_body or "", keep_blank_values=True)))
    if refusal or link is None:
        return refusal or page(400, "Not an approval link", "")
    sfn = clients.client("stepfunctions")
    try:
        if link.decision == "approve":
            sfn.send_task_success(
                taskToken=link.token, output=json.dumps({"approvedBy": "email link", "at": timeutil.iso_now()})
            )
        else:
            sfn.send_task_failure(taskToken=link.token, error="Rejected", cause="rejected with the email link")
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken):
        return page(410, "Already answered", "This request was already answered, or it timed out.")
    metrics.add_metric(name="ApprovalAnswered", unit=MetricUnit.Count, value=1)
    execution = link.execution.rsplit(":", 1)[-1]
    done = "approved: the restart starts now" if link.decision == "approve" else "rejected: nothing was changed"
    return page(200, f"Rolling restart {execution} {done}.", "You can close this page.")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
