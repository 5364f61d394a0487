"""SSM Run Command: send a document to an instance, read how it went, and which instances can take one."""

from typing import Any

from opsflow import clients
from opsflow.errors import error_code, service_error
from opsflow.instance_actions import Invocation

INFORMATION_CHUNK = 50  # DescribeInstanceInformation takes at most 50 instance ids per filter


def send(
    instance_id: str,
    *,
    document_name: str,
    parameters: dict[str, list[str]],
    timeout_seconds: int,
    comment: str,
    output: dict[str, str],
) -> str:
    """SendCommand to one instance; its command id. ``output``: OutputS3BucketName/OutputS3KeyPrefix, if any."""
    command = clients.client("ssm").send_command(
        InstanceIds=[instance_id],
        DocumentName=document_name,
        Parameters=parameters,
        TimeoutSeconds=timeout_seconds,
        Comment=comment[:100],  # SendCommand's limit
        **output,
    )["Command"]
    return str(command["CommandId"])


def invocation(command_id: str, instance_id: str) -> Invocation | None:
    """GetCommandInvocation; None while SSM does not list the command yet (InvocationDoesNotExist); other
    refusals raised under SSM's own error code (ThrottlingException: the state machine retries)."""
    ssm = clients.client("ssm")
    try:
        answer: dict[str, Any] = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except ssm.exceptions.ClientError as exc:
        if error_code(exc) == "InvocationDoesNotExist":
            return None
        raise service_error(exc) from exc
    return Invocation.from_api(answer)


def offline_for_ssm(instance_ids: list[str]) -> dict[str, str]:
    """Instances SSM cannot run a command on now, with why (not managed, agent not Online)."""
    ssm, pings = clients.client("ssm"), dict[str, str]()
    for start in range(0, len(instance_ids), INFORMATION_CHUNK):
        chunk = instance_ids[start : start + INFORMATION_CHUNK]
        pages = ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "InstanceIds", "Values": chunk}]
        )
        for page in pages:
            pings |= {i["InstanceId"]: i.get("PingStatus", "") for i in page["InstanceInformationList"]}
    return {
        i: (f"SSM Agent is {pings[i]}" if i in pings else "not a managed node of Systems Manager")
        for i in instance_ids
        if pings.get(i) != "Online"
    }
