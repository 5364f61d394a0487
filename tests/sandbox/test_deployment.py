"""What the sandbox creates from template.yaml beyond functions and state machines, and how it behaves."""

from collections.abc import Iterator

import pytest

from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox

SM = "RollingRestartStateMachine"
REFUSED = {"batchSize": 0}  # refused at once: the execution ends FAILED, which the safety net's rule matches


@pytest.fixture
def stack() -> Iterator[Sandbox]:
    with Sandbox(FleetSpec(size=2), speed=500) as sb:
        yield sb


def safety_net_invocations(sb: Sandbox) -> int:
    return sum(1 for i in sb.lambdas.invocations if i.logical_id == "RestoreSafetyNetFunction")


def test_the_template_s_alarm_and_the_functions_rules_exist_with_their_names(stack: Sandbox) -> None:
    alarm = stack.client("cloudwatch").describe_alarms(AlarmNames=["opsflow-executions-ended-badly"])["MetricAlarms"]
    assert alarm and alarm[0]["ActionsEnabled"] is True
    rule = stack.client("events").describe_rule(Name="opsflow-safety-net")
    assert rule["State"] == "ENABLED" and '"aws.states"' in rule["EventPattern"]


def test_a_status_change_reaches_the_safety_net_through_its_rule(stack: Sandbox) -> None:
    assert stack.run(SM, REFUSED).status == "FAILED"
    assert safety_net_invocations(stack) == 1


def test_a_disabled_rule_delivers_nothing(stack: Sandbox) -> None:
    stack.client("events").disable_rule(Name="opsflow-safety-net")

    assert stack.run(SM, REFUSED).status == "FAILED"
    assert safety_net_invocations(stack) == 0
