"""Where an instance the run took out belongs now: back in service, still waited for, or left out.

The one home of "put back only if the application answers": the reporter, the summary, the safety
net and the follow-up all decide here. With the reboot rule: EC2 only queues a reboot, and the old
process answers until it begins, so an instance whose reboot was requested goes back only once it
was seen down since, or once the reboot has had its patience to begin (EC2 reboots hard when a clean
shutdown takes more than a few minutes: what answers after that is the instance as it will stay).
With the command rule: an SSM command (the ``command`` action) may reboot the instance while it
runs, and ends only once SSM Agent is back after such a reboot, so an instance whose command has not
ended is waited for, never put back. The progress comes from the instance's item in the run table
(opsflow.runs): takenOutAt, rebootRequestedAt, downSeenAt, commandId, commandSentAt, commandFinishedAt.

Followed up: an instance the run took out and never reported on (outcome ``out``), and one reported
failed while it was out and might still come up (``followUp``, set by the reporter). Either is put
back once it answers, or left out once its patience is spent, unless another run took it out since.
"""

import datetime as dt
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from opsflow import autoscaling, clients, timeutil
from opsflow.errors import OpsflowError
from opsflow.health import HealthCheck, check_instance
from opsflow.runs import OUT
from opsflow.targets import Registration, parse_registrations
from opsflow.targets import deregister as deregister_targets
from opsflow.targets import register as register_targets

# The patience of "Wait until the reboot has begun" (exactly: the reporter, which runs once it is spent,
# must see it spent) and of "Check the application is up" (rounded up) in
# statemachines/rolling_restart.asl.json; tests/unit/test_placement.py derives them from it.
REBOOT_BEGIN_PATIENCE_SECONDS = 675
STARTUP_PATIENCE_SECONDS = 900
COMMAND_PATIENCE_SECONDS = 7300  # of "Wait until the command has finished", rounded up
COMMAND_RUNNING = {"Pending", "InProgress", "Delayed", "Cancelling"}  # GetCommandInvocation statuses


class Verdict(StrEnum):
    PUT_BACK = "put back"
    WAIT = "wait"
    GIVE_UP = "give up"
    HANDED_OVER = "handed over"  # another run took it out since: that run decides where it goes


# On a failed instance's item: left out while it may still come up, so the follow-up puts it back once it answers.
FOLLOW_UP = "followUp"


def unsettled(item: dict[str, Any]) -> bool:
    """Whether where the instance belongs is still to be decided (out and never reported, or followed up)."""
    return item.get("outcome") == OUT or bool(item.get(FOLLOW_UP))


def _epoch(iso: str | None) -> float | None:
    return dt.datetime.fromisoformat(iso).timestamp() if iso else None


def deadline(progress: dict[str, Any], boot_seconds: int) -> float:
    """Until when the instance may still come up, from what the run saw of it."""
    down, requested = _epoch(progress.get("downSeenAt")), _epoch(progress.get("rebootRequestedAt"))
    sent = _epoch(progress.get("commandSentAt"))
    if sent is not None:
        return sent + COMMAND_PATIENCE_SECONDS + boot_seconds + STARTUP_PATIENCE_SECONDS
    if down is not None:
        return down + boot_seconds + STARTUP_PATIENCE_SECONDS
    if requested is not None:
        return requested + REBOOT_BEGIN_PATIENCE_SECONDS + boot_seconds + STARTUP_PATIENCE_SECONDS
    return (_epoch(progress.get("takenOutAt")) or 0.0) + STARTUP_PATIENCE_SECONDS


