"""Patch preview, last step: group the patches, write the email (and the full report when large).

Reads the fleet snapshot and each instance's patch list from the bucket one at a time (memory grows
with the distinct patches and servers, not with the listing's size), groups by patch, and returns the
subject and text the state machine mails. A report too long for a readable email goes to the bucket
in full; the email then carries the summary and where the rest is.
"""

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, notify, timeutil
from opsflow.observability import logger, metrics, tracer
from opsflow.settings import BucketSettings, cached_settings
from opsflow.validation import parse_event

SEVERITY_ORDER = ["Critical", "Important", "Medium", "Low", "Informational", "Unspecified"]


class Settings(BucketSettings):
    email_limit_chars: int = Field(default=60_000, alias="EMAIL_LIMIT_CHARS", ge=2_000, le=200_000)


settings = cached_settings(Settings)


class Location(BaseModel):
    bucket: str
    key: str


class InstanceResult(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    instance_id: str = Field(alias="instanceId")
    count: int = 0
    location: Location | None = None
    error: str | None = None


class ReportEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    execution_arn: str = Field(alias="executionArn")
    run_prefix: str = Field(alias="runPrefix")
    fleet: Location
    window: dict[str, Any] | None = None
    stale_after_hours: int = Field(alias="staleAfterHours")
    mail_when_nothing_pending: bool = Field(alias="mailWhenNothingPending")
    results: list[InstanceResult]


@dataclass
class PatchGroup:
    title: str
    kb_id: str
    severity: str
    classification: str
    cves: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def servers(self) -> int:
        return len(self.missing) + len(self.failed)


def plural(count: int, noun: str) -> str:
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun}es" if noun.endswith(("ch", "sh", "s", "x")) else f"{count} {noun}s"


def read_lines(location: Location) -> Iterator[dict[str, Any]]:
    body = clients.client("s3").get_object(Bucket=location.bucket, Key=location.key)["Body"]
    for line in body.iter_lines():
        if line:
            yield json.loads(line)


def group_patches(results: list[InstanceResult]) -> dict[str, PatchGroup]:
    groups: dict[str, PatchGroup] = {}
    for result in results:
        if result.location is None:
            continue
        for patch in read_lines(result.location):
            key = patch.get("KBId") or patch["Title"]
            group = groups.setdefault(
                key,
                PatchGroup(
                    patch["Title"],
                    key,
                    patch.get("Severity") or "Unspecified",
                    patch.get("Classification", ""),
                ),
            )
            group.cves.update(c for c in (patch.get("CVEIds") or "").split(",") if c)
            (group.failed if patch.get("State") == "Failed" else group.missing).append(result.instance_id)
    return groups


def _severity_rank(group: PatchGroup) -> tuple[int, int, str]:
    rank = SEVERITY_ORDER.index(group.severity) if group.severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
    return rank, -group.servers, group.title


def _ago(iso: str | None) -> str:
    if not iso:
        return "never scanned"
    hours = (timeutil.now() - dt.datetime.fromisoformat(iso)).total_seconds() / 3600
    return f"last scan {hours / 24:.1f} days ago" if hours >= 48 else f"last scan {hours:.0f} h ago"


