"""Validate a rolling-restart request and plan it, before anything is changed.

Refusals raise an error whose class name the state machine turns into a Fail state (see
opsflow.errors); a dry run returns this plan and stops there. ``resumeFrom`` plans the rest of an
earlier run (opsflow.resume); ``stopOnAlarms`` names the alarms the run watches (opsflow.watch).
"""

import json
import math
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from opsflow import autoscaling, clients, polling, resume, timeutil, watch
from opsflow.errors import (
    CannotResumeError,
    HealthUrlUnreachableError,
    InstanceNotRestartableError,
    InvalidInputError,
    NoTargetsError,
    TargetGroupNotAllowedError,
    TargetGroupNotFoundError,
    TargetsNotHealthyError,
    UnsafeBatchSizeError,
    WatchedAlarmFiringError,
)
from opsflow.health import HealthCheck
from opsflow.muting import MuteRecord, NeverMute, Selector, excluded
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import NeverMuteSettings, RunTableSettings, cached_settings
from opsflow.targets import HEALTHY, Registration, TargetHealth, describe
from opsflow.validation import ExecutionEvent, InstanceId, describe_validation_error, parse_event

TARGET_GROUP_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
LOAD_BALANCER_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
BATCH_SIZE = r"^([1-9][0-9]{0,3}|([1-9][0-9]?|100)%)$"
DOCUMENT_NAME = r"^[a-zA-Z0-9_\-.]{3,128}$"
# Patching: Patch Manager's document installs what the baseline approves and reboots only if needed.
PATCH_DOCUMENT = "AWS-RunPatchBaseline"
PATCH_PARAMETERS = {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]}
DESCRIBE_CHUNK = 200
RECORD_DAYS = 90  # run records expire (DynamoDB TTL) after this
# The longest one instance can take, boot and health-check waits aside: every per-instance state's
# retry patience and attempts at their function timeouts (tests/unit/test_restart_planner.py derives
# it from the ASL and checks this bound). The lock is renewed for this long each time an instance starts.
INSTANCE_PATIENCE_SECONDS = 12 * 3600  # the command action's wait (about 2 h) included
LOCK_MARGIN_SECONDS = 3600  # muting, restoring, releasing, and the summary


class Settings(RunTableSettings, NeverMuteSettings):
    target_group_arn: str = Field(default="", alias="TARGET_GROUP_ARN")
    # More target groups the stack may restart, comma-separated (AllowedTargetGroupArns).
    allowed_target_group_arns: str = Field(default="", alias="ALLOWED_TARGET_GROUP_ARNS")

    def allowed(self) -> set[str]:
        """The target groups this stack may change; empty: any (its IAM role is not scoped)."""
        listed = [a.strip() for a in self.allowed_target_group_arns.split(",") if a.strip()]
        return set(listed) | ({self.target_group_arn} if self.target_group_arn else set())

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
    allowed_documents: str = Field(default="AWS-RunPatchBaseline", alias="ALLOWED_COMMAND_DOCUMENTS")
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


class CommandRequest(_Model):
    """The SSM command of the ``command`` action; defaults: AWS-RunPatchBaseline, Install, RebootIfNeeded."""

    document_name: Annotated[str, Field(pattern=DOCUMENT_NAME)] = PATCH_DOCUMENT
    parameters: (
        Annotated[dict[Annotated[str, Field(min_length=1, max_length=64)], list[str]], Field(max_length=50)] | None
    ) = None
    timeout_seconds: Annotated[StrictInt, Field(ge=30, le=172800)] = 600
    output_s3_bucket_name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None = None
    output_s3_key_prefix: Annotated[str, Field(max_length=500)] | None = None


class PreviewMail(_Model):
    """The patch preview the approval mail carries: its text in the stack's bucket (the patch workflow)."""

    findings: Annotated[str, Field(min_length=1, max_length=200)]
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key: Annotated[str, Field(pattern=r"^patch-preview/\S{1,1000}$")]


