"""Step Functions' view of an execution: has it ended, and how?"""

from dataclasses import dataclass

from opsflow import clients

# Step Functions keeps closed executions for a limited time only: one it no longer lists cannot be running.
NO_LONGER_LISTED = "EXPIRED"


@dataclass(frozen=True)
class Execution:
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE
    error: str | None  # the error it failed with, if any


def describe(execution_arn: str) -> Execution | None:
    """The execution's status and error; None when Step Functions has no such execution."""
    sfn = clients.client("stepfunctions")
    try:
        described = sfn.describe_execution(executionArn=execution_arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
    return Execution(described["status"], described.get("error"))


def status(execution_arn: str) -> str:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE, or NO_LONGER_LISTED."""
    found = describe(execution_arn)
    return NO_LONGER_LISTED if found is None else found.status
