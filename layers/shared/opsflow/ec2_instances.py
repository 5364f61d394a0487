"""EC2 reads: the instances DescribeInstances finds, with what planning, patching and the capacity gate need of each."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opsflow import clients

Filters = list[dict[str, Any]]  # DescribeInstances filters: Name, Values

# Instance ids per DescribeInstances request: EC2 limits how many values one filter takes.
DESCRIBE_AT_ONCE = 200
ENDED = ("shutting-down", "terminated")


@dataclass(frozen=True)
class Ec2Instance:
    instance_id: str
    state: str  # pending, running, stopping, stopped, shutting-down, terminated
    tags: dict[str, str] = field(default_factory=dict)
    vpc_id: str = ""
    security_group_ids: frozenset[str] = frozenset()
    zone: str = ""
    private_ip: str = ""


def _instance(described: dict[str, Any]) -> Ec2Instance:
    return Ec2Instance(
        instance_id=described["InstanceId"],
        state=described["State"]["Name"],
        tags={t["Key"]: t["Value"] for t in described.get("Tags", [])},
        vpc_id=described.get("VpcId", ""),
        security_group_ids=frozenset(g["GroupId"] for g in described.get("SecurityGroups", [])),
        zone=described.get("Placement", {}).get("AvailabilityZone", ""),
        private_ip=described.get("PrivateIpAddress", ""),
    )


def _matching(filters: Filters) -> Iterator[Ec2Instance]:
    """Every instance one set of filters matches, across DescribeInstances' pages."""
    for page in clients.client("ec2").get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for described in reservation["Instances"]:
                yield _instance(described)


def describe(instance_ids: list[str]) -> dict[str, Ec2Instance]:
    """The instances that exist among ``instance_ids``, by id (a filter, so an unknown id is absent, not an error)."""
    found: dict[str, Ec2Instance] = {}
    for start in range(0, len(instance_ids), DESCRIBE_AT_ONCE):
        chunk = instance_ids[start : start + DESCRIBE_AT_ONCE]
        found.update((i.instance_id, i) for i in _matching([{"Name": "instance-id", "Values": chunk}]))
    return found


def terminated(instance_ids: list[str]) -> set[str]:
    """Those that are shutting down, terminated, or gone (terminated a while ago: EC2 no longer lists them)."""
    return set(instance_ids) - {i.instance_id for i in describe(instance_ids).values() if i.state not in ENDED}


def tags_of_instances(queries: list[Filters]) -> dict[str, dict[str, str]]:
    """Every instance any of the DescribeInstances filter sets matches, with its tags."""
    return {i.instance_id: i.tags for query in queries for i in _matching(query)}
