"""Clean up after a rolling restart that ended without doing so itself: one implementation.

Catchers do not run when an execution is stopped or times out. Whoever notices such a run calls
:func:`clean_up`: the safety net on the execution's status-change event, the reconciler when that
event never came (EventBridge delivers it on a best-effort basis). It restores the alarms and rules
the run muted, registers again the run's instances that are out of their target groups but whose
application answers (in every group, on every port, it took them out of), follows up those still
coming up (and those the run reported failed while they might), releases the target group locks the
run holds, mails what was done, and closes the run (out of the reconciler's open-runs index). Each
instance left out is named in one alert: its failure's, or the one that gives up on it.

Idempotent, and done once: a closed run is left alone (it restored itself, or was cleaned up; a later
run may have muted the same alarms since), and a claim on the run record keeps two cleaners that run
at the same time (a duplicated event, the safety net and the reconciler) from both acting and alerting.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from opsflow import muting, notify, placement, timeutil
from opsflow.health import HealthCheck
from opsflow.runs import RunTable


@dataclass
class Placed:
    """What a pass did with the instances the run took out and did not finish."""

    put_back: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    handed_over: list[str] = field(default_factory=list)  # another run took them out since
    alerted: set[str] = field(default_factory=set)  # named in an alert already (their failure's): never again

    def unnamed(self, instance_ids: list[str]) -> list[str]:
        return [i for i in instance_ids if i not in self.alerted]


def place_instances(run: dict[str, Any], table: RunTable, execution_arn: str) -> Placed:
    """Settle each instance this run took out of service and did not finish (opsflow.placement): never
    reported on, or reported failed while it might still come up.

    Only instances the run marked before taking them out are touched: a run that never held the lock
    (refused, say) marked none, so its cleanup changes nothing on the tier, however late it comes.
    """
    placed = Placed()
    if "health" not in run:
        return placed
    check = HealthCheck.model_validate(json.loads(run["health"]))
    boot = int(run.get("expectedBootSeconds", 0))
    for item in table.outcomes(execution_arn):
        if not placement.unsettled(item):
            continue  # restarted, skipped, or a failure placed for good
        decided, _ = placement.settle(
            table, execution_arn, item, target_group_arn=run["targetGroupArn"], health=check, boot_seconds=boot
        )
        {
            placement.Verdict.PUT_BACK: placed.put_back,
            placement.Verdict.WAIT: placed.waiting,
            placement.Verdict.GIVE_UP: placed.left_out,
            placement.Verdict.HANDED_OVER: placed.handed_over,
        }[decided].append(item["instanceId"])
        if item.get("alertedAt"):
            placed.alerted.add(item["instanceId"])
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
    settled = placed.put_back or placed.waiting or placed.left_out or placed.handed_over
    if first_pass and not released and restored is None and not settled:
        table.close_run(execution_arn, timeutil.iso_now())
        return _nothing(execution_arn, "the run cleaned up after itself", action="closed")
    given_up = placed.unnamed(placed.left_out)
    if first_pass:
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
    elif given_up:  # a follow-up mails only what it gives up on, and names each instance in one alert only
        publish_given_up(topic_arn, execution_arn, status=status, by=by, left_out=given_up)
    now = timeutil.iso_now()
    for instance_id in given_up:
        table.note_alerted(execution_arn, instance_id, now)
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
    """The first pass's mail: what it restored and released, and where the instances are. Those still
    coming up are counted, not named: the follow-up puts each back, or names it once it gives up on it."""
    lines = [
        f"{note}Rolling restart {execution_arn} ended {status}.",
        f"Alarms restored: {', '.join(restored.alarms) if restored and restored.alarms else 'none'}",
        f"Rules restored: {', '.join(restored.rules) if restored and restored.rules else 'none'}",
        "Instances registered again (their application answers): "
        f"{', '.join(placed.unnamed(placed.put_back)) or 'none'}",
        f"Instances not answering yet, followed up: {len(placed.waiting)} (each is put back as soon as its "
        "application answers; one alert names any that does not within its startup patience)",
        f"Instances left OUT of the target group (their application did not answer in time): "
        f"{', '.join(placed.unnamed(placed.left_out)) or 'none'}",
        f"Target group lock {'released' if released else 'was not held'}.",
    ]
    if placed.handed_over:
        lines.append(f"Instances another run took out since (left to it): {len(placed.handed_over)}")
    notify.publish(topic_arn, f"opsflow {by}: rolling restart ended {status}", "\n".join(lines) + "\n")


def publish_given_up(topic_arn: str, execution_arn: str, *, status: str, by: str, left_out: list[str]) -> None:
    """A follow-up pass's mail: the instances it gave up on, the only alert that names them."""
    lines = [
        f"The follow-up of rolling restart {execution_arn} (it ended {status}) gave up on these instances:",
        f"Instances left OUT of the target group (their application did not answer in time): {', '.join(left_out)}",
        "Bring each back yourself once it answers (register it in its target groups, on its port).",
    ]
    notify.publish(topic_arn, f"opsflow {by}: rolling restart ended {status}", "\n".join(lines) + "\n")
