"""Validate a rolling-restart request and plan it, before anything is changed.

Reads what the plan needs (ELB, EC2, Auto Scaling, CloudWatch; for ``resumeFrom`` the earlier run)
and hands each answer to opsflow.restart_plan, which decides: a refusal raises an error whose class
name the state machine turns into a Fail state (see opsflow.errors); a dry run returns the plan and
stops there. Each read comes after the checks that could refuse without it.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from opsflow import (
    autoscaling,
    clients,
    ec2_instances,
    executions,
    restart_plan,
    target_groups,
    targets,
    timeutil,
    watch,
)
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.restart_plan import Reads, RestartRun
from opsflow.restart_request import PlannerSettings, RestartRequest
from opsflow.runs import RunTable
from opsflow.settings import cached_settings
from opsflow.targets import TargetHealth
from opsflow.validation import ExecutionEvent, parse_event

settings = cached_settings(PlannerSettings)


def resumed_request(
    request: RestartRequest, execution_arn: str, cfg: PlannerSettings
) -> tuple[RestartRequest, list[str]]:
    """The request that continues ``request.resume_from``, and the instances that run finished."""
    restart_plan.check_resume_request(request, execution_arn)
    earlier = str(request.resume_from)
    execution = restart_plan.check_resumable(earlier, executions.describe(earlier))
    table = RunTable(cfg.table_name)
    run = restart_plan.earlier_run(request, execution, table.get_run(earlier))
    return restart_plan.continued_request(request, run, table.outcomes(earlier))


def usable_target_groups(arns: list[str]) -> dict[str, target_groups.TargetGroup]:
    return {arn: restart_plan.usable_target_group(arn, target_groups.describe(arn)) for arn in arns}


def refuse_not_healthy(described: dict[str, list[TargetHealth]]) -> None:
    sick = restart_plan.not_healthy(described)
    if sick:
        restart_plan.refuse_not_healthy(described, autoscaling.memberships(sorted(set(sick))))


def plan(request: RestartRequest, execution_arn: str, cfg: PlannerSettings) -> RestartRun:
    finished_before: list[str] = []
    if request.resume_from:
        request, finished_before = resumed_request(request, execution_arn, cfg)
    command = restart_plan.resolve_command(request, cfg)
    restart_plan.check_preview(request)
    balancer = request.load_balancer_arn
    tier = restart_plan.tier(request, cfg, target_groups.of_load_balancer(balancer) if balancer else None)
    groups = usable_target_groups(tier)
    restart_plan.check_probe_network(request, cfg)
    watching = request.stop_on_alarms
    watched = restart_plan.watched_alarms(watch.resolve(clients.client("cloudwatch"), watching)) if watching else []
    described = {arn: targets.describe(arn) for arn in tier}
    restart_plan.check_registered(tier, described)
    refuse_not_healthy(described)
    selection = restart_plan.select(request, cfg, tier, described)

    instances = ec2_instances.describe(selection.selected)
    restart_plan.check_instances(selection.selected, instances, cfg)
    instances = {i: instances[i] for i in selection.selected}
    memberships = autoscaling.memberships(selection.selected)
    restart_plan.check_in_service(memberships)
    scaling_groups = autoscaling.groups([m.group for m in memberships.values()])
    auto_scaling_plans = restart_plan.auto_scaling_plans(selection, memberships, scaling_groups, cfg)

    # Every other group the selected instances are in must be drained too, so it must be the stack's to change.
    candidates = restart_plan.candidate_groups(target_groups.every_group(), instances, tier)
    others = restart_plan.also_registered(selection.selected, {arn: targets.describe(arn) for arn in candidates}, cfg)
    refuse_not_healthy(others)
    groups.update(usable_target_groups(list(others)))
    described.update(others)

    reads = Reads(
        tier=tier,
        groups=groups,
        described=described,
        selection=selection,
        instances=instances,
        memberships=memberships,
        auto_scaling_groups=auto_scaling_plans,
        command=command,
        watched=watched,
        finished_before=finished_before,
    )
    return restart_plan.plan_restart(request, execution_arn, cfg, reads, int(timeutil.epoch()))


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    planner_event = parse_event(ExecutionEvent, event)
    request = parse_event(RestartRequest, planner_event.input)
    run = plan(request, planner_event.execution_arn, settings())
    logger.info("planned", extra={"plan": run.plan.summary})
    return run.model_dump(by_alias=True, mode="json")