class RestartRequest(_Model):
    """The execution input. Every field is optional; defaults come from the template parameters."""

    target_group_arn: Annotated[str, Field(pattern=TARGET_GROUP_ARN)] | None = None
    # A tier of several target groups (two listeners, two load balancers), or a load balancer's groups.
    target_group_arns: (
        Annotated[list[Annotated[str, Field(pattern=TARGET_GROUP_ARN)]], Field(min_length=1, max_length=20)] | None
    ) = None
    load_balancer_arn: Annotated[str, Field(pattern=LOAD_BALANCER_ARN)] | None = None
    one_zone_at_a_time: StrictBool = False
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
    stop_on_alarms: watch.WatchSelector | None = None
    resume_from: Annotated[str, Field(pattern=resume.EXECUTION_ARN)] | None = None
    action: Literal["reboot", "command"] = "reboot"
    command: CommandRequest | None = None
    note: Annotated[str, Field(max_length=2000)] = ""  # shown in the approval mail
    preview: PreviewMail | None = None  # the approval mail is this patch preview with its links

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
    zone: str
    registrations: list[Registration]  # every target group it is registered in, with its port there
    auto_scaling_group: str | None = None  # its EC2 Auto Scaling group: on Standby while it restarts


class AutoScalingGroupPlan(_Model):
    min_size: int
    desired_capacity: int
    max_size: int
    health_check_type: str
    members: list[str]  # the run's instances in the group
    on_standby_at_most: int  # at once: the desired capacity is lowered by this much at most


class GroupPlan(_Model):
    target_group_arn: str
    port: int  # the group's own port (targets may override it)
    healthy_targets: int
    floor: int  # healthy targets it keeps while the run takes instances out
    deregistration_delay_seconds: int
    in_tier: bool  # named by the input; False: one of the tier's instances is also registered there


class Plan(_Model):
    batches: list[list[str]]
    healthy_targets: int
    floor: int
    target_groups: list[GroupPlan]
    one_zone_at_a_time: bool
    zones: dict[str, int]  # zone -> instances of the tier in it
    zone_floors: dict[str, int]  # one zone at a time: zone -> instances that keep serving in it
    where: dict[str, str]  # instance -> "zone: group:port, group:port[; Auto Scaling group name]"
    auto_scaling_groups: dict[str, AutoScalingGroupPlan]  # the Auto Scaling groups of the run's instances
    deregistration_delay_seconds: int
    seconds_to_healthy_after_boot: int
    seconds_per_instance_at_most: int
    predicted_seconds_at_most: int
    lock_seconds_per_instance: int
    never_muted: MuteRecord  # the stack's own alarm and rule, and watched alarms, the selection names: never muted
    watched_alarms: list[str]  # stopOnAlarms resolved: no new instance leaves once one is in ALARM
    resumed_from: str | None  # the earlier run this one continues
    finished_before: list[str]  # instances that earlier run finished: not restarted again
    summary: str
    note: str = ""
    preview: PreviewMail | None = None


class RestartRun(_Model):
    """Everything the state machine needs downstream: validated, defaults applied."""

    execution_arn: str
    target_group_arn: str  # the tier's first target group (for people)
    target_group_arns: list[str]  # every target group the run changes: the tier's, then others its instances are in
    batch_size: int
    # How often the instances waiting on a target group (drain, health) look at it; they share one
    # DescribeTargetHealth per group per poll, which keeps the run within its share of the account's ELB budget.
    elb_poll_seconds: float
    floor: int
    floors: dict[str, int]  # target group -> its floor
    one_zone_at_a_time: bool
    zone_floors: dict[str, int]
    zones: str  # JSON: zone -> the tier's instances in it (the run record keeps it for the capacity gate)
    error_budget: int
    instances: list[Instance]
    auto_scaling_groups: list[str]  # the groups of the run's instances (they may scale in during the run)
    health: HealthCheck
    expected_boot_seconds: int
    alarms: Selector
    rules: Selector
    dry_run: bool
    require_approval: bool
    approval_timeout_seconds: int
    action: str
    command: dict[str, Any] | None  # SendCommand's document, parameters and timeout (``command`` action)
    plan: Plan
    watched_alarms: list[str]
    resume_from: str | None
    # What the run record keeps for a later resumeFrom: the settings in force, defaults applied.
    settings: dict[str, Any]
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


