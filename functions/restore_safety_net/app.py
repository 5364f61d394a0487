"""Safety net: restore alarms and rules, put back instances, release the lock after an abnormal end.

Catchers do not run when an execution is stopped or times out, so this function is triggered by an
EventBridge rule on "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED) of the
rolling-restart state machine. The cleanup itself is opsflow.cleanup (shared with the reconciler).
"""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from opsflow.cleanup import clean_up
from opsflow.errors import InvalidInputError
from opsflow.observability import logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings


class Settings(RunTableSettings, NotificationSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


@event_source(data_class=EventBridgeEvent)
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    detail = event.detail
    execution_arn, status = detail.get("executionArn"), detail.get("status")
    if not execution_arn or not status:
        raise InvalidInputError("not a Step Functions Execution Status Change event (no executionArn/status)")
    result = clean_up(RunTable(settings().table_name), settings().topic_arn, execution_arn, status)
    logger.info("safety net", extra=result)
    return result
