"""Validate a rolling-restart request and plan it, before anything is changed.

Refusals raise an error whose class name the state machine turns into a Fail state (see
opsflow.errors); a dry run returns this plan and stops there.
"""

import math
from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator
from pydantic.alias_generators import to_camel

from opsflow import clients, timeutil
from opsflow.errors import (
    HealthUrlUnreachableError,
    InstanceNotRestartableError,
    InvalidInputError,
    NoTargetsError,
    TargetGroupNotAllowedError,
    TargetGroupNotFoundError,
    TargetsNotHealthyError,
    UnsafeBatchSizeError,
)
from opsflow.health import HealthCheck
from opsflow.muting import MuteRecord, NeverMute, Selector, excluded
from opsflow.observability import logger, metrics, tracer
from opsflow.settings import NeverMuteSettings, RunTableSettings, cached_settings
from opsflow.targets import HEALTHY, registered_targets
from opsflow.validation import ExecutionEvent, InstanceId, parse_event

TARGET_GROUP_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
BATCH_SIZE = r"^([1-9][0-9]{0,3}|([1-9][0-9]?|100)%)$"
DESCRIBE_CHUNK = 200
RECORD_DAYS = 90  # run records expire (DynamoDB TTL) after this
# The longest one instance can take, boot and health-check waits aside: every per-instance state's
# retry patience and attempts at their function timeouts (tests/unit/test_restart_planner.py derives
# it from the ASL and checks this bound). The lock is renewed for this long each time an instance starts.
INSTANCE_PATIENCE_SECONDS = 6 * 3600
LOCK_MARGIN_SECONDS = 3600  # muting, restoring, releasing, and the summary


class Settings(RunTableSettings, NeverMuteSettings):
    target_group_arn: str = Field(default="", alias="TARGET_GROUP_ARN")
    restart_tag_key: str = Field(alias="RESTART_TAG_KEY", min_length=1)
    restart_tag_value: str = Field(alias="RESTART_TAG_VALUE")
    batch_size: str = Field(alias="DEFAULT_BATCH_SIZE", pattern=BATCH_SIZE)
    error_budget: int = Field(alias="DEFAULT_ERROR_BUDGET", ge=1)
    expected_boot_seconds: int = Field(alias="EXPECTED_BOOT_SECONDS", ge=0)
    health_port: int = Field(alias="HEALTH_PORT")
    health_path: str = Field(alias="HEALTH_PATH")
    health_expected_status: int = Field(alias="HEALTH_EXPECTED_STATUS")
    health_timeout_seconds: float = Field(alias="HEALTH_TIMEOUT_SECONDS")
    alarm_name_prefix: str = Field(default="", alias="ALARM_NAME_PREFIX")
    rule_name_prefix: str = Field(default="", alias="RULE_NAME_PREFIX")
    approval_timeout_seconds: int = Field(alias="APPROVAL_TIMEOUT_SECONDS", ge=60)
    # Where the probing functions run: empty when the stack has no VPC settings (they cannot reach a private IP).
    probe_vpc_id: str = Field(default="", alias="HEALTH_PROBE_VPC_ID")
    probe_security_group_id: str = Field(default="", alias="HEALTH_PROBE_SECURITY_GROUP_ID")


settings = cached_settings(Settings)


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=AliasGenerator(to_camel), populate_by_name=True, frozen=True
    )


class HealthOverride(_Model):
    port: Annotated[StrictInt, Field(ge=1, le=65535)] | None = None
    path: Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=512)] | None = None
    expected_status: Annotated[StrictInt, Field(ge=100, le=599)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] | None = None


class RestartRequest(_Model):
    """The execution input. Every field is optional; defaults come from the template parameters."""

    target_group_arn: Annotated[str, Field(pattern=TARGET_GROUP_ARN)] | None = None
    batch_size: StrictInt | Annotated[str, Field(pattern=BATCH_SIZE)] | None = None
    instance_ids: Annotated[list[InstanceId], Field(min_length=1, max_length=1000)] | None = None
    alarms: Selector | None = None
    rules: Selector | None = None
    health: HealthOverride | None = None
    expected_boot_seconds: Annotated[StrictInt, Field(ge=0, le=3600)] | None = None
    error_budget: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    dry_run: StrictBool = False
    require_approval: StrictBool = False
    approval_timeout_seconds: Annotated[StrictInt, Field(ge=60, le=604800)] | None = None

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= 1000:
            raise ValueError("must be 1..1000 instances or a percentage like '25%'")
        return value

    @field_validator("instance_ids")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("instance ids must be unique")
        return value


class Instance(_Model):
    instance_id: str
    private_ip: str
    port: int  # the port it is registered on in the target group


class Plan(_Model):
    batches: list[list[str]]
    healthy_targets: int
    floor: int
    deregistration_delay_seconds: int
    seconds_to_healthy_after_boot: int
    seconds_per_instance_at_most: int
    predicted_seconds_at_most: int
    lock_seconds_per_instance: int
    never_muted: MuteRecord  # the stack's own alarm and rule the selection names: protected, never muted
    summary: str