def command_running(progress: dict[str, Any]) -> bool:
    """Whether the SSM command the run sent to the instance may still run (and reboot it)."""
    if not progress.get("commandId") or progress.get("commandFinishedAt"):
        return False
    ssm = clients.client("ssm")
    try:
        invocation = ssm.get_command_invocation(CommandId=progress["commandId"], InstanceId=progress["instanceId"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvocationDoesNotExist":
            return True  # just sent: not listed yet
        raise
    return str(invocation["Status"]) in COMMAND_RUNNING


def verdict(
    progress: dict[str, Any], answering: bool, now: float, boot_seconds: int, command_runs: bool = False
) -> Verdict:
    """What to do with an instance the run took out and did not finish."""
    requested = _epoch(progress.get("rebootRequestedAt"))
    if command_runs:
        return Verdict.WAIT if now < deadline(progress, boot_seconds) else Verdict.GIVE_UP
    if answering and (
        requested is None or progress.get("downSeenAt") or now - requested >= REBOOT_BEGIN_PATIENCE_SECONDS
    ):
        return Verdict.PUT_BACK
    return Verdict.WAIT if now < deadline(progress, boot_seconds) else Verdict.GIVE_UP


def answers(instance_id: str, health: HealthCheck) -> bool:
    try:
        check_instance(instance_id, health)
    except OpsflowError:
        return False
    return True


LEFT_IN = "left in its target groups"
REGISTERED_AGAIN = "registered again: its application answers"
PUT_BACK_PLACEMENTS = frozenset({LEFT_IN, REGISTERED_AGAIN})  # what register() says: in service now


def put_back(where: object) -> bool:
    """Whether a recorded placement says the instance was put back (with the Standby clause, if any)."""
    return isinstance(where, str) and any(where.startswith(p) for p in PUT_BACK_PLACEMENTS)


def register(registrations: list[Registration], instance_id: str, standby: str = "") -> str:
    """Register the instance again wherever it was taken out (each group, its port); say what was done.

    ``standby``: what restore_standby did first (the group registered it in its own target groups then).
    """
    if not register_targets(instance_id, registrations) and not standby:
        return LEFT_IN
    return REGISTERED_AGAIN + standby


def restore_standby(item: dict[str, Any]) -> str:
    """A member of an Auto Scaling group the run put on Standby: back in service in its group (once).

    Before registering it anywhere else: the group registers it in its own target groups, and the
    desired capacity it lowered is raised again. What was done, as a clause of the placement ("" if nothing).
    """
    group = item.get("autoScalingGroup")
    if not group or not autoscaling.exit_standby(str(group), item["instanceId"]):
        return ""
    return f"; out of Standby in Auto Scaling group {group}"


def registrations_of(item: dict[str, Any], target_group_arn: str) -> list[Registration]:
    """Where the run took the instance out from (recorded when it did); a record without them: the run's group."""
    if item.get("registrations"):
        return parse_registrations(item["registrations"])
    return [Registration(target_group_arn=target_group_arn)]


INTERRUPTED = {
    "outcome": "failed",
    "step": "the instance's restart ended without reporting",
    "error": "RestartInterrupted",
}
KEYS = ("pk", "sk", "instanceId")  # the run table's keys of an instance item, not part of its outcome


def judge(
    item: dict[str, Any], *, target_group_arn: str, health: HealthCheck | None, boot_seconds: int
) -> tuple[Verdict, list[Registration], bool]:
    """Put back only if the application answers: the one reading of an instance the run took out (its
    verdict, where it was taken out, whether its SSM command may still run) that every placement acts on.
    ``health`` None: the run had no health check, so nothing counts as answering."""
    where = registrations_of(item, target_group_arn)
    running = command_running(item)
    up = health is not None and answers(item["instanceId"], health)
    return verdict(item, up, timeutil.epoch(), boot_seconds, running), where, running


def place_failure(
    item: dict[str, Any], *, target_group_arn: str, health: HealthCheck | None, boot_seconds: int
) -> tuple[Verdict, str]:
    """An instance reported failed while the run had it out: in service only if its application answers
    (and is not the old process before a reboot), taken out of every group it is still in otherwise;
    what was decided ("wait": left out while it may still come up, for the follow-up) and what was done."""
    decided, where, running = judge(item, target_group_arn=target_group_arn, health=health, boot_seconds=boot_seconds)
    instance_id = item["instanceId"]
    if decided is Verdict.PUT_BACK:
        return decided, register(where, instance_id, restore_standby(item))
    if deregister_targets(instance_id, where):
        return decided, "taken out of its target groups: its application does not answer"
    if running:
        return decided, "left out of its target groups: its SSM command still runs (it may reboot it)"
    return decided, "left out of its target groups: its application does not answer"


def held_by_another_run(table: Any, execution_arn: str, instance_id: str, where: list[Registration]) -> str | None:
    """The run that took the instance out since this one left it (it holds a lock of one of its target
    groups and marked it), if any. Its gate marks an instance before deregistering it and drains it
    before rebooting it, so this look right before registering keeps the follow-up off its instances."""
    for group in dict.fromkeys(r.target_group_arn for r in where):
        owner = table.lock_owner(group)
        if owner and owner != execution_arn and table.get_outcome(owner, instance_id) is not None:
            return str(owner)
    return None


def settle(
    table: Any,
    execution_arn: str,
    item: dict[str, Any],
    *,
    target_group_arn: str,
    health: HealthCheck,
    boot_seconds: int,
) -> tuple[Verdict, str]:
    """An instance the run took out and never reported on (its child failed, or the run was stopped), or
    one reported failed while it may still come up: put it back if it answers as itself, keep waiting
    while it may still come up, or give up on it; never touch it once another run took it out.

    A decision is recorded on its item (so it is made once); "wait" leaves the item as it is. A reported
    failure keeps its outcome; an instance never reported on is recorded as interrupted.
    """
    instance_id = item["instanceId"]
    where = registrations_of(item, target_group_arn)
    other = held_by_another_run(table, execution_arn, instance_id, where)
    if other is not None:
        decided, placed = Verdict.HANDED_OVER, f"left to {other}, which took it out of service since"
    else:
        decided, _, running = judge(item, target_group_arn=target_group_arn, health=health, boot_seconds=boot_seconds)
        if decided is Verdict.WAIT:
            return decided, "its command still runs: followed up" if running else "not answering yet: followed up"
        placed = (
            register(where, instance_id, restore_standby(item))
            if decided is Verdict.PUT_BACK
            else "left out of the target group: its application did not answer (or its command did not end) in time"
        )
    kept = {k: v for k, v in item.items() if k not in KEYS and k != FOLLOW_UP}
    interrupted = INTERRUPTED if item.get("outcome") == OUT else {}
    table.put_outcome(execution_arn, instance_id, kept | interrupted | {"placement": placed})
    return decided, placed
