"""The rolling restart's plan, decided from what the planner read: which instances, how many at a time,
in which order, which capacity each target group and Auto Scaling group keeps, and every refusal.

Pure: plain data in (the request, the stack's settings, what ELB, EC2, Auto Scaling, CloudWatch and the
run table answered), a plan or a refusal out. The planner (functions/restart_planner) reads and calls
these in order; a refusal raises an error whose class name the state machine turns into a Fail state
(opsflow.errors), and nothing has been changed by then.
"""

import json
import math
from dataclasses import dataclass
from typing import Any, NoReturn

from pydantic import ValidationError

from opsflow import polling, resume
from opsflow.arns import execution_name, group_name
from opsflow.autoscaling import Membership
from opsflow.ec2_instances import Ec2Instance
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
from opsflow.executions import Execution
from opsflow.health import HealthCheck
from opsflow.muting import MuteRecord, NeverMute, Selector, excluded
from opsflow.restart_request import (
    PATCH_DOCUMENT,
    PATCH_PARAMETERS,
    CamelModel,
    CommandRequest,
    PlannerSettings,
    PreviewMail,
    RestartRequest,
)
from opsflow.target_groups import ListedGroup, TargetGroup
from opsflow.targets import HEALTHY, Registration, TargetHealth
from opsflow.validation import describe_validation_error
from opsflow.watch import firing

RECORD_DAYS = 90  # run records expire (DynamoDB TTL) after this
# The longest one instance can take, boot and health-check waits aside: every per-instance state's
# retry patience and attempts at their function timeouts (tests/unit/test_restart_planner.py derives
# it from the ASL and checks this bound). The lock is renewed for this long each time an instance starts.
INSTANCE_PATIENCE_SECONDS = 12 * 3600  # the command action's wait (about 2 h) included
LOCK_MARGIN_SECONDS = 3600  # muting, restoring, releasing, and the summary
LISTED_PROBLEMS = 10  # problems a refusal names; the rest are counted


class Instance(CamelModel):
    instance_id: str
    private_ip: str
    zone: str
    registrations: list[Registration]  # every target group it is registered in, with its port there
    auto_scaling_group: str | None = None  # its EC2 Auto Scaling group: on Standby while it restarts


class AutoScalingGroupPlan(CamelModel):
    min_size: int
    desired_capacity: int
    max_size: int
    health_check_type: str
    members: list[str]  # the run's instances in the group
    on_standby_at_most: int  # at once: the desired capacity is lowered by this much at most


class GroupPlan(CamelModel):
    target_group_arn: str
    port: int  # the group's own port (targets may override it)
    healthy_targets: int
    floor: int  # healthy targets it keeps while the run takes instances out
    deregistration_delay_seconds: int
    in_tier: bool  # named by the input; False: one of the tier's instances is also registered there


class Plan(CamelModel):
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


class RestartRun(CamelModel):
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


@dataclass(frozen=True)
class Selection:
    """The tier's registered instances, those the run restarts, and how many at a time."""

    members: list[str]  # every instance registered in the tier, sorted
    selected: list[str]  # the run's instances, in the order asked
    batch: int


def listed(problems: list[str]) -> str:
    """The first problems, and how many more: a refusal stays short enough for a Step Functions Cause."""
    more = len(problems) - LISTED_PROBLEMS
    return "; ".join(problems[:LISTED_PROBLEMS]) + (f" (and {more} more)" if more > 0 else "")


def resolve_batch_size(value: int | str, tier_size: int) -> int:
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        return max(1, math.floor(tier_size * int(value[:-1]) / 100))
    return int(value)


# -- what the input asks for ---------------------------------------------------------------------------
def resolve_command(request: RestartRequest, cfg: PlannerSettings) -> dict[str, Any] | None:
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


def check_preview(request: RestartRequest) -> None:
    if request.preview is not None and not request.require_approval:
        raise InvalidInputError(
            "preview: shown in the approval mail, so only with requireApproval true (or leave preview out)"
        )


