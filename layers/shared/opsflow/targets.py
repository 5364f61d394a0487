"""What the load balancer thinks of its targets."""

from typing import Any, NamedTuple

from opsflow import clients

HEALTHY = "healthy"


class Target(NamedTuple):
    state: str  # healthy, initial, unhealthy, draining, unused, unavailable
    port: int


def registered_targets(target_group_arn: str, instance_ids: list[str] | None = None) -> dict[str, Target]:
    """Instance id -> its state and the port it is registered on."""
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
