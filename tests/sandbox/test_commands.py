"""The sandbox's Run Command: statuses over time, the reboot when patches need it, faults, patch data, paging."""

import datetime as dt

import pytest

from sandbox.commands import AGENT_START_SECONDS, DELIVERY_SECONDS, EXECUTION_TIMEOUT_SECONDS, CommandService
from sandbox.fleet import Fleet, FleetSpec, Spread
from sandbox.patch_data import PatchSpec, SimulatedApiError, generate

T0 = 1_000_000.0
INSTALL = {"DocumentName": "AWS-RunPatchBaseline", "Parameters": {"Operation": ["Install"]}, "TimeoutSeconds": 600}


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock: Clock) -> CommandService:
    fleet = Fleet(FleetSpec(size=3, boot=Spread(40), readiness=Spread(20), shutdown=Spread(5)), T0)
    for n in range(3):
        fleet.add_instance(f"i-{n:017x}", f"10.0.0.{n}")
    data = generate(
        sorted(fleet.instances), PatchSpec(missing_per_instance=4, failed_fraction=0), dt.datetime.now(dt.UTC)
    )
    return CommandService(fleet, data, clock)


def send(service: CommandService, instance_id: str, **params: object) -> str:
    return str(service.send_command({**INSTALL, "InstanceIds": [instance_id], **params})["Command"]["CommandId"])


def status(service: CommandService, command_id: str, instance_id: str) -> tuple[str, str]:
    answer = service.get_command_invocation({"CommandId": command_id, "InstanceId": instance_id})
    return answer["Status"], answer["StatusDetails"]


def test_an_install_that_needs_a_reboot_ends_only_after_the_instance_is_back(
    service: CommandService, clock: Clock
) -> None:
    instance_id = "i-00000000000000000"
    assert service.patches[instance_id].state_counts()["Missing"] > 0
    command = send(service, instance_id)

    assert status(service, command, instance_id) == ("Pending", "Pending")
    clock.t = T0 + DELIVERY_SECONDS
    assert status(service, command, instance_id) == ("InProgress", "In Progress")
    [(down, os_up, _)] = service.fleet.instances[instance_id].reboots
    clock.t = os_up + AGENT_START_SECONDS - 0.001
    assert status(service, command, instance_id)[0] == "InProgress", "still running while the agent is down"
    assert not service.fleet.instances[instance_id].app_up(down + 1), "the instance really rebooted"
    clock.t = os_up + AGENT_START_SECONDS
    assert status(service, command, instance_id) == ("Success", "Success")
    assert service.patches[instance_id].state_counts()["Missing"] == 0
    assert service.patches[instance_id].operation == "Install"


def test_an_instance_with_nothing_to_install_is_not_rebooted(service: CommandService, clock: Clock) -> None:
    instance_id = "i-00000000000000001"
    for patch in service.patches[instance_id].patches:
        patch["State"] = "Installed"
    service.patches[instance_id].pending_reboot = 0

    command = send(service, instance_id)
    clock.t = T0 + 3600

    assert status(service, command, instance_id) == ("Success", "Success")
    assert service.fleet.instances[instance_id].reboots == []


def test_no_reboot_leaves_the_patches_installed_pending_reboot(service: CommandService, clock: Clock) -> None:
    instance_id = "i-00000000000000002"
    missing = service.patches[instance_id].state_counts()["Missing"]
    send(service, instance_id, Parameters={"Operation": ["Install"], "RebootOption": ["NoReboot"]})
    clock.t = T0 + 3600

    service.settle()
    assert service.fleet.instances[instance_id].reboots == []
    assert service.patches[instance_id].state_counts()["InstalledPendingReboot"] == missing


@pytest.mark.parametrize(
    ("fault", "after", "expected"),
    [
        ("command_fails", None, ("Failed", "Failed")),  # after its (seeded) install time
        ("command_times_out", EXECUTION_TIMEOUT_SECONDS + DELIVERY_SECONDS, ("TimedOut", "Execution Timed Out")),
        ("undeliverable", DELIVERY_SECONDS, ("Failed", "Undeliverable")),
        ("agent_offline", 600, ("TimedOut", "Delivery Timed Out")),
    ],
)
def test_faults_end_as_ssm_reports_them(
    service: CommandService, clock: Clock, fault: str, after: float | None, expected: tuple[str, str]
) -> None:
    instance_id = "i-00000000000000000"
    service.inject(instance_id, fault)  # type: ignore[arg-type]
    command = send(service, instance_id)
    end = service.invocations[(command, instance_id)].end_at
    assert after is None or end == T0 + after

    clock.t = end - 0.001
    assert status(service, command, instance_id)[0] in ("Pending", "InProgress")
    clock.t = end
    assert status(service, command, instance_id) == expected
    assert service.fleet.instances[instance_id].reboots == []


def test_a_failed_install_marks_the_broken_patch_failed(service: CommandService, clock: Clock) -> None:
    instance_id = "i-00000000000000000"
    service.inject(instance_id, "command_fails")
    send(service, instance_id)
    clock.t = T0 + 3600
    service.settle()
    assert service.patches[instance_id].state_counts()["Failed"] == 1


def test_unmanaged_instances_and_unknown_documents_are_refused(service: CommandService) -> None:
    service.patches["i-00000000000000000"].managed = False
    with pytest.raises(SimulatedApiError, match="not in a valid state") as refused:
        send(service, "i-00000000000000000")
    assert refused.value.code == "InvalidInstanceId"
    with pytest.raises(SimulatedApiError) as unknown:
        send(service, "i-00000000000000001", DocumentName="My-Document")
    assert unknown.value.code == "InvalidDocument"
    with pytest.raises(SimulatedApiError) as missing:
        service.get_command_invocation({"CommandId": "nope", "InstanceId": "i-00000000000000001"})
    assert missing.value.code == "InvocationDoesNotExist"


def test_list_command_invocations_pages_and_details(service: CommandService) -> None:
    ids = sorted(service.patches)
    service.send_command({**INSTALL, "InstanceIds": ids})

    first = service.list_command_invocations({"MaxResults": 2, "Details": True})
    rest = service.list_command_invocations({"MaxResults": 2, "NextToken": first["NextToken"]})

    listed = [i["InstanceId"] for i in first["CommandInvocations"] + rest["CommandInvocations"]]
    assert sorted(listed) == ids and "NextToken" not in rest
    assert first["CommandInvocations"][0]["CommandPlugins"][0]["Name"] == "PatchLinux"
