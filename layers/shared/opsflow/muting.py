"""Mute exactly the CloudWatch alarms and EventBridge rules a change touches, and put them back.

Selection is by name prefix and/or tags (all given tags must match; the tagged resources are found
all at once with the Resource Groups Tagging API, see :func:`tagged`). Only alarms whose actions are
enabled and rules that are ENABLED are selected: what was already off stays off and is never
"restored" to on. The selection is written to the run record *before* anything is disabled, so a
retried call, the state machine's restore step and the safety net all work from the same list:
- a retried ``mute`` re-applies the recorded list instead of re-selecting (it would otherwise see
  its own muted alarms as "already off" and never restore them);
- ``restore`` enables exactly the recorded names, and can run any number of times.

The stack's own alarm and safety-net rule (``NeverMute``, exact names from template.yaml) are never
selected, whatever the prefixes or tags: muting them would switch off the safety net exactly when a
stopped run needs it. Nor are the alarms the run watches (opsflow.watch, recorded on the run): they
are the ones that must page someone if the application suffers during the restart. :func:`excluded`
tells, without any API call, which of them a selection names.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, timeutil, watch
from opsflow.observability import logger
from opsflow.runs import RunTable

ALARM_BATCH = 100  # DisableAlarmActions / EnableAlarmActions take at most 100 names a call


class Selector(BaseModel):
    """Which alarms or rules to mute. Empty (no prefixes, no tags) selects nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name_prefixes: list[str] = Field(default_factory=list, alias="namePrefixes", max_length=20)
    tags: dict[str, str] = Field(default_factory=dict, max_length=10)

    @property
    def empty(self) -> bool:
        return not self.name_prefixes and not self.tags


class MuteRecord(BaseModel):
    alarms: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)


class NeverMute(BaseModel):
    """Exact names a restart never mutes: the stack's own alarm and safety-net rule."""

    model_config = ConfigDict(frozen=True)

    alarms: frozenset[str] = frozenset()
    rules: frozenset[str] = frozenset()


def _could_select(selector: Selector, name: str) -> bool:
    """Whether ``selector`` may select ``name``, judging by the name alone (tags need an API call)."""
    if selector.empty:
        return False
    return not selector.name_prefixes or any(name.startswith(p) for p in selector.name_prefixes)


def excluded(alarms: Selector, rules: Selector, never_mute: NeverMute) -> MuteRecord:
    """The stack's own alarms and rules that these selectors would have muted, had they not been protected.

    Pure (no API call), for a preflight that wants to say so before anything runs. Tags are not
    looked at: a selector with tags and no prefix lists every protected name, since the stack's tags
    may be on them.
    """
    return MuteRecord(
        alarms=sorted(n for n in never_mute.alarms if _could_select(alarms, n)),
        rules=sorted(n for n in never_mute.rules if _could_select(rules, n)),
    )


def tagged(tagging: Any, resource_type: str, tags: dict[str, str]) -> set[str]:
    """ARNs of the resources of ``resource_type`` that carry every one of ``tags``, in a few calls.

    The Resource Groups Tagging API's GetResources "support[s] all resource types" (AWS: "Services
    that support the Resource Groups Tagging API",
    https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/supported-services.html);
    CloudWatch alarms (``cloudwatch:alarm``) and EventBridge rules (``events:rule``) are taggable
    resources of their services. One page lists up to 100 resources, where asking each alarm or rule
    for its tags took one call per resource (a 30 s function ran out of time with hundreds of alarms).
    """
    pages = tagging.get_paginator("get_resources").paginate(
        ResourceTypeFilters=[resource_type],
        TagFilters=[{"Key": key, "Values": [value]} for key, value in tags.items()],  # every filter must match
        ResourcesPerPage=100,
    )
    return {m["ResourceARN"] for page in pages for m in page.get("ResourceTagMappingList", [])}


def _alarms(cloudwatch: Any, selector: Selector) -> Iterator[dict[str, Any]]:
    paginator = cloudwatch.get_paginator("describe_alarms")
    queries = [{"AlarmNamePrefix": p} for p in selector.name_prefixes] or [{}]
    for query in queries:
        for page in paginator.paginate(AlarmTypes=["MetricAlarm", "CompositeAlarm"], **query):
            yield from page.get("MetricAlarms", [])
            yield from page.get("CompositeAlarms", [])


def _rules(events: Any, selector: Selector) -> Iterator[dict[str, Any]]:
    paginator = events.get_paginator("list_rules")
    for query in [{"NamePrefix": p} for p in selector.name_prefixes] or [{}]:
        for page in paginator.paginate(**query):
            yield from page.get("Rules", [])


