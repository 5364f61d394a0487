"""Is an instance really up? EC2 state and status checks, then the application's health URL.

Raises ``InstanceNotYetStartedException`` while it may still come up (the state machine retries),
``InstanceCannotStartError`` when it cannot (stopped, terminated, impaired: retrying will not help).
"""

from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients
from opsflow.errors import InstanceCannotStartError, InstanceNotYetStartedException

DEAD_STATES = {"stopping", "stopped", "shutting-down", "terminated"}


class HealthCheck(BaseModel):
    """How to ask the application whether it is up."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    port: int = Field(ge=1, le=65535)
    path: str = Field(pattern=r"^/[^\s]*$", max_length=512)
    expected_status: int = Field(default=200, ge=100, le=599, alias="expectedStatus")
    timeout_seconds: float = Field(default=5, gt=0, le=30, alias="timeoutSeconds")


def describe_instance(instance_id: str) -> dict[str, Any]:
    ec2 = clients.client("ec2")
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ec2.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"].startswith("InvalidInstanceID"):
            raise InstanceCannotStartError(f"{instance_id}: no such instance") from exc
        raise
    return dict(reservations[0]["Instances"][0])


def check_instance(instance_id: str, check: HealthCheck) -> int:
    """Return the health URL's status code when the instance is up; raise otherwise."""
    instance = describe_instance(instance_id)
    state = instance["State"]["Name"]
    if state in DEAD_STATES:
        raise InstanceCannotStartError(f"{instance_id} is {state}")
    if state != "running":
        raise InstanceNotYetStartedException(f"{instance_id} is {state}")

    statuses = clients.client("ec2").describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
    if statuses:
        for kind in ("SystemStatus", "InstanceStatus"):
            status = statuses[0][kind]["Status"]
            if status == "impaired":
                raise InstanceCannotStartError(f"{instance_id}: {kind} is impaired")
            if status != "ok":
                raise InstanceNotYetStartedException(f"{instance_id}: {kind} is {status}")

    ip = instance.get("PrivateIpAddress")
    if not ip:
        raise InstanceCannotStartError(f"{instance_id} has no private IP address")
    url = f"http://{ip}:{check.port}{check.path}"
    try:
        response = clients.http_session().get(url, timeout=check.timeout_seconds, allow_redirects=False)
    except requests.RequestException as exc:
        raise InstanceNotYetStartedException(f"{instance_id}: {url} did not answer ({exc})") from exc
    if response.status_code != check.expected_status:
        raise InstanceNotYetStartedException(
            f"{instance_id}: {url} answered {response.status_code}, expected {check.expected_status}"
        )
    return response.status_code
