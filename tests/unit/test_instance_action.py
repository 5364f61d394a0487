"""The reboot tells a denied reboot (not retried) from throttling (retried) and notes when it was asked for."""

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from opsflow import clients
from opsflow.errors import InstanceCannotStartError, RebootNotAllowedError, RebootThrottledException
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