@dataclass(frozen=True)
class _Kind:
    """How one kind of resource is listed, named and found mutable."""

    kind: str  # the key naming it in a log line
    resource_type: str  # GetResources' ResourceTypeFilters
    name: str
    arn: str
    may_mute: Callable[[dict[str, Any]], bool]
    why_never: str  # said when the selector picks one never_mute names


# Alarms whose actions are enabled (one whose actions are off now is not ours to turn back on).
ALARMS = _Kind(
    "alarm",
    "cloudwatch:alarm",
    "AlarmName",
    "AlarmArn",
    lambda alarm: bool(alarm.get("ActionsEnabled", False)),
    "selected but never muted: the stack's own alarm, or one the run watches",
)
# Enabled rules the account manages itself (a rule another AWS service manages is that service's).
RULES = _Kind(
    "rule",
    "events:rule",
    "Name",
    "Arn",
    lambda rule: rule.get("State") == "ENABLED" and not rule.get("ManagedBy"),
    "selected but never disabled: the stack's own rule",
)


def _select(
    listed: Iterator[dict[str, Any]], selector: Selector, kind: _Kind, never_mute: frozenset[str], tagging: Any
) -> list[str]:
    """The names of the ``listed`` resources the selector picks that may be muted and are not ``never_mute``."""
    if selector.empty:
        return []
    wanted: set[str] = set()
    if selector.tags:  # one GetResources pass, then match ARNs (not one tag lookup per resource)
        wanted = tagged(tagging or clients.client("resourcegroupstaggingapi"), kind.resource_type, selector.tags)
        if not wanted:
            return []  # nothing listed: no resource carries the tags
    names: dict[str, None] = {}
    for resource in listed:
        if not kind.may_mute(resource):
            continue
        if resource[kind.name] in never_mute:
            logger.warning(kind.why_never, extra={kind.kind: resource[kind.name]})
            continue
        if selector.tags and resource[kind.arn] not in wanted:
            continue
        names[resource[kind.name]] = None
    return sorted(names)


def select_alarms(cloudwatch: Any, selector: Selector, *, never_mute: frozenset[str], tagging: Any = None) -> list[str]:
    return _select(_alarms(cloudwatch, selector), selector, ALARMS, never_mute, tagging)


def select_rules(events: Any, selector: Selector, *, never_mute: frozenset[str], tagging: Any = None) -> list[str]:
    return _select(_rules(events, selector), selector, RULES, never_mute, tagging)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def mute(
    table: RunTable, execution_arn: str, alarms: Selector, rules: Selector, *, never_mute: NeverMute
) -> MuteRecord:
    cloudwatch, events = clients.client("cloudwatch"), clients.client("events")
    run = table.get_run(execution_arn) or {}
    never_mute = NeverMute(alarms=never_mute.alarms | frozenset(watch.watched_names(run)), rules=never_mute.rules)
    if "muted" in run:
        record = MuteRecord.model_validate(run["muted"])
        logger.info("re-applying the recorded mute", extra={"alarms": record.alarms, "rules": record.rules})
    else:
        record = MuteRecord(
            alarms=select_alarms(cloudwatch, alarms, never_mute=never_mute.alarms),
            rules=select_rules(events, rules, never_mute=never_mute.rules),
        )
        table.set_run_fields(execution_arn, muted=record.model_dump(), mutedAt=timeutil.iso_now())
    # A record written by an older version may name them: never disable them either way.
    for chunk in _chunks([a for a in record.alarms if a not in never_mute.alarms], ALARM_BATCH):
        cloudwatch.disable_alarm_actions(AlarmNames=chunk)
    for name in record.rules:
        if name not in never_mute.rules:
            events.disable_rule(Name=name)
    logger.info("muted", extra={"alarms": record.alarms, "rules": record.rules})
    return record


def restore(table: RunTable, execution_arn: str) -> MuteRecord | None:
    """Re-enable what the run muted; None when the run muted nothing (or never started)."""
    run = table.get_run(execution_arn)
    if not run or "muted" not in run:
        return None
    record = MuteRecord.model_validate(run["muted"])
    cloudwatch, events = clients.client("cloudwatch"), clients.client("events")
    for chunk in _chunks(record.alarms, ALARM_BATCH):
        cloudwatch.enable_alarm_actions(AlarmNames=chunk)
    for name in record.rules:
        try:
            events.enable_rule(Name=name)
        except events.exceptions.ResourceNotFoundException:
            logger.warning("rule deleted during the run, nothing to restore", extra={"rule": name})
    table.set_run_fields(execution_arn, restoredAt=timeutil.iso_now())
    logger.info("restored", extra={"alarms": record.alarms, "rules": record.rules})
    return record
