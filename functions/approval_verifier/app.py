"""The public URL of the approval links: verifies a link, then answers the waiting task.

GET shows what is being approved and a confirmation button (mail scanners fetch links, so GET never
decides); POST checks the signature and the expiry, then calls SendTaskSuccess or SendTaskFailure. A
task token works once: a replayed link finds it used. This function can only verify (kms:VerifyMac):
the approval mailer signs. A malformed, empty or garbled link is answered 400 or 403, never a 5xx.
"""

from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, ValidationError

from opsflow import approval_pages, link_signing, task_answers, timeutil
from opsflow.approval_links import Link
from opsflow.approval_pages import page
from opsflow.observability import logger, metrics, tracer
from opsflow.settings import EnvSettings, cached_settings

app = LambdaFunctionUrlResolver()


class Settings(EnvSettings):
    approval_key_id: str = Field(alias="APPROVAL_KEY_ID", min_length=1)


settings = cached_settings(Settings)


def verify(link: Link) -> str | None:
    """None when the link is genuine and current; otherwise why not."""
    mac, problem = approval_pages.signature(link, timeutil.epoch())
    return problem or link_signing.mac_problem(link, mac, settings().approval_key_id)


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
    return page(200, *approval_pages.confirmation(link), link)


@app.post("/")
def decide() -> Response[str]:
    link, refusal = _checked(dict(parse_qsl(app.current_event.decoded_body or "", keep_blank_values=True)))
    if refusal or link is None:
        return refusal or page(400, "Not an approval link", "")
    if not task_answers.answer_approval(link.token, approve=link.decision == "approve"):
        return page(410, "Already answered", "This request was already answered, or it timed out.")
    metrics.add_metric(name="ApprovalAnswered", unit=MetricUnit.Count, value=1)
    return page(200, approval_pages.answered(link), "You can close this page.")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
