"""The application's alarms a rolling restart watches: it stops taking instances out once one fires.

The input names them (``stopOnAlarms``: exact names and/or name prefixes). The planner resolves them
to exact names once, refuses a name or prefix that matches no alarm and a run whose watched alarm is
already in ALARM; the capacity gate reads their state before it lets each instance out. Watched
alarms are never muted: their actions (paging someone) are the point when the application suffers,
so a mute selection that also names them leaves them on, as it does the stack's own alarm.

An alarm's state is evaluated whether or not its actions are enabled (DisableAlarmActions only stops
the actions), so the state read here is the alarm's own verdict. DescribeAlarms takes at most 100
``AlarmNames`` a call and no ``AlarmNamePrefix`` with them (Amazon CloudWatch API Reference,
DescribeAlarms; the same limits are in botocore's model of the API). An alarm that went to ALARM and
back to OK between two checks is found in its history: DescribeAlarmHistory's ``StateUpdate`` items
carry ``newState.stateValue`` in their HistoryData JSON (API Reference, AlarmHistoryItem; the AWS CLI
example of describe-alarm-history), asked only of alarms whose state changed since the run started.
"""

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from opsflow.errors import InvalidInputError

ALARM = "ALARM"
NAMES_PER_CALL = 100  # DescribeAlarms: AlarmNames has at most 100 members
MAX_WATCHED = 100  # one DescribeAlarms call per capacity check
ALARM_TYPES = ["MetricAlarm", "CompositeAlarm"]

AlarmName = Annotated[str, Field(min_length=1, max_length=255)]


class WatchSelector(BaseModel):
    """Which alarms stop the run when they go to ALARM: exact names and/or name prefixes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    names: list[AlarmName] = Field(default_factory=list, max_length=MAX_WATCHED)
    name_prefixes: list[AlarmName] = Field(default_factory=list, alias="namePrefixes", max_length=20)

    @property
    def empty(self) -> bool:
        return not self.names and not self.name_prefixes


def _alarms(page: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from page.get("MetricAlarms", [])
    yield from page.get("CompositeAlarms", [])


def _chunks(names: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(names), NAMES_PER_CALL):
        yield names[i : i + NAMES_PER_CALL]


def described(cloudwatch: Any, names: Iterable[str]) -> list[dict[str, Any]]:
    """The alarms that exist among ``names``, as DescribeAlarms describes them."""
    paginator = cloudwatch.get_paginator("describe_alarms")
    return [
        alarm
        for chunk in _chunks(sorted(set(names)))
        for page in paginator.paginate(AlarmNames=chunk, AlarmTypes=ALARM_TYPES)
        for alarm in _alarms(page)
    ]


def alarm_states(cloudwatch: Any, names: Iterable[str]) -> dict[str, str]:
    """Name -> StateValue (OK, ALARM, INSUFFICIENT_DATA) of the alarms that exist among ``names``."""
    return {a["AlarmName"]: a["StateValue"] for a in described(cloudwatch, names)}


def went_to_alarm(history_items: Iterable[dict[str, Any]]) -> bool:
    """Whether any of these DescribeAlarmHistory items is a state update to ALARM."""
    for item in history_items:
        try:
            data = json.loads(item.get("HistoryData") or "{}")
        except ValueError:
            continue
        if item.get("HistoryItemType") == "StateUpdate" and data.get("newState", {}).get("stateValue") == ALARM:
            return True
    return False


def fired_since(cloudwatch: Any, names: Iterable[str], since: dt.datetime) -> list[str]:
    """The alarms among ``names`` in ALARM now, or that went to ALARM at any time since ``since``."""
    fired = []
    history = cloudwatch.get_paginator("describe_alarm_history")
    for alarm in described(cloudwatch, names):
        if alarm["StateValue"] == ALARM:
            fired.append(alarm["AlarmName"])
        elif alarm["StateUpdatedTimestamp"] >= since:  # it changed during the run: maybe through ALARM
            pages = history.paginate(AlarmName=alarm["AlarmName"], HistoryItemType="StateUpdate", StartDate=since)
            if went_to_alarm(item for page in pages for item in page.get("AlarmHistoryItems", [])):
                fired.append(alarm["AlarmName"])
    return sorted(fired)


def resolve(cloudwatch: Any, selector: WatchSelector) -> dict[str, str]:
    """The watched alarms by exact name, with their states; InvalidInputError names what matches nothing."""
    if selector.empty:
        return {}
    states = alarm_states(cloudwatch, selector.names) if selector.names else {}
    problems = [
        f"stopOnAlarms.names: no CloudWatch alarm is named {name!r} in this account and region "
        "(names are case-sensitive): fix the name or leave it out"
        for name in selector.names
        if name not in states
    ]
    paginator = cloudwatch.get_paginator("describe_alarms")
    for prefix in selector.name_prefixes:
        found = {
            a["AlarmName"]: a["StateValue"]
            for page in paginator.paginate(AlarmNamePrefix=prefix, AlarmTypes=ALARM_TYPES)
            for a in _alarms(page)
        }
        if not found:
            problems.append(f"stopOnAlarms.namePrefixes: no CloudWatch alarm name starts with {prefix!r}")
        states.update(found)
    if problems:
        raise InvalidInputError("; ".join(problems))
    if len(states) > MAX_WATCHED:
        raise InvalidInputError(
            f"stopOnAlarms selects {len(states)} alarms, more than {MAX_WATCHED}: name the application's "
            "error-rate and latency alarms, or a narrower prefix"
        )
    return dict(sorted(states.items()))


def firing(states: dict[str, str]) -> list[str]:
    """The alarms in ALARM, by name."""
    return sorted(name for name, state in states.items() if state == ALARM)


def watched_names(run: dict[str, Any]) -> list[str]:
    """The watched alarms a run record names (a JSON list the state machine wrote; none if absent)."""
    raw = run.get("watchedAlarms")
    return list(json.loads(raw)) if isinstance(raw, str) and raw else []