def tier(request: RestartRequest, cfg: PlannerSettings, load_balancer_groups: list[str] | None = None) -> list[str]:
    """The target groups the input names (or its load balancer's, or the stack's default), if the stack's.

    ``load_balancer_groups``: the groups the input's load balancer forwards to; None when it does not exist.
    """
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
        if load_balancer_groups is None:
            raise TargetGroupNotFoundError(f"load balancer {request.load_balancer_arn} does not exist")
        if not load_balancer_groups:
            raise NoTargetsError(f"load balancer {request.load_balancer_arn} forwards to no target group")
        arns = list(load_balancer_groups)
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


def usable_target_group(arn: str, group: TargetGroup | None) -> TargetGroup:
    """The group, if it exists and its targets are instances (only those can reboot)."""
    if group is None:
        raise TargetGroupNotFoundError(f"target group {arn} does not exist")
    if group.target_type != "instance":
        raise InvalidInputError(f"target group {arn} has {group.target_type} targets; only instances can reboot")
    return group


def check_probe_network(request: RestartRequest, cfg: PlannerSettings) -> None:
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


def watched_alarms(states: dict[str, str]) -> list[str]:
    """The alarms the run watches (stopOnAlarms resolved, with their states); refuses the run if one is in ALARM."""
    in_alarm = firing(states)
    if in_alarm:
        raise WatchedAlarmFiringError(
            f"watched alarm{'s' if len(in_alarm) > 1 else ''} {', '.join(in_alarm)} already in ALARM: the "
            "application is suffering; nothing was changed. Start the restart once the alarm is OK"
        )
    return list(states)


# -- what the load balancer says -----------------------------------------------------------------------
def check_registered(tier_arns: list[str], described: dict[str, list[TargetHealth]]) -> None:
    if not any(described.values()):
        raise NoTargetsError(f"{', '.join(tier_arns)}: no registered targets")


def not_healthy(described: dict[str, list[TargetHealth]]) -> list[str]:
    """The instances that are a target not healthy in one of these groups."""
    return [t.instance_id for ts in described.values() for t in ts if t.state != HEALTHY]


def refuse_not_healthy(described: dict[str, list[TargetHealth]], memberships: dict[str, Membership]) -> NoReturn:
    """Refuse a tier with targets not healthy, saying so when someone put them on Standby in their group.

    ``memberships``: the Auto Scaling groups of the instances :func:`not_healthy` names.
    """
    standby = sorted(
        {
            f"{i} is on Standby in Auto Scaling group {m.group}"
            for i, m in memberships.items()
            if m.lifecycle == "Standby"
        }
    )
    if standby:
        raise InstanceNotRestartableError(
            f"{listed(standby)}, out of its target groups: put it back in service (ExitStandby) or wait for "
            "whoever put it there, then start again"
        )
    problems = [
        f"{t.instance_id} is {t.state} in {group_name(arn)}"
        for arn, ts in described.items()
        for t in ts
        if t.state != HEALTHY
    ]
    total = sum(len(ts) for ts in described.values())
    raise TargetsNotHealthyError(f"{len(problems)} of {total} targets are not healthy: {listed(problems)}")


def select(
    request: RestartRequest, cfg: PlannerSettings, tier_arns: list[str], described: dict[str, list[TargetHealth]]
) -> Selection:
    """The instances to restart and the batch size; refuse instances outside the tier and a batch that
    would take the whole tier out of service."""
    members = sorted({t.instance_id for ts in described.values() for t in ts})
    selected = list(request.instance_ids) if request.instance_ids else members
    outside = [i for i in selected if i not in members]
    if outside:
        raise NoTargetsError(f"not registered in {', '.join(tier_arns)}: {', '.join(outside[:10])}")
    size = len(members)
    batch = resolve_batch_size(request.batch_size or cfg.batch_size, size)
    if size - batch < 1:
        raise UnsafeBatchSizeError(
            f"batch size {batch} would take all {size} healthy targets out of service; use at most {size - 1}"
        )
    return Selection(members=members, selected=selected, batch=min(batch, len(selected)))


