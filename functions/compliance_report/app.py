"""The patch workflow's last step: what the run left installed, failed and still missing, per instance.

Reads Patch Manager's compliance summary of each instance (opsflow.patch_states), judges each
(opsflow.compliance: only an Install that ended after the run started counts as this run's), writes
the full report to the stack's bucket and mails a summary.
"""

import datetime as dt
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import bucket, compliance, notify
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, metrics, tracer
from opsflow.patch_states import patch_states
from opsflow.settings import BucketSettings, NotificationSettings, cached_settings
from opsflow.validation import InstanceId, parse_event


class Settings(BucketSettings, NotificationSettings):
    """The bucket for the report and the topic for the mail."""


settings = cached_settings(Settings)


class InstallOutcome(BaseModel):
    """What the rolling install reported: its summary subject, or the error it failed with."""

    model_config = ConfigDict(extra="ignore")

    subject: str = ""
    Error: str = ""
    Cause: str = ""


class ComplianceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    execution_arn: str = Field(alias="executionArn", min_length=1)
    started_at: dt.datetime = Field(alias="startedAt")
    instance_ids: list[InstanceId] = Field(alias="instanceIds", min_length=1, max_length=5000)
    install: InstallOutcome


def report(event: ComplianceEvent, cfg: Settings) -> dict[str, Any]:
    states = patch_states(list(event.instance_ids))
    rows = [compliance.row(i, states.get(i), event.started_at) for i in event.instance_ids]
    key = compliance.report_key(event.execution_arn)
    location = f"s3://{cfg.bucket_name}/{key}"
    outcome = event.install.subject or f"the install failed: {event.install.Error}"
    document = {"execution": event.execution_arn, "install": event.install.model_dump(), "instances": rows}
    bucket.put_json(cfg.bucket_name, key, document, indent=1)
    subject, text = compliance.mail(event.execution_arn, outcome, rows, location)
    notify.publish(cfg.topic_arn, subject, text, rest_is_in=location)
    compliant = compliance.compliant_count(rows)
    metrics.add_metric(name="InstancesNotCompliant", unit=MetricUnit.Count, value=len(rows) - compliant)
    return {"compliant": compliant, "instances": len(rows), "report": {"bucket": cfg.bucket_name, "key": key}}


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = report(parse_event(ComplianceEvent, event), settings())
    logger.info("compliance", extra=result)
    return result
