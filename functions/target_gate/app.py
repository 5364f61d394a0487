"""Gates of the per-instance restart, each answered from the load balancer's view of the targets.

- ``capacity``: may this instance leave service now? Only while, in every target group it is
  registered in, the healthy targets minus its own stay at or above that group's floor (a live
  guard: another target going unhealthy makes it wait), and, one zone at a time, no instance of
  another zone is out and its zone keeps its floor; and the run's error budget is not used up and
  none of the alarms the run watches (stopOnAlarms) has gone to ALARM since the run started (now, or
  in its history: a flap between two checks counts); otherwise it answers ``proceed: false``:
  instances in flight finish, no new one leaves. A fired alarm is recorded on the run, so the run
  stays stopped even if the alarm goes back to OK. It also renews the run's lock on each of its target groups for one
  more instance, so a long run never loses them (LockLostError if it has).
- ``drained``: has it finished draining from every target group it was taken out of? With
  ``deregister``, it first deregisters the instance from each (port by port), in one DeregisterTargets
  per group with every other instance of the run leaving then, and answers when (``deregisteredAt``).
- ``in_service``: is it healthy again in every one? With ``register``, it first registers the instance
  again in each, in one RegisterTargets per group with every other instance of the run coming back
  then, and answers when (``registeredAt``). Both changes go through opsflow.shared_registration (ELB's
  registration bucket holds 20 requests and refills 4 a second) and are kept on the instance's record,
  so a retry does not send them again.

"Not yet" raises TargetNotYetInStateException, which the state machine retries. With ``waitSeconds``,
``drained`` and ``in_service`` keep asking DescribeTargetHealth every ``pollSeconds`` for up to that long
within one invocation first (the change is seen within a poll; one state transition per ``waitSeconds``).
The instances waiting on a group share one answer per poll through the run table (opsflow.shared_target_health),
so the run stays within its share of the account's ELB request budget however many are in flight; a
question ELB throttled even after botocore's retries is "not yet" too: asked again, nothing failed.
The request is modelled in opsflow.gate_request, the decisions are opsflow.capacity_gate's.
"""

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from opsflow import capacity_gate, clients, ec2_instances, polling, shared_registration, targets, timeutil, watch
from opsflow.errors import LockLostError, TargetNotYetInStateException, service_error
from opsflow.gate_request import GateEvent
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.runs import RunTable, failures
from opsflow.settings import RunTableSettings, cached_settings
from opsflow.shared_target_health import asked, shared_listing
from opsflow.targets import HEALTHY
from opsflow.validation import parse_event