# -- what EC2 says -------------------------------------------------------------------------------------
def network_problems(inst: Ec2Instance, cfg: PlannerSettings) -> list[str]:
    """Why the probing functions could not reach this instance's health URL (empty: they can)."""
    problems = []
    if inst.vpc_id != cfg.probe_vpc_id:
        problems.append(f"{inst.instance_id} is in {inst.vpc_id or None}, not in the stack's VpcId {cfg.probe_vpc_id}")
    if cfg.probe_security_group_id not in inst.security_group_ids:
        problems.append(
            f"{inst.instance_id} is not in the security group {cfg.probe_security_group_id} (InstanceSecurityGroupId), "
            "which is the one that lets opsflow's functions in: add it to the instance"
        )
    return problems


def check_instances(selected: list[str], found: dict[str, Ec2Instance], cfg: PlannerSettings) -> None:
    """Refuse any instance that does not exist, is not running, lacks the restart tag or is out of the probes' reach."""
    problems = []
    for instance_id in selected:
        inst = found.get(instance_id)
        if inst is None:
            problems.append(f"{instance_id} does not exist")
            continue
        if inst.state != "running":
            problems.append(f"{instance_id} is {inst.state}")
        if inst.tags.get(cfg.restart_tag_key) != cfg.restart_tag_value:
            problems.append(f"{instance_id} lacks the tag {cfg.restart_tag_key}={cfg.restart_tag_value}")
    if problems:
        raise InstanceNotRestartableError(listed(problems))
    unreachable = [p for i in selected for p in network_problems(found[i], cfg)]
    if unreachable:
        raise HealthUrlUnreachableError(listed(unreachable))


# -- what Auto Scaling says ----------------------------------------------------------------------------
def check_in_service(memberships: dict[str, Membership]) -> None:
    """Only an InService member of an Auto Scaling group can go on Standby for its restart."""
    problems = [
        f"{i} is {m.lifecycle} in Auto Scaling group {m.group} (only an InService member can go on Standby)"
        for i, m in memberships.items()
        if m.lifecycle != "InService"
    ]
    if problems:
        raise InstanceNotRestartableError(
            f"{listed(problems)}: wait until the group has put it in service, or leave it out with instanceIds"
        )


def auto_scaling_plans(
    selection: Selection,
    memberships: dict[str, Membership],
    groups: dict[str, dict[str, Any]],
    cfg: PlannerSettings,
) -> dict[str, AutoScalingGroupPlan]:
    """Each Auto Scaling group's plan (``groups``: DescribeAutoScalingGroups' descriptions by name); refuse
    what Standby cannot do.

    A member goes on Standby with ShouldDecrementDesiredCapacity, which cannot take the desired capacity
    below the group's minimum size: a batch that would is refused before anything changes.
    """
    untagged = [
        name
        for name, group in sorted(groups.items())
        if {t["Key"]: t["Value"] for t in group.get("Tags", [])}.get(cfg.restart_tag_key) != cfg.restart_tag_value
    ]
    if untagged:
        raise InstanceNotRestartableError(
            f"Auto Scaling group {', '.join(untagged)} lacks the tag {cfg.restart_tag_key}={cfg.restart_tag_value}, "
            "which lets opsflow put its members on Standby (without it the group would replace them while they "
            "reboot): tag the group, or leave its instances out with instanceIds"
        )
    plans: dict[str, AutoScalingGroupPlan] = {}
    for name, group in sorted(groups.items()):
        members = [i for i in selection.selected if i in memberships and memberships[i].group == name]
        at_once = min(selection.batch, len(members))
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
    return plans


