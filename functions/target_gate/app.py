"""Gates of the per-instance restart, each answered from the load balancer's view of the targets.

- ``capacity``: may this instance leave service now? Only while the healthy targets minus this one
  stay at or above the floor (a live guard: another target going unhealthy makes it wait), the
  run's error budget is not used up, and none of the alarms the run watches (stopOnAlarms) has gone
  to ALARM since the run started (otherwise it answers ``proceed: false``: instances in flight
  finish, no new one leaves). A fired alarm is recorded on the run, so the run stays stopped even if
  the alarm goes back to OK. It also renews the run's target group lock for one more instance, so a
  long run never loses it (LockLostError if it has).
- ``drained``: has the target finished draining?
- ``in_service``: is the re-registered target healthy?

"Not yet" raises TargetNotYetInStateException, which the state machine retries with backoff.
"""

import datetime as dt
from typing import Any, Literal, NamedTuple

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, timeutil, watch
from opsflow.errors import LockLostError, TargetNotYetInStateException
from opsflow.observability import logger, tracer
from opsflow.runs import RunTable, failures
from opsflow.settings import RunTableSettings, cached_settings
from opsflow.targets import HEALTHY, target_states
from opsflow.validation import parse_event


class Settings(RunTableSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


class GateEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    check: Literal["capacity", "drained", "in_service"]
    instance_id: str = Field(alias="instanceId")
    target_group_arn: str = Field(alias="targetGroupArn")
    execution_arn: str = Field(default="", alias="executionArn")
    floor: int = Field(default=0, ge=0)
    error_budget: int = Field(default=1, ge=1, alias="errorBudget")
    lock_seconds: int = Field(default=0, ge=0, alias="lockSeconds")  # capacity: renew the lock for this long


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


def run_started(run: dict[str, Any]) -> dt.datetime:
    """When the run started (its record's startedAt, the execution's start time), as an aware datetime."""
    if not run.get("startedAt"):
        return dt.datetime.fromtimestamp(timeutil.epoch(), dt.UTC)
    started = dt.datetime.fromisoformat(str(run["startedAt"]))
    return started if started.tzinfo else started.replace(tzinfo=dt.UTC)


def capacity(gate: GateEvent) -> dict[str, Any]:
    table = RunTable(settings().table_name)
    expires_at = int(timeutil.epoch()) + gate.lock_seconds
    if gate.lock_seconds and not table.renew_lock(gate.target_group_arn, gate.execution_arn, expires_at):
        raise LockLostError(
            f"this run no longer holds the lock on {gate.target_group_arn}: {gate.instance_id} is left in service"
        )
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
    states = target_states(gate.target_group_arn)
    healthy = sum(1 for s in states.values() if s == HEALTHY)
    leaving = 1 if states.get(gate.instance_id) == HEALTHY else 0
    if healthy - leaving < gate.floor:
        raise TargetNotYetInStateException(
            f"{healthy} healthy targets; taking {gate.instance_id} out would leave fewer than {gate.floor}"
        )
    table.mark_taken_out(gate.execution_arn, gate.instance_id, timeutil.iso_now())
    return {"proceed": True, "healthyTargets": healthy}


def wait_for(gate: GateEvent, done: set[str]) -> dict[str, Any]:
    state = target_states(gate.target_group_arn, [gate.instance_id]).get(gate.instance_id, "unused")
    if state not in done:
        raise TargetNotYetInStateException(f"{gate.instance_id} is {state}")
    return {"state": state}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    gate = parse_event(GateEvent, event)
    if gate.check == "capacity":
        result = capacity(gate)
    elif gate.check == "drained":
        result = wait_for(gate, {"unused"})
    else:
        result = wait_for(gate, {HEALTHY})
    return {"at": timeutil.iso_now(), **result}
