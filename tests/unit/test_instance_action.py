"""The reboot tells a denied reboot (not retried) from throttling (retried) and notes when it was asked for."""

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from opsflow import clients
from opsflow.errors import (
    CommandFailedError,
    CommandNotYetFinishedException,
    CommandTimedOutError,
    CommandUndeliverableError,
    InstanceCannotStartError,
    RebootNotAllowedError,
    RebootThrottledException,
)
from opsflow.runs import RunTable
from tests.conftest import REGION, event, load_function

REBOOT = event("instance_action", "reboot.json")


@pytest.fixture
def ec2(run_table: str, monkeypatch: pytest.MonkeyPatch) -> Stubber:
    monkeypatch.setenv("RESTART_TAG_KEY", "opsflow:tier")
    monkeypatch.setenv("RESTART_TAG_VALUE", "web")
    client = boto3.client("ec2", region_name=REGION)
    clients.inject("ec2", client)
    with Stubber(client) as stub:
        yield stub


@pytest.mark.parametrize(
    ("code", "raised", "names"),
    [
        ("UnauthorizedOperation", RebootNotAllowedError, "tagged opsflow:tier=web"),
        ("RequestLimitExceeded", RebootThrottledException, "throttled"),
        ("InvalidInstanceID.NotFound", InstanceCannotStartError, "cannot be rebooted"),
    ],
)
def test_ec2_refusals_become_errors_the_state_machine_tells_apart(
    ec2: Stubber, lambda_context: Any, code: str, raised: type[Exception], names: str
) -> None:
    ec2.add_client_error("reboot_instances", service_error_code=code)

    with pytest.raises(raised, match=names):
        load_function("instance_action").lambda_handler(REBOOT, lambda_context)


def test_a_requested_reboot_is_noted_on_the_instance_the_run_took_out(ec2: Stubber, lambda_context: Any) -> None:
    table = RunTable("runs")
    table.mark_taken_out(REBOOT["executionArn"], REBOOT["instanceId"], "2026-11-23T10:00:00+00:00")
    ec2.add_response("reboot_instances", {}, {"InstanceIds": [REBOOT["instanceId"]]})

    result = load_function("instance_action").lambda_handler(REBOOT, lambda_context)

    outcome = table.get_outcome(REBOOT["executionArn"], REBOOT["instanceId"])
    assert outcome and outcome["rebootRequestedAt"] == result["at"] and outcome["outcome"] == "out"


COMMAND_STATUS = {
    "action": "command_status",
    "instanceId": REBOOT["instanceId"],
    "executionArn": REBOOT["executionArn"],
    "commandId": "5bc8fbbc-bde5-4099-8164-d8399f767c45",
}


@pytest.fixture
def ssm(run_table: str, monkeypatch: pytest.MonkeyPatch) -> Stubber:
    monkeypatch.setenv("RESTART_TAG_KEY", "opsflow:tier")
    monkeypatch.setenv("RESTART_TAG_VALUE", "web")
    client = boto3.client("ssm", region_name=REGION)
    clients.inject("ssm", client)
    with Stubber(client) as stub:
        yield stub


def invocation(status: str, details: str, code: int = 0) -> dict[str, Any]:
    return {
        "CommandId": COMMAND_STATUS["commandId"],
        "InstanceId": COMMAND_STATUS["instanceId"],
        "DocumentName": "AWS-RunPatchBaseline",
        "Status": status,
        "StatusDetails": details,
        "ResponseCode": code,
        "StandardOutputUrl": "https://s3.amazonaws.com/logs/out",
        "StandardErrorContent": "yum: package conflict",
    }


@pytest.mark.parametrize(
    ("status", "details", "raised"),
    [
        ("Pending", "Pending", CommandNotYetFinishedException),
        ("InProgress", "In Progress", CommandNotYetFinishedException),
        ("Delayed", "Delayed", CommandNotYetFinishedException),
        ("Failed", "Failed", CommandFailedError),
        ("Cancelled", "Cancelled", CommandFailedError),
        ("TimedOut", "Execution Timed Out", CommandTimedOutError),
        ("TimedOut", "Delivery Timed Out", CommandTimedOutError),
        ("Failed", "Undeliverable", CommandUndeliverableError),
    ],
)
def test_each_command_status_is_an_error_the_state_machine_tells_apart(
    ssm: Stubber, lambda_context: Any, status: str, details: str, raised: type[Exception]
) -> None:
    ssm.add_response("get_command_invocation", invocation(status, details, code=1))

    with pytest.raises(raised, match=details):
        load_function("instance_action").lambda_handler(COMMAND_STATUS, lambda_context)


def test_a_command_just_sent_and_not_listed_yet_is_waited_for(ssm: Stubber, lambda_context: Any) -> None:
    ssm.add_client_error("get_command_invocation", service_error_code="InvocationDoesNotExist")

    with pytest.raises(CommandNotYetFinishedException):
        load_function("instance_action").lambda_handler(COMMAND_STATUS, lambda_context)


def test_a_finished_command_records_its_status_and_output_location(ssm: Stubber, lambda_context: Any) -> None:
    ssm.add_response("get_command_invocation", invocation("Success", "Success"))

    result = load_function("instance_action").lambda_handler(COMMAND_STATUS, lambda_context)

    assert result["status"] == "Success" and result["outputUrl"] == "https://s3.amazonaws.com/logs/out"
    recorded = RunTable("runs").commands(COMMAND_STATUS["executionArn"])[COMMAND_STATUS["instanceId"]]
    assert recorded["statusDetails"] == "Success" and recorded["outputUrl"] == result["outputUrl"]
