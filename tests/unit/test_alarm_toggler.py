"""Mute exactly the selected alarms and rules; restore exactly those; idempotent."""

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from opsflow.errors import InvalidInputError
from tests.conftest import REGION, load_function, put_alarm

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:rr:run-1"
OWN_ALARM, OWN_RULE = "opsflow-executions-ended-badly", "opsflow-safety-net"  # as template.yaml names them


@pytest.fixture(autouse=True)
def never_mute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's own alarm and rule, as template.yaml passes them to the function."""
    monkeypatch.setenv("NEVER_MUTE_ALARM_NAMES", OWN_ALARM)
    monkeypatch.setenv("NEVER_MUTE_RULE_NAMES", OWN_RULE)


@pytest.fixture
def monitoring(run_table: str) -> dict[str, Any]:
    """Given alarms and rules of two tiers, some already disabled."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    events = boto3.client("events", region_name=REGION)

    def alarm(name: str, enabled: bool = True, tier: str = "web") -> None:
        put_alarm(cloudwatch, name, {"tier": tier}, ActionsEnabled=enabled)

    for i in range(150):  # more than one DescribeAlarms page and more than 100 names a call
        alarm(f"web-cpu-{i:03d}")
    alarm("web-disk-full", enabled=False)
    alarm("db-cpu", tier="db")
    alarm("tagged-elsewhere", tier="web")
    alarm(OWN_ALARM, tier="web")  # the stack's own: CloudFormation gives it the stack's tags
    alarm("opsflow-queue-depth", tier="web")  # the team's, named like the stack
    events.put_rule(Name="web-pager", EventPattern='{"source": ["aws.ec2"]}', State="ENABLED")
    events.put_rule(Name="web-report", ScheduleExpression="rate(1 day)", State="DISABLED")
    events.put_rule(Name="db-backup", ScheduleExpression="rate(1 day)", State="ENABLED")
    events.put_rule(Name=OWN_RULE, EventPattern='{"source": ["aws.states"]}', State="ENABLED")
    events.put_rule(Name="opsflow-nightly", ScheduleExpression="rate(1 day)", State="ENABLED")
    return {"cloudwatch": cloudwatch, "events": events}


def actions_enabled(cloudwatch: Any) -> dict[str, bool]:
    pages = cloudwatch.get_paginator("describe_alarms").paginate()
    return {a["AlarmName"]: a["ActionsEnabled"] for p in pages for a in p["MetricAlarms"]}


def rule_states(events: Any) -> dict[str, str]:
    return {r["Name"]: r["State"] for r in events.list_rules()["Rules"]}


def call(action: str, lambda_context: Any, **extra: Any) -> dict[str, Any]:
    app = load_function("alarm_toggler")
    return dict(app.lambda_handler({"action": action, "executionArn": EXECUTION, **extra}, lambda_context))


def test_mute_disables_only_enabled_alarms_and_rules_matching_the_prefix(monitoring, lambda_context) -> None:
    before_alarms, before_rules = actions_enabled(monitoring["cloudwatch"]), rule_states(monitoring["events"])

    result = call("mute", lambda_context, alarms={"namePrefixes": ["web-"]}, rules={"namePrefixes": ["web-"]})

    after = actions_enabled(monitoring["cloudwatch"])
    assert len(result["alarms"]) == 150 and "web-disk-full" not in result["alarms"]
    assert all(not after[name] for name in result["alarms"])
    assert after["db-cpu"] and after["tagged-elsewhere"] and not after["web-disk-full"]
    assert result["rules"] == ["web-pager"]
    assert rule_states(monitoring["events"]) == {**before_rules, "web-pager": "DISABLED"}

    call("restore", lambda_context)

    assert actions_enabled(monitoring["cloudwatch"]) == before_alarms
    assert rule_states(monitoring["events"]) == before_rules


def test_alarms_can_be_selected_by_tag(monitoring, lambda_context) -> None:
    result = call("mute", lambda_context, alarms={"namePrefixes": ["tagged", "db-"], "tags": {"tier": "web"}})
    assert result["alarms"] == ["tagged-elsewhere"]


@pytest.fixture
def api_calls() -> Iterator[Counter[str]]:
    """Every AWS call the code makes from now on, by service and operation."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.split(".", 1)[1]] += 1

    session = boto3._get_default_session()
    session.events.register("before-call.*.*", count)
    yield calls
    session.events.unregister("before-call.*.*", count)


