"""Reconciler: clean up after rolling restarts that ended but were never cleaned up.

The safety net runs on the "Step Functions Execution Status Change" event, which EventBridge delivers
on a best-effort basis: a lost event would leave alarms muted, the lock held and instances out of
the target group. On its schedule (ReconcileSchedule, every 5 minutes by default) this function lists
the open runs (the run table's sparse open-runs index), asks Step Functions whether each execution
has ended, and cleans up those that have with opsflow.cleanup, the safety net's own code. Runs still
RUNNING are left alone. A run cleaned up (or found clean) is closed, so the next pass skips it.
"""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opsflow import executions
from opsflow.cleanup import clean_up
from opsflow.errors import OpsflowError
from opsflow.observability import logger, metrics, tracer
from opsflow.reconciliation import (
    NOT_ENDED,
    NOTE,
    Report,
    not_reconciled,
    table_not_ready,
)
from opsflow.runs import RunTable
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_event


class Settings(RunTableSettings, NotificationSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


class ScheduledEvent(BaseModel):
    """What the schedule sends (template.yaml: its Input); ``{}`` when invoked by hand."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    scheduled_time: AwareDatetime | None = Field(default=None, alias="scheduledTime")


def open_runs(table: RunTable) -> list[str]:
    try:
        return table.open_runs()
    except ClientError as exc:
        not_ready = table_not_ready(table.table_name, exc.response["Error"])
        if not_ready is None:
            raise
        raise not_ready from exc


def reconcile(table: RunTable, topic_arn: str) -> Report:
    """Clean up every open run whose execution has ended; leave the running ones alone."""
    runs = open_runs(table)
    report = Report(open_runs=len(runs))
    for execution_arn in runs:
        try:
            status = executions.status(execution_arn)
            if status in NOT_ENDED:
                report.still_running.append(execution_arn)
                continue
            result = clean_up(table, topic_arn, execution_arn, status, by="reconciler", note=NOTE)
        except (ClientError, OpsflowError) as exc:  # one run's trouble must not keep the others muted
            logger.exception("could not reconcile the run", extra={"executionArn": execution_arn, "error": str(exc)})
            report.failed.append(execution_arn)
            continue
        logger.info("reconciled", extra=result)
        report.file(execution_arn, result["action"])
    return report


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(ScheduledEvent, event)
    report = reconcile(RunTable(settings().table_name), settings().topic_arn)
    metrics.add_metric(name="RunsCleanedUpByReconciler", unit=MetricUnit.Count, value=len(report.cleaned_up))
    logger.info("reconciler pass", extra={"scheduledTime": str(request.scheduled_time), **report.model_dump()})
    failed = not_reconciled(report)
    if failed is not None:
        raise failed
    return report.model_dump()