# -- the other target groups the instances are in -----------------------------------------------------
def candidate_groups(
    listed_groups: list[ListedGroup], instances: dict[str, Ec2Instance], tier_arns: list[str]
) -> list[str]:
    """Target groups outside the tier, of instances, in the instances' VPCs: where they may also be registered.

    ELB has no "where is this instance registered" call: each such group is asked.
    """
    vpcs = {inst.vpc_id for inst in instances.values()}
    return [g.arn for g in listed_groups if g.vpc_id in vpcs and g.target_type == "instance" and g.arn not in tier_arns]


def also_registered(
    selected: list[str], described: dict[str, list[TargetHealth]], cfg: PlannerSettings
) -> dict[str, list[TargetHealth]]:
    """The groups among ``described`` that a selected instance is registered in; refuse one the stack may not
    change: the instance would still get requests from it while it reboots."""
    chosen = set(selected)
    others = {arn: ts for arn, ts in described.items() if any(t.instance_id in chosen for t in ts)}
    allowed = cfg.allowed()
    refused = [
        f"{t.instance_id} is also registered in {arn}"
        for arn, ts in others.items()
        if allowed and arn not in allowed
        for t in ts
        if t.instance_id in chosen
    ]
    if refused:
        raise TargetGroupNotAllowedError(
            f"{listed(refused)}, which this stack may not change, so it would still get requests while it reboots: "
            "add that group to the stack's AllowedTargetGroupArns, or leave the instance out with instanceIds"
        )
    return others


# -- resuming an earlier run ---------------------------------------------------------------------------
def check_resume_request(request: RestartRequest, execution_arn: str) -> None:
    """What can be refused before asking Step Functions: this stack may describe only its own executions."""
    earlier = str(request.resume_from)
    theirs, mine = resume.state_machine_of(earlier), resume.state_machine_of(execution_arn)
    if theirs != mine:
        raise CannotResumeError(
            f"resumeFrom: {earlier} is an execution of {theirs}, not of this rolling restart {mine}"
        )
    if request.instance_ids is not None:
        raise InvalidInputError(
            "instanceIds: cannot be combined with resumeFrom, which restarts exactly what that run did not finish; "
            "leave instanceIds out, or start a new run with instanceIds and no resumeFrom"
        )


def check_resumable(earlier: str, execution: Execution | None) -> Execution:
    if execution is None:
        raise CannotResumeError(
            f"resumeFrom: there is no execution {earlier} (check the ARN; Step Functions keeps an ended "
            "execution for 90 days)"
        )
    why = resume.status_refusal(execution.status)
    if why is not None:
        raise CannotResumeError(f"resumeFrom: cannot resume {earlier}: {why}")
    return execution


@dataclass(frozen=True)
class EarlierRun:
    """The run ``resumeFrom`` names, as its record in the run table has it."""

    record: dict[str, Any]
    tier: list[str]  # its target groups
    selected: list[str]  # the instances it selected


def earlier_run(request: RestartRequest, execution: Execution, run: dict[str, Any] | None) -> EarlierRun:
    """The earlier run's record, target groups and selected instances; refuse a run that cannot be
    continued (refused at planning, another tier, not cleaned up yet, resumed already)."""
    earlier = str(request.resume_from)
    if run is None:
        raise CannotResumeError(
            f"resumeFrom: {earlier} was refused before it changed anything ({execution.error}): start a new run instead"
        )
    tier_arns = list(json.loads(run["targetGroupArns"])) if run.get("targetGroupArns") else [run["targetGroupArn"]]
    if request.load_balancer_arn or (request.target_group_arns and set(request.target_group_arns) != set(tier_arns)):
        raise CannotResumeError(
            f"resumeFrom: {earlier} restarted the target groups {', '.join(tier_arns)}: leave targetGroupArns and "
            "loadBalancerArn out to continue it"
        )
    if request.target_group_arn and request.target_group_arn not in tier_arns:
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
    return EarlierRun(run, tier_arns, list(json.loads(run["instanceIds"])))


