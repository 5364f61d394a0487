"""Patch Manager's compliance summary of each instance (DescribeInstancePatchStates)."""

from typing import Any

from opsflow import clients

STATES_CHUNK = 50  # DescribeInstancePatchStates takes at most 50 instance ids


def patch_states(instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Instance id -> its patch state (counts, last operation and when it ended); instances without data are absent."""
    ssm, found = clients.client("ssm"), dict[str, dict[str, Any]]()
    paginator = ssm.get_paginator("describe_instance_patch_states")
    for start in range(0, len(instance_ids), STATES_CHUNK):
        for page in paginator.paginate(InstanceIds=instance_ids[start : start + STATES_CHUNK]):
            found |= {s["InstanceId"]: s for s in page["InstancePatchStates"]}
    return found
