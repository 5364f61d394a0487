"""Load balancer target groups, read: a group's settings, a load balancer's groups, every group of the account.

Reads only, answered as plain data; what a group's targets think of their health is opsflow.targets.
"""

from dataclasses import dataclass
from typing import Any

from opsflow import clients

# ELB's default when the attribute is absent (Application Load Balancer guide, "Deregistration delay").
DEFAULT_DEREGISTRATION_DELAY_SECONDS = 300


@dataclass(frozen=True)
class TargetGroup:
    """What planning a restart needs of one target group."""

    arn: str
    target_type: str  # instance, ip, lambda, alb
    vpc_id: str
    port: int  # the group's own port (targets may be registered on others)
    health_check_interval_seconds: int
    deregistration_delay_seconds: int


@dataclass(frozen=True)
class ListedGroup:
    """A target group as DescribeTargetGroups lists it, without its attributes."""

    arn: str
    target_type: str
    vpc_id: str


def _listed(group: dict[str, Any]) -> ListedGroup:
    return ListedGroup(group["TargetGroupArn"], group.get("TargetType", "instance"), group.get("VpcId", ""))


def describe(arn: str) -> TargetGroup | None:
    """The group and its deregistration delay; None when it does not exist."""
    elbv2 = clients.client("elbv2")
    try:
        group = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
    except elbv2.exceptions.TargetGroupNotFoundException:
        return None
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    delay = next(
        (int(a["Value"]) for a in attributes if a["Key"] == "deregistration_delay.timeout_seconds"),
        DEFAULT_DEREGISTRATION_DELAY_SECONDS,
    )
    listed = _listed(group)
    return TargetGroup(
        arn=arn,
        target_type=listed.target_type,
        vpc_id=listed.vpc_id,
        port=int(group.get("Port", 0)),
        health_check_interval_seconds=int(group.get("HealthCheckIntervalSeconds", 30)),
        deregistration_delay_seconds=delay,
    )


def of_load_balancer(arn: str) -> list[str] | None:
    """The target groups the load balancer forwards to; None when it does not exist."""
    elbv2 = clients.client("elbv2")
    try:
        pages = elbv2.get_paginator("describe_target_groups").paginate(LoadBalancerArn=arn)
        return [g["TargetGroupArn"] for page in pages for g in page["TargetGroups"]]
    except elbv2.exceptions.LoadBalancerNotFoundException:
        return None


def every_group() -> list[ListedGroup]:
    """Every target group of the account and region (ELB cannot tell where an instance is registered)."""
    pages = clients.client("elbv2").get_paginator("describe_target_groups").paginate()
    return [_listed(g) for page in pages for g in page["TargetGroups"]]
