"""EC2 instances, read: what planning a change needs to know of each (state, tags, network, zone)."""

from dataclasses import dataclass, field
from typing import Any

from opsflow import clients

# Instance ids per DescribeInstances request: EC2 limits how many values one filter takes.
DESCRIBE_AT_ONCE = 200


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


def describe(instance_ids: list[str]) -> dict[str, Ec2Instance]:
    """The instances that exist among ``instance_ids``, by id (a filter, so an unknown id is absent, not an error)."""
    paginator = clients.client("ec2").get_paginator("describe_instances")
    found: dict[str, Ec2Instance] = {}
    for start in range(0, len(instance_ids), DESCRIBE_AT_ONCE):
        chunk = instance_ids[start : start + DESCRIBE_AT_ONCE]
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
            for reservation in page["Reservations"]:
                for described in reservation["Instances"]:
                    found[described["InstanceId"]] = _instance(described)
    return found
