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
- ``drained``: has it finished draining from every target group it was taken out of?
- ``in_service``: is it healthy again in every one?

"Not yet" raises TargetNotYetInStateException, which the state machine retries. With ``waitSeconds``,
``drained`` and ``in_service`` keep asking DescribeTargetHealth every ``pollSeconds`` for up to that long
within one invocation first (the change is seen within a poll; one state transition per ``waitSeconds``).
The instances waiting on a group share one answer per poll through the run table (:func:`shared_listing`),
so the run stays within its share of the account's ELB request budget however many are in flight; a
question ELB throttled even after botocore's retries is "not yet" too: asked again, nothing failed.
"""

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, polling, timeutil, watch
from opsflow.errors import LockLostError, TargetNotYetInStateException
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.runs import OUT, RunTable, failures
from opsflow.settings import RunTableSettings, cached_settings
from opsflow.targets import HEALTHY, Registration, TargetHealth, describe, states_among
from opsflow.validation import parse_event


class Settings(RunTableSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


class GateEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    check: Literal["capacity", "drained", "in_service"]
    instance_id: str = Field(alias="instanceId")
    target_group_arn: str = Field(alias="targetGroupArn")
    # Every target group the run changes (its locks); default: targetGroupArn alone.
    target_group_arns: list[str] = Field(default_factory=list, alias="targetGroupArns")
    # Where the instance is registered (each group, its port); default: targetGroupArn on its own port.
    registrations: list[Registration] = Field(default_factory=list)
    # Its EC2 Auto Scaling group (capacity: recorded, so whoever puts it back takes it out of Standby too).
    auto_scaling_group: str | None = Field(default=None, alias="autoScalingGroup")
    # The Auto Scaling groups of the run's instances: they may terminate instances of the run (scale-in).
    auto_scaling_groups: list[str] = Field(default_factory=list, alias="autoScalingGroups")
    execution_arn: str = Field(default="", alias="executionArn")
    floor: int = Field(default=0, ge=0)  # for a group floors does not name
    floors: dict[str, int] = Field(default_factory=dict)  # target group -> healthy targets it keeps
    zone: str = ""
    one_zone_at_a_time: bool = Field(default=False, alias="oneZoneAtATime")
    zone_floors: dict[str, int] = Field(default_factory=dict, alias="zoneFloors")
    error_budget: int = Field(default=1, ge=1, alias="errorBudget")
    lock_seconds: int = Field(default=0, ge=0, alias="lockSeconds")  # capacity: renew the lock for this long
    wait_seconds: int = Field(default=0, ge=0, le=900, alias="waitSeconds")  # drained, in_service: keep asking
    # How often this instance looks (opsflow.polling.elb_poll_seconds; the answer is shared, see shared_listing).
    poll_seconds: float = Field(default=1.0, ge=0.5, le=60, alias="pollSeconds")

    def where(self) -> list[Registration]:
        return self.registrations or [Registration(target_group_arn=self.target_group_arn)]

    def locked_groups(self) -> list[str]:
        return self.target_group_arns or [self.target_group_arn]


def _short(arn: str) -> str:
    """targetgroup/web/0123... -> web"""
    name = arn.rsplit(":", 1)[-1]
    return name.split("/")[1] if name.count("/") == 2 else name


def _group_room(gate: GateEvent, described: dict[str, list[TargetHealth]], gone: int = 0) -> None:
    """Wait unless every group keeps its floor without this instance.

    ``gone``: instances of the run terminated since it was planned (an Auto Scaling group scaled in): the
    tier is that much smaller for good, so each floor is that much lower (still all but the batch size).
    """
    for arn, targets in described.items():
        healthy = sum(1 for t in targets if t.state == HEALTHY)
        mine = {r.port for r in gate.where() if r.target_group_arn == arn}
        leaving = sum(
            1
            for t in targets
            if t.instance_id == gate.instance_id and t.state == HEALTHY and (None in mine or t.port in mine)
        )
        floor = max(1, gate.floors.get(arn, gate.floor) - gone)
        if healthy - leaving < floor:
            raise TargetNotYetInStateException(
                f"{healthy} healthy targets in {_short(arn)}; taking {gate.instance_id} out "
                f"would leave fewer than {floor}"
            )


def _zone_room(gate: GateEvent, run: dict[str, Any], described: dict[str, list[TargetHealth]]) -> None:
    """One zone at a time: wait while another zone has an instance out, or while the zone is at its floor."""
    table = RunTable(settings().table_name)
    others = sorted(o["instanceId"] for o in _out_elsewhere(table, gate))
    if others:
        raise TargetNotYetInStateException(
            f"{gate.instance_id} is in {gate.zone}; waiting until {', '.join(others)} of another zone are back"
        )
    members = set(json.loads(run.get("zones", "{}")).get(gate.zone, []))
    serving = {
        i
        for i in members
        if all(t.state == HEALTHY for ts in described.values() for t in ts if t.instance_id == i)
        and any(t.instance_id == i for ts in described.values() for t in ts)
    }
    floor = gate.zone_floors.get(gate.zone, 0)
    if len(serving - {gate.instance_id}) < floor:
        raise TargetNotYetInStateException(
            f"{len(serving)} instances serve in {gate.zone}; taking {gate.instance_id} out "
            f"would leave fewer than {floor}"
        )


def _out_elsewhere(table: RunTable, gate: GateEvent) -> list[dict[str, Any]]:
    """The run's instances out of service in another zone."""
    return [
        o
        for o in table.outcomes(gate.execution_arn)
        if o.get("outcome") == OUT and o.get("zone", gate.zone) != gate.zone and o["instanceId"] != gate.instance_id
    ]


