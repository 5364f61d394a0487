"""What the load balancer thinks of its targets."""

from typing import Any

from opsflow import clients

HEALTHY = "healthy"


def target_states(target_group_arn: str, instance_ids: list[str] | None = None) -> dict[str, str]:
    """Instance id -> target state (healthy, initial, unhealthy, draining, unused, unavailable)."""
    elbv2 = clients.client("elbv2")
    kwargs: dict[str, Any] = {"TargetGroupArn": target_group_arn}
    if instance_ids:
        kwargs["Targets"] = [{"Id": i} for i in instance_ids]
    descriptions = elbv2.describe_target_health(**kwargs)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descriptions}


def healthy_count(target_group_arn: str) -> int:
    return sum(1 for state in target_states(target_group_arn).values() if state == HEALTHY)
