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


# -- Standby in an Auto Scaling group --------------------------------------------------------------
STANDBY = {
    "action": "standby",
    "instanceId": "i-0123456789abcdef0",
    "executionArn": "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run",
    "autoScalingGroup": "web-asg",
}


@pytest.fixture
def autoscaling(run_table: str, monkeypatch: pytest.MonkeyPatch) -> Stubber:
    monkeypatch.setenv("RESTART_TAG_KEY", "opsflow:tier")
    monkeypatch.setenv("RESTART_TAG_VALUE", "web")
    client = boto3.client("autoscaling", region_name=REGION)
    clients.inject("autoscaling", client)
    with Stubber(client) as stub:
        yield stub


def _lifecycle(stub: Stubber, state: str, group: str = "web-asg") -> None:
    member = {
        "InstanceId": STANDBY["instanceId"],
        "AutoScalingGroupName": group,
        "AvailabilityZone": "eu-west-1a",
        "LifecycleState": state,
        "HealthStatus": "HEALTHY",
        "ProtectedFromScaleIn": False,
    }
    stub.add_response(
        "describe_auto_scaling_instances",
        {"AutoScalingInstances": [member]},
        {"InstanceIds": [STANDBY["instanceId"]]},
    )


def test_standby_decrements_the_desired_capacity(autoscaling: Stubber, lambda_context: Any) -> None:
    _lifecycle(autoscaling, "InService")
    autoscaling.add_response(
        "enter_standby",
        {"Activities": []},
        {
            "AutoScalingGroupName": "web-asg",
            "InstanceIds": [STANDBY["instanceId"]],
            "ShouldDecrementDesiredCapacity": True,
        },
    )

    answer = load_function("instance_action").lambda_handler(STANDBY, lambda_context)

    assert answer["lifecycle"] == "Standby"
    autoscaling.assert_no_pending_responses()


@pytest.mark.parametrize(("action", "already"), [("standby", "Standby"), ("in_service", "InService")])
def test_a_retry_finds_the_member_where_it_should_be_and_changes_nothing(
    autoscaling: Stubber, lambda_context: Any, action: str, already: str
) -> None:
    """After a lost answer the first call took effect: a second EnterStandby would be refused."""
    _lifecycle(autoscaling, already)

    answer = load_function("instance_action").lambda_handler({**STANDBY, "action": action}, lambda_context)

    assert answer["lifecycle"] == already
    autoscaling.assert_no_pending_responses()  # no EnterStandby / ExitStandby call was made


def test_a_member_the_group_is_terminating_is_refused_clearly(autoscaling: Stubber, lambda_context: Any) -> None:
    from opsflow.errors import StandbyRefusedError

    _lifecycle(autoscaling, "Terminating")

    with pytest.raises(StandbyRefusedError, match="is Terminating in Auto Scaling group web-asg, not InService"):
        load_function("instance_action").lambda_handler(STANDBY, lambda_context)


def test_the_group_s_size_refusal_is_named(autoscaling: Stubber, lambda_context: Any) -> None:
    from opsflow.errors import StandbyRefusedError

    _lifecycle(autoscaling, "InService")
    autoscaling.add_client_error("enter_standby", "ValidationError", "below the minimum size")

    with pytest.raises(StandbyRefusedError, match=r"refused to move .* to Standby: below the minimum size"):
        load_function("instance_action").lambda_handler(STANDBY, lambda_context)
