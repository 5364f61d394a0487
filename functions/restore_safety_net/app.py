"""Safety net: restore alarms and rules, put back instances, release the lock after an abnormal end.

Catchers do not run when an execution is stopped or times out, so this function is triggered by an
EventBridge rule on "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED) of the
rolling-restart state machine. The cleanup itself is opsflow.cleanup (shared with the reconciler).
"""

from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow.cleanup import clean_up
from opsflow.observability import logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_event


class Settings(RunTableSettings, NotificationSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


class ExecutionStatusChange(BaseModel):
    """The event's detail, as the Step Functions developer guide documents it ("Automating Step Functions
    event delivery with EventBridge", https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html):
    the execution's ARN, name and state machine, its status (DescribeExecution's ExecutionStatus), its
    start and stop dates in epoch milliseconds, and its input and output as JSON strings (null when absent)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    execution_arn: str = Field(alias="executionArn", pattern=r"^arn:aws[a-z-]*:states:")
    state_machine_arn: str = Field(alias="stateMachineArn")
    name: str | None = None
    status: Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
    start_date: int | None = Field(default=None, alias="startDate")
    stop_date: int | None = Field(default=None, alias="stopDate")
    error: str | None = None
    cause: str | None = None


class ExecutionStatusChangeEvent(EventBridgeModel):
    source: Literal["aws.states"]
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    detail: ExecutionStatusChange


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = parse_event(ExecutionStatusChangeEvent, event).detail
    result = clean_up(RunTable(settings().table_name), settings().topic_arn, detail.execution_arn, detail.status)
    logger.info("safety net", extra=result)
    return result
