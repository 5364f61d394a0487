"""The patch preview's first step, decided over plain data: the request, whether the maintenance window
calls for a preview now, which instances to ask EC2 for, each server's patch-data row, the listing's
batches and the patch filters. The reads are opsflow.ec2_instances and opsflow.patch_manager."""

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.alias_generators import to_camel

from opsflow.arns import execution_name
from opsflow.ec2_instances import Filters
from opsflow.validation import InstanceId

# Servers one collector call lists (a Distributed Map item): 50 DescribeInstancePatches calls take seconds
# of Lambda time, and 5,000 servers make 100 child executions.
LISTING_BATCH = 50
INSTANCE_ID_FILTER_CHUNK = 200  # explicit ids per DescribeInstances instance-id filter
PATCH_GROUP_TAG = "Patch Group"
Severity = Literal["Critical", "Important", "Medium", "Low", "Informational", "Unspecified"]
NOTHING_MANAGED = "Nothing to preview: no running instance managed by SSM matches the selection."


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=AliasGenerator(to_camel), populate_by_name=True)


class Selection(_Model):
    instance_ids: Annotated[list[InstanceId], Field(min_length=1, max_length=5000)] | None = None
    tags: Annotated[dict[str, str], Field(max_length=10)] | None = None
    patch_group: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class PreviewRequest(_Model):
    maintenance_window_id: Annotated[str, Field(pattern=r"^mw-[0-9a-f]{17}$")] | None = None
    horizon_hours: Annotated[StrictInt, Field(ge=1, le=168)] | None = None
    instances: Selection | None = None
    severities: Annotated[list[Severity], Field(min_length=1)] | None = None
    classifications: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z]{2,40}$")]], Field(min_length=1)] | None = (
        None
    )
    stale_after_hours: Annotated[StrictInt, Field(ge=1, le=720)] | None = None
    include_failed: StrictBool = True
    mail_when_nothing_pending: StrictBool | None = None
    # "approval": the patch workflow's preview of an install that follows now, once approved: no
    # maintenance window is read, and the report is handed to the approval mail instead of mailed.
    deliver: Literal["mail", "approval"] = "mail"

    @model_validator(mode="after")
    def _window_only_when_mailed(self) -> "PreviewRequest":
        if self.deliver == "approval" and (self.maintenance_window_id or self.horizon_hours):
            raise ValueError(
                "maintenanceWindowId and horizonHours do not apply when deliver is 'approval' (the install "
                "follows the approval, not a maintenance window): leave them out"
            )
        return self


@dataclass(frozen=True)
class Defaults:
    """The stack's settings, which the request overrides field by field."""

    maintenance_window_id: str = ""
    patch_group: str = ""
    horizon_hours: int = 24
    stale_after_hours: int = 72
    mail_when_nothing_pending: bool = True


@dataclass(frozen=True)
class Plan:
    """What the request and the defaults make of this run, before any read."""

    base: dict[str, Any]  # the state's result's common fields
    window_id: str | None  # the maintenance window to read, if any
    horizon_hours: int


def plan(request: PreviewRequest, execution_arn: str, defaults: Defaults) -> Plan:
    mail_nothing = (
        defaults.mail_when_nothing_pending
        if request.mail_when_nothing_pending is None
        else request.mail_when_nothing_pending
    )
    base = {
        "executionArn": execution_arn,
        "runPrefix": f"patch-preview/{execution_name(execution_arn)}",
        "staleAfterHours": request.stale_after_hours or defaults.stale_after_hours,
        "mailWhenNothingPending": mail_nothing,
        "window": None,
        "skip": False,
        "note": "",
        "deliver": request.deliver,
    }
    window_id = request.maintenance_window_id or defaults.maintenance_window_id
    return Plan(
        base,
        window_id if window_id and request.deliver == "mail" else None,
        request.horizon_hours or defaults.horizon_hours,
    )


def skipped(base: dict[str, Any], note: str) -> dict[str, Any]:
    """The result of a run that previews nothing (a short note, not an error)."""
    return {**base, "skip": True, "note": note, "servers": 0}


