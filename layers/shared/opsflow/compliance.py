"""What a patch run left on each instance, and the report that says so (the compliance report's decisions).

An instance whose last patch operation is not an Install that ended after the run started was not
patched by this run: the report says so rather than presenting older data as the run's outcome.
"""

import datetime as dt
from typing import Any

from opsflow.arns import execution_name

COMPLIANT = "compliant"


def row(instance_id: str, state: dict[str, Any] | None, since: dt.datetime) -> dict[str, Any]:
    """One instance's line: its counts and verdict, from its patch state (None: Patch Manager has none)."""
    if state is None:
        return {"instanceId": instance_id, "verdict": "no patch data (not a managed node?)"}
    counts = {
        "installed": state.get("InstalledCount", 0),
        "pendingReboot": state.get("InstalledPendingRebootCount", 0),
        "failed": state.get("FailedCount", 0),
        "missing": state.get("MissingCount", 0),
    }
    ended = state.get("OperationEndTime")
    patched_now = state.get("Operation") == "Install" and isinstance(ended, dt.datetime) and ended >= since
    if not patched_now:
        verdict = "not patched by this run"
    elif counts["failed"] or counts["missing"]:
        verdict = "not compliant"
    elif counts["pendingReboot"]:
        verdict = "installed, reboot pending"
    else:
        verdict = COMPLIANT
    return {"instanceId": instance_id, "verdict": verdict, **counts, "operationEnd": ended.isoformat() if ended else ""}


def compliant_count(rows: list[dict[str, Any]]) -> int:
    return sum(1 for r in rows if r["verdict"] == COMPLIANT)


def report_key(execution_arn: str) -> str:
    """Where the full report goes in the stack's bucket."""
    return f"compliance/{execution_name(execution_arn)}.json"


def mail(execution_arn: str, install_outcome: str, rows: list[dict[str, Any]], location: str) -> tuple[str, str]:
    """The summary mail's subject and text; ``location``: where the full report is."""
    compliant = compliant_count(rows)
    name = execution_name(execution_arn)
    lines = [
        f"Patch compliance after the patch run {name}: {compliant} of {len(rows)} instances compliant.",
        f"Rolling install: {install_outcome}",
        f"Full report: {location}",
        "",
        f"{'instance':<21} {'installed':>9} {'pending reboot':>14} {'failed':>6} {'missing':>7}  verdict",
    ]
    lines += [
        f"{r['instanceId']:<21} {r.get('installed', '-'):>9} {r.get('pendingReboot', '-'):>14} "
        f"{r.get('failed', '-'):>6} {r.get('missing', '-'):>7}  {r['verdict']}"
        for r in rows
    ]
    subject = f"opsflow patching: {compliant} of {len(rows)} instances compliant"
    return subject, "\n".join(lines) + "\n"
