"""The patch workflow's last step: what the run left installed, failed and still missing, per instance.

Reads Patch Manager's compliance summary of each instance (DescribeInstancePatchStates, 50 instances
per call), writes the full report to the stack's bucket and mails a summary. An instance whose last
patch operation is not an Install that ended after the run started was not patched by this run: the
report says so rather than presenting older data as the run's outcome.
"""

import datetime as dt
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, notify
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, metrics, tracer
from opsflow.settings import BucketSettings, NotificationSettings, cached_settings
from opsflow.validation import InstanceId, parse_event

STATES_CHUNK = 50  # DescribeInstancePatchStates takes at most 50 instance ids


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


def patch_states(instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    ssm, found = clients.client("ssm"), dict[str, dict[str, Any]]()
    paginator = ssm.get_paginator("describe_instance_patch_states")
    for start in range(0, len(instance_ids), STATES_CHUNK):
        for page in paginator.paginate(InstanceIds=instance_ids[start : start + STATES_CHUNK]):
            found |= {s["InstanceId"]: s for s in page["InstancePatchStates"]}
    return found


def row(instance_id: str, state: dict[str, Any] | None, since: dt.datetime) -> dict[str, Any]:
    if state is None:
        return {"instanceId": instance_id, "verdict": "no patch data (not a managed node?)"}
    counts = {
        "installed": state.get("InstalledCount", 0),
        "pendingReboot": state.get("InstalledPendingRebootCount", 0),
        "failed": state.get("FailedCount", 0),
        "missing": state.get("MissingCount", 0),
    }
    ended = state.get("OperationEndTime")
    patched_now = state.get("Operation") == "Install" and isinstance(ended, dt.datetime) and ended >= since
    if not patched_now:
        verdict = "not patched by this run"
    elif counts["failed"] or counts["missing"]:
        verdict = "not compliant"
    elif counts["pendingReboot"]:
        verdict = "installed, reboot pending"
    else:
        verdict = "compliant"
    return {"instanceId": instance_id, "verdict": verdict, **counts, "operationEnd": ended.isoformat() if ended else ""}


def report(event: ComplianceEvent, cfg: Settings) -> dict[str, Any]:
    states = patch_states(list(event.instance_ids))
    rows = [row(i, states.get(i), event.started_at) for i in event.instance_ids]
    compliant = sum(1 for r in rows if r["verdict"] == "compliant")
    name = event.execution_arn.rsplit(":", 1)[-1]
    key = f"compliance/{name}.json"
    outcome = event.install.subject or f"the install failed: {event.install.Error}"
    lines = [
        f"Patch compliance after the patch run {name}: {compliant} of {len(rows)} instances compliant.",
        f"Rolling install: {outcome}",
        f"Full report: s3://{cfg.bucket_name}/{key}",
        "",
        f"{'instance':<21} {'installed':>9} {'pending reboot':>14} {'failed':>6} {'missing':>7}  verdict",
    ]
    lines += [
        f"{r['instanceId']:<21} {r.get('installed', '-'):>9} {r.get('pendingReboot', '-'):>14} "
        f"{r.get('failed', '-'):>6} {r.get('missing', '-'):>7}  {r['verdict']}"
        for r in rows
    ]
    document = {"execution": event.execution_arn, "install": event.install.model_dump(), "instances": rows}
    clients.client("s3").put_object(
        Bucket=cfg.bucket_name, Key=key, Body=json.dumps(document, indent=1).encode(), ContentType="application/json"
    )
    subject = f"opsflow patching: {compliant} of {len(rows)} instances compliant"
    notify.publish(cfg.topic_arn, subject, "\n".join(lines) + "\n", rest_is_in=f"s3://{cfg.bucket_name}/{key}")
    metrics.add_metric(name="InstancesNotCompliant", unit=MetricUnit.Count, value=len(rows) - compliant)
    return {"compliant": compliant, "instances": len(rows), "report": {"bucket": cfg.bucket_name, "key": key}}


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = report(parse_event(ComplianceEvent, event), settings())
    logger.info("compliance", extra=result)
    return result