def _target_groups(arns: list[str]) -> dict[str, tuple[dict[str, Any], int]]:
    """Each group's description and deregistration delay; refuse a group that does not exist or cannot reboot."""
    elbv2 = clients.client("elbv2")
    found: dict[str, tuple[dict[str, Any], int]] = {}
    for arn in arns:
        try:
            group = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
        except elbv2.exceptions.TargetGroupNotFoundException as exc:
            raise TargetGroupNotFoundError(f"target group {arn} does not exist") from exc
        if group.get("TargetType", "instance") != "instance":
            raise InvalidInputError(f"target group {arn} has {group['TargetType']} targets; only instances can reboot")
        attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        delay = next((int(a["Value"]) for a in attributes if a["Key"] == "deregistration_delay.timeout_seconds"), 300)
        found[arn] = (group, delay)
    return found


def _tier(request: RestartRequest, cfg: Settings) -> list[str]:
    """The target groups the input names (or its load balancer's, or the stack's default), if the stack's."""
    given = [
        name
        for name, value in (
            ("targetGroupArn", request.target_group_arn),
            ("targetGroupArns", request.target_group_arns),
            ("loadBalancerArn", request.load_balancer_arn),
        )
        if value
    ]
    if len(given) > 1:
        raise InvalidInputError(
            f"{' and '.join(given)}: give only one of targetGroupArn, targetGroupArns, loadBalancerArn"
        )
    if request.load_balancer_arn:
        arns = _load_balancer_groups(request.load_balancer_arn)
    elif request.target_group_arns:
        arns = list(dict.fromkeys(request.target_group_arns))
    elif request.target_group_arn or cfg.target_group_arn:
        arns = [request.target_group_arn or cfg.target_group_arn]
    else:
        raise InvalidInputError(
            "targetGroupArn: not given, and the stack has no default target group: give targetGroupArn, "
            "targetGroupArns or loadBalancerArn"
        )
    allowed = cfg.allowed()
    refused = [a for a in arns if allowed and a not in allowed]
    if refused:
        raise TargetGroupNotAllowedError(
            f"this stack may only restart {', '.join(sorted(allowed))}, not {', '.join(refused)}: "
            "add it to the stack's AllowedTargetGroupArns, or deploy a stack for it"
        )
    return arns


def _load_balancer_groups(arn: str) -> list[str]:
    elbv2 = clients.client("elbv2")
    try:
        pages = elbv2.get_paginator("describe_target_groups").paginate(LoadBalancerArn=arn)
        arns = [g["TargetGroupArn"] for page in pages for g in page["TargetGroups"]]
    except elbv2.exceptions.LoadBalancerNotFoundException as exc:
        raise TargetGroupNotFoundError(f"load balancer {arn} does not exist") from exc
    if not arns:
        raise NoTargetsError(f"load balancer {arn} forwards to no target group")
    return arns


def _also_registered(selected: set[str], vpcs: set[str], tier: list[str]) -> dict[str, list[TargetHealth]]:
    """Target groups outside the tier (in the instances' VPCs) that the selected instances are registered in.

    ELB has no "where is this instance registered" call: each group of the VPC is asked.
    """
    pages = clients.client("elbv2").get_paginator("describe_target_groups").paginate()
    others = [
        g["TargetGroupArn"]
        for page in pages
        for g in page["TargetGroups"]
        if g.get("VpcId") in vpcs and g.get("TargetType", "instance") == "instance" and g["TargetGroupArn"] not in tier
    ]
    found = {arn: describe(arn) for arn in others}
    return {arn: targets for arn, targets in found.items() if any(t.instance_id in selected for t in targets)}


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


def _instances(instance_ids: list[str], cfg: Settings) -> dict[str, dict[str, Any]]:
    """Running, tagged, reachable instances (their EC2 descriptions), in the order asked; refuse any other."""
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
    return {i: found[i] for i in instance_ids}


def _parameters_text(parameters: dict[str, list[str]]) -> str:
    return "(" + ", ".join(f"{k}={','.join(v)}" for k, v in parameters.items()) + ")" if parameters else ""


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


