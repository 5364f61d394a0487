"""The patch preview's report, decided over plain data: the pending patches grouped by patch, the
servers whose list could not be read, the email's subject and text, and, when the text is too long
for a readable email, its summary with where the full report is. The reads and writes are the
report function's (functions/patch_report, through opsflow.bucket)."""

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from opsflow import notify
from opsflow.patch_selection import Severity

SEVERITY_ORDER = list(get_args(Severity))  # most severe first, as the request names them
# Servers named per section (stale, unreadable, unmanaged) in an email too long to carry the full report.
LISTED_IN_MAIL = 50
# A batch whose child execution ended without a result (an error no Catch can handle).
NOT_LISTED = "ListingDidNotComplete"


class Location(BaseModel):
    bucket: str
    key: str


class BatchLocation(Location):
    count: int = Field(ge=1)


class BatchResult(BaseModel):
    """What one child execution of the listing Map returned: counts, or the error of the whole batch."""

    model_config = ConfigDict(extra="ignore")

    batch: int = Field(ge=0)
    patches: int = 0
    unreadable: int = 0
    error: str | None = None


class ReportEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    execution_arn: str = Field(alias="executionArn")
    run_prefix: str = Field(alias="runPrefix")
    fleet: Location
    window: dict[str, Any] | None = None
    stale_after_hours: int = Field(alias="staleAfterHours")
    mail_when_nothing_pending: bool = Field(alias="mailWhenNothingPending")
    batches: BatchLocation
    # A child execution that failed past its Catch leaves a null here (its failure is tolerated).
    results: list[BatchResult | None]
    # "approval": the text goes to the bucket for the patch workflow's approval mail instead of being mailed.
    deliver: Literal["mail", "approval"] = "mail"


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


def batch_key(run_prefix: str, batch: int) -> str:
    """Where the listing Map's child writes a batch's patch lists (the state machine's ``key``)."""
    return f"{run_prefix}/patches/batch-{batch}.jsonl"


@dataclass
class Listing:
    """The pending patches grouped by patch, and the servers whose list could not be read."""

    groups: dict[str, PatchGroup] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (instance id, error)

    def add(self, instance_id: str, patch: dict[str, Any]) -> None:
        key = patch.get("KBId") or patch["Title"]
        group = self.groups.setdefault(
            key,
            PatchGroup(patch["Title"], key, patch.get("Severity") or "Unspecified", patch.get("Classification", "")),
        )
        group.cves.update(c for c in (patch.get("CVEIds") or "").split(",") if c)
        (group.failed if patch.get("State") == "Failed" else group.missing).append(instance_id)


def collect_listing(
    batches: list[dict[str, Any]],
    results: list[BatchResult | None],
    lines_of: Callable[[int], Iterable[dict[str, Any]]],
) -> Listing:
    """Every batch's lines (``lines_of(batch)``), one batch at a time; a batch without a result, or whose
    whole listing failed, is unreadable as a whole (and not read)."""
    by_batch = {r.batch: r for r in results if r is not None}
    listing = Listing()
    for batch in batches:
        result = by_batch.get(batch["batch"])
        if result is None or result.error:
            error = result.error if result is not None and result.error else NOT_LISTED
            listing.unreadable += [(instance_id, error) for instance_id in batch["instanceIds"]]
            continue
        for line in lines_of(batch["batch"]):
            if "error" in line:
                listing.unreadable.append((line["value"], line["error"]))
            else:
                listing.add(line["value"], line["item"])
    return listing


def _severity_rank(group: PatchGroup) -> tuple[int, int, str]:
    rank = SEVERITY_ORDER.index(group.severity) if group.severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
    return rank, -group.servers, group.title


def _ago(iso: str | None, now: dt.datetime) -> str:
    if not iso:
        return "never scanned"
    hours = (now - dt.datetime.fromisoformat(iso)).total_seconds() / 3600
    return f"last scan {hours / 24:.1f} days ago" if hours >= 48 else f"last scan {hours:.0f} h ago"


