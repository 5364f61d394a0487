"""Gates of the per-instance restart, each answered from the load balancer's view of the targets.

- ``capacity``: may this instance leave service now? Only while the healthy targets minus this one
  stay at or above the floor (a live guard: another target going unhealthy makes it wait) and the
  run's error budget is not used up (then it answers ``proceed: false``). It also renews the run's
  target group lock for one more instance, so a long run never loses it (LockLostError if it has).
- ``drained``: has the target finished draining?
- ``in_service``: is the re-registered target healthy?

"Not yet" raises TargetNotYetInStateException, which the state machine retries. With ``waitSeconds``,
``drained`` and ``in_service`` keep asking DescribeTargetHealth every ``pollSeconds`` for up to that long
within one invocation first (the change is seen within a poll; one state transition per ``waitSeconds``).
"""

from typing import Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import polling, timeutil
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
    wait_seconds: int = Field(default=0, ge=0, le=900, alias="waitSeconds")  # drained, in_service: keep asking
    # ELB allows an account 10 Describe* requests a second after a burst of 40 (ELB guide, "Request
    # throttling for the ELB API"): a few instances polling each second stay well within it.
    poll_seconds: float = Field(default=1.0, ge=0.5, le=60, alias="pollSeconds")


def capacity(gate: GateEvent) -> dict[str, Any]:
    table = RunTable(settings().table_name)
    expires_at = int(timeutil.epoch()) + gate.lock_seconds
    if gate.lock_seconds and not table.renew_lock(gate.target_group_arn, gate.execution_arn, expires_at):
        raise LockLostError(
            f"this run no longer holds the lock on {gate.target_group_arn}: {gate.instance_id} is left in service"
        )
    run = table.get_run(gate.execution_arn) or {}
    failed = failures(run)
    if failed >= gate.error_budget:
        return {
            "proceed": False,
            "reason": f"error budget used up ({failed} of {gate.error_budget} failures)",
        }
    states = target_states(gate.target_group_arn)
    healthy = sum(1 for s in states.values() if s == HEALTHY)
    leaving = 1 if states.get(gate.instance_id) == HEALTHY else 0
    if healthy - leaving < gate.floor:
        raise TargetNotYetInStateException(
            f"{healthy} healthy targets; taking {gate.instance_id} out would leave fewer than {gate.floor}"
        )
    table.mark_taken_out(gate.execution_arn, gate.instance_id, timeutil.iso_now())
    return {"proceed": True, "healthyTargets": healthy}


def wait_for(gate: GateEvent, done: set[str], for_seconds: float = 0.0) -> dict[str, Any]:
    def reached() -> str:
        state = target_states(gate.target_group_arn, [gate.instance_id]).get(gate.instance_id, "unused")
        if state not in done:
            raise TargetNotYetInStateException(f"{gate.instance_id} is {state}")
        return state

    state = polling.poll(
        reached, not_yet=TargetNotYetInStateException, every=gate.poll_seconds, for_seconds=for_seconds
    )
    return {"state": state}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    gate = parse_event(GateEvent, event)
    for_seconds = polling.budget(gate.wait_seconds, context)
    if gate.check == "capacity":
        result = capacity(gate)
    elif gate.check == "drained":
        result = wait_for(gate, {"unused"}, for_seconds)
    else:
        result = wait_for(gate, {HEALTHY}, for_seconds)
    return {"at": timeutil.iso_now(), **result}