def resolve_command(request: RestartRequest, cfg: Settings) -> dict[str, Any] | None:
    """The command to send, defaults applied; refuse one the stack does not allow."""
    if request.action == "reboot":
        if request.command is not None:
            raise InvalidInputError('command: only with "action": "command" (the reboot action runs no command)')
        return None
    command = request.command or CommandRequest()
    allowed = [d.strip() for d in cfg.allowed_documents.split(",") if d.strip()]
    if command.document_name not in allowed:
        raise InvalidInputError(
            f"command.documentName: {command.document_name} is not one this stack may run ({', '.join(allowed)}); "
            "add it to the stack's CommandDocuments parameter (IAM allows SendCommand for those documents only)"
        )
    parameters = command.parameters
    if parameters is None:
        parameters = PATCH_PARAMETERS if command.document_name == PATCH_DOCUMENT else {}
    spec: dict[str, Any] = {
        "documentName": command.document_name,
        "parameters": parameters,
        "timeoutSeconds": command.timeout_seconds,
    }
    if command.output_s3_bucket_name:
        spec["outputS3BucketName"] = command.output_s3_bucket_name
        spec["outputS3KeyPrefix"] = command.output_s3_key_prefix or ""
    return spec


def _auto_scaling(
    selected: list[str], batch: int, cfg: Settings
) -> tuple[dict[str, str], dict[str, AutoScalingGroupPlan]]:
    """Which Auto Scaling group each instance is in, and each group's plan; refuse what Standby cannot do.

    A member goes on Standby with ShouldDecrementDesiredCapacity, which cannot take the desired capacity
    below the group's minimum size: a batch that would is refused before anything changes.
    """
    found = autoscaling.memberships(selected)
    problems = [
        f"{i} is {m.lifecycle} in Auto Scaling group {m.group} (only an InService member can go on Standby)"
        for i, m in found.items()
        if m.lifecycle != "InService"
    ]
    if problems:
        raise InstanceNotRestartableError(
            f"{_listed(problems)}: wait until the group has put it in service, or leave it out with instanceIds"
        )
    described = autoscaling.groups([m.group for m in found.values()])
    plans: dict[str, AutoScalingGroupPlan] = {}
    untagged = [
        name
        for name, group in sorted(described.items())
        if {t["Key"]: t["Value"] for t in group.get("Tags", [])}.get(cfg.restart_tag_key) != cfg.restart_tag_value
    ]
    if untagged:
        raise InstanceNotRestartableError(
            f"Auto Scaling group {', '.join(untagged)} lacks the tag {cfg.restart_tag_key}={cfg.restart_tag_value}, "
            "which lets opsflow put its members on Standby (without it the group would replace them while they "
            "reboot): tag the group, or leave its instances out with instanceIds"
        )
    for name, group in sorted(described.items()):
        members = [i for i in selected if found.get(i, autoscaling.Membership("", "")).group == name]
        at_once = min(batch, len(members))
        if group["DesiredCapacity"] - at_once < group["MinSize"]:
            raise UnsafeBatchSizeError(
                f"Auto Scaling group {name} has desired capacity {group['DesiredCapacity']} and minimum size "
                f"{group['MinSize']}: {at_once} of its members on Standby at once would take it below its minimum; "
                f"use a batch size of at most {max(0, group['DesiredCapacity'] - group['MinSize'])}, or lower the "
                "group's MinSize for the run"
            )
        plans[name] = AutoScalingGroupPlan(
            min_size=group["MinSize"],
            desired_capacity=group["DesiredCapacity"],
            max_size=group["MaxSize"],
            health_check_type=group.get("HealthCheckType", "EC2"),
            members=members,
            on_standby_at_most=at_once,
        )
    return {i: m.group for i, m in found.items()}, plans


def _on_standby(instance_ids: list[str]) -> None:
    """A target that is not healthy because someone put it on Standby in its group: say so."""
    standby = sorted(
        {
            f"{i} is on Standby in Auto Scaling group {m.group}"
            for i, m in autoscaling.memberships(sorted(set(instance_ids))).items()
            if m.lifecycle == "Standby"
        }
    )
    if standby:
        raise InstanceNotRestartableError(
            f"{_listed(standby)}, out of its target groups: put it back in service (ExitStandby) or wait for "
            "whoever put it there, then start again"
        )


