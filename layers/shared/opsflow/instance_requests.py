"""What the instance action is asked: one model per action, told apart by ``action``.

The state machine sends them (statemachines/rolling_restart.asl.json); a request that matches none is
refused naming the field, before anything is done (opsflow.validation.parse_event).
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsflow.health import HealthCheck
from opsflow.validation import InstanceId, parse_event


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RebootEvent(_Event):
    action: Literal["reboot"]
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)


class CommandSpec(BaseModel):
    """What to run: an SSM Command document, its parameters, and how long SSM may take to deliver it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    document_name: str = Field(alias="documentName", min_length=3, max_length=128)
    parameters: dict[str, list[str]] = Field(default_factory=dict)
    timeout_seconds: int = Field(default=600, alias="timeoutSeconds", ge=30, le=2592000)
    output_s3_bucket_name: str = Field(default="", alias="outputS3BucketName", max_length=63)
    output_s3_key_prefix: str = Field(default="", alias="outputS3KeyPrefix", max_length=500)

    def output_location(self) -> dict[str, str]:
        """SendCommand's output parameters, only those given: one not given is left out, not sent empty
        (SendCommand's OutputS3BucketName has a minimum length of 3, SSM API reference)."""
        given = {"OutputS3BucketName": self.output_s3_bucket_name, "OutputS3KeyPrefix": self.output_s3_key_prefix}
        return {k: v for k, v in given.items() if v}


class CommandEvent(_Event):
    action: Literal["command"]
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)
    command: CommandSpec


class CommandStatusEvent(_Event):
    action: Literal["command_status"]
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)
    command_id: str = Field(alias="commandId", min_length=36, max_length=36)


class StandbyEvent(_Event):
    action: Literal["standby", "in_service"]  # on Standby in its Auto Scaling group / back in service
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)
    auto_scaling_group: str = Field(alias="autoScalingGroup", min_length=1, max_length=255)


class PlannedInstance(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    instance_id: InstanceId = Field(alias="instanceId")
    private_ip: str = Field(alias="privateIp")


class PreflightEvent(_Event):
    action: Literal["preflight"]
    instances: list[PlannedInstance] = Field(min_length=1, max_length=1000)
    health: HealthCheck
    instance_action: Literal["reboot", "command"] = Field(default="reboot", alias="instanceAction")
    # The run that asks (its logs' correlation id); the check does not depend on it.
    execution_arn: str = Field(default="", alias="executionArn")


ActionRequest = RebootEvent | CommandEvent | CommandStatusEvent | PreflightEvent | StandbyEvent


class ActionEvent(BaseModel):
    event: Annotated[ActionRequest, Field(discriminator="action")]


def parse_action(event: dict[str, Any]) -> ActionRequest:
    """The request ``event`` is, by its ``action``; InvalidInputError naming what is wrong otherwise."""
    return parse_event(ActionEvent, {"event": event}).event
