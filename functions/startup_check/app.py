"""Is the rebooted instance really up? Running, status checks ok, and its health URL answers.

Raises InstanceNotYetStartedException while it is coming up (the state machine retries with
backoff), InstanceCannotStartError when it cannot come up (not retried).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import timeutil
from opsflow.health import HealthCheck, check_instance
from opsflow.observability import logger, metrics, tracer
from opsflow.validation import parse_event


class StartupCheckEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    instance_id: str = Field(alias="instanceId", pattern=r"^i-[0-9a-f]{8,17}$")
    health: HealthCheck


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(StartupCheckEvent, event)
    status = check_instance(request.instance_id, request.health)
    logger.info("instance is up", extra={"instance_id": request.instance_id, "status": status})
    return {"instanceId": request.instance_id, "at": timeutil.iso_now(), "statusCode": status}