class RestartRun(_Model):
    """Everything the state machine needs downstream: validated, defaults applied."""

    execution_arn: str
    target_group_arn: str
    batch_size: int
    floor: int
    error_budget: int
    instances: list[Instance]
    health: HealthCheck
    expected_boot_seconds: int
    alarms: Selector
    rules: Selector
    dry_run: bool
    require_approval: bool
    approval_timeout_seconds: int
    plan: Plan
    lock_expires_at: int
    record_expires_at: int
    now: int
    # Slots the state machine's catchers fill; present (null) so its Choice states can test them.
    error: None = None
    restore_error: None = None
    release_error: None = None


def resolve_batch_size(value: int | str, tier_size: int) -> int:
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        return max(1, math.floor(tier_size * int(value[:-1]) / 100))
    return int(value)


def _target_group(arn: str) -> tuple[dict[str, Any], int]:
    elbv2 = clients.client("elbv2")
    try:
        group = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
    except elbv2.exceptions.TargetGroupNotFoundException as exc:
        raise TargetGroupNotFoundError(f"target group {arn} does not exist") from exc
    attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    delay = next((int(a["Value"]) for a in attributes if a["Key"] == "deregistration_delay.timeout_seconds"), 300)
    return group, delay


def _network_problems(inst: dict[str, Any], cfg: Settings) -> list[str]:
    """Why the probing functions could not reach this instance's health URL (empty: they can)."""
    instance_id, problems = inst["InstanceId"], []
    if inst.get("VpcId") != cfg.probe_vpc_id:
        problems.append(f"{instance_id} is in {inst.get('VpcId')}, not in the stack's VpcId {cfg.probe_vpc_id}")
    groups = {g["GroupId"] for g in inst.get("SecurityGroups", [])}
    if cfg.probe_security_group_id not in groups:
        problems.append(
            f"{instance_id} is not in the security group {cfg.probe_security_group_id} (InstanceSecurityGroupId), "
            "which is the one that lets opsflow's functions in: add it to the instance"
        )
    return problems


def _instances(instance_ids: list[str], ports: dict[str, int], cfg: Settings) -> list[Instance]:
    """Running, tagged, reachable instances in the order asked; refuse any other."""
    ec2 = clients.client("ec2")
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(instance_ids), DESCRIBE_CHUNK):
        chunk = instance_ids[i : i + DESCRIBE_CHUNK]
        pages = ec2.get_paginator("describe_instances").paginate(Filters=[{"Name": "instance-id", "Values": chunk}])
        for page in pages:
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    found[inst["InstanceId"]] = inst
    problems = []
    for instance_id in instance_ids:
        inst = found.get(instance_id)
        if inst is None:
            problems.append(f"{instance_id} does not exist")
            continue
        if inst["State"]["Name"] != "running":
            problems.append(f"{instance_id} is {inst['State']['Name']}")
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        if tags.get(cfg.restart_tag_key) != cfg.restart_tag_value:
            problems.append(f"{instance_id} lacks the tag {cfg.restart_tag_key}={cfg.restart_tag_value}")
    if problems:
        raise InstanceNotRestartableError(_listed(problems))
    unreachable = [p for i in instance_ids for p in _network_problems(found[i], cfg)]
    if unreachable:
        raise HealthUrlUnreachableError(_listed(unreachable))
    return [
        Instance(instance_id=i, private_ip=found[i].get("PrivateIpAddress", ""), port=ports[i]) for i in instance_ids
    ]


def _listed(problems: list[str]) -> str:
    return "; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else "")


def _check_probe_network(request: RestartRequest, cfg: Settings) -> None:
    """The startup check must be able to reach the health URL: refuse before anything is touched if not."""
    if not cfg.probe_vpc_id:
        raise HealthUrlUnreachableError(
            "opsflow's functions run outside any VPC, so they cannot reach the instances' private health URL: "
            "deploy the stack with VpcId, HealthCheckSubnetIds (private subnets with a NAT gateway or VPC "
            "endpoints) and InstanceSecurityGroupId"
        )
    port = request.health.port if request.health else None
    if port is not None and port != cfg.health_port:
        raise HealthUrlUnreachableError(
            f"health.port {port} differs from the stack's HealthPort {cfg.health_port}, the only port the "
            f"instances' security group opens to opsflow's functions: redeploy with HealthPort={port}, "
            "or leave health.port out"
        )


