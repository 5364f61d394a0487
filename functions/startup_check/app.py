"""Is the rebooted instance really up? Running, status checks ok, and its health URL answers.

``expect: "down"`` (asked first, right after the reboot call) passes once the application no longer
answers, proving the queued reboot has begun; until then InstanceNotYetDownException. ``expect: "up"``
raises InstanceNotYetStartedException while the instance is coming up (the state machine retries
both with backoff), InstanceCannotStartError when it cannot come up (not retried).
"""

from typing import Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import timeutil
from opsflow.health import HealthCheck, check_instance, check_went_down
from opsflow.observability import logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import RunTableSettings, cached_settings
from opsflow.validation import InstanceId, parse_event


class StartupCheckEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    instance_id: InstanceId = Field(alias="instanceId")
    health: HealthCheck
    expect: Literal["up", "down"] = "up"
    execution_arn: str = Field(default="", alias="executionArn")  # with "down": where to note it was seen down


class Settings(RunTableSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(StartupCheckEvent, event)
    if request.expect == "down":
        seen = check_went_down(request.instance_id, request.health)
        if request.execution_arn:
            RunTable(settings().table_name).note_progress(
                request.execution_arn, request.instance_id, downSeenAt=timeutil.iso_now()
            )
        logger.info("the reboot has begun", extra={"instance_id": request.instance_id, "seen": seen})
        return {"instanceId": request.instance_id, "at": timeutil.iso_now(), "seen": seen}
    status = check_instance(request.instance_id, request.health)
    logger.info("instance is up", extra={"instance_id": request.instance_id, "status": status})
    return {"instanceId": request.instance_id, "at": timeutil.iso_now(), "statusCode": status}
