"""Patch preview, first step: validate the request, read the maintenance window, select the fleet.

- skips (a short note, not an error) when the window is not within the horizon, or nothing matches;
- keeps running instances that SSM manages, selected by explicit ids, tags and/or patch group;
- reads each instance's last patch operation (DescribeInstancePatchStates, 50 at a time): patch data
  is only as fresh as the last Scan/Install, so older than the threshold is flagged;
- writes that fleet snapshot, and the servers to list in batches of 50, to the bucket, and returns
  where they are and the patch filters: the state stays the same small size for 1 or 5,000 servers
  (a state's input and output are limited to 256 KiB; docs/workflows.md, "Patch preview at scale").
"""

import datetime as dt
import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.alias_generators import to_camel

from opsflow import clients, timeutil
from opsflow.errors import OpsflowError, service_error
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.settings import BucketSettings, cached_settings
from opsflow.validation import ExecutionEvent, InstanceId, parse_event

BATCH = 50  # DescribeInstancePatchStates and DescribeInstanceInformation take 50 ids a call
# Servers one collector call lists (a Distributed Map item): 50 DescribeInstancePatches calls take seconds
# of Lambda time, and 5,000 servers make 100 child executions.
LISTING_BATCH = 50
Severity = Literal["Critical", "Important", "Medium", "Low", "Informational", "Unspecified"]


class Settings(BucketSettings):
    maintenance_window_id: str = Field(default="", alias="MAINTENANCE_WINDOW_ID")
    patch_group: str = Field(default="", alias="PATCH_GROUP")
    horizon_hours: int = Field(default=24, alias="HORIZON_HOURS", ge=1)
    stale_after_hours: int = Field(default=72, alias="STALE_AFTER_HOURS", ge=1)
    mail_when_nothing_pending: bool = Field(default=True, alias="MAIL_WHEN_NOTHING_PENDING")


settings = cached_settings(Settings)


class MaintenanceWindowNotFoundError(OpsflowError):
    """The maintenance window named in the input does not exist."""


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


def next_window(window_id: str, horizon_hours: int) -> tuple[dict[str, Any], str | None]:
    """The window and, when the preview should not run now, why."""
    ssm = clients.client("ssm")
    try:
        window = ssm.get_maintenance_window(WindowId=window_id)
    except ssm.exceptions.DoesNotExistException as exc:
        raise MaintenanceWindowNotFoundError(f"maintenance window {window_id} does not exist") from exc
    info = {"id": window_id, "name": window.get("Name", window_id), "schedule": window.get("Schedule")}
    if not window.get("Enabled", True):
        return info, f"Maintenance window {info['name']} is disabled: no preview."
    next_run = window.get("NextExecutionTime")
    if not next_run:
        return info, f"Maintenance window {info['name']} has no next run: no preview."
    when = dt.datetime.fromisoformat(next_run.replace("Z", "+00:00"))
    info["nextRun"] = when.isoformat()
    hours = (when - timeutil.now()).total_seconds() / 3600
    info["hoursAway"] = round(hours, 1)
    if hours > horizon_hours:
        note = (
            f"Maintenance window {info['name']} runs at {when:%Y-%m-%d %H:%M} UTC, {hours:.0f} h from now: "
            f"beyond the {horizon_hours} h horizon, no preview yet."
        )
        return info, note
    return info, None


def running_instances(selection: Selection, default_patch_group: str) -> dict[str, dict[str, Any]]:
    filters = [{"Name": "instance-state-name", "Values": ["running"]}]
    for key, value in (selection.tags or {}).items():
        filters.append({"Name": f"tag:{key}", "Values": [value]})
    group = selection.patch_group or (
        default_patch_group if not selection.instance_ids and not selection.tags else None
    )
    if group:
        filters.append({"Name": "tag:Patch Group", "Values": [group]})
    # Explicit ids go in chunks of 200 as an instance-id filter; otherwise one paginated listing.
    ids = selection.instance_ids or []
    queries = [[*filters, {"Name": "instance-id", "Values": ids[i : i + 200]}] for i in range(0, len(ids), 200)]
    found: dict[str, dict[str, Any]] = {}
    for query in queries or [filters]:
        for page in clients.client("ec2").get_paginator("describe_instances").paginate(Filters=query):
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    found[inst["InstanceId"]] = {
                        "name": tags.get("Name", inst["InstanceId"]),
                        "patchGroup": tags.get("Patch Group", ""),
                    }
    return found


