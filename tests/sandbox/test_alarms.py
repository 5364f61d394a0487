"""CloudWatch alarms in simulated time: state changes are stamped on the virtual clock and kept in their history."""

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox
from tests.sandbox.conftest import FIXTURE_TEMPLATE


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(FleetSpec(size=1), template_path=FIXTURE_TEMPLATE) as sandbox:
        yield sandbox


def described(sb: Sandbox, name: str) -> dict[str, Any]:
    return dict(sb.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0])


def test_an_alarm_fires_at_its_simulated_time_and_its_history_keeps_a_flap(sb: Sandbox) -> None:
    start = sb.clock.now()
    sb.set_alarm_state("web-5xx-errors", "ALARM", after=30)
    sb.set_alarm_state("web-5xx-errors", "OK", after=50)
    assert described(sb, "web-5xx-errors")["StateUpdatedTimestamp"] < dt.datetime.fromtimestamp(start, dt.UTC), (
        "unchanged since before the sandbox started"
    )

    sb.run_until(at=start + 40)
    assert described(sb, "web-5xx-errors")["StateValue"] == "ALARM"
    sb.run_until(at=start + 60)

    alarm = described(sb, "web-5xx-errors")
    assert alarm["StateValue"] == "OK"
    assert alarm["StateUpdatedTimestamp"] == dt.datetime.fromtimestamp(start + 50, dt.UTC)
    items = sb.client("cloudwatch").describe_alarm_history(
        AlarmName="web-5xx-errors",
        HistoryItemType="StateUpdate",
        StartDate=dt.datetime.fromtimestamp(start, dt.UTC),
    )["AlarmHistoryItems"]
    assert [json.loads(i["HistoryData"])["newState"]["stateValue"] for i in items] == ["OK", "ALARM"], "newest first"
    assert items[0]["HistorySummary"] == "Alarm updated from ALARM to OK"
    later = sb.client("cloudwatch").describe_alarm_history(
        AlarmName="web-5xx-errors", StartDate=dt.datetime.fromtimestamp(start + 45, dt.UTC)
    )["AlarmHistoryItems"]
    assert len(later) == 1
