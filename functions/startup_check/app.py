"""Is the rebooted instance really up? Running, status checks ok, and its health URL answers.

``expect: "down"`` (asked first, right after the reboot call) passes once the application no longer
answers, proving the queued reboot has begun; until then InstanceNotYetDownException. ``expect: "up"``
raises InstanceNotYetStartedException while the instance is coming up (the state machine retries
both), InstanceCannotStartError when it cannot come up (not retried).

With ``waitSeconds``, one invocation keeps asking the health URL every ``pollSeconds`` for up to that
long (within the function's timeout) before it answers "not yet": the change is seen within a poll,
and the state machine pays one transition per ``waitSeconds`` rather than one per question.
"""

from typing import Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import polling, timeutil
from opsflow.health import HealthCheck, wait_until_up, wait_went_down
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import RunTableSettings, cached_settings
from opsflow.validation import InstanceId, parse_event


class StartupCheckEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    instance_id: InstanceId = Field(alias="instanceId")
    health: HealthCheck
    expect: Literal["up", "down"] = "up"
    execution_arn: str = Field(default="", alias="executionArn")  # with "down": where to note it was seen down
    wait_seconds: int = Field(default=0, ge=0, le=900, alias="waitSeconds")  # keep asking this long (0: ask once)
    poll_seconds: float = Field(default=1.0, ge=0.5, le=60, alias="pollSeconds")


class Settings(RunTableSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(StartupCheckEvent, event)
    # One more health URL request may take its whole timeout: keep that in reserve.
    for_seconds = polling.budget(request.wait_seconds, context, request.health.timeout_seconds)
    waiting = {"every": request.poll_seconds, "for_seconds": for_seconds}
    if request.expect == "down":
        seen = wait_went_down(request.instance_id, request.health, **waiting)
        if request.execution_arn:
            RunTable(settings().table_name).note_progress(
                request.execution_arn, request.instance_id, downSeenAt=timeutil.iso_now()
            )
        logger.info("the reboot has begun", extra={"instance_id": request.instance_id, "seen": seen})
        return {"instanceId": request.instance_id, "at": timeutil.iso_now(), "seen": seen}
    status = wait_until_up(request.instance_id, request.health, **waiting)
    logger.info("instance is up", extra={"instance_id": request.instance_id, "status": status})
    return {"instanceId": request.instance_id, "at": timeutil.iso_now(), "statusCode": status}
