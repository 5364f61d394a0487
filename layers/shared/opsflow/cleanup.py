"""Clean up after a rolling restart that ended without doing so itself: one implementation.

Catchers do not run when an execution is stopped or times out. Whoever notices such a run calls
:func:`clean_up`: the safety net on the execution's status-change event, the reconciler when that
event never came (EventBridge delivers it on a best-effort basis). It restores the alarms and rules
the run muted, registers again the run's instances that are out of their target groups but whose
application answers (in every group, on every port, it took them out of), releases the target
group locks the run holds, mails what was done, and
closes the run (out of the reconciler's open-runs index).

Idempotent, and done once: a closed run is left alone (it restored itself, or was cleaned up; a later
run may have muted the same alarms since), and a claim on the run record keeps two cleaners that run
at the same time (a duplicated event, the safety net and the reconciler) from both acting and alerting.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from opsflow import muting, notify, placement, timeutil
from opsflow.health import HealthCheck
from opsflow.runs import OUT, RunTable


@dataclass
class Placed:
    """What a pass did with the instances the run took out and never reported on."""

    put_back: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def place_instances(run: dict[str, Any], table: RunTable, execution_arn: str) -> Placed:
    """Settle each instance this run took out of service and did not finish (opsflow.placement).

    Only instances the run marked before taking them out are touched: a run that never held the lock
    (refused, say) marked none, so its cleanup changes nothing on the tier, however late it comes.
    """
    placed = Placed()
    if "health" not in run:
        return placed
    check = HealthCheck.model_validate(json.loads(run["health"]))
    boot = int(run.get("expectedBootSeconds", 0))
    for item in table.outcomes(execution_arn):
        if item.get("outcome") != OUT:
            continue  # restarted, skipped, or a failure the reporter already placed
        decided, _ = placement.settle(
            table, execution_arn, item, target_group_arn=run["targetGroupArn"], health=check, boot_seconds=boot
        )
        {
            placement.Verdict.PUT_BACK: placed.put_back,
            placement.Verdict.WAIT: placed.waiting,
            placement.Verdict.GIVE_UP: placed.left_out,
        }[decided].append(item["instanceId"])
    return placed


# Longer than any cleaner's timeout (the safety net and the reconciler: 300 s); a cleaner that crashed
# without releasing its claim holds the run no longer than this, then the reconciler takes over.
CLAIM_SECONDS = 900
SAFETY_NET = "safety net"


def _nothing(execution_arn: str, reason: str, action: str = "none") -> dict[str, Any]:
    return {"executionArn": execution_arn, "action": action, "reason": reason}


def clean_up(
    table: RunTable, topic_arn: str, execution_arn: str, status: str, *, by: str = SAFETY_NET, note: str = ""
) -> dict[str, Any]:
    """Restore, put back, release, alert and close for the run of ``execution_arn``, which ended ``status``.

    ``by`` names the cleaner in the alert's subject and the run record; ``note`` opens the alert.
    The result's ``action``: ``restored`` (something was done, and mailed), ``closed`` (nothing was
    left to do; the run is closed now), ``none`` (nothing done: no such run, closed already, or
    another cleaner holds it).
    """
    run = table.get_run(execution_arn)
    if run is None:
        return _nothing(execution_arn, "the run changed nothing")
    if run.get("closedAt"):
        return _nothing(execution_arn, "the run is closed: it cleaned up after itself, or was cleaned up")
    if not table.claim_cleanup(execution_arn, timeutil.epoch(), CLAIM_SECONDS):
        return _nothing(execution_arn, "another cleanup of this run is under way")
    try:
        return _clean_up(table, topic_arn, run, execution_arn, status, by=by, note=note)
    except BaseException:
        table.release_cleanup_claim(execution_arn)  # the next attempt need not wait for the claim to expire
        raise


def _clean_up(
    table: RunTable, topic_arn: str, run: dict[str, Any], execution_arn: str, status: str, *, by: str, note: str
) -> dict[str, Any]:
    # Restore before releasing the lock, so no new run mutes the same alarms in between.
    restored = None if run.get("restoredAt") else muting.restore(table, execution_arn)
    placed = place_instances(run, table, execution_arn)
    # Releasing is conditional on this run holding the lock, so it is always safe to try; one per target group.
    groups = json.loads(run["targetGroupArns"]) if run.get("targetGroupArns") else [run["targetGroupArn"]]
    released_each = [table.release_lock(arn, execution_arn) for arn in groups]  # every one, not up to the first
    released = any(released_each)
    first_pass = not run.get("followUpSince")
    if first_pass and not released and restored is None and not (placed.put_back or placed.waiting or placed.left_out):
        table.close_run(execution_arn, timeutil.iso_now())
        return _nothing(execution_arn, "the run cleaned up after itself", action="closed")
    if first_pass or placed.left_out:  # later passes mail only what they give up on: one alert per instance
        publish(
            topic_arn,
            execution_arn,
            status=status,
            by=by,
            note=note,
            restored=restored,
            released=released,
            placed=placed,
        )
    now = timeutil.iso_now()
    if placed.waiting:  # open until they answer or give up: the reconciler comes back for them
        table.set_run_fields(execution_arn, followUpSince=run.get("followUpSince") or now)
        table.release_cleanup_claim(execution_arn)
        return {"executionArn": execution_arn, "action": "following up", "waiting": placed.waiting, "by": by}
    table.close_run(execution_arn, now, cleanedUpAt=now, cleanedUpBy=by)
    return {"executionArn": execution_arn, "action": "restored", "lockReleased": released, "by": by}


def publish(
    topic_arn: str,
    execution_arn: str,
    *,
    status: str,
    by: str,
    note: str,
    restored: muting.MuteRecord | None,
    released: bool,
    placed: Placed,
) -> None:
    lines = [
        f"{note}Rolling restart {execution_arn} ended {status}.",
        f"Alarms restored: {', '.join(restored.alarms) if restored and restored.alarms else 'none'}",
        f"Rules restored: {', '.join(restored.rules) if restored and restored.rules else 'none'}",
        f"Instances registered again (their application answers): {', '.join(placed.put_back) or 'none'}",
        f"Instances followed up until their application answers (the reconciler puts them back): "
        f"{', '.join(placed.waiting) or 'none'}",
        f"Instances left OUT of the target group (their application did not answer in time): "
        f"{', '.join(placed.left_out) or 'none'}",
        f"Target group lock {'released' if released else 'was not held'}.",
    ]
    notify.publish(topic_arn, f"opsflow {by}: rolling restart ended {status}", "\n".join(lines) + "\n")