def plan_restart(request: RestartRequest, execution_arn: str, cfg: Settings) -> RestartRun:
    arn = request.target_group_arn or cfg.target_group_arn
    if not arn:
        raise InvalidInputError("targetGroupArn: not given, and the stack has no default target group")
    if cfg.target_group_arn and arn != cfg.target_group_arn:
        raise TargetGroupNotAllowedError(f"this stack may only restart {cfg.target_group_arn}, not {arn}")
    group, delay = _target_group(arn)
    if group.get("TargetType", "instance") != "instance":
        raise InvalidInputError(f"target group {arn} has {group['TargetType']} targets; only instances can reboot")

    _check_probe_network(request, cfg)
    targets = registered_targets(arn)
    states = {instance_id: target.state for instance_id, target in targets.items()}
    if not states:
        raise NoTargetsError(f"target group {arn} has no registered targets")
    not_healthy = {i: s for i, s in states.items() if s != HEALTHY}
    if not_healthy:
        listed = ", ".join(f"{i} is {s}" for i, s in sorted(not_healthy.items())[:10])
        raise TargetsNotHealthyError(f"{len(not_healthy)} of {len(states)} targets are not healthy: {listed}")

    selected = list(request.instance_ids) if request.instance_ids else sorted(states)
    outside = [i for i in selected if i not in states]
    if outside:
        raise NoTargetsError(f"not registered in {arn}: {', '.join(outside[:10])}")

    tier = len(states)
    batch = resolve_batch_size(request.batch_size or cfg.batch_size, tier)
    if tier - batch < 1:
        raise UnsafeBatchSizeError(
            f"batch size {batch} would take all {tier} healthy targets out of service; use at most {tier - 1}"
        )
    batch = min(batch, len(selected))
    overrides = [f"{i} on port {targets[i].port}" for i in selected if targets[i].port != group["Port"]]
    if overrides:
        raise InvalidInputError(
            f"registered with a port override (the target group's port is {group['Port']}): {_listed(overrides)}; "
            "restarting port-override targets is not supported yet: leave them out with instanceIds"
        )
    instances = _instances(selected, {i: targets[i].port for i in selected}, cfg)

    health = HealthCheck(
        port=cfg.health_port,
        path=cfg.health_path,
        expected_status=cfg.health_expected_status,
        timeout_seconds=cfg.health_timeout_seconds,
    ).model_copy(update=request.health.model_dump(exclude_none=True) if request.health else {})
    HealthCheck.model_validate(health.model_dump())
    boot = cfg.expected_boot_seconds if request.expected_boot_seconds is None else request.expected_boot_seconds
    to_healthy = group["HealthCheckIntervalSeconds"] * group["HealthyThresholdCount"]
    per_instance = delay + boot + to_healthy
    batches = [selected[i : i + batch] for i in range(0, len(selected), batch)]
    predicted = len(batches) * per_instance
    lock_per_instance = INSTANCE_PATIENCE_SECONDS + boot + to_healthy
    floor = tier - batch
    summary = (
        f"Restart {len(selected)} of {tier} targets in {arn.rsplit(':', 1)[-1]}, {batch} at a time "
        f"({len(batches)} batches); at least {floor} healthy targets keep serving. Each instance: drain "
        f"(up to {delay} s), reboot and start (about {boot} s, then until the health URL answers), "
        f"{to_healthy} s of health checks. Expected at most {predicted // 60} min {predicted % 60} s."
    )
    alarms = request.alarms or Selector(namePrefixes=[cfg.alarm_name_prefix] if cfg.alarm_name_prefix else [])
    rules = request.rules or Selector(namePrefixes=[cfg.rule_name_prefix] if cfg.rule_name_prefix else [])
    now = int(timeutil.epoch())
    approval = request.approval_timeout_seconds or cfg.approval_timeout_seconds
    return RestartRun(
        execution_arn=execution_arn,
        target_group_arn=arn,
        batch_size=batch,
        floor=floor,
        error_budget=request.error_budget or cfg.error_budget,
        instances=instances,
        health=health,
        expected_boot_seconds=boot,
        alarms=alarms,
        rules=rules,
        dry_run=request.dry_run,
        require_approval=request.require_approval,
        approval_timeout_seconds=approval,
        plan=Plan(
            batches=batches,
            healthy_targets=tier,
            floor=floor,
            deregistration_delay_seconds=delay,
            seconds_to_healthy_after_boot=to_healthy,
            seconds_per_instance_at_most=per_instance,
            predicted_seconds_at_most=predicted,
            lock_seconds_per_instance=lock_per_instance,
            never_muted=excluded(
                alarms, rules, NeverMute(alarms=cfg.never_mute_alarm_names, rules=cfg.never_mute_rule_names)
            ),
            summary=summary,
        ),
        # Covers the approval wait and the first instance; each instance that starts renews it (target gate).
        lock_expires_at=now + approval + lock_per_instance + LOCK_MARGIN_SECONDS,
        record_expires_at=now + RECORD_DAYS * 86400,
        now=now,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    planner_event = parse_event(ExecutionEvent, event)
    request = parse_event(RestartRequest, planner_event.input)
    run = plan_restart(request, planner_event.execution_arn, settings())
    logger.info("planned", extra={"plan": run.plan.summary})
    return run.model_dump(by_alias=True, mode="json")
