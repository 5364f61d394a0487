"""Clean up after a rolling restart that ended without doing so itself: one implementation.

Catchers do not run when an execution is stopped or times out. Whoever notices such a run (the
safety net on its status-change event) calls :func:`clean_up`: restore the alarms and rules the run
muted, register again the run's instances that are out of the target group but whose application
answers, release the target group lock if the run holds it, and mail what was done. A run that
restored itself is left alone (a later run may have muted the same alarms since). Idempotent.
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


def clean_up(table: RunTable, topic_arn: str, execution_arn: str, status: str) -> dict[str, Any]:
    """Restore, put back, release and alert for the run of ``execution_arn``, which ended with ``status``."""
    run = table.get_run(execution_arn)
    if run is None:
        return {"executionArn": execution_arn, "action": "none", "reason": "the run changed nothing"}
    # Restore before releasing the lock, so no new run mutes the same alarms in between.
    restored = None if run.get("restoredAt") else muting.restore(table, execution_arn)
    put_back, left_out = put_back_instances(run, table, execution_arn)
    # Releasing is conditional on this run holding the lock, so it is always safe to try.
    released = table.release_lock(run["targetGroupArn"], execution_arn)
    if not released and restored is None and not put_back and not left_out:
        return {"executionArn": execution_arn, "action": "none", "reason": "the run cleaned up after itself"}
    table.set_run_fields(execution_arn, safetyNetAt=timeutil.iso_now())
    message = (
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
        Subject=f"opsflow safety net: rolling restart ended {status}"[:100],
        Message=message,
    )
    return {"executionArn": execution_arn, "action": "restored", "lockReleased": released}