class Settings(RunTableSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


def capacity(gate: GateEvent) -> dict[str, Any]:
    table = RunTable(settings().table_name)
    expires_at = int(timeutil.epoch()) + gate.lock_seconds
    for arn in gate.locked_groups():
        if gate.lock_seconds and not table.renew_lock(arn, gate.execution_arn, expires_at):
            raise LockLostError(f"this run no longer holds the lock on {arn}: {gate.instance_id} is left in service")
    run = table.get_run(gate.execution_arn) or {}
    stopped, watched = run.get("stoppedOnAlarm"), watch.watched_names(run)
    since = capacity_gate.run_started(run, timeutil.epoch())
    firing = [] if stopped or not watched else watch.fired_since(clients.client("cloudwatch"), watched, since)
    if firing:
        stopped = table.note_alarm_stop(gate.execution_arn, firing, timeutil.iso_now())
    decision = capacity_gate.may_take_out(
        failed=failures(run),
        error_budget=gate.error_budget,
        stopped_on_alarm=stopped,
        firing=firing,
        seen_at=timeutil.iso_now(),
    )
    if not decision.proceed:
        logger.warning("no new instance leaves service", extra={"reason": decision.reason})
        return {"proceed": False, "reason": decision.reason}
    gone = ec2_instances.terminated(json.loads(run.get("instanceIds") or "[]")) if gate.auto_scaling_groups else set()
    if gate.instance_id in gone:
        reason = f"{gate.instance_id} no longer runs: its Auto Scaling group terminated it (scale-in or a replacement)"
        return {"proceed": False, "reason": reason}
    groups = list(dict.fromkeys(r.target_group_arn for r in gate.where()))
    described = asked(gate.instance_id, lambda: {arn: targets.describe(arn) for arn in groups})
    capacity_gate.group_room(
        gate.instance_id,
        where=gate.where(),
        floors=gate.floors,
        default_floor=gate.floor,
        described=described,
        gone=len(gone),
    )
    if gate.one_zone_at_a_time:
        others_out = capacity_gate.out_elsewhere(table.outcomes(gate.execution_arn), gate.instance_id, gate.zone)
        zone_floor = gate.zone_floors.get(gate.zone, 0)
        capacity_gate.zone_room(
            gate.instance_id, zone=gate.zone, zone_floor=zone_floor, others_out=others_out, run=run, described=described
        )
    where = json.dumps([r.model_dump(by_alias=True) for r in gate.where()])
    table.mark_taken_out(
        gate.execution_arn, gate.instance_id, timeutil.iso_now(), where, gate.zone, gate.auto_scaling_group or ""
    )
    if gate.one_zone_at_a_time:
        # Read again after the mark (strongly consistent): of two zones marked at once, the later steps back.
        mine = table.get_outcome(gate.execution_arn, gate.instance_id) or {}
        others_out = capacity_gate.out_elsewhere(table.outcomes(gate.execution_arn), gate.instance_id, gate.zone)
        wait = capacity_gate.later_mark_steps_back(gate.instance_id, gate.zone, mine, others_out)
        if wait is not None:
            table.unmark_taken_out(gate.execution_arn, gate.instance_id)
            raise wait
    healthy = capacity_gate.healthy_by_group(described)
    return {"proceed": True, "healthyTargets": min(healthy.values()), "healthyTargetsByGroup": healthy}


def changed(table: RunTable, gate: GateEvent, change: shared_registration.Change, give_up_at: float) -> dict[str, str]:
    """When the instance was deregistered from (registered again in) every group of its registrations, as
    ``{"<change>edAt": ...}``: now, or by an earlier try of this step (kept on its record, so a retry sends
    nothing)."""
    key = f"{change}edAt"
    earlier = (table.get_outcome(gate.execution_arn, gate.instance_id) or {}).get(key)
    if earlier:
        return {key: str(earlier)}
    try:
        shared_registration.change_together(change, table, gate.instance_id, gate.where(), give_up_at=give_up_at)
    except ClientError as exc:  # refused (AccessDenied, InvalidTarget): the error is named by ELB's code
        raise service_error(exc) from exc
    at = timeutil.iso_now()
    table.note_progress(gate.execution_arn, gate.instance_id, **{key: at})
    return {key: at}


def wait_for(gate: GateEvent, done: set[str] | tuple[str, ...], for_seconds: float = 0.0) -> dict[str, Any]:
    table = RunTable(settings().table_name)
    give_up_at = timeutil.epoch() + for_seconds
    change = gate.first_change()
    changed_at = changed(table, gate, change, give_up_at) if change else {}
    listed = shared_listing(table, gate.poll_seconds, gate.instance_id)

    def reached() -> dict[str, Any]:
        found = asked(gate.instance_id, lambda: targets.states_among(gate.instance_id, gate.where(), listed))
        return capacity_gate.reached(gate.instance_id, found, done)

    left = max(0.0, give_up_at - timeutil.epoch())
    found = polling.poll(reached, not_yet=TargetNotYetInStateException, every=gate.poll_seconds, for_seconds=left)
    return found | changed_at


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    gate = parse_event(GateEvent, event)
    for_seconds = polling.budget(gate.wait_seconds, context)
    if gate.check == "capacity":
        result = capacity(gate)
    elif gate.check == "drained":
        result = wait_for(gate, {"unused"}, for_seconds)  # drained from every group
    else:
        result = wait_for(gate, {HEALTHY}, for_seconds)
    return {"at": timeutil.iso_now(), **result}
