"""What the load balancer thinks of its targets, and where an instance is registered.

A target is an (instance, port) pair: ELB lets an instance be registered in one target group on
several ports (port overrides), and in several target groups. Every call here names the port, since
"If you specified a port override when you registered a target, you must specify both the target ID
and the port when you deregister it" (AWS CLI reference, elbv2 deregister-targets).
"""

import json
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients

HEALTHY = "healthy"
OUT_OF_SERVICE = ("unused", "draining")  # states in which the target no longer takes new requests


class Target(NamedTuple):
    state: str  # healthy, initial, unhealthy, draining, unused, unavailable
    port: int


class Registration(BaseModel):
    """One place an instance is registered: a target group and the port it is registered on there."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    target_group_arn: str = Field(alias="targetGroupArn")
    port: int | None = Field(default=None, ge=1, le=65535)  # None: the group's own port (a record from before ports)

    def target(self, instance_id: str) -> dict[str, Any]:
        return {"Id": instance_id} if self.port is None else {"Id": instance_id, "Port": self.port}


class TargetHealth(NamedTuple):
    instance_id: str
    port: int
    state: str


def describe(target_group_arn: str, targets: list[dict[str, Any]] | None = None) -> list[TargetHealth]:
    """Every target of the group (or those asked, each {"Id", "Port"}), with its port and state."""
    elbv2 = clients.client("elbv2")
    kwargs: dict[str, Any] = {"TargetGroupArn": target_group_arn}
    if targets:
        kwargs["Targets"] = targets
    descriptions = elbv2.describe_target_health(**kwargs)["TargetHealthDescriptions"]
    return [
        TargetHealth(d["Target"]["Id"], int(d["Target"].get("Port", 0)), d["TargetHealth"]["State"])
        for d in descriptions
    ]


def registered_targets(target_group_arn: str, instance_ids: list[str] | None = None) -> dict[str, Target]:
    """Instance id -> its state and the port it is registered on (one of them, if several)."""
    elbv2 = clients.client("elbv2")
    kwargs: dict[str, Any] = {"TargetGroupArn": target_group_arn}
    if instance_ids:
        kwargs["Targets"] = [{"Id": i} for i in instance_ids]
    descriptions = elbv2.describe_target_health(**kwargs)["TargetHealthDescriptions"]
    return {
        d["Target"]["Id"]: Target(d["TargetHealth"]["State"], int(d["Target"].get("Port", 0))) for d in descriptions
    }


def target_states(target_group_arn: str, instance_ids: list[str] | None = None) -> dict[str, str]:
    """Instance id -> target state (healthy, initial, unhealthy, draining, unused, unavailable)."""
    return {i: t.state for i, t in registered_targets(target_group_arn, instance_ids).items()}


def states(instance_id: str, registrations: Iterable[Registration]) -> dict[Registration, str]:
    """The state of the instance in each of its registrations (one call per target group)."""
    by_group: dict[str, list[Registration]] = {}
    for reg in registrations:
        by_group.setdefault(reg.target_group_arn, []).append(reg)
    found: dict[Registration, str] = {}
    for arn, regs in by_group.items():
        described = describe(arn, [r.target(instance_id) for r in regs])
        for reg in regs:
            answered = [t.state for t in described if reg.port is None or t.port == reg.port]
            found[reg] = answered[0] if answered else "unused"
    return found


def states_among(
    instance_id: str, registrations: Iterable[Registration], listed: Callable[[str], list[TargetHealth]]
) -> dict[Registration, str]:
    """The state of the instance in each registration, read from ``listed(group)``: the group's targets (the
    instance's own at least) as DescribeTargetHealth without Targets answers. It lists registered and
    draining targets only, so a target it does not list is ``unused``. A registration without a port
    matches the instance on any port."""
    found: dict[Registration, str] = {}
    for arn in dict.fromkeys(r.target_group_arn for r in registrations):
        targets = [t for t in listed(arn) if t.instance_id == instance_id]
        for reg in (r for r in registrations if r.target_group_arn == arn):
            answered = [t.state for t in targets if reg.port is None or t.port == reg.port]
            found[reg] = answered[0] if answered else "unused"
    return found


def register(instance_id: str, registrations: Iterable[Registration]) -> list[Registration]:
    """Register the instance again where it is out (unused or draining), exactly on its port; return those."""
    done = []
    for reg, state in states(instance_id, registrations).items():
        if state in OUT_OF_SERVICE:
            clients.client("elbv2").register_targets(
                TargetGroupArn=reg.target_group_arn, Targets=[reg.target(instance_id)]
            )
            done.append(reg)
    return done


def deregister(instance_id: str, registrations: Iterable[Registration]) -> list[Registration]:
    """Deregister the instance where it is still in service, naming its port; return those."""
    done = []
    for reg, state in states(instance_id, registrations).items():
        if state not in OUT_OF_SERVICE:
            clients.client("elbv2").deregister_targets(
                TargetGroupArn=reg.target_group_arn, Targets=[reg.target(instance_id)]
            )
            done.append(reg)
    return done


def parse_registrations(value: Any) -> list[Registration]:
    """Registrations as the run table stores them (a JSON list), or a list of dicts."""
    items = json.loads(value) if isinstance(value, str) else value
    return [Registration.model_validate(item) for item in items or []]
