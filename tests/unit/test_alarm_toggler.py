"""Mute exactly the selected alarms and rules; restore exactly those; idempotent."""

from typing import Any

import boto3
import pytest

from opsflow.errors import InvalidInputError
from tests.conftest import REGION, load_function

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:rr:run-1"


@pytest.fixture
def monitoring(run_table: str) -> dict[str, Any]:
    """Given alarms and rules of two tiers, some already disabled."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    events = boto3.client("events", region_name=REGION)

    def alarm(name: str, enabled: bool = True, tier: str = "web") -> None:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/EC2",
            MetricName="CPUUtilization",
            Statistic="Average",
            Period=60,
            EvaluationPeriods=1,
            Threshold=90,
            ComparisonOperator="GreaterThanThreshold",
            AlarmActions=["arn:aws:sns:eu-west-1:123456789012:pager"],
            ActionsEnabled=enabled,
            Tags=[{"Key": "tier", "Value": tier}],
        )

    for i in range(150):  # more than one DescribeAlarms page and more than 100 names a call
        alarm(f"web-cpu-{i:03d}")
    alarm("web-disk-full", enabled=False)
    alarm("db-cpu", tier="db")
    alarm("tagged-elsewhere", tier="web")
    events.put_rule(Name="web-pager", EventPattern='{"source": ["aws.ec2"]}', State="ENABLED")
    events.put_rule(Name="web-report", ScheduleExpression="rate(1 day)", State="DISABLED")
    events.put_rule(Name="db-backup", ScheduleExpression="rate(1 day)", State="ENABLED")
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
