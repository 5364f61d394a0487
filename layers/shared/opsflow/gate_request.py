"""What the target gate is asked: which check, for which instance, where it is registered, and the
run's limits (floors per group and zone, error budget, lock, how long and how often to ask).

Sent by the state machine from the plan (statemachines/rolling_restart.asl.json); anything else is
refused naming the field.
"""

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsflow.targets import Registration


class GateEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    check: Literal["capacity", "drained", "in_service"]
    instance_id: str = Field(alias="instanceId")
    target_group_arn: str = Field(alias="targetGroupArn")
    # Every target group the run changes (its locks); default: targetGroupArn alone.
    target_group_arns: list[str] = Field(default_factory=list, alias="targetGroupArns")
    # Where the instance is registered (each group, its port); default: targetGroupArn on its own port.
    registrations: list[Registration] = Field(default_factory=list)
    # Its EC2 Auto Scaling group (capacity: recorded, so whoever puts it back takes it out of Standby too).
    auto_scaling_group: str | None = Field(default=None, alias="autoScalingGroup")
    # The Auto Scaling groups of the run's instances: they may terminate instances of the run (scale-in).
    auto_scaling_groups: list[str] = Field(default_factory=list, alias="autoScalingGroups")
    execution_arn: str = Field(default="", alias="executionArn")
    floor: int = Field(default=0, ge=0)  # for a group floors does not name
    floors: dict[str, int] = Field(default_factory=dict)  # target group -> healthy targets it keeps
    zone: str = ""
    one_zone_at_a_time: bool = Field(default=False, alias="oneZoneAtATime")
    zone_floors: dict[str, int] = Field(default_factory=dict, alias="zoneFloors")
    error_budget: int = Field(default=1, ge=1, alias="errorBudget")
    lock_seconds: int = Field(default=0, ge=0, alias="lockSeconds")  # capacity: renew the lock for this long
    wait_seconds: int = Field(default=0, ge=0, le=900, alias="waitSeconds")  # drained, in_service: keep asking
    # drained: deregister the instance first; in_service: register it again first (each with the run's others).
    deregister_first: bool = Field(default=False, alias="deregister")
    register_first: bool = Field(default=False, alias="register")
    # How often this instance looks (opsflow.polling.elb_poll_seconds; one answer shared: opsflow.shared_target_health).
    poll_seconds: float = Field(default=1.0, ge=0.5, le=60, alias="pollSeconds")

    @model_validator(mode="after")
    def _each_change_before_its_own_wait(self) -> Self:
        for field, flag, check in (
            ("deregister", self.deregister_first, "drained"),
            ("register", self.register_first, "in_service"),
        ):
            if flag and self.check != check:
                raise ValueError(f"{field} is for the {check} check only, not {self.check}: leave it out")
        return self

    def first_change(self) -> Literal["register", "deregister"] | None:
        """What the gate changes before it waits: the instance's registrations, taken out or put back."""
        return "deregister" if self.deregister_first else "register" if self.register_first else None

    def where(self) -> list[Registration]:
        return self.registrations or [Registration(target_group_arn=self.target_group_arn)]

    def locked_groups(self) -> list[str]:
        return self.target_group_arns or [self.target_group_arn]