def continued_request(
    request: RestartRequest, earlier_run: EarlierRun, outcomes: list[dict[str, Any]]
) -> tuple[RestartRequest, list[str]]:
    """The request that continues the earlier run: its settings, overridden by the fields given now, for the
    instances it did not finish (``outcomes``: its instances' items in the run table); and those it did."""
    earlier, run, selected = str(request.resume_from), earlier_run.record, earlier_run.selected
    left = resume.remaining(selected, outcomes)
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
            merged
            | {"targetGroupArns": earlier_run.tier, "instanceIds": left}
            | {"dryRun": request.dry_run, "resumeFrom": earlier}
        )
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc)) from exc
    return continued, [i for i in selected if i not in left]


# -- the plan --------------------------------------------------------------------------------------------
def order_by_zone(selected: list[str], zone_of: dict[str, str], batch: int) -> list[list[str]]:
    """Batches that never mix zones: each zone's instances in turn, zones in the order they first appear."""
    zones = list(dict.fromkeys(zone_of[i] for i in selected))
    batches = []
    for zone in zones:
        members = [i for i in selected if zone_of[i] == zone]
        batches += [members[i : i + batch] for i in range(0, len(members), batch)]
    return batches


def group_plans(
    batch: int,
    registrations: dict[str, list[Registration]],
    described: dict[str, list[TargetHealth]],
    groups: dict[str, TargetGroup],
    tier_arns: list[str],
) -> list[GroupPlan]:
    """Each target group's floor: its healthy targets less those the run takes out of it at once; refuse a
    batch that would take all of a group's healthy targets out of service."""
    plans = []
    for arn, ts in described.items():
        healthy = sum(1 for t in ts if t.state == HEALTHY)
        leaving = min(batch, sum(1 for regs in registrations.values() for r in regs if r.target_group_arn == arn))
        if healthy - leaving < 1:
            raise UnsafeBatchSizeError(
                f"batch size {batch} would take all {healthy} healthy targets of {arn} out of service; "
                f"use at most {healthy - 1}, or leave some of its instances out"
            )
        plans.append(
            GroupPlan(
                target_group_arn=arn,
                port=groups[arn].port,
                healthy_targets=healthy,
                floor=healthy - leaving,
                deregistration_delay_seconds=groups[arn].deregistration_delay_seconds,
                in_tier=arn in tier_arns,
            )
        )
    return plans


def _parameters_text(parameters: dict[str, list[str]]) -> str:
    return "(" + ", ".join(f"{k}={','.join(v)}" for k, v in parameters.items()) + ")" if parameters else ""


def _not_previewed(request: RestartRequest, members: list[str], selected: list[str]) -> str:
    """The patch workflow installs on the previewed instances only: name the tier's others (they joined since)."""
    if request.preview is None or request.resume_from:
        return ""
    left_out = [i for i in members if i not in set(selected)]
    if not left_out:
        return ""
    return (
        f" Not patched, as they joined the tier after the preview was made: {listed(left_out)}; the next patch "
        "run previews and patches them."
    )


def _continues(request: RestartRequest, finished_before: list[str]) -> str:
    if not request.resume_from:
        return ""
    return f"Continues {execution_name(request.resume_from)}, which finished {len(finished_before)} instances. "


@dataclass(frozen=True)
class Reads:
    """What the planner read and checked before planning: the facts the plan is made of."""

    tier: list[str]  # the target groups the input names, in order
    groups: dict[str, TargetGroup]  # every group the run changes: the tier's and the others its instances are in
    described: dict[str, list[TargetHealth]]  # each of those groups' targets
    selection: Selection
    instances: dict[str, Ec2Instance]  # the selected instances
    memberships: dict[str, Membership]  # the selected instances' Auto Scaling groups
    auto_scaling_groups: dict[str, AutoScalingGroupPlan]
    command: dict[str, Any] | None
    watched: list[str]
    finished_before: list[str]  # resumeFrom: what the earlier run finished


