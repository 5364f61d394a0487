"""Step Functions' view of an execution: has it ended?"""

from opsflow import clients

# Step Functions keeps closed executions for a limited time only: one it no longer lists cannot be running.
NO_LONGER_LISTED = "EXPIRED"


def status(execution_arn: str) -> str:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE, or NO_LONGER_LISTED."""
    sfn = clients.client("stepfunctions")
    try:
        return str(sfn.describe_execution(executionArn=execution_arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return NO_LONGER_LISTED