def _first_zone_wins(table: RunTable, gate: GateEvent) -> None:
    """Two gates of different zones may both find no other zone out, and both mark their instance. Each
    looks again after its mark (reads are strongly consistent): the later mark steps back and waits.
    At least one sees the other, and the one marked first never steps back: one zone goes on."""
    mine = table.get_outcome(gate.execution_arn, gate.instance_id) or {}
    first = (mine.get("takenOutAt", ""), gate.instance_id)
    earlier = [
        o["instanceId"] for o in _out_elsewhere(table, gate) if (o.get("takenOutAt", ""), o["instanceId"]) < first
    ]
    if earlier:
        table.unmark_taken_out(gate.execution_arn, gate.instance_id)
        raise TargetNotYetInStateException(
            f"{', '.join(earlier)} of another zone went out at the same time; {gate.zone} waits for it"
        )


# ELB's code for a throttled request ("Rate exceeded"); the user guide calls it ThrottlingException.
THROTTLED = {"Throttling", "ThrottlingException"}


def _described[T](gate: GateEvent, ask: Callable[[], T]) -> T:
    """``ask()`` the load balancer; throttled (after botocore's own retries) is "not yet": ask again later."""
    try:
        return ask()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in THROTTLED:
            raise
        raise TargetNotYetInStateException(
            f"the load balancer throttled the question about {gate.instance_id} ({code}): asking again"
        ) from exc


class Decision(NamedTuple):
    proceed: bool
    reason: str = ""


def may_take_out(
    *, failed: int, error_budget: int, stopped_on_alarm: dict[str, Any] | None, firing: list[str]
) -> Decision:
    """Whether the run may take one more instance out, capacity aside (the pure part of the gate).

    A watched alarm that fired (now, or earlier in the run: ``stopped_on_alarm``) stops the run
    before the error budget does: it is the application, not one instance, that suffers.
    """
    if stopped_on_alarm:
        names = ", ".join(stopped_on_alarm.get("alarms", []))
        return Decision(False, f"stopped on alarm {names} (in ALARM at {stopped_on_alarm.get('at', '?')})")
    if firing:
        return Decision(False, f"stopped on alarm {', '.join(firing)} (in ALARM, seen at {timeutil.iso_now()})")
    if failed >= error_budget:
        return Decision(False, f"error budget used up ({failed} of {error_budget} failures)")
    return Decision(True)


DESCRIBE_AT_ONCE = 200  # instance ids per DescribeInstances filter


def _terminated(run: dict[str, Any]) -> set[str]:
    """The run's instances that are shutting down, terminated, or gone (terminated a while ago)."""
    instance_ids = json.loads(run.get("instanceIds") or "[]")
    paginator = clients.client("ec2").get_paginator("describe_instances")
    running: set[str] = set()
    for start in range(0, len(instance_ids), DESCRIBE_AT_ONCE):
        chunk = instance_ids[start : start + DESCRIBE_AT_ONCE]
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
            running |= {
                i["InstanceId"]
                for r in page["Reservations"]
                for i in r["Instances"]
                if i["State"]["Name"] not in ("shutting-down", "terminated")
            }
    return set(instance_ids) - running


def run_started(run: dict[str, Any]) -> dt.datetime:
    """When the run started (its record's startedAt, the execution's start time), as an aware datetime."""
    if not run.get("startedAt"):
        return dt.datetime.fromtimestamp(timeutil.epoch(), dt.UTC)
    started = dt.datetime.fromisoformat(str(run["startedAt"]))
    return started if started.tzinfo else started.replace(tzinfo=dt.UTC)


