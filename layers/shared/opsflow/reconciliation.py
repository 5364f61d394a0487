"""The reconciler's pass, as data: which open runs to clean up, and what its report and errors say."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsflow.errors import OpsflowError
from opsflow.runs import OPEN_RUNS_INDEX

NOT_ENDED = {"RUNNING", "PENDING_REDRIVE"}
NOTE = (
    "The reconciler found this run ended but not cleaned up: the event that starts the safety net did not\n"
    "reach it (EventBridge delivers it on a best-effort basis), or the safety net failed (see its\n"
    "dead-letter queue).\n\n"
)


class RunTableNotReadyError(OpsflowError):
    """The run table or its open-runs index does not exist: the stack is not deployed as its template says."""


class RunsNotReconciledError(OpsflowError):
    """Some open runs could not be checked or cleaned up; the others were. The next pass tries again."""


class Report(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    open_runs: int = Field(default=0, alias="openRuns")
    still_running: list[str] = Field(default_factory=list, alias="stillRunning")
    cleaned_up: list[str] = Field(default_factory=list, alias="cleanedUp")  # an alert says what was done
    closed: list[str] = Field(default_factory=list)  # nothing was left to do
    skipped: list[str] = Field(default_factory=list)  # closed meanwhile, or another cleaner holds it
    following_up: list[str] = Field(default_factory=list, alias="followingUp")  # instances not back yet
    failed: list[str] = Field(default_factory=list)

    def file(self, execution_arn: str, action: str) -> None:
        """Note what the cleanup did with the run (opsflow.cleanup's ``action``)."""
        lists = {"restored": self.cleaned_up, "closed": self.closed, "following up": self.following_up}
        lists.get(action, self.skipped).append(execution_arn)


def table_not_ready(table_name: str, error: dict[str, Any]) -> RunTableNotReadyError | None:
    """The error a failed query of the open runs means (``error``: DynamoDB's Error), if the table is not deployed."""
    if error["Code"] == "ResourceNotFoundException" or "index" in error.get("Message", ""):
        return RunTableNotReadyError(
            f"run table {table_name} or its index {OPEN_RUNS_INDEX} does not exist "
            f"({error['Code']}: {error.get('Message', '')}); deploy template.yaml, which declares both"
        )
    return None


def not_reconciled(report: Report) -> RunsNotReconciledError | None:
    if not report.failed:
        return None
    return RunsNotReconciledError(
        f"{len(report.failed)} of {report.open_runs} open runs could not be reconciled (see the log): "
        + ", ".join(report.failed)
    )
