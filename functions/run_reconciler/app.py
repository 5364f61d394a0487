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

from opsflow import clients
from opsflow.cleanup import clean_up
from opsflow.errors import OpsflowError
from opsflow.observability import logger, metrics, tracer
from opsflow.runs import OPEN_RUNS_INDEX, RunTable
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_event

NOT_ENDED = {"RUNNING", "PENDING_REDRIVE"}
NO_LONGER_LISTED = "EXPIRED"  # Step Functions keeps closed executions for a limited time only
NOTE = (
    "The reconciler found this run ended but not cleaned up: the event that starts the safety net did not\n"
    "reach it (EventBridge delivers it on a best-effort basis), or the safety net failed (see its\n"
    "dead-letter queue).\n\n"
)


class RunTableNotReadyError(OpsflowError):
    """The run table or its open-runs index does not exist: the stack is not deployed as its template says."""


class RunsNotReconciledError(OpsflowError):
    """Some open runs could not be checked or cleaned up; the others were. The next pass tries again."""


class Settings(RunTableSettings, NotificationSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


class ScheduledEvent(BaseModel):
    """What the schedule sends (template.yaml: its Input); ``{}`` when invoked by hand."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    scheduled_time: AwareDatetime | None = Field(default=None, alias="scheduledTime")


class Report(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    open_runs: int = Field(default=0, alias="openRuns")
    still_running: list[str] = Field(default_factory=list, alias="stillRunning")
    cleaned_up: list[str] = Field(default_factory=list, alias="cleanedUp")  # an alert says what was done
    closed: list[str] = Field(default_factory=list)  # nothing was left to do
    skipped: list[str] = Field(default_factory=list)  # closed meanwhile, or another cleaner holds it
    following_up: list[str] = Field(default_factory=list, alias="followingUp")  # instances not back yet
    failed: list[str] = Field(default_factory=list)


def _open_runs(table: RunTable) -> list[str]:
    try:
        return table.open_runs()
    except ClientError as exc:
        error = exc.response["Error"]
        if error["Code"] == "ResourceNotFoundException" or "index" in error.get("Message", ""):
            raise RunTableNotReadyError(
                f"run table {table.table_name} or its index {OPEN_RUNS_INDEX} does not exist "
                f"({error['Code']}: {error.get('Message', '')}); deploy template.yaml, which declares both"
            ) from exc
        raise


def _status(sfn: Any, execution_arn: str) -> str:
    try:
        return str(sfn.describe_execution(executionArn=execution_arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return NO_LONGER_LISTED  # it cannot be running


def reconcile(table: RunTable, topic_arn: str) -> Report:
    """Clean up every open run whose execution has ended; leave the running ones alone."""
    sfn = clients.client("stepfunctions")
    open_runs = _open_runs(table)
    report = Report(open_runs=len(open_runs))
    for execution_arn in open_runs:
        try:
            status = _status(sfn, execution_arn)
            if status in NOT_ENDED:
                report.still_running.append(execution_arn)
                continue
            result = clean_up(table, topic_arn, execution_arn, status, by="reconciler", note=NOTE)
        except (ClientError, OpsflowError) as exc:  # one run's trouble must not keep the others muted
            logger.exception("could not reconcile the run", extra={"executionArn": execution_arn, "error": str(exc)})
            report.failed.append(execution_arn)
            continue
        logger.info("reconciled", extra=result)
        lists = {"restored": report.cleaned_up, "closed": report.closed, "following up": report.following_up}
        lists.get(result["action"], report.skipped).append(execution_arn)
    return report


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(ScheduledEvent, event)
    report = reconcile(RunTable(settings().table_name), settings().topic_arn)
    metrics.add_metric(name="RunsCleanedUpByReconciler", unit=MetricUnit.Count, value=len(report.cleaned_up))
    logger.info("reconciler pass", extra={"scheduledTime": str(request.scheduled_time), **report.model_dump()})
    if report.failed:
        raise RunsNotReconciledError(
            f"{len(report.failed)} of {report.open_runs} open runs could not be reconciled (see the log): "
            + ", ".join(report.failed)
        )
    return report.model_dump()
