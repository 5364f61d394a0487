"""What the sandbox creates from template.yaml beyond functions and state machines, and how it behaves."""

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

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


def test_eventbridge_rules_are_found_by_tag_through_the_sandbox(stack: Sandbox) -> None:
    """moto lacks rules in GetResources; the sandbox's bridge answers, after its injected faults."""
    tagging = stack.client("resourcegroupstaggingapi")
    web = [{"Key": "tier", "Values": ["web"]}]

    found = tagging.get_resources(ResourceTypeFilters=["events:rule"], TagFilters=web)

    names = sorted(m["ResourceARN"].rsplit("/", 1)[1] for m in found["ResourceTagMappingList"])
    assert names == ["web-instance-state-change-pager", "web-nightly-report"]
    stack.inject_api_error("resource-groups-tagging-api", "GetResources", "ThrottlingException")
    with pytest.raises(ClientError, match="ThrottlingException"):
        tagging.get_resources(ResourceTypeFilters=["events:rule"], TagFilters=web)