def plan_restart(
    request: RestartRequest, execution_arn: str, cfg: PlannerSettings, reads: Reads, now: int
) -> RestartRun:
    """The run the state machine executes: batches, floors, zones, timings and the plan people read."""
    selected, batch, size = reads.selection.selected, reads.selection.batch, len(reads.selection.members)
    tier_arns, command, auto_scaling_groups = reads.tier, reads.command, reads.auto_scaling_groups
    registrations = {
        i: [
            Registration(target_group_arn=arn, port=t.port)
            for arn, ts in reads.described.items()
            for t in ts
            if t.instance_id == i
        ]
        for i in selected
    }
    plans = group_plans(batch, registrations, reads.described, reads.groups, tier_arns)
    zone_of = {i: reads.instances[i].zone for i in selected}
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
            private_ip=reads.instances[i].private_ip,
            zone=zone_of[i],
            registrations=registrations[i],
            auto_scaling_group=reads.memberships[i].group if i in reads.memberships else None,
        )
        for i in selected
    ]
    if request.one_zone_at_a_time:
        batches = order_by_zone(selected, zone_of, batch)
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
    to_healthy = max(g.health_check_interval_seconds for g in reads.groups.values())
    delay = max(g.deregistration_delay_seconds for g in reads.groups.values())
    per_instance = delay + boot + to_healthy
    predicted = len(batches) * per_instance
    lock_per_instance = INSTANCE_PATIENCE_SECONDS + boot + to_healthy
    floor = size - batch
    names = ", ".join(group_name(a) for a in tier_arns)
    per_group = (
        " (per target group: "
        + ", ".join(f"{group_name(g.target_group_arn)} keeps {g.floor} of {g.healthy_targets}" for g in plans)
        + ")"
        if len(plans) > 1
        else ""
    )
    also = [group_name(g.target_group_arn) for g in plans if not g.in_tier]
    action = (
        f"reboot and start (about {boot} s, then until the health URL answers)"
        if command is None
        else f"run {command['documentName']} {_parameters_text(command['parameters'])} with SSM and wait for it "
        "(it may reboot the instance), then until the health URL answers"
    )
    summary = _continues(request, reads.finished_before) + (
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
        + _not_previewed(request, reads.selection.members, selected)
    )
    alarms = request.alarms or Selector(namePrefixes=[cfg.alarm_name_prefix] if cfg.alarm_name_prefix else [])
    rules = request.rules or Selector(namePrefixes=[cfg.rule_name_prefix] if cfg.rule_name_prefix else [])
    approval = request.approval_timeout_seconds or cfg.approval_timeout_seconds
    error_budget = request.error_budget or cfg.error_budget
    never_mute = NeverMute(
        alarms=cfg.never_mute_alarm_names | frozenset(reads.watched), rules=cfg.never_mute_rule_names
    )
    return RestartRun(
        execution_arn=execution_arn,
        target_group_arn=tier_arns[0],
        target_group_arns=[g.target_group_arn for g in plans],
        batch_size=batch,
        elb_poll_seconds=polling.elb_poll_seconds(len(plans)),
        floor=floor,
        floors={g.target_group_arn: g.floor for g in plans},
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
            target_groups=plans,
            one_zone_at_a_time=request.one_zone_at_a_time,
            zones={zone: len(ids) for zone, ids in tier_zones.items()},
            zone_floors=zone_floors,
            where={
                inst.instance_id: f"{inst.zone}: "
                + ", ".join(f"{group_name(r.target_group_arn)}:{r.port}" for r in inst.registrations)
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
            watched_alarms=reads.watched,
            resumed_from=request.resume_from,
            finished_before=reads.finished_before,
            summary=summary,
            note=request.note,
            preview=request.preview,
        ),
        watched_alarms=reads.watched,
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