def managed(instance_ids: list[str]) -> set[str]:
    ssm = clients.client("ssm")
    out: set[str] = set()
    for start in range(0, len(instance_ids), BATCH):
        chunk = instance_ids[start : start + BATCH]
        pages = ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "InstanceIds", "Values": chunk}]
        )
        out.update(info["InstanceId"] for page in pages for info in page["InstanceInformationList"])
    return out


def patch_states(instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    ssm = clients.client("ssm")
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(instance_ids), BATCH):
        pages = ssm.get_paginator("describe_instance_patch_states").paginate(
            InstanceIds=instance_ids[start : start + BATCH]
        )
        for page in pages:
            for state in page["InstancePatchStates"]:
                out[state["InstanceId"]] = state
    return out


def select(request: PreviewRequest, execution_arn: str, cfg: Settings) -> dict[str, Any]:
    horizon = request.horizon_hours or cfg.horizon_hours
    stale_after = request.stale_after_hours or cfg.stale_after_hours
    mail_nothing = (
        cfg.mail_when_nothing_pending
        if request.mail_when_nothing_pending is None
        else request.mail_when_nothing_pending
    )
    run = execution_arn.rsplit(":", 1)[-1]
    base = {
        "executionArn": execution_arn,
        "runPrefix": f"patch-preview/{run}",
        "staleAfterHours": stale_after,
        "mailWhenNothingPending": mail_nothing,
        "window": None,
        "skip": False,
        "note": "",
        "deliver": request.deliver,
    }
    window_id = request.maintenance_window_id or cfg.maintenance_window_id
    if window_id and request.deliver == "mail":
        base["window"], skip = next_window(window_id, horizon)
        if skip:
            return {**base, "skip": True, "note": skip, "servers": 0}

    candidates = running_instances(request.instances or Selection(), cfg.patch_group)
    ids = sorted(candidates)
    with_ssm = managed(ids)
    states = patch_states(sorted(with_ssm))
    now = timeutil.now()
    fleet = []
    for instance_id in ids:
        state = states.get(instance_id, {})
        scanned = state.get("OperationEndTime")
        age_hours = (now - scanned).total_seconds() / 3600 if scanned else None
        fleet.append(
            {
                "instanceId": instance_id,
                **candidates[instance_id],
                "managed": instance_id in with_ssm,
                "lastOperation": state.get("Operation"),
                "lastOperationAt": scanned.isoformat() if scanned else None,
                "stale": age_hours is None or age_hours > stale_after,
                "missing": state.get("MissingCount", 0),
                "failed": state.get("FailedCount", 0),
                "pendingReboot": state.get("InstalledPendingRebootCount", 0),
                "rebootOption": state.get("RebootOption"),
            }
        )
    selected = [f["instanceId"] for f in fleet if f["managed"]]
    if not selected:
        return {
            **base,
            "skip": True,
            "note": "Nothing to preview: no running instance managed by SSM matches the selection.",
            "servers": 0,
        }

    fleet_key = f"{base['runPrefix']}/fleet.json"
    batches_key = f"{base['runPrefix']}/batches.json"
    batches = [
        {"batch": n, "instanceIds": selected[start : start + LISTING_BATCH]}
        for n, start in enumerate(range(0, len(selected), LISTING_BATCH))
    ]
    s3 = clients.client("s3")
    s3.put_object(
        Bucket=cfg.bucket_name, Key=fleet_key, Body=json.dumps(fleet).encode(), ContentType="application/json"
    )
    # The Distributed Map's ItemReader reads this JSON array: one item (child execution) per batch.
    s3.put_object(
        Bucket=cfg.bucket_name, Key=batches_key, Body=json.dumps(batches).encode(), ContentType="application/json"
    )
    states_wanted = ["Missing", "Failed"] if request.include_failed else ["Missing"]
    filters = [{"Key": "State", "Values": states_wanted}]
    if request.severities:
        filters.append({"Key": "Severity", "Values": list(request.severities)})
    if request.classifications:
        filters.append({"Key": "Classification", "Values": list(request.classifications)})
    return {
        **base,
        "servers": len(selected),
        "patchFilters": filters,
        "fleet": {"bucket": cfg.bucket_name, "key": fleet_key},
        "batches": {"bucket": cfg.bucket_name, "key": batches_key, "count": len(batches)},
    }


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    targets_event = parse_event(ExecutionEvent, event)
    request = parse_event(PreviewRequest, targets_event.input)
    try:
        result = select(request, targets_event.execution_arn, settings())
    except ClientError as exc:  # under the service's error code, so the state machine's Retry can match it
        raise service_error(exc) from exc
    logger.info(
        "selected",
        extra={"instances": result["servers"], "skip": result["skip"], "note": result["note"]},
    )
    return result
