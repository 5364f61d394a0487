"""What the sandbox creates from template.yaml beyond functions and state machines, and how it behaves."""

import re
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox

SM = "RollingRestartStateMachine"
REFUSED = {"batchSize": 0}  # refused at once: the execution ends FAILED, which the safety net's rule matches


@pytest.fixture
def stack() -> Iterator[Sandbox]:
    with Sandbox(FleetSpec(size=2)) as sb:
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


# -- status-change events: EventBridge delivers them on a best-effort basis -------------------------
def test_a_dropped_status_event_reaches_no_function() -> None:
    with Sandbox(FleetSpec(size=2), status_events="drop") as sb:
        arn = sb.run(SM, REFUSED).arn

        assert safety_net_invocations(sb) == 0
        assert [(e.execution_arn, e.fate) for e in sb.status_event_log] == [(arn, "dropped")]


def test_a_duplicated_status_event_reaches_the_function_twice() -> None:
    with Sandbox(FleetSpec(size=2), status_events="duplicate") as sb:
        sb.run(SM, REFUSED)

        assert safety_net_invocations(sb) == 2
        assert [e.fate for e in sb.status_event_log] == ["delivered", "delivered"]
        assert all("opsflow-RestoreSafetyNetFunction" in e.answers for e in sb.status_event_log)


def test_a_delayed_status_event_arrives_that_many_simulated_seconds_later() -> None:
    with Sandbox(FleetSpec(size=2), status_events="delay", status_event_delay=1800) as sb:
        result = sb.run(SM, REFUSED)
        ended = result.events[-1]["timestamp"].timestamp()

        sb.wait_for_status_events()

        [delivered] = sb.status_event_log
        assert delivered.fate == "delivered" and delivered.at == pytest.approx(ended + 1800, abs=0.001)
        assert safety_net_invocations(sb) == 1


def test_an_unknown_status_event_mode_is_refused_naming_the_modes() -> None:
    with pytest.raises(ValueError, match="once, drop, duplicate, delay"):
        Sandbox(status_events="lose")


# -- schedules --------------------------------------------------------------------------------------
def test_a_schedule_fires_its_function_with_the_scheduler_s_context_attributes() -> None:
    from sandbox.runtime import FunctionFailed
    from tests.sandbox.conftest import FIXTURE_TEMPLATE

    with Sandbox(None, template_path=FIXTURE_TEMPLATE) as sb:
        with pytest.raises(FunctionFailed) as failed:  # the fixture function fails its first calls
            sb.fire_schedule("FlakyFunction")

        assert failed.value.error_type == "InstanceNotYetStartedException"
        scheduled_time = str(failed.value).split(": ")[-1].split(" ")[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", scheduled_time), str(failed.value)


def test_firing_a_function_without_a_schedule_is_refused_naming_it(stack: Sandbox) -> None:
    with pytest.raises(ValueError, match="AlarmTogglerFunction has 0 ScheduleV2 events"):
        stack.fire_schedule("AlarmTogglerFunction")
    with pytest.raises(KeyError, match="NoSuchFunction"):
        stack.fire_schedule("NoSuchFunction")


def test_the_run_table_has_the_template_s_indexes(stack: Sandbox) -> None:
    from template_model import load_template

    declared = load_template()["Resources"]["RunTable"]["Properties"]["GlobalSecondaryIndexes"]
    table = stack.client("dynamodb").describe_table(TableName=stack.stack.physical["RunTable"]["Ref"])["Table"]
    created = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    assert set(created) == {i["IndexName"] for i in declared}
    for index in declared:
        assert created[index["IndexName"]]["KeySchema"] == index["KeySchema"]
        assert created[index["IndexName"]]["Projection"] == index["Projection"]
