"""Systems Manager reads for patching: a maintenance window, which instances are managed nodes, and
each one's last patch operation (DescribeInstancePatchStates). Plain data in and out."""

from typing import Any

from opsflow import clients
from opsflow.errors import OpsflowError

BATCH = 50  # DescribeInstancePatchStates and DescribeInstanceInformation take 50 ids a call


class MaintenanceWindowNotFoundError(OpsflowError):
    """The maintenance window named in the input does not exist."""


def maintenance_window(window_id: str) -> dict[str, Any]:
    """GetMaintenanceWindow's answer (Name, Schedule, Enabled, NextExecutionTime as SSM gives them)."""
    ssm = clients.client("ssm")
    try:
        return dict(ssm.get_maintenance_window(WindowId=window_id))
    except ssm.exceptions.DoesNotExistException as exc:
        raise MaintenanceWindowNotFoundError(f"maintenance window {window_id} does not exist") from exc


def managed_nodes(instance_ids: list[str]) -> set[str]:
    """Those of the instances SSM manages (DescribeInstanceInformation lists them)."""
    ssm = clients.client("ssm")
    out: set[str] = set()
    for start in range(0, len(instance_ids), BATCH):
        chunk = instance_ids[start : start + BATCH]
        pages = ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "InstanceIds", "Values": chunk}]
        )
        out.update(info["InstanceId"] for page in pages for info in page["InstanceInformationList"])
    return out


def patch_states(instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each instance's patch summary from its last Scan or Install, by instance id (none: never patched)."""
    ssm = clients.client("ssm")
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(instance_ids), BATCH):
        pages = ssm.get_paginator("describe_instance_patch_states").paginate(
            InstanceIds=instance_ids[start : start + BATCH]
        )
        for page in pages:
            for state in page["InstancePatchStates"]:
                out[state["InstanceId"]] = state
    return out
