"""Who can reach an instance's health URL: the network rules AWS applies, read from the VPC in moto.

- A function without VPC settings runs in a VPC that Lambda owns and cannot reach private IPs
  ("By default, Lambda runs your functions in a secure VPC with access to AWS services and the
  internet. Lambda owns this VPC, which isn't connected to your account's default VPC": Lambda
  developer guide, configuration-vpc). The caller sees a connect timeout.
- A function in a VPC reaches an instance of the same VPC only where security groups allow it:
  an ingress rule of one of the instance's groups for the port, from one of the function's groups
  (or a CIDR holding the function's subnet), and an egress rule of one of the function's groups
  towards the instance's group or address. Security groups drop what they do not allow: a timeout.

The rules are read once after the stack is deployed (the same security groups and ingress rules
template.yaml creates on AWS); nothing in a run changes them.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.moto_patches import ec2_backend


@dataclass(frozen=True)
class Placement:
    """Where a function runs: its VPC subnets and security groups (VpcConfig)."""

    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    @classmethod
    def from_vpc_config(cls, vpc_config: Any) -> "Placement | None":
        """A resolved ``VpcConfig`` (empty when the template's condition left it out) -> placement."""
        if not isinstance(vpc_config, dict) or not vpc_config.get("SubnetIds"):
            return None
        return cls(tuple(vpc_config["SubnetIds"]), tuple(vpc_config.get("SecurityGroupIds", [])))


@dataclass(frozen=True)
class Host:
    vpc_id: str
    ip: str
    security_group_ids: tuple[str, ...]


def _covers(permission: dict[str, Any], port: int) -> bool:
    if permission.get("IpProtocol") in ("-1", "all"):
        return True
    if permission.get("IpProtocol") not in ("tcp", "6"):
        return False
    return int(permission.get("FromPort", -1)) <= port <= int(permission.get("ToPort", -1))


def _in_cidr(cidrs: Iterable[str], network: str) -> bool:
    inner = ipaddress.ip_network(network, strict=False)
    return any(inner.subnet_of(ipaddress.ip_network(c, strict=False)) for c in cidrs)  # type: ignore[arg-type]


def _allows(permissions: list[dict[str, Any]], port: int, groups: tuple[str, ...], network: str) -> bool:
    for permission in permissions:
        if not _covers(permission, port):
            continue
        if {p.get("GroupId") for p in permission.get("UserIdGroupPairs", [])} & set(groups):
            return True
        if _in_cidr((r["CidrIp"] for r in permission.get("IpRanges", [])), network):
            return True
    return False


class Network:
    """Answers "can function F open a TCP connection to ip:port?" from a snapshot of the VPC."""

    def __init__(
        self,
        placements: dict[str, Placement | None],
        hosts: dict[str, Host],
        subnets: dict[str, dict[str, str]],
        groups: dict[str, dict[str, Any]],
    ) -> None:
        self.placements = placements  # function logical id -> placement (None: outside any VPC)
        self.hosts = hosts  # private ip -> host
        self.subnets = subnets  # subnet id -> {"VpcId", "CidrBlock"}
        self.groups = groups  # security group id -> describe_security_groups entry

    @classmethod
    def snapshot(cls, ec2: Any, placements: dict[str, Placement | None]) -> "Network":
        # Instances straight from moto's backend: DescribeInstances through the API serialises each one to
        # XML and back (minutes for 5,000); the security groups and subnets are few.
        backend = ec2_backend(ec2.meta.region_name)
        hosts = {}
        for reservation in backend.all_reservations():
            for inst in reservation.instances:
                if inst.private_ip:
                    member_of = tuple(g.id for g in inst.security_groups)
                    hosts[inst.private_ip] = Host(inst.vpc_id or "", inst.private_ip, member_of)
        subnets = {s["SubnetId"]: s for s in ec2.describe_subnets()["Subnets"]}
        groups = {g["GroupId"]: g for g in ec2.describe_security_groups()["SecurityGroups"]}
        return cls(placements, hosts, subnets, groups)

    def blocked(self, caller: str | None, ip: str, port: int) -> str | None:
        """Why ``caller``'s connection to ip:port would time out; None when it gets through.

        ``caller`` None is the sandbox itself or a test (not a deployed function): always through.
        """
        if caller is None:
            return None
        placement = self.placements.get(caller)
        if placement is None:
            return f"{caller} runs outside any VPC and cannot reach the private address {ip}"
        host = self.hosts.get(ip)
        if host is None:
            return None  # not an instance of the VPC: the fleet adapter answers for it
        subnet = next((self.subnets[s] for s in placement.subnet_ids if s in self.subnets), None)
        if subnet is None or subnet["VpcId"] != host.vpc_id:
            return f"{caller} runs in another VPC than {ip} ({host.vpc_id})"
        ingress = [p for g in host.security_group_ids for p in self.groups.get(g, {}).get("IpPermissions", [])]
        if not _allows(ingress, port, placement.security_group_ids, subnet["CidrBlock"]):
            return f"no security group of {ip} ({', '.join(host.security_group_ids)}) lets {caller} in on port {port}"
        egress = [
            p for g in placement.security_group_ids for p in self.groups.get(g, {}).get("IpPermissionsEgress", [])
        ]
        if not _allows(egress, port, host.security_group_ids, f"{ip}/32"):
            return f"the security groups of {caller} do not let it out to {ip}:{port}"
        return None