@pytest.fixture
def rule_tags() -> Iterator[None]:
    """moto 5.2.5's GetResources leaves EventBridge rules out: the sandbox's answer fills the gap."""
    from sandbox import tagging

    uninstall = tagging.install(boto3._get_default_session())
    yield
    uninstall()


def test_selecting_hundreds_of_alarms_by_tag_takes_a_few_calls_not_one_per_alarm(
    run_table, lambda_context, api_calls: Counter[str]
) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for i in range(300):
        put_alarm(cloudwatch, f"app-{i:03d}", {"tier": "web", "team": "app" if i % 3 else "ops"})
    api_calls.clear()

    result = call("mute", lambda_context, alarms={"tags": {"tier": "web", "team": "app"}})

    assert len(result["alarms"]) == 200
    reads = {op: n for op, n in api_calls.items() if op.split(".")[0] != "dynamodb"}
    assert "cloudwatch.ListTagsForResource" not in reads
    assert reads["resource-groups-tagging-api.GetResources"] <= 10, reads
    assert sum(reads.values()) <= 20, reads  # tagged alarms in pages, alarms in pages, 100 names a disable call


def test_rules_are_selected_by_tag_with_the_tagging_api(monitoring, lambda_context, rule_tags, api_calls) -> None:
    events = monitoring["events"]
    events.tag_resource(
        ResourceARN=events.describe_rule(Name="web-pager")["Arn"], Tags=[{"Key": "tier", "Value": "web"}]
    )
    events.tag_resource(
        ResourceARN=events.describe_rule(Name="db-backup")["Arn"], Tags=[{"Key": "tier", "Value": "db"}]
    )

    result = call("mute", lambda_context, rules={"tags": {"tier": "web"}})

    assert result["rules"] == ["web-pager"]
    assert api_calls["resource-groups-tagging-api.GetResources"] == 1
    assert api_calls["eventbridge.ListTagsForResource"] == 0


def test_a_tag_nothing_carries_lists_nothing_more(monitoring, lambda_context, rule_tags, api_calls) -> None:
    result = call("mute", lambda_context, alarms={"tags": {"tier": "nobody"}}, rules={"tags": {"tier": "nobody"}})

    assert result == {"action": "mute", "alarms": [], "rules": []}
    assert api_calls["cloudwatch.DescribeAlarms"] == 0 and api_calls["eventbridge.ListRules"] == 0


def test_the_stack_s_own_alarm_and_rule_are_never_muted(monitoring, lambda_context) -> None:
    """A prefix like the stack's name matches its safety net: those stay on, the team's are muted."""
    before_alarms, before_rules = actions_enabled(monitoring["cloudwatch"]), rule_states(monitoring["events"])

    by_prefix = call("mute", lambda_context, alarms={"namePrefixes": ["opsflow"]}, rules={"namePrefixes": ["opsflow"]})

    assert by_prefix["alarms"] == ["opsflow-queue-depth"] and by_prefix["rules"] == ["opsflow-nightly"]
    assert actions_enabled(monitoring["cloudwatch"])[OWN_ALARM] is True
    assert rule_states(monitoring["events"])[OWN_RULE] == "ENABLED"
    call("restore", lambda_context)
    assert actions_enabled(monitoring["cloudwatch"]) == before_alarms
    assert rule_states(monitoring["events"]) == before_rules


def test_the_stack_s_own_alarm_is_never_muted_when_selected_by_tag(run_table, monitoring, lambda_context) -> None:
    app = load_function("alarm_toggler")
    event = {"action": "mute", "executionArn": EXECUTION + "-tags", "alarms": {"tags": {"tier": "web"}}}

    result = app.lambda_handler(event, lambda_context)

    assert OWN_ALARM not in result["alarms"] and "opsflow-queue-depth" in result["alarms"]
    assert actions_enabled(monitoring["cloudwatch"])[OWN_ALARM] is True