def _not_healthy(described: dict[str, list[TargetHealth]]) -> None:
    not_healthy = [
        f"{t.instance_id} is {t.state} in {_short(arn)}"
        for arn, ts in described.items()
        for t in ts
        if t.state != HEALTHY
    ]
    total = sum(len(ts) for ts in described.values())
    if not_healthy:
        _on_standby([t.instance_id for ts in described.values() for t in ts if t.state != HEALTHY])
        raise TargetsNotHealthyError(f"{len(not_healthy)} of {total} targets are not healthy: {_listed(not_healthy)}")


def _short(arn: str) -> str:
    """targetgroup/web/0123... -> web"""
    return arn.rsplit(":", 1)[-1].split("/")[1] if "/" in arn else arn


def _order_by_zone(selected: list[str], zone_of: dict[str, str], batch: int) -> list[list[str]]:
    """Batches that never mix zones: each zone's instances in turn, zones in the order they first appear."""
    zones = list(dict.fromkeys(zone_of[i] for i in selected))
    batches = []
    for zone in zones:
        members = [i for i in selected if zone_of[i] == zone]
        batches += [members[i : i + batch] for i in range(0, len(members), batch)]
    return batches


def resumed_request(request: RestartRequest, execution_arn: str, cfg: Settings) -> tuple[RestartRequest, list[str]]:
    """The request that continues ``request.resume_from``: its settings, overridden by the fields given
    now, for the instances it did not finish; and the instances it did. Refuses what cannot be resumed."""
    earlier = str(request.resume_from)
    theirs, mine = resume.state_machine_of(earlier), resume.state_machine_of(execution_arn)
    if theirs != mine:  # checked before asking Step Functions: this stack may describe only its own executions
        raise CannotResumeError(
            f"resumeFrom: {earlier} is an execution of {theirs}, not of this rolling restart {mine}"
        )
    if request.instance_ids is not None:
        raise InvalidInputError(
            "instanceIds: cannot be combined with resumeFrom, which restarts exactly what that run did not finish; "
            "leave instanceIds out, or start a new run with instanceIds and no resumeFrom"
        )
    sfn = clients.client("stepfunctions")
    try:
        described = sfn.describe_execution(executionArn=earlier)
    except sfn.exceptions.ExecutionDoesNotExist as exc:
        raise CannotResumeError(
            f"resumeFrom: there is no execution {earlier} (check the ARN; Step Functions keeps an ended "
            "execution for 90 days)"
        ) from exc
    why = resume.status_refusal(described["status"])
    if why is not None:
        raise CannotResumeError(f"resumeFrom: cannot resume {earlier}: {why}")
    table = RunTable(cfg.table_name)
    run = table.get_run(earlier)
    if run is None:
        raise CannotResumeError(
            f"resumeFrom: {earlier} was refused before it changed anything ({described.get('error')}): "
            "start a new run instead"
        )
    tier = list(json.loads(run["targetGroupArns"])) if run.get("targetGroupArns") else [run["targetGroupArn"]]
    if request.load_balancer_arn or (request.target_group_arns and set(request.target_group_arns) != set(tier)):
        raise CannotResumeError(
            f"resumeFrom: {earlier} restarted the target groups {', '.join(tier)}: leave targetGroupArns and "
            "loadBalancerArn out to continue it"
        )
    if request.target_group_arn and request.target_group_arn not in tier:
        raise CannotResumeError(
            f"resumeFrom: {earlier} restarted target group {run['targetGroupArn']}, not {request.target_group_arn}: "
            "leave targetGroupArn out to continue it"
        )
    if not run.get("closedAt"):
        raise CannotResumeError(
            f"resumeFrom: {earlier} is not cleaned up yet (its alarms, lock or instances it took out are still "
            "being put back by the safety net or the reconciler): try again in a few minutes"
        )
    if run.get("resumedBy"):
        raise CannotResumeError(
            f"resumeFrom: {earlier} was resumed already by {run['resumedBy']}: resume that run instead if it did "
            "not finish (a run is resumed once, so no instance restarts twice)"
        )
    selected = list(json.loads(run["instanceIds"]))
    left = resume.remaining(selected, table.outcomes(earlier))
    if not left:
        raise CannotResumeError(f"resumeFrom: {earlier} restarted every instance it selected: nothing to resume")
    if "settings" not in run:
        raise CannotResumeError(
            f"resumeFrom: {earlier} was recorded without its settings (an earlier version of opsflow): start a "
            f"new run with the same settings and instanceIds {json.dumps(left)}"
        )
    given = request.model_dump(by_alias=True, exclude_unset=True, mode="json")
    merged = resume.merged_settings(json.loads(run["settings"]), given)
    try:
        continued = RestartRequest.model_validate(
            merged | {"targetGroupArns": tier, "instanceIds": left} | {"dryRun": request.dry_run, "resumeFrom": earlier}
        )
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc)) from exc
    return continued, [i for i in selected if i not in left]


