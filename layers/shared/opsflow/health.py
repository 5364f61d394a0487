"""Is an instance really up? EC2 state and status checks, then the application's health URL.

Raises ``InstanceNotYetStartedException`` while it may still come up (the state machine retries),
``InstanceCannotStartError`` when it cannot (stopped, terminated, impaired: retrying will not help).

A reboot is asynchronous: EC2 "only queues a request to reboot" and waits up to a few minutes for a
clean shutdown before a hard reboot (EC2 API reference, RebootInstances), and the instance stays
``running`` with status checks ``ok`` meanwhile. So "up" only counts once the application was seen
*down* after the reboot call: :func:`check_went_down` is asked first, until it passes.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, polling
from opsflow.errors import InstanceCannotStartError, InstanceNotYetDownException, InstanceNotYetStartedException

DEAD_STATES = {"stopping", "stopped", "shutting-down", "terminated"}


class HealthCheck(BaseModel):
    """How to ask the application whether it is up."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    port: int = Field(ge=1, le=65535)
    path: str = Field(pattern=r"^/[^\s]*$", max_length=512)
    expected_status: int = Field(default=200, ge=100, le=599, alias="expectedStatus")
    timeout_seconds: float = Field(default=5, gt=0, le=30, alias="timeoutSeconds")

    def url(self, ip: str) -> str:
        return f"http://{ip}:{self.port}{self.path}"


class ProbeResult(BaseModel):
    """One request to the health URL: ``status`` None when nothing answered."""

    url: str
    status: int | None
    problem: str = ""

    def ok(self, check: HealthCheck) -> bool:
        return self.status == check.expected_status

    def describe(self, check: HealthCheck) -> str:
        if self.status is None:
            return f"{self.url} did not answer ({self.problem})"
        return f"{self.url} answered {self.status}, expected {check.expected_status}"


def probe(ip: str, check: HealthCheck) -> ProbeResult:
    """GET the health URL once (no redirects: a redirect is not "ready")."""
    import requests  # here: the functions that only use HealthCheck never make an HTTP call (cold start)

    url = check.url(ip)
    try:
        response = clients.http_session().get(url, timeout=check.timeout_seconds, allow_redirects=False)
    except requests.RequestException as exc:
        return ProbeResult(url=url, status=None, problem=str(exc))
    return ProbeResult(url=url, status=response.status_code)


def describe_instance(instance_id: str) -> dict[str, Any]:
    ec2 = clients.client("ec2")
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ec2.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"].startswith("InvalidInstanceID"):
            raise InstanceCannotStartError(f"{instance_id}: no such instance") from exc
        raise
    return dict(reservations[0]["Instances"][0])


def _private_ip(instance: dict[str, Any]) -> str:
    ip = instance.get("PrivateIpAddress")
    if not ip:
        raise InstanceCannotStartError(f"{instance['InstanceId']} has no private IP address")
    return str(ip)


def check_went_down(instance_id: str, check: HealthCheck) -> str:
    """Pass once the application no longer answers "ready": the reboot has begun. Returns what was seen."""
    instance = describe_instance(instance_id)
    state = instance["State"]["Name"]
    if state in DEAD_STATES:
        raise InstanceCannotStartError(f"{instance_id} is {state}")
    result = probe(_private_ip(instance), check)
    if result.ok(check):
        raise InstanceNotYetDownException(
            f"{instance_id}: {result.url} still answers {result.status}: the reboot has not begun yet"
        )
    return result.describe(check)


def wait_went_down(instance_id: str, check: HealthCheck, *, every: float, for_seconds: float) -> str:
    """:func:`check_went_down`, asking the health URL again every ``every`` seconds for ``for_seconds``.

    EC2 is asked once: only the health URL is polled, so many instances waiting at once stay far
    below EC2's request rate limits."""
    instance = describe_instance(instance_id)
    if instance["State"]["Name"] in DEAD_STATES:
        raise InstanceCannotStartError(f"{instance_id} is {instance['State']['Name']}")
    ip = _private_ip(instance)

    def gone() -> str:
        result = probe(ip, check)
        if result.ok(check):
            raise InstanceNotYetDownException(
                f"{instance_id}: {result.url} still answers {result.status}: the reboot has not begun yet"
            )
        return result.describe(check)

    return polling.poll(gone, not_yet=InstanceNotYetDownException, every=every, for_seconds=for_seconds)


def wait_until_up(instance_id: str, check: HealthCheck, *, every: float, for_seconds: float) -> int:
    """:func:`check_instance`, polling only the health URL (every ``every`` seconds for ``for_seconds``)
    until it answers, then confirming with EC2 once."""
    instance = describe_instance(instance_id)
    state = instance["State"]["Name"]
    if state in DEAD_STATES:
        raise InstanceCannotStartError(f"{instance_id} is {state}")
    ip = _private_ip(instance)

    def answers() -> None:
        result = probe(ip, check)
        if not result.ok(check):
            raise InstanceNotYetStartedException(f"{instance_id}: {result.describe(check)}")

    polling.poll(answers, not_yet=InstanceNotYetStartedException, every=every, for_seconds=for_seconds)
    return check_instance(instance_id, check)


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

    result = probe(_private_ip(instance), check)
    if not result.ok(check):
        raise InstanceNotYetStartedException(f"{instance_id}: {result.describe(check)}")
    assert result.status is not None
    return result.status
