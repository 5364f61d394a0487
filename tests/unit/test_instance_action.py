"""The reboot tells a denied reboot (not retried) from throttling (retried) and notes when it was asked for."""

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from opsflow import clients
from opsflow import instance_actions as decide
from opsflow.autoscaling import Membership
from opsflow.errors import (
    CommandFailedError,
    CommandNotYetFinishedException,
    CommandTimedOutError,
    CommandUndeliverableError,
    InstanceCannotStartError,
    InvalidInputError,
    PreflightFailedError,
    RebootNotAllowedError,
    RebootThrottledException,
    StandbyRefusedError,
)
from opsflow.instance_requests import parse_action
from opsflow.runs import RunTable
from tests.conftest import REGION, event, load_function

REBOOT = event("instance_action", "reboot.json")


def stubbed(service: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The function's environment, and ``service``'s client answering what the test stubs."""
    monkeypatch.setenv("RESTART_TAG_KEY", "opsflow:tier")
    monkeypatch.setenv("RESTART_TAG_VALUE", "web")
    client = boto3.client(service, region_name=REGION)
    clients.inject(service, client)
    with Stubber(client) as stub:
        yield stub


@pytest.fixture
def ec2(run_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    yield from stubbed("ec2", monkeypatch)


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
def ssm(run_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    yield from stubbed("ssm", monkeypatch)


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
def autoscaling(run_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    yield from stubbed("autoscaling", monkeypatch)


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
    _lifecycle(autoscaling, "Terminating")

    with pytest.raises(StandbyRefusedError, match="is Terminating in Auto Scaling group web-asg, not InService"):
        load_function("instance_action").lambda_handler(STANDBY, lambda_context)


def test_the_group_s_size_refusal_is_named(autoscaling: Stubber, lambda_context: Any) -> None:
    _lifecycle(autoscaling, "InService")
    autoscaling.add_client_error("enter_standby", "ValidationError", "below the minimum size")

    with pytest.raises(StandbyRefusedError, match=r"refused to move .* to Standby: below the minimum size"):
        load_function("instance_action").lambda_handler(STANDBY, lambda_context)


# -- The decisions, over plain data (no AWS) -------------------------------------------------------
COMMAND_ID = COMMAND_STATUS["commandId"]
ME = COMMAND_STATUS["instanceId"]


def test_a_failed_command_names_its_document_exit_code_output_and_the_end_of_its_errors() -> None:
    failed = decide.Invocation(
        status="Failed",
        details="Failed",
        response_code=1,
        document_name="AWS-RunPatchBaseline",
        output_url="https://s3.amazonaws.com/logs/out",
        stderr="x" * 3000 + "yum: package conflict\n",
    )

    with pytest.raises(CommandFailedError) as raised:
        decide.command_result(ME, COMMAND_ID, failed, "2026-11-24T02:00:00+00:00")

    message = str(raised.value)
    assert message.startswith(f"{ME}: command {COMMAND_ID} (AWS-RunPatchBaseline) ended Failed (Failed, exit code 1).")
    assert " Output: https://s3.amazonaws.com/logs/out. " in message
    assert message.endswith("yum: package conflict") and len(message) < 2300, "only the end of stderr"


def test_a_command_that_never_ran_reports_no_exit_code_as_minus_one_and_success_as_zero() -> None:
    never_ran = decide.Invocation(status="Cancelled", details="Cancelled")
    assert decide.command_record(never_ran, "t")["responseCode"] == -1
    with pytest.raises(CommandFailedError, match=r"\(Cancelled, exit code -1\)\.$"):
        decide.command_result(ME, COMMAND_ID, never_ran, "t")

    succeeded = decide.command_result(ME, COMMAND_ID, decide.Invocation(status="Success", stdout="ok"), "t")
    assert succeeded["responseCode"] == 0 and succeeded["output"] == "ok"


@pytest.mark.parametrize("invocation", [None, decide.Invocation(status="Cancelling", details="Cancelling")])
def test_a_command_not_listed_yet_or_still_changing_is_waited_for(invocation: Any) -> None:
    with pytest.raises(CommandNotYetFinishedException, match=COMMAND_ID):
        decide.wait_while_running(ME, COMMAND_ID, invocation)


@pytest.mark.parametrize(
    ("code", "raised", "names"),
    [
        ("InvalidInstanceId", CommandUndeliverableError, "SSM cannot run a command on it"),
        ("UnsupportedPlatformType", CommandUndeliverableError, "(UnsupportedPlatformType)"),
        (
            "AccessDeniedException",
            CommandFailedError,
            "only its allowed documents, to instances tagged opsflow:tier=web",
        ),
        ("InvalidParameters", CommandFailedError, "AWS-RunPatchBaseline: InvalidParameters: bad Operation"),
    ],
)
def test_send_command_refusals_become_errors_that_say_what_to_fix(
    code: str, raised: type[Exception], names: str
) -> None:
    refusal = decide.send_refusal(code, ME, "AWS-RunPatchBaseline", "opsflow:tier=web", "bad Operation")

    assert isinstance(refusal, raised) and names in str(refusal)


def test_a_throttled_send_is_no_refusal_of_ours_and_keeps_ssm_s_error_name() -> None:
    assert decide.send_refusal("ThrottlingException", ME, "AWS-RunPatchBaseline", "opsflow:tier=web", "") is None
    assert decide.reboot_refusal("InternalError", ME, "opsflow:tier=web") is None


def test_the_preflight_names_at_most_ten_problems_and_says_the_rest_was_not_checked() -> None:
    denied = [f"i-{n:017x}" for n in range(25)]
    problems = decide.reboot_problems(denied, "opsflow:tier=web")

    assert len(problems) == decide.MAX_PROBLEMS
    with pytest.raises(PreflightFailedError) as raised:
        decide.preflight_verdict(problems, 25, "reboot")
    assert str(raised.value).startswith("Preflight failed, nothing was changed: i-00000000000000000: may not be")
    assert str(raised.value).endswith("(further instances not checked)")
    assert "tag it opsflow:tier=web or leave it out with instanceIds" in str(raised.value)


def test_a_passed_preflight_says_what_it_checked_for_the_run_s_action() -> None:
    verdict = decide.preflight_verdict([], 3, "command")

    assert verdict == {
        "verdict": "ok",
        "checked": 3,
        "checks": [
            "SSM can run a command on every instance (ping status Online)",
            "every health URL answers from the probe's network",
        ],
    }


def test_an_unreachable_health_url_is_explained_with_the_parameters_that_fix_it() -> None:
    problem = decide.health_problem(ME, "http://10.0.1.15:8080/health did not answer (timed out)", 8080)

    assert problem.startswith(f"{ME}: health URL http://10.0.1.15:8080/health did not answer (timed out);")
    assert "VpcId, HealthCheckSubnetIds, InstanceSecurityGroupId" in problem and "on port 8080" in problem


@pytest.mark.parametrize(
    ("action", "found", "expected"),
    [
        ("standby", Membership("web-asg", "InService"), ("Standby", True)),
        ("standby", Membership("web-asg", "Standby"), ("Standby", False)),
        ("in_service", Membership("web-asg", "Standby"), ("InService", True)),
        ("in_service", Membership("web-asg", "InService"), ("InService", False)),
    ],
)
def test_a_member_moves_only_when_it_is_not_already_where_it_should_be(
    action: Any, found: Membership, expected: tuple[str, bool]
) -> None:
    assert decide.standby_move(ME, "web-asg", action, found) == expected


@pytest.mark.parametrize(
    ("found", "names"),
    [
        (None, "is no longer in Auto Scaling group web-asg (terminated or detached)"),
        (Membership("other-asg", "InService"), "is no longer in Auto Scaling group web-asg"),
        (Membership("web-asg", "Pending"), "is Pending in Auto Scaling group web-asg, not Standby"),
    ],
)
def test_a_member_that_cannot_move_back_is_refused_naming_why(found: Membership | None, names: str) -> None:
    with pytest.raises(StandbyRefusedError, match=re.escape(names)):
        decide.standby_move(ME, "web-asg", "in_service", found)


# -- Malformed events: refused before any AWS call, naming the field ---------------------------------
@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({**REBOOT, "action": "terminate"}, "event: Input tag 'terminate' found using 'action'"),
        ({**REBOOT, "instanceId": "i-XYZ"}, "event.reboot.instanceId"),
        ({**REBOOT, "force": True}, "event.reboot.force: Extra inputs are not permitted"),
        ({k: v for k, v in REBOOT.items() if k != "executionArn"}, "event.reboot.executionArn: Field required"),
        ({**COMMAND_STATUS, "commandId": "abc"}, "event.command_status.commandId"),
        (
            {**REBOOT, "action": "command", "command": {"documentName": "AWS-RunPatchBaseline", "timeoutSeconds": 5}},
            "event.command.command.timeoutSeconds: Input should be greater than or equal to 30",
        ),
        ({**STANDBY, "autoScalingGroup": ""}, "event.standby.autoScalingGroup"),
        (
            {"action": "preflight", "instances": [], "health": {"port": 80, "path": "/health"}},
            "event.preflight.instances: List should have at least 1 item",
        ),
        (
            {
                "action": "preflight",
                "instances": [{"instanceId": ME, "privateIp": "10.0.0.1"}],
                "health": {"port": 0, "path": "/"},
            },
            "event.preflight.health.port",
        ),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(event: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_action(event)

    assert named in str(raised.value)


# -- Retries after a lost answer -----------------------------------------------------------------------
# Step Functions retries Lambda's service errors (Lambda.ServiceException, Lambda.SdkClientException: "Handle
# Lambda service exceptions", Step Functions best practices), and such an error may come after the invocation
# did its work: the retry must not reboot the instance, or send it the command, a second time.
COMMAND = {
    "action": "command",
    "instanceId": REBOOT["instanceId"],
    "executionArn": REBOOT["executionArn"],
    "command": {"documentName": "AWS-RunPatchBaseline", "parameters": {"Operation": ["Install"]}},
}


def test_a_retried_command_is_sent_once_and_answers_as_the_first_time(ssm: Stubber, lambda_context: Any) -> None:
    ssm.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    action = load_function("instance_action")

    first = action.lambda_handler(COMMAND, lambda_context)
    again = action.lambda_handler(COMMAND, lambda_context)  # a second SendCommand would find no stubbed answer

    assert again == first and first["commandId"] == COMMAND_ID
    ssm.assert_no_pending_responses()


def test_a_retried_reboot_reboots_once(ec2: Stubber, lambda_context: Any) -> None:
    ec2.add_response("reboot_instances", {}, {"InstanceIds": [REBOOT["instanceId"]]})
    action = load_function("instance_action")

    first = action.lambda_handler(REBOOT, lambda_context)

    assert action.lambda_handler(REBOOT, lambda_context) == first
    ec2.assert_no_pending_responses()


def test_another_run_s_reboot_of_the_same_instance_is_its_own(ec2: Stubber, lambda_context: Any) -> None:
    for _ in range(2):
        ec2.add_response("reboot_instances", {}, {"InstanceIds": [REBOOT["instanceId"]]})
    action = load_function("instance_action")

    action.lambda_handler(REBOOT, lambda_context)
    action.lambda_handler({**REBOOT, "executionArn": REBOOT["executionArn"] + "-resumed"}, lambda_context)

    ec2.assert_no_pending_responses()


def test_a_reboot_ec2_refused_is_not_remembered_so_the_state_machine_s_retry_asks_again(
    ec2: Stubber, lambda_context: Any
) -> None:
    ec2.add_client_error("reboot_instances", service_error_code="RequestLimitExceeded")
    ec2.add_response("reboot_instances", {}, {"InstanceIds": [REBOOT["instanceId"]]})
    action = load_function("instance_action")

    with pytest.raises(RebootThrottledException):
        action.lambda_handler(REBOOT, lambda_context)
    assert action.lambda_handler(REBOOT, lambda_context)["instanceId"] == REBOOT["instanceId"]
    ec2.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("output", "sent"),
    [
        ({}, {}),  # no output location: SSM keeps the output with the invocation only
        ({"outputS3BucketName": "ops-logs"}, {"OutputS3BucketName": "ops-logs"}),
        (
            {"outputS3BucketName": "ops-logs", "outputS3KeyPrefix": "restarts"},
            {"OutputS3BucketName": "ops-logs", "OutputS3KeyPrefix": "restarts"},
        ),
    ],
)
def test_a_command_s_output_goes_where_the_request_says_and_nothing_empty_is_sent(
    ssm: Stubber, lambda_context: Any, output: dict[str, str], sent: dict[str, str]
) -> None:
    ssm.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND_ID}},
        {
            "InstanceIds": [COMMAND["instanceId"]],
            "DocumentName": "AWS-RunPatchBaseline",
            "Parameters": {"Operation": ["Install"]},
            "TimeoutSeconds": 600,
            "Comment": ANY,
            **sent,
        },
    )
    action = load_function("instance_action")

    action.lambda_handler({**COMMAND, "command": {**COMMAND["command"], **output}}, lambda_context)

    ssm.assert_no_pending_responses()