def _continues(request: RestartRequest, finished_before: list[str]) -> str:
    if not request.resume_from:
        return ""
    return f"Continues {request.resume_from.rsplit(':', 1)[-1]}, which finished {len(finished_before)} instances. "


def _not_previewed(request: RestartRequest, members: list[str], selected: list[str]) -> str:
    """The patch workflow installs on the previewed instances only: name the tier's others (they joined since)."""
    if request.preview is None or request.resume_from:
        return ""
    left_out = [i for i in members if i not in set(selected)]
    if not left_out:
        return ""
    return (
        f" Not patched, as they joined the tier after the preview was made: {_listed(left_out)}; the next patch "
        "run previews and patches them."
    )


def watched_alarms(request: RestartRequest) -> list[str]:
    """The alarms the run watches, by exact name; refuses the run if one is in ALARM already."""
    if request.stop_on_alarms is None:
        return []
    states = watch.resolve(clients.client("cloudwatch"), request.stop_on_alarms)
    in_alarm = watch.firing(states)
    if in_alarm:
        raise WatchedAlarmFiringError(
            f"watched alarm{'s' if len(in_alarm) > 1 else ''} {', '.join(in_alarm)} already in ALARM: the "
            "application is suffering; nothing was changed. Start the restart once the alarm is OK"
        )
    return list(states)


