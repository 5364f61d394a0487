"""Clean up after a rolling restart that ended without doing so itself: one implementation.

Catchers do not run when an execution is stopped or times out. Whoever notices such a run calls
:func:`clean_up`: the safety net on the execution's status-change event, the reconciler when that
event never came (EventBridge delivers it on a best-effort basis). It restores the alarms and rules
the run muted, registers again the run's instances that are out of the target group but whose
application answers, releases the target group lock if the run holds it, mails what was done, and
closes the run (out of the reconciler's open-runs index).

Idempotent, and done once: a closed run is left alone (it restored itself, or was cleaned up; a later
run may have muted the same alarms since), and a claim on the run record keeps two cleaners that run
at the same time (a duplicated event, the safety net and the reconciler) from both acting and alerting.
"""

import json
from typing import Any

from opsflow import clients, muting, timeutil
from opsflow.errors import OpsflowError
from opsflow.health import HealthCheck, check_instance
from opsflow.runs import RunTable
from opsflow.targets import target_states


def put_back_instances(run: dict[str, Any], table: RunTable, execution_arn: str) -> tuple[list[str], list[str]]:
    """Register again the run's instances that are out of the target group and healthy.

    A stopped run can leave instances deregistered (draining, rebooting...). Those whose application
    answers go back; the others stay out (an unhealthy target must not serve) and are named in the alert.
    """
    if "instanceIds" not in run or "health" not in run:
        return [], []
    instance_ids: list[str] = json.loads(run["instanceIds"])
    check = HealthCheck.model_validate(json.loads(run["health"]))
    finished = {o["instanceId"] for o in table.outcomes(execution_arn) if o.get("outcome") != "restarted"}
    states = target_states(run["targetGroupArn"], instance_ids)
    put_back, left_out = [], []
    for instance_id in instance_ids:
        if states.get(instance_id, "unused") not in ("unused", "draining") or instance_id in finished:
            continue  # registered, or a failed instance the reporter already placed
        try:
            check_instance(instance_id, check)
        except OpsflowError:
            left_out.append(instance_id)
            continue
        clients.client("elbv2").register_targets(TargetGroupArn=run["targetGroupArn"], Targets=[{"Id": instance_id}])
        put_back.append(instance_id)
    return put_back, left_out


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
    put_back, left_out = put_back_instances(run, table, execution_arn)
    # Releasing is conditional on this run holding the lock, so it is always safe to try.
    released = table.release_lock(run["targetGroupArn"], execution_arn)
    if not released and restored is None and not put_back and not left_out:
        table.close_run(execution_arn, timeutil.iso_now())
        return _nothing(execution_arn, "the run cleaned up after itself", action="closed")
    message = (
        f"{note}"
        f"Rolling restart {execution_arn} ended {status}.\n"
        f"Alarms restored: {', '.join(restored.alarms) if restored and restored.alarms else 'none'}\n"
        f"Rules restored: {', '.join(restored.rules) if restored and restored.rules else 'none'}\n"
        f"Instances registered again (their application answers): {', '.join(put_back) or 'none'}\n"
        f"Instances left OUT of the target group (their application does not answer): "
        f"{', '.join(left_out) or 'none'}\n"
        f"Target group lock {'released' if released else 'was not held'}.\n"
    )
    clients.client("sns").publish(
        TopicArn=topic_arn,
        Subject=f"opsflow {by}: rolling restart ended {status}"[:100],
        Message=message,
    )
    now = timeutil.iso_now()
    table.close_run(execution_arn, now, cleanedUpAt=now, cleanedUpBy=by)
    return {"executionArn": execution_arn, "action": "restored", "lockReleased": released, "by": by}