def capacity(gate: GateEvent) -> dict[str, Any]:
    table = RunTable(settings().table_name)
    expires_at = int(timeutil.epoch()) + gate.lock_seconds
    for arn in gate.locked_groups():
        if gate.lock_seconds and not table.renew_lock(arn, gate.execution_arn, expires_at):
            raise LockLostError(f"this run no longer holds the lock on {arn}: {gate.instance_id} is left in service")
    run = table.get_run(gate.execution_arn) or {}
    stopped, watched = run.get("stoppedOnAlarm"), watch.watched_names(run)
    since = run_started(run)
    firing = [] if stopped or not watched else watch.fired_since(clients.client("cloudwatch"), watched, since)
    if firing:
        stopped = table.note_alarm_stop(gate.execution_arn, firing, timeutil.iso_now())
    decision = may_take_out(
        failed=failures(run), error_budget=gate.error_budget, stopped_on_alarm=stopped, firing=firing
    )
    if not decision.proceed:
        logger.warning("no new instance leaves service", extra={"reason": decision.reason})
        return {"proceed": False, "reason": decision.reason}
    gone = _terminated(run) if gate.auto_scaling_groups else set()
    if gate.instance_id in gone:
        reason = f"{gate.instance_id} no longer runs: its Auto Scaling group terminated it (scale-in or a replacement)"
        return {"proceed": False, "reason": reason}
    groups = list(dict.fromkeys(r.target_group_arn for r in gate.where()))
    described = _described(gate, lambda: {arn: describe(arn) for arn in groups})
    _group_room(gate, described, len(gone))
    if gate.one_zone_at_a_time:
        _zone_room(gate, run, described)
    where = json.dumps([r.model_dump(by_alias=True) for r in gate.where()])
    table.mark_taken_out(
        gate.execution_arn, gate.instance_id, timeutil.iso_now(), where, gate.zone, gate.auto_scaling_group or ""
    )
    if gate.one_zone_at_a_time:
        _first_zone_wins(table, gate)
    healthy = {_short(arn): sum(1 for t in ts if t.state == HEALTHY) for arn, ts in described.items()}
    return {"proceed": True, "healthyTargets": min(healthy.values()), "healthyTargetsByGroup": healthy}


# How long a waiter that lost the claim gives the one asking ELB before it reads the shared answer again.
LEADER_SECONDS = 0.25


def shared_listing(gate: GateEvent, table: RunTable) -> Callable[[str], list[TargetHealth]]:
    """Every target of a group, as ELB answered within the last ``pollSeconds``, shared through the run table:
    of all the instances waiting on a group, the first to find the answer stale claims the question and asks
    ELB (DescribeTargetHealth without Targets: every target in one request); the others read its answer. So a
    run asks once per group per poll, however many instances are in flight."""
    every = gate.poll_seconds

    def fresh(snapshot: dict[str, Any] | None, now: float) -> list[TargetHealth] | None:
        if snapshot is None or "at" not in snapshot or snapshot["at"] <= now - every:
            return None
        return [TargetHealth(str(i), int(port), str(state)) for i, port, state in snapshot["targets"]]

    def listed(arn: str) -> list[TargetHealth]:
        now = timeutil.epoch()
        shared = fresh(table.target_health(arn), now)
        if shared is not None:
            return shared
        if table.claim_health_poll(arn, now, every):
            asked_at = timeutil.epoch()
            described = describe(arn)
            table.put_target_health(arn, asked_at, [[t.instance_id, t.port, t.state] for t in described])
            return described
        timeutil.sleep(LEADER_SECONDS)
        shared = fresh(table.target_health(arn), now)
        if shared is None:
            raise TargetNotYetInStateException(f"another instance is asking ELB about {_short(arn)}: not in yet")
        return shared

    return listed


def wait_for(gate: GateEvent, done: set[str] | tuple[str, ...], for_seconds: float = 0.0) -> dict[str, Any]:
    listed = shared_listing(gate, RunTable(settings().table_name))

    def reached() -> dict[str, Any]:
        found = _described(gate, lambda: states_among(gate.instance_id, gate.where(), listed))
        pending = {r: s for r, s in found.items() if s not in done}
        if pending:
            listed_states = ", ".join(f"{s} in {_short(r.target_group_arn)}" for r, s in pending.items())
            raise TargetNotYetInStateException(f"{gate.instance_id} is {listed_states}")
        return {"state": next(iter(found.values()))}

    return polling.poll(reached, not_yet=TargetNotYetInStateException, every=gate.poll_seconds, for_seconds=for_seconds)


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