def plan_restart(request: RestartRequest, execution_arn: str, cfg: Settings) -> RestartRun:  # noqa: PLR0915
    finished_before: list[str] = []
    if request.resume_from:
        request, finished_before = resumed_request(request, execution_arn, cfg)
    command = resolve_command(request, cfg)
    if request.preview is not None and not request.require_approval:
        raise InvalidInputError(
            "preview: shown in the approval mail, so only with requireApproval true (or leave preview out)"
        )
    tier = _tier(request, cfg)
    groups = _target_groups(tier)
    _check_probe_network(request, cfg)
    watched = watched_alarms(request)
    described = {arn: describe(arn) for arn in tier}
    if not any(described.values()):
        raise NoTargetsError(f"{', '.join(tier)}: no registered targets")
    _not_healthy(described)
    members = sorted({t.instance_id for ts in described.values() for t in ts})

    selected = list(request.instance_ids) if request.instance_ids else members
    outside = [i for i in selected if i not in members]
    if outside:
        raise NoTargetsError(f"not registered in {', '.join(tier)}: {', '.join(outside[:10])}")

    size = len(members)
    batch = resolve_batch_size(request.batch_size or cfg.batch_size, size)
    if size - batch < 1:
        raise UnsafeBatchSizeError(
            f"batch size {batch} would take all {size} healthy targets out of service; use at most {size - 1}"
        )
    batch = min(batch, len(selected))
    found = _instances(selected, cfg)
    group_of, auto_scaling_groups = _auto_scaling(selected, batch, cfg)

    # Every other group the selected instances are in must be drained too, so it must be the stack's to change.
    others = _also_registered(set(selected), {f.get("VpcId", "") for f in found.values()}, tier)
    allowed = cfg.allowed()
    refused = [
        f"{t.instance_id} is also registered in {arn}"
        for arn, ts in others.items()
        if allowed and arn not in allowed
        for t in ts
        if t.instance_id in found
    ]
    if refused:
        raise TargetGroupNotAllowedError(
            f"{_listed(refused)}, which this stack may not change, so it would still get requests while it reboots: "
            "add that group to the stack's AllowedTargetGroupArns, or leave the instance out with instanceIds"
        )
    _not_healthy(others)
    groups.update(_target_groups(list(others)))
    described.update(others)

    registrations = {
        i: [
            Registration(target_group_arn=arn, port=t.port)
            for arn, ts in described.items()
            for t in ts
            if t.instance_id == i
        ]
        for i in selected
    }
    group_plans = []
    for arn, ts in described.items():
        healthy = sum(1 for t in ts if t.state == HEALTHY)
        leaving = min(batch, sum(1 for i in selected for r in registrations[i] if r.target_group_arn == arn))
        if healthy - leaving < 1:
            raise UnsafeBatchSizeError(
                f"batch size {batch} would take all {healthy} healthy targets of {arn} out of service; "
                f"use at most {healthy - 1}, or leave some of its instances out"
            )
        group, delay = groups[arn]
        group_plans.append(
            GroupPlan(
                target_group_arn=arn,
                port=group["Port"],
                healthy_targets=healthy,
                floor=healthy - leaving,
                deregistration_delay_seconds=delay,
                in_tier=arn in tier,
            )
        )
    zone_of = {i: found[i].get("Placement", {}).get("AvailabilityZone", "") for i in selected}
    tier_zones: dict[str, list[str]] = {}
    for i in selected:
        tier_zones.setdefault(zone_of[i], []).append(i)
    zone_floors = (
        {zone: len(ids) - min(batch, len(ids)) for zone, ids in tier_zones.items()}
        if request.one_zone_at_a_time
        else {}
    )
    instances = [
        Instance(
            instance_id=i,
            private_ip=found[i].get("PrivateIpAddress", ""),
            zone=zone_of[i],
            registrations=registrations[i],
            auto_scaling_group=group_of.get(i),
        )
        for i in selected
    ]
    if request.one_zone_at_a_time:
        batches = _order_by_zone(selected, zone_of, batch)
        order = {i: n for n, i in enumerate(i for b in batches for i in b)}
        instances.sort(key=lambda inst: order[inst.instance_id])
    else:
        batches = [selected[i : i + batch] for i in range(0, len(selected), batch)]

    health = HealthCheck(
        port=cfg.health_port,
        path=cfg.health_path,
        expected_status=cfg.health_expected_status,
        timeout_seconds=cfg.health_timeout_seconds,
    ).model_copy(update=request.health.model_dump(exclude_none=True) if request.health else {})
    HealthCheck.model_validate(health.model_dump())
    boot = cfg.expected_boot_seconds if request.expected_boot_seconds is None else request.expected_boot_seconds
    # A newly registered target "must pass one health check to be considered healthy" (ALB guide, "Health
    # checks for Application Load Balancer target groups"): HealthyThresholdCount is for unhealthy targets.
    to_healthy = max(g["HealthCheckIntervalSeconds"] for g, _ in groups.values())
    delay = max(d for _, d in groups.values())
    per_instance = delay + boot + to_healthy
    predicted = len(batches) * per_instance
    lock_per_instance = INSTANCE_PATIENCE_SECONDS + boot + to_healthy
    floor = size - batch
    names = ", ".join(_short(a) for a in tier)
    per_group = (
        " (per target group: "
        + ", ".join(f"{_short(g.target_group_arn)} keeps {g.floor} of {g.healthy_targets}" for g in group_plans)
        + ")"
        if len(group_plans) > 1
        else ""
    )
    also = [_short(g.target_group_arn) for g in group_plans if not g.in_tier]
    action = (
        f"reboot and start (about {boot} s, then until the health URL answers)"
        if command is None
        else f"run {command['documentName']} {_parameters_text(command['parameters'])} with SSM and wait for it "
        "(it may reboot the instance), then until the health URL answers"
    )
    summary = _continues(request, finished_before) + (
        f"{'Restart' if command is None else 'Run a command on'} {len(selected)} of {size} targets in "
        f"{names}, {batch} at a time ({len(batches)} batches"
        f"{', one zone at a time' if request.one_zone_at_a_time else ''}); at least {floor} healthy targets keep "
        f"serving{per_group}."
        + (f" Also drained from {', '.join(also)}, where they are registered too." if also else "")
        + "".join(
            f" {len(g.members)} of them are in Auto Scaling group {name}: each goes on Standby before it leaves "
            f"service and back once it answers (desired capacity {g.desired_capacity} lowered by at most "
            f"{g.on_standby_at_most}, never below {g.min_size})."
            for name, g in auto_scaling_groups.items()
        )
        + f" Each instance: drain (up to {delay} s), {action}, {to_healthy} s of health checks. Expected at most "
        f"{predicted // 60} min {predicted % 60} s"
        + ("." if command is None else " plus the command's own time.")
        + _not_previewed(request, members, selected)
    )
    alarms = request.alarms or Selector(namePrefixes=[cfg.alarm_name_prefix] if cfg.alarm_name_prefix else [])
    rules = request.rules or Selector(namePrefixes=[cfg.rule_name_prefix] if cfg.rule_name_prefix else [])
    now = int(timeutil.epoch())
    approval = request.approval_timeout_seconds or cfg.approval_timeout_seconds
    error_budget = request.error_budget or cfg.error_budget
    never_mute = NeverMute(alarms=cfg.never_mute_alarm_names | frozenset(watched), rules=cfg.never_mute_rule_names)
    return RestartRun(
        execution_arn=execution_arn,
        target_group_arn=tier[0],
        target_group_arns=[g.target_group_arn for g in group_plans],
        batch_size=batch,
        elb_poll_seconds=polling.elb_poll_seconds(len(group_plans)),
        floor=floor,
        floors={g.target_group_arn: g.floor for g in group_plans},
        one_zone_at_a_time=request.one_zone_at_a_time,
        zone_floors=zone_floors,
        zones=json.dumps(tier_zones, separators=(",", ":")),
        error_budget=error_budget,
        instances=instances,
        auto_scaling_groups=sorted(auto_scaling_groups),
        health=health,
        expected_boot_seconds=boot,
        alarms=alarms,
        rules=rules,
        dry_run=request.dry_run,
        require_approval=request.require_approval,
        approval_timeout_seconds=approval,
        action=request.action,
        command=command,
        plan=Plan(
            batches=batches,
            healthy_targets=size,
            floor=floor,
            target_groups=group_plans,
            one_zone_at_a_time=request.one_zone_at_a_time,
            zones={zone: len(ids) for zone, ids in tier_zones.items()},
            zone_floors=zone_floors,
            where={
                inst.instance_id: f"{inst.zone}: "
                + ", ".join(f"{_short(r.target_group_arn)}:{r.port}" for r in inst.registrations)
                + (f"; Auto Scaling group {inst.auto_scaling_group}" if inst.auto_scaling_group else "")
                for inst in instances
            },
            auto_scaling_groups=auto_scaling_groups,
            deregistration_delay_seconds=delay,
            seconds_to_healthy_after_boot=to_healthy,
            seconds_per_instance_at_most=per_instance,
            predicted_seconds_at_most=predicted,
            lock_seconds_per_instance=lock_per_instance,
            never_muted=excluded(alarms, rules, never_mute),
            watched_alarms=watched,
            resumed_from=request.resume_from,
            finished_before=finished_before,
            summary=summary,
            note=request.note,
            preview=request.preview,
        ),
        watched_alarms=watched,
        resume_from=request.resume_from,
        settings={
            "oneZoneAtATime": request.one_zone_at_a_time,
            "batchSize": request.batch_size if request.batch_size is not None else cfg.batch_size,
            "errorBudget": error_budget,
            "expectedBootSeconds": boot,
            "health": health.model_dump(by_alias=True),
            "alarms": alarms.model_dump(by_alias=True),
            "rules": rules.model_dump(by_alias=True),
            "stopOnAlarms": request.stop_on_alarms.model_dump(by_alias=True) if request.stop_on_alarms else None,
            "requireApproval": request.require_approval,
            "approvalTimeoutSeconds": approval,
            "action": request.action,
            "command": request.command.model_dump(by_alias=True, exclude_none=True) if request.command else None,
        },
        # Covers the approval wait and the first instance; each instance that starts renews it (target gate).
        lock_expires_at=now + approval + lock_per_instance + LOCK_MARGIN_SECONDS,
        record_expires_at=now + RECORD_DAYS * 86400,
        now=now,
    )


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    planner_event = parse_event(ExecutionEvent, event)
    request = parse_event(RestartRequest, planner_event.input)
    run = plan_restart(request, planner_event.execution_arn, settings())
    logger.info("planned", extra={"plan": run.plan.summary})
    return run.model_dump(by_alias=True, mode="json")