def test_a_recorded_selection_naming_the_stack_s_own_alarm_is_not_applied(run_table, monitoring, lambda_context):
    """A retried mute re-applies the record; a record from before this protection must not mute them."""
    from opsflow.runs import RunTable

    RunTable(run_table).set_run_fields(EXECUTION, muted={"alarms": [OWN_ALARM, "db-cpu"], "rules": [OWN_RULE]})

    call("mute", lambda_context)

    assert actions_enabled(monitoring["cloudwatch"])[OWN_ALARM] is True
    assert actions_enabled(monitoring["cloudwatch"])["db-cpu"] is False
    assert rule_states(monitoring["events"])[OWN_RULE] == "ENABLED"


def test_excluded_says_without_any_call_which_own_names_a_selection_would_mute() -> None:
    from opsflow.muting import NeverMute, Selector, excluded

    own = NeverMute(alarms=frozenset({OWN_ALARM}), rules=frozenset({OWN_RULE}))

    assert excluded(Selector(namePrefixes=["opsflow-"]), Selector(namePrefixes=["web-"]), own).model_dump() == {
        "alarms": [OWN_ALARM],
        "rules": [],
    }
    assert excluded(Selector(tags={"tier": "web"}), Selector(), own).alarms == [OWN_ALARM]  # tags: it may carry them
    assert excluded(Selector(), Selector(namePrefixes=["db-"]), own).model_dump() == {"alarms": [], "rules": []}


@pytest.mark.parametrize("variable", ["NEVER_MUTE_ALARM_NAMES", "NEVER_MUTE_RULE_NAMES"])
def test_a_function_deployed_without_the_names_to_protect_refuses_naming_the_variable(
    monitoring, lambda_context, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    from opsflow.settings import SettingsError

    monkeypatch.setenv(variable, " , ")
    before = actions_enabled(monitoring["cloudwatch"])
    with pytest.raises(SettingsError, match=variable):
        call("mute", lambda_context, alarms={"namePrefixes": ["web-"]})
    assert actions_enabled(monitoring["cloudwatch"]) == before


def test_a_retried_mute_keeps_the_first_selection(monitoring, lambda_context) -> None:
    """A retry must not see its own muted alarms as 'already disabled' and lose them."""
    first = call("mute", lambda_context, alarms={"namePrefixes": ["web-cpu-00"]})
    again = call("mute", lambda_context, alarms={"namePrefixes": ["web-cpu-00"]})
    assert again["alarms"] == first["alarms"] and len(first["alarms"]) == 10

    call("restore", lambda_context)
    call("restore", lambda_context)  # idempotent

    assert all(actions_enabled(monitoring["cloudwatch"])[name] for name in first["alarms"])


def test_restore_without_a_mute_changes_nothing(monitoring, lambda_context) -> None:
    before = actions_enabled(monitoring["cloudwatch"])
    assert call("restore", lambda_context) == {"action": "restore", "alarms": [], "rules": []}
    assert actions_enabled(monitoring["cloudwatch"]) == before


def test_an_empty_selector_mutes_nothing(monitoring, lambda_context) -> None:
    assert call("mute", lambda_context) == {"action": "mute", "alarms": [], "rules": []}


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"action": "silence", "executionArn": EXECUTION}, "action"),
        ({"action": "mute"}, "executionArn"),
        ({"action": "mute", "executionArn": EXECUTION, "alarms": {"prefix": "web"}}, "alarms.prefix"),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(monitoring, lambda_context, event, named) -> None:
    app = load_function("alarm_toggler")
    with pytest.raises(InvalidInputError, match=named.replace(".", r"\.")):
        app.lambda_handler(event, lambda_context)


def published_metrics(output: str) -> dict[str, float]:
    """The metric values in the Embedded Metric Format lines a handler printed."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for directive in record["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = record[metric["Name"]]
                    found[metric["Name"]] = sum(value) if isinstance(value, list) else value  # a list: several adds
    return found


def test_what_was_muted_and_what_was_restored_are_published_so_a_forgotten_restore_shows(
    monitoring, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    call("mute", lambda_context, alarms={"namePrefixes": ["web-"]})
    muted = published_metrics(capsys.readouterr().out)
    call("restore", lambda_context)
    restored = published_metrics(capsys.readouterr().out)

    assert muted["AlarmsMuted"] == 150
    assert restored["AlarmsRestored"] == 150
