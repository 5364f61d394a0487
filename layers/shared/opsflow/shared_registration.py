"""RegisterTargets (DeregisterTargets) once for all the instances of a run that change together.

ELB throttles RegisterTargets and DeregisterTargets with one token bucket per account and Region: 20
requests, refilled 4 a second (ELB user guide, "Request throttling for the ELB API"). Fifty instances
of a batch that each deregistered, then registered, itself waited up to 7.5 s for the last tokens,
twice. Both actions take a list of targets (ELB API reference, ``Targets.member.N``), so each waiter
adds its targets to the group's pending set in the run table, the first to claim the group sends one
request for everything pending, and the others find theirs gone from the set.

Deregistering a target that is not registered "returns successfully" (AWS CLI reference, elbv2
deregister-targets). For registering one that is registered already, the API reference lists no error
and says nothing more; the sandbox keeps its registration in force (sandbox/fleet.py, Fleet.register),
as the Auto Scaling path already assumed after ExitStandby. A target is sent twice only when a claim
went stale mid-request (:data:`CLAIM_SECONDS`). A waiter that gives up takes its targets back out of the
set, and an entry older than :data:`PENDING_SECONDS` (its waiter died) is dropped, never sent. A request
refused as a whole for another instance's target (one that stopped meanwhile: "If the target is an EC2
instance, it must be in the running state when you register it") is sent again with the claimer's own
targets alone; each of the others does the same when it claims, so an error is raised by the waiter
whose target it is.
"""

from collections.abc import Iterable
from typing import Any, Literal, get_args

from botocore.exceptions import ClientError

from opsflow import clients, timeutil
from opsflow.arns import group_name
from opsflow.errors import TargetNotYetInStateException
from opsflow.runs import RunTable
from opsflow.shared_target_health import asked
from opsflow.targets import Registration

Change = Literal["register", "deregister"]

CLAIM_SECONDS = 15.0  # a claim older than this belongs to a waiter that died mid-request: another takes over
PENDING_SECONDS = 60.0  # longer than any invocation waits (opsflow.polling.budget): older entries lost their waiter
WAIT_SECONDS = 0.1  # how often a waiter that lost the claim looks whether its targets were sent


def entry(instance_id: str, registration: Registration) -> str:
    """A target as the pending set holds it: "<instance id>:<port>", the port empty for the group's own."""
    return f"{instance_id}:{registration.port or ''}"


def target(pending: str) -> dict[str, Any]:
    instance_id, port = pending.rsplit(":", 1)
    return {"Id": instance_id, "Port": int(port)} if port else {"Id": instance_id}


def change_together(
    change: Change, table: RunTable, instance_id: str, registrations: Iterable[Registration], *, give_up_at: float
) -> None:
    """Register (deregister) ``instance_id`` in each of its registrations, in one request per group with
    every other instance of the run waiting for the same there; "not yet" (TargetNotYetInStateException)
    if that has not happened by ``give_up_at`` (epoch seconds) or ELB throttled it."""
    for arn, mine in _by_group(instance_id, registrations).items():
        _change_in(change, table, arn, instance_id, mine, give_up_at)


def withdraw(table: RunTable, instance_id: str, registrations: Iterable[Registration]) -> None:
    """Take the instance's targets out of every pending change of its groups. A failed instance's report
    places it (opsflow.placement); no request another instance of the run sends later may undo that, even
    for an entry its dead function left behind."""
    by_group = _by_group(instance_id, registrations)
    for change in get_args(Change):
        for arn, mine in by_group.items():
            table.withdraw_change(change, arn, mine)


def _by_group(instance_id: str, registrations: Iterable[Registration]) -> dict[str, set[str]]:
    by_group: dict[str, set[str]] = {}
    for reg in registrations:
        by_group.setdefault(reg.target_group_arn, set()).add(entry(instance_id, reg))
    return by_group


def _change_in(  # noqa: PLR0917
    change: Change, table: RunTable, arn: str, instance_id: str, mine: set[str], give_up_at: float
) -> None:
    table.ask_to_change(change, arn, mine, timeutil.epoch())
    try:
        while True:
            now = timeutil.epoch()
            me = f"{instance_id}@{now!r}"
            pending = table.claim_change(change, arn, me, now, CLAIM_SECONDS)
            if pending is not None:
                _send_pending(change, table, arn, instance_id=instance_id, me=me, mine=mine, pending=pending, now=now)
                return
            if not mine & table.pending_changes(change, arn).keys():
                return  # another waiter sent them
            if now + WAIT_SECONDS > give_up_at:
                raise TargetNotYetInStateException(
                    f"another instance of the run is sending {change} requests for {group_name(arn)}: "
                    f"{instance_id} is not {change}ed yet"
                )
            timeutil.sleep(WAIT_SECONDS)
    except BaseException:
        table.withdraw_change(change, arn, mine)
        raise


def _send_pending(
    change: Change,
    table: RunTable,
    arn: str,
    *,
    instance_id: str,
    me: str,
    mine: set[str],
    pending: dict[str, float],
    now: float,
) -> None:
    """As the claimer: send every live pending target of the group in one request, then release the claim."""
    batch = sorted(t for t, at in pending.items() if at > now - PENDING_SECONDS)
    done = set(pending) - set(batch)  # stale entries: dropped
    try:
        if batch:
            try:
                asked(instance_id, lambda: _send(change, arn, batch))
            except ClientError:
                own = sorted(mine & set(batch))
                if not own or own == batch:
                    raise
                asked(instance_id, lambda: _send(change, arn, own))  # refused for another's target: this one's alone
                batch = own
            done |= set(batch)
    finally:
        table.release_change(change, arn, me, done)


def _send(change: Change, arn: str, batch: list[str]) -> None:
    elbv2 = clients.client("elbv2")
    send = elbv2.register_targets if change == "register" else elbv2.deregister_targets
    send(TargetGroupArn=arn, Targets=[target(t) for t in batch])