@dataclass
class Preview:
    """What the email is made of."""

    event: ReportEvent
    fleet: list[dict[str, Any]]
    listing: Listing
    now: dt.datetime  # for the age of stale patch data

    def __post_init__(self) -> None:
        self.groups = self.listing.groups
        self.names = {f["instanceId"]: f["name"] for f in self.fleet}
        self.managed = [f for f in self.fleet if f["managed"]]
        self.stale = sorted((f for f in self.managed if f["stale"]), key=lambda f: f["name"])
        self.unreadable = sorted(self.listing.unreadable, key=lambda u: (self.names.get(u[0], u[0]), u[0]))
        self.affected = sorted({i for g in self.groups.values() for i in g.missing + g.failed})
        self.by_severity = {s: [g for g in self.groups.values() if g.severity == s] for s in SEVERITY_ORDER}
        window = self.event.window or {}
        self.scope = window.get("name", "the selected servers")
        self.when = f" (in {window['hoursAway']:.0f} h)" if window.get("nextRun") else ""

    def label(self, instance_id: str) -> str:
        name = self.names.get(instance_id, instance_id)
        return f"{name} ({instance_id})" if name != instance_id else instance_id

    def findings(self) -> str:
        """What the preview found, in a few words: "4 patches on 3 servers, 1 critical [1 stale]"."""
        flags = (f" [{len(self.stale)} stale]" if self.stale else "") + (
            f" [{len(self.unreadable)} unreadable]" if self.unreadable else ""
        )
        if not self.groups:
            return f"nothing to install on {plural(len(self.managed), 'server')}{flags}"
        critical = len(self.by_severity["Critical"])
        counts = f"{plural(len(self.groups), 'patch')} on {plural(len(self.affected), 'server')}" + (
            f", {critical} critical" if critical else ""
        )
        return f"{counts}{flags}"

    def subject(self) -> str:
        return f"Patch preview {self.scope}{self.when}: {self.findings()}"

    def head(self, listed: int | None = None) -> list[str]:
        """The summary and the warnings, each server list cut to ``listed`` names (None: all)."""
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
            installer = "this run" if self.event.deliver == "approval" else "the window"
            lines.append(
                f"Will reboot if {installer} installs with RebootIfNeeded: {plural(len(reboot), 'server')} "
                f"({waiting} already waiting for a reboot)."
            )
        return lines + self.warnings(listed)

    def warnings(self, listed: int | None) -> list[str]:
        lines = []
        if self.stale:
            hours = self.event.stale_after_hours
            lines += ["", f"STALE patch data (older than {hours} h; the list may be incomplete, scan these servers):"]
            stale = [f"  {self.label(f['instanceId'])}: {_ago(f['lastOperationAt'], self.now)}" for f in self.stale]
            lines += _capped(stale, listed)
        if self.unreadable:
            lines += ["", "UNREADABLE (their patch list could not be read; they are not in the list below):"]
            lines += _capped([f"  {self.label(i)}: {error}" for i, error in self.unreadable], listed)
        unmanaged = [self.label(f["instanceId"]) for f in self.fleet if not f["managed"]]
        if unmanaged:
            shown = unmanaged if listed is None else unmanaged[:listed]
            more = f" and {len(unmanaged) - len(shown)} more (full report)" if len(shown) < len(unmanaged) else ""
            lines += ["", f"Not managed by SSM (no patch data): {', '.join(shown)}{more}"]
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


def _capped(lines: list[str], listed: int | None) -> list[str]:
    if listed is None or len(lines) <= listed:
        return lines
    return [*lines[:listed], f"  ... and {len(lines) - listed} more (full report)"]


@dataclass(frozen=True)
class Mail:
    """The state's result (subject, counts, send, message, and reportLocation when the full report is
    in the bucket), and that full report's text to store (None when the email carries it whole)."""

    result: dict[str, Any]
    full_report: str | None


def report_key(run_prefix: str) -> str:
    return f"{run_prefix}/report.txt"


def approval_preview_key(run_prefix: str) -> str:
    return f"{run_prefix}/approval-preview.txt"


def compose(preview: Preview, limit_chars: int, bucket: str) -> Mail:
    """The email: whole when it fits ``limit_chars``; otherwise the summary (server lists capped), where
    the full report is, and the most severe patches that fit half the limit."""
    head, body = preview.head(), preview.body()
    full = "\n".join(head + body) + "\n"
    result: dict[str, Any] = {
        "subject": notify.subject_line(preview.subject()),
        "counts": preview.counts(),
        "send": bool(preview.groups) or preview.event.mail_when_nothing_pending,
    }
    if len(full) <= limit_chars:
        return Mail(result | {"message": full}, None)
    key = report_key(preview.event.run_prefix)
    shown, size = [], 0
    for line in body:
        size += len(line) + 1
        if size > limit_chars // 2:
            break
        shown.append(line)
    pointer = [
        "",
        f"The full report ({len(full):,} characters) is at s3://{bucket}/{key} (aws s3 cp to read it).",
        "The most severe patches first:",
    ]
    result["message"] = "\n".join([*preview.head(LISTED_IN_MAIL), *pointer, *shown, "..."]) + "\n"
    result["reportLocation"] = {"bucket": bucket, "key": key}
    return Mail(result, full)


def handed_over(preview: Preview, result: dict[str, Any], bucket: str) -> dict[str, Any]:
    """The result once the email's text is in the bucket for the approval mail (one mail: the preview and
    its links): not mailed, and what the state carries stays a few hundred bytes for any fleet."""
    kept = {k: v for k, v in result.items() if k != "message"}
    return kept | {
        "send": False,
        "approvalMail": {
            "findings": preview.findings(),
            "bucket": bucket,
            "key": approval_preview_key(preview.event.run_prefix),
            "counts": result["counts"],
        },
    }
