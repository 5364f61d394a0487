"""Systems Manager reads for patching: a maintenance window, and which instances are managed nodes
(each one's last patch operation is opsflow.patch_states). Plain data in and out."""

from typing import Any

from opsflow import clients
from opsflow.errors import OpsflowError

BATCH = 50  # DescribeInstanceInformation takes 50 ids a call


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