@dataclass
class Preview:
    """What the email is made of."""

    event: ReportEvent
    fleet: list[dict[str, Any]]
    groups: dict[str, PatchGroup]

    def __post_init__(self) -> None:
        self.names = {f["instanceId"]: f["name"] for f in self.fleet}
        self.managed = [f for f in self.fleet if f["managed"]]
        self.stale = sorted((f for f in self.managed if f["stale"]), key=lambda f: f["name"])
        self.unreadable = [r for r in self.event.results if r.error]
        self.affected = sorted({i for g in self.groups.values() for i in g.missing + g.failed})
        self.by_severity = {s: [g for g in self.groups.values() if g.severity == s] for s in SEVERITY_ORDER}
        window = self.event.window or {}
        self.scope = window.get("name", "the selected servers")
        self.when = f" (in {window['hoursAway']:.0f} h)" if window.get("nextRun") else ""

    def label(self, instance_id: str) -> str:
        name = self.names.get(instance_id, instance_id)
        return f"{name} ({instance_id})" if name != instance_id else instance_id

    def subject(self) -> str:
        flags = (f" [{len(self.stale)} stale]" if self.stale else "") + (
            f" [{len(self.unreadable)} unreadable]" if self.unreadable else ""
        )
        if not self.groups:
            servers = plural(len(self.managed), "server")
            return f"Patch preview {self.scope}{self.when}: nothing to install on {servers}{flags}"
        critical = len(self.by_severity["Critical"])
        counts = f"{plural(len(self.groups), 'patch')} on {plural(len(self.affected), 'server')}" + (
            f", {critical} critical" if critical else ""
        )
        return f"Patch preview {self.scope}{self.when}: {counts}{flags}"

    def head(self) -> list[str]:
        window = self.event.window or {}
        lines = []
        if window.get("nextRun"):
            at = dt.datetime.fromisoformat(window["nextRun"])
            lines.append(
                f"Maintenance window {self.scope} ({window['id']}) runs next at {at:%Y-%m-%d %H:%M} UTC{self.when}."
            )
        installs = sum(g.servers for g in self.groups.values())
        lines += [
            f"{plural(len(self.managed), 'server')} checked; {len(self.affected)} will get patches: "
            f"{plural(len(self.groups), 'distinct patch')}, {plural(installs, 'installation')}.",
            "",
            "By severity:",
        ]
        for severity, items in self.by_severity.items():
            if items:
                servers = len({i for g in items for i in g.missing + g.failed})
                lines.append(f"  {severity:<13} {plural(len(items), 'patch'):>12} on {plural(servers, 'server')}")
        reboot = [f for f in self.managed if f["instanceId"] in self.affected or f["pendingReboot"]]
        if reboot:
            waiting = sum(1 for f in reboot if f["pendingReboot"])
            lines.append(
                f"Will reboot if the window installs with RebootIfNeeded: {plural(len(reboot), 'server')} "
                f"({waiting} already waiting for a reboot)."
            )
        return lines + self.warnings()

    def warnings(self) -> list[str]:
        lines = []
        if self.stale:
            hours = self.event.stale_after_hours
            lines += ["", f"STALE patch data (older than {hours} h; the list may be incomplete, scan these servers):"]
            lines += [f"  {self.label(f['instanceId'])}: {_ago(f['lastOperationAt'])}" for f in self.stale]
        if self.unreadable:
            lines += ["", "UNREADABLE (their patch list could not be read; they are not in the list below):"]
            lines += [f"  {self.label(r.instance_id)}: {r.error}" for r in self.unreadable]
        unmanaged = [f for f in self.fleet if not f["managed"]]
        if unmanaged:
            names = ", ".join(self.label(f["instanceId"]) for f in unmanaged)
            lines += ["", f"Not managed by SSM (no patch data): {names}"]
        return lines

    def body(self) -> list[str]:
        if not self.groups:
            return ["", "Nothing to install: no Missing or Failed patches on the checked servers."]
        lines = ["", "Patches", "-------"]
        for group in sorted(self.groups.values(), key=_severity_rank):
            cves = f"  {', '.join(sorted(group.cves))}" if group.cves else ""
            lines.append(f"[{group.severity}] {group.title}  ({group.classification}){cves}")
            servers = ", ".join(sorted(self.names.get(i, i) for i in group.missing))
            lines.append(f"  {plural(group.servers, 'server')}: {servers}")
            if group.failed:
                retried = ", ".join(sorted(self.names.get(i, i) for i in group.failed))
                lines.append(f"  failed before, will be retried on: {retried}")
        return lines

    def counts(self) -> dict[str, int]:
        return {
            "patches": len(self.groups),
            "servers": len(self.affected),
            "checked": len(self.managed),
            "stale": len(self.stale),
            "unreadable": len(self.unreadable),
            "critical": len(self.by_severity["Critical"]),
        }


def report(event: ReportEvent, cfg: Settings) -> dict[str, Any]:
    fleet = json.loads(clients.client("s3").get_object(Bucket=event.fleet.bucket, Key=event.fleet.key)["Body"].read())
    preview = Preview(event, fleet, group_patches(event.results))
    head, body = preview.head(), preview.body()
    full = "\n".join(head + body) + "\n"
    result: dict[str, Any] = {
        "subject": notify.subject_line(preview.subject()),
        "counts": preview.counts(),
        "send": bool(preview.groups) or event.mail_when_nothing_pending,
    }
    if len(full) <= cfg.email_limit_chars:
        result["message"] = full
        return result
    key = f"{event.run_prefix}/report.txt"
    clients.client("s3").put_object(
        Bucket=cfg.bucket_name, Key=key, Body=full.encode(), ContentType="text/plain; charset=utf-8"
    )
    shown, size = [], 0
    for line in body:
        size += len(line) + 1
        if size > cfg.email_limit_chars // 2:
            break
        shown.append(line)
    pointer = [
        "",
        f"The full report ({len(full):,} characters) is at s3://{cfg.bucket_name}/{key} (aws s3 cp to read it).",
        "The most severe patches first:",
    ]
    result["message"] = "\n".join([*head, *pointer, *shown, "..."]) + "\n"
    result["reportLocation"] = {"bucket": cfg.bucket_name, "key": key}
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = report(parse_event(ReportEvent, event), settings())
    metrics.add_metric(name="PatchPreviews", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PendingPatches", unit=MetricUnit.Count, value=result["counts"]["patches"])
    logger.info("report", extra={"subject": result["subject"], **result["counts"]})
    return result
