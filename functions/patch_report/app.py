"""Patch preview, last step: group the patches, write the email (and the full report when large).

Reads the fleet snapshot, the batches of servers and each batch's patch lists from the bucket, one
batch at a time (memory grows with the distinct patches and servers, not with the listing's size),
groups by patch, and returns the subject and text the state machine mails. Servers whose listing
failed, alone or with their whole batch, are reported as unreadable. A report too long for a readable
email goes to the bucket in full; the email then carries the summary (its server lists capped) and
where the rest is, so what the state machine carries stays bounded for any fleet.
What the email says is opsflow.preview_report's; this file reads and writes the bucket.
"""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from opsflow import bucket, timeutil
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, metrics, tracer
from opsflow.preview_report import (
    Preview,
    ReportEvent,
    approval_preview_key,
    batch_key,
    collect_listing,
    compose,
    handed_over,
)
from opsflow.settings import BucketSettings, cached_settings
from opsflow.validation import parse_event


class Settings(BucketSettings):
    email_limit_chars: int = Field(default=60_000, alias="EMAIL_LIMIT_CHARS", ge=2_000, le=200_000)


settings = cached_settings(Settings)


def report(event: ReportEvent, cfg: Settings) -> dict[str, Any]:
    fleet = bucket.get_json(event.fleet.bucket, event.fleet.key)
    batches = bucket.get_json(event.batches.bucket, event.batches.key)
    listing = collect_listing(
        batches, event.results, lambda n: bucket.json_lines(event.batches.bucket, batch_key(event.run_prefix, n))
    )
    preview = Preview(event, fleet, listing, timeutil.now())
    mail = compose(preview, cfg.email_limit_chars, cfg.bucket_name)
    if mail.full_report is not None:
        bucket.put_text(cfg.bucket_name, mail.result["reportLocation"]["key"], mail.full_report)
    if event.deliver != "approval":
        return mail.result
    bucket.put_text(cfg.bucket_name, approval_preview_key(event.run_prefix), mail.result["message"])
    return handed_over(preview, mail.result, cfg.bucket_name)


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = report(parse_event(ReportEvent, event), settings())
    metrics.add_metric(name="PatchPreviews", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PendingPatches", unit=MetricUnit.Count, value=result["counts"]["patches"])
    logger.info("report", extra={"subject": result["subject"], **result["counts"]})
    return result