def window_verdict(
    window_id: str, window: dict[str, Any], now: dt.datetime, horizon_hours: int
) -> tuple[dict[str, Any], str | None]:
    """The window as the report shows it and, when the preview should not run now, why."""
    info = {"id": window_id, "name": window.get("Name", window_id), "schedule": window.get("Schedule")}
    if not window.get("Enabled", True):
        return info, f"Maintenance window {info['name']} is disabled: no preview."
    next_run = window.get("NextExecutionTime")
    if not next_run:
        return info, f"Maintenance window {info['name']} has no next run: no preview."
    when = dt.datetime.fromisoformat(next_run.replace("Z", "+00:00"))
    info["nextRun"] = when.isoformat()
    hours = (when - now).total_seconds() / 3600
    info["hoursAway"] = round(hours, 1)
    if hours > horizon_hours:
        note = (
            f"Maintenance window {info['name']} runs at {when:%Y-%m-%d %H:%M} UTC, {hours:.0f} h from now: "
            f"beyond the {horizon_hours} h horizon, no preview yet."
        )
        return info, note
    return info, None


def instance_queries(selection: Selection, default_patch_group: str) -> list[Filters]:
    """The DescribeInstances filter sets that find the selected running instances: tags and patch group
    (the stack's when nothing else selects), explicit ids in chunks of 200; one set without ids."""
    filters: Filters = [{"Name": "instance-state-name", "Values": ["running"]}]
    for key, value in (selection.tags or {}).items():
        filters.append({"Name": f"tag:{key}", "Values": [value]})
    group = selection.patch_group or (
        default_patch_group if not selection.instance_ids and not selection.tags else None
    )
    if group:
        filters.append({"Name": f"tag:{PATCH_GROUP_TAG}", "Values": [group]})
    ids = selection.instance_ids or []
    chunk = INSTANCE_ID_FILTER_CHUNK
    queries: list[Filters] = [
        [*filters, {"Name": "instance-id", "Values": ids[i : i + chunk]}] for i in range(0, len(ids), chunk)
    ]
    return queries or [filters]


def fleet_rows(
    tags: dict[str, dict[str, str]],
    managed: set[str],
    states: dict[str, dict[str, Any]],
    now: dt.datetime,
    stale_after_hours: int,
) -> list[dict[str, Any]]:
    """One row per instance (by id): managed by SSM or not, its last patch operation, and whether that
    is stale (patch data is only as fresh as the last Scan or Install; never scanned is stale)."""
    fleet = []
    for instance_id in sorted(tags):
        state = states.get(instance_id, {})
        scanned = state.get("OperationEndTime")
        age_hours = (now - scanned).total_seconds() / 3600 if scanned else None
        fleet.append(
            {
                "instanceId": instance_id,
                "name": tags[instance_id].get("Name", instance_id),
                "patchGroup": tags[instance_id].get(PATCH_GROUP_TAG, ""),
                "managed": instance_id in managed,
                "lastOperation": state.get("Operation"),
                "lastOperationAt": scanned.isoformat() if scanned else None,
                "stale": age_hours is None or age_hours > stale_after_hours,
                "missing": state.get("MissingCount", 0),
                "failed": state.get("FailedCount", 0),
                "pendingReboot": state.get("InstalledPendingRebootCount", 0),
                "rebootOption": state.get("RebootOption"),
            }
        )
    return fleet


def listing_batches(fleet: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The managed servers in batches the listing Map reads, one child execution each."""
    selected = [f["instanceId"] for f in fleet if f["managed"]]
    return [
        {"batch": n, "instanceIds": selected[start : start + LISTING_BATCH]}
        for n, start in enumerate(range(0, len(selected), LISTING_BATCH))
    ]


def patch_filters(request: PreviewRequest) -> list[dict[str, Any]]:
    """DescribeInstancePatches filters: Missing (and Failed, unless left out), severities, classifications."""
    filters: list[dict[str, Any]] = [
        {"Key": "State", "Values": ["Missing", "Failed"] if request.include_failed else ["Missing"]}
    ]
    if request.severities:
        filters.append({"Key": "Severity", "Values": list(request.severities)})
    if request.classifications:
        filters.append({"Key": "Classification", "Values": list(request.classifications)})
    return filters


def fleet_key(run_prefix: str) -> str:
    return f"{run_prefix}/fleet.json"


def batches_key(run_prefix: str) -> str:
    return f"{run_prefix}/batches.json"
