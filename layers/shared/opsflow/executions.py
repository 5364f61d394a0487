"""Step Functions executions, read: how one ended."""

from dataclasses import dataclass

from opsflow import clients


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
