"""The per-instance action of the rolling restart (a reboot), and the preflight that proves it can work.

``{"action": "reboot", "instanceId": ...}`` reboots; EC2 throttling is retried by the SDK and then by
the state machine (RebootThrottledException); a denied reboot is RebootNotAllowedError (not retried).
``{"action": "preflight", "instances": [...], "health": {...}}`` changes nothing: a dry-run reboot of
every instance as this function's role (DryRunOperation = allowed, UnauthorizedOperation = denied) and
one request to every health URL from where the startup check runs. Any problem refuses the run with
PreflightFailedError naming the instance, the check and the fix.
"""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import clients, timeutil
from opsflow.errors import (
    InstanceCannotStartError,
    PreflightFailedError,
    RebootNotAllowedError,
    RebootThrottledException,
)
from opsflow.health import HealthCheck, probe
from opsflow.observability import logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import RunTableSettings, cached_settings
from opsflow.validation import InstanceId, parse_event

DRY_RUN_CHUNK = 100  # one dry run per 100 instances; per instance only where one is denied
MAX_PROBLEMS = 10  # a refusal names this many; probing stops there (each unreachable URL costs a timeout)


class Settings(RunTableSettings):
    restart_tag_key: str = Field(alias="RESTART_TAG_KEY", min_length=1)
    restart_tag_value: str = Field(alias="RESTART_TAG_VALUE")


settings = cached_settings(Settings)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RebootEvent(_Event):
    action: Literal["reboot"]
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)


class PlannedInstance(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    instance_id: InstanceId = Field(alias="instanceId")
    private_ip: str = Field(alias="privateIp")


class PreflightEvent(_Event):
    action: Literal["preflight"]
    instances: list[PlannedInstance] = Field(min_length=1, max_length=1000)
    health: HealthCheck


class ActionEvent(BaseModel):
    event: Annotated[RebootEvent | PreflightEvent, Field(discriminator="action")]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def reboot(instance_id: str, execution_arn: str) -> dict[str, Any]:
    ec2 = clients.client("ec2")
    requested_at = timeutil.iso_now()
    try:
        ec2.reboot_instances(InstanceIds=[instance_id])
    except ec2.exceptions.ClientError as exc:
        code = _error_code(exc)
        if code == "UnauthorizedOperation":
            cfg = settings()
            raise RebootNotAllowedError(
                f"{instance_id} may not be rebooted: opsflow reboots only instances tagged "
                f"{cfg.restart_tag_key}={cfg.restart_tag_value}"
            ) from exc
        if code == "RequestLimitExceeded":
            raise RebootThrottledException(f"{instance_id}: EC2 throttled the reboot call") from exc
        if code.startswith("InvalidInstanceID") or code == "IncorrectState":
            raise InstanceCannotStartError(f"{instance_id} cannot be rebooted: {code}") from exc
        raise
    # From now on the old process may still answer: cleanups must not take that for "up" (opsflow.placement).
    RunTable(settings().table_name).note_progress(execution_arn, instance_id, rebootRequestedAt=requested_at)
    logger.info("reboot requested", extra={"instance_id": instance_id})
    return {"instanceId": instance_id, "at": requested_at}


def denied_reboots(instance_ids: list[str]) -> list[str]:
    """Instances this role may not reboot, by EC2's dry run (nothing is rebooted)."""
    ec2 = clients.client("ec2")

    def allowed(ids: list[str]) -> bool:
        try:
            ec2.reboot_instances(InstanceIds=ids, DryRun=True)
        except ec2.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code == "DryRunOperation":
                return True
            if code == "UnauthorizedOperation":
                return False
            raise
        raise RuntimeError("EC2 answered a dry run without DryRunOperation")  # would have rebooted: a bug

    denied: list[str] = []
    for start in range(0, len(instance_ids), DRY_RUN_CHUNK):
        chunk = instance_ids[start : start + DRY_RUN_CHUNK]
        if not allowed(chunk):
            denied += [i for i in chunk if len(chunk) == 1 or not allowed([i])]
    return denied


def preflight(event: PreflightEvent) -> dict[str, Any]:
    cfg = settings()
    problems = [
        f"{i}: may not be rebooted (EC2 dry run: UnauthorizedOperation); tag it "
        f"{cfg.restart_tag_key}={cfg.restart_tag_value} or leave it out with instanceIds"
        for i in denied_reboots([inst.instance_id for inst in event.instances])
    ][:MAX_PROBLEMS]
    for inst in event.instances:
        if len(problems) >= MAX_PROBLEMS:
            break
        result = probe(inst.private_ip, event.health)
        if not result.ok(event.health):
            problems.append(
                f"{inst.instance_id}: health URL {result.describe(event.health)}; the restart could never see "
                f"it ready. Check that opsflow's functions run in the instances' VPC (parameters VpcId, "
                f"HealthCheckSubnetIds, InstanceSecurityGroupId), that the instance's security group lets them "
                f"in on port {event.health.port} (the stack's HealthPort), and that the application answers there"
            )
    if problems:
        raise PreflightFailedError(
            f"Preflight failed, nothing was changed: {'; '.join(problems)}"
            + (" (further instances not checked)" if len(problems) >= MAX_PROBLEMS else "")
        )
    return {
        "verdict": "ok",
        "checked": len(event.instances),
        "checks": ["every instance may be rebooted (EC2 dry run)", "every health URL answers from the probe's network"],
    }


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(ActionEvent, {"event": event}).event
    if isinstance(request, RebootEvent):
        return reboot(request.instance_id, request.execution_arn)
    return preflight(request)
