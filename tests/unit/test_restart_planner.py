"""The rolling restart's planner: its bounds agree with the state machine it plans for, and its decisions on
plain data (what a malformed input is told, every refusal and its message, the plan: batches, floors,
zones, Auto Scaling groups, resume). No AWS, no sandbox."""

import json
from typing import Any

import pytest

from opsflow import restart_plan
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
from opsflow.restart_plan import EarlierRun, Reads, Selection
from opsflow.restart_request import PlannerSettings, RestartRequest
from opsflow.settings import load_settings
from opsflow.target_groups import ListedGroup, TargetGroup
from opsflow.targets import TargetHealth
from opsflow.validation import ExecutionEvent, parse_event
from template_model import Stack, load_template
from tools.asl import definitions, states

ACCOUNT = "arn:aws:elasticloadbalancing:eu-west-1:123456789012"
WEB = f"{ACCOUNT}:targetgroup/web/0123456789abcdef"
API = f"{ACCOUNT}:targetgroup/api/0123456789abcdef"
BALANCER = f"{ACCOUNT}:loadbalancer/app/front/0123456789abcdef"
MACHINE = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart"
THIS_RUN = f"{MACHINE}:run-2"
EARLIER = f"{MACHINE}:run-1"
IDS = [f"i-{n:017x}" for n in range(1, 13)]
STACK = {
    "TABLE_NAME": "runs",
    "NEVER_MUTE_ALARM_NAMES": "opsflow-executions-ended-badly",
    "NEVER_MUTE_RULE_NAMES": "opsflow-safety-net",
    "TARGET_GROUP_ARN": WEB,
    "RESTART_TAG_KEY": "opsflow:tier",
    "RESTART_TAG_VALUE": "web",
    "DEFAULT_BATCH_SIZE": "1",
    "DEFAULT_ERROR_BUDGET": "1",
    "EXPECTED_BOOT_SECONDS": "45",
    "HEALTH_PORT": "8080",
    "HEALTH_PATH": "/health",
    "HEALTH_EXPECTED_STATUS": "200",
    "HEALTH_TIMEOUT_SECONDS": "2",
    "APPROVAL_TIMEOUT_SECONDS": "3600",
    "HEALTH_PROBE_VPC_ID": "vpc-1",
    "HEALTH_PROBE_SECURITY_GROUP_ID": "sg-probe",
}


def stack(**env: str) -> PlannerSettings:
    """The planner's settings as a deployed stack's environment gives them."""
    return load_settings(PlannerSettings, STACK | env)


def request(**fields: Any) -> RestartRequest:
    return parse_event(RestartRequest, fields)


def healthy(*ids: str, port: int = 8080) -> list[TargetHealth]:
    return [TargetHealth(i, port, "healthy") for i in ids]


def group(arn: str = WEB, interval: int = 10, delay: int = 30) -> TargetGroup:
    return TargetGroup(arn, "instance", "vpc-1", 8080, interval, delay)


def ec2(instance_id: str, zone: str = "eu-west-1a", **overrides: Any) -> Ec2Instance:
    fields: dict[str, Any] = {
        "instance_id": instance_id,
        "state": "running",
        "tags": {"opsflow:tier": "web"},
        "vpc_id": "vpc-1",
        "security_group_ids": frozenset({"sg-probe"}),
        "zone": zone,
        "private_ip": f"10.0.0.{int(instance_id[-2:], 16)}",
    }
    return Ec2Instance(**(fields | overrides))


# -- the bounds --------------------------------------------------------------------------------------------
SDK_CALL_SECONDS = 60  # an SDK integration call: botocore's read timeout with its retries, generously


def _retry_wait(retrier: dict[str, Any]) -> float:
    """The longest a retrier waits in all (no jitter assumed shorter than the capped interval)."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return float(sum(min(interval * rate**k, cap) for k in range(retrier.get("MaxAttempts", 3))))


def retry_patience(state: dict[str, Any]) -> float:
    """How long a state keeps asking about its first ("not yet") error: the waits between its retries,
    plus what every attempt itself keeps asking (its handler's ``waitSeconds``)."""
    retrier = state["Retry"][0]
    asking = float(state.get("Parameters", {}).get("Payload", {}).get("waitSeconds", 0))
    attempts = 1 + int(retrier.get("MaxAttempts", 3))
    return _retry_wait(retrier) + attempts * asking


def per_instance_patience() -> float:
    """Every per-instance Task at its worst: all retry waits, every attempt at its timeout."""
    template = Stack(load_template(), {"ApprovalByEmail": "false"})
    functions = template.resources("AWS::Serverless::Function")
    machine = definitions()["rolling_restart"]
    processor = machine["States"]["Restart the instances a batch at a time"]["ItemProcessor"]
    total = 0.0
    for _, state in states(processor):
        if state["Type"] != "Task":
            continue
        function = json.dumps(state.get("Parameters", {}))
        timeouts = [int(f["Properties"].get("Timeout", 3)) for k, f in functions.items() if f"${{{k}Arn}}" in function]
        attempt = timeouts[0] if timeouts else SDK_CALL_SECONDS
        retriers = state.get("Retry", [])
        attempts = 1 + sum(r.get("MaxAttempts", 3) for r in retriers)
        total += sum(_retry_wait(r) for r in retriers) + attempts * attempt
    return total


def test_the_lock_outlives_the_slowest_instance_the_workflow_allows() -> None:
    assert per_instance_patience() <= restart_plan.INSTANCE_PATIENCE_SECONDS


# -- the input -------------------------------------------------------------------------------------------
MALFORMED = [
    ({"batchSize": 0}, "batchSize"),
    ({"batchSize": "0%"}, "batchSize"),
    ({"batchSize": "three"}, "batchSize"),
    ({"batchSize": 2.5}, "batchSize"),
    ({"targetGroupArn": "web"}, "targetGroupArn"),
    ({"loadBalancerArn": WEB}, "loadBalancerArn"),
    ({"targetGroupArns": []}, "targetGroupArns"),
    ({"instanceIds": ["web-1"]}, "instanceIds"),
    ({"instanceIds": []}, "instanceIds"),
    ({"instanceIds": [IDS[0], IDS[0]]}, "unique"),
    ({"dryRun": "yes"}, "dryRun"),
    ({"health": {"port": 70000}}, "health.port"),
    ({"health": {"path": "health"}}, "health.path"),
    ({"expectedBootSeconds": -5}, "expectedBootSeconds"),
    ({"approvalTimeoutSeconds": 5}, "approvalTimeoutSeconds"),
    ({"errorBudget": 0}, "errorBudget"),
    ({"alarms": {"namePrefix": "web"}}, "alarms.namePrefix"),
    ({"batchsize": 2}, "batchsize"),
    ({"stopOnAlarms": {"names": [""]}}, "stopOnAlarms.names.0"),
    ({"stopOnAlarms": {"name": ["web-5xx-errors"]}}, "stopOnAlarms.name"),
    ({"resumeFrom": "arn:aws:states:eu-west-1:123456789012:stateMachine:x"}, "resumeFrom"),
    ({"action": "terminate"}, "action"),
    ({"command": {"documentName": "x"}}, "command.documentName"),
    ({"preview": {"findings": "1 patch", "bucket": "b", "key": "k"}}, "preview.bucket"),
]


@pytest.mark.parametrize(("payload", "named"), MALFORMED, ids=[m[1] + str(i) for i, m in enumerate(MALFORMED)])
def test_a_malformed_input_is_refused_naming_the_field(payload: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidInputError, match=named.replace(".", r"\.")):
        parse_event(RestartRequest, payload)


def test_an_input_that_is_not_an_object_is_refused() -> None:
    event = parse_event(ExecutionEvent, {"input": [IDS[0]], "executionArn": THIS_RUN})
    with pytest.raises(InvalidInputError, match="input"):
        parse_event(RestartRequest, event.input)


def test_every_field_is_optional_and_camel_case() -> None:
    given = request(batchSize="25%", oneZoneAtATime=True, health={"expectedStatus": 204})
    assert given.batch_size == "25%" and given.one_zone_at_a_time
    assert given.health is not None and given.health.expected_status == 204
    assert request() == RestartRequest()


@pytest.mark.parametrize(("value", "tier_size", "batch"), [(3, 12, 3), ("3", 12, 3), ("25%", 12, 3), ("10%", 4, 1)])
def test_a_batch_size_is_a_count_or_a_share_of_the_tier_rounded_down_and_at_least_one(
    value: int | str, tier_size: int, batch: int
) -> None:
    assert restart_plan.resolve_batch_size(value, tier_size) == batch


def test_the_command_action_defaults_to_installing_patches_and_rebooting_only_if_needed() -> None:
    command = restart_plan.resolve_command(request(action="command"), stack())
    assert command == {
        "documentName": "AWS-RunPatchBaseline",
        "parameters": {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]},
        "timeoutSeconds": 600,
    }
    assert restart_plan.resolve_command(request(), stack()) is None


def test_a_command_the_stack_does_not_allow_or_without_the_command_action_is_refused() -> None:
    other = {"documentName": "AWS-RunShellScript"}
    with pytest.raises(InvalidInputError, match="CommandDocuments"):
        restart_plan.resolve_command(request(action="command", command=other), stack())
    with pytest.raises(InvalidInputError, match='only with "action": "command"'):
        restart_plan.resolve_command(request(command=other), stack())
    allowed = stack(ALLOWED_COMMAND_DOCUMENTS="AWS-RunPatchBaseline,AWS-RunShellScript")
    command = restart_plan.resolve_command(request(action="command", command=other), allowed)
    assert command is not None and command["parameters"] == {}


def test_a_preview_needs_an_approval_to_be_shown_in() -> None:
    preview = {"findings": "1 patch on 2 servers", "bucket": "opsflow-data", "key": "patch-preview/run/x.txt"}
    with pytest.raises(InvalidInputError, match="only with requireApproval true"):
        restart_plan.check_preview(request(action="command", preview=preview))
    restart_plan.check_preview(request(action="command", preview=preview, requireApproval=True))


# -- which target groups ---------------------------------------------------------------------------------
def test_the_tier_is_the_named_groups_the_load_balancer_s_or_the_stack_s_default() -> None:
    anywhere = stack(TARGET_GROUP_ARN="")
    assert restart_plan.tier(request(), stack()) == [WEB]
    assert restart_plan.tier(request(targetGroupArns=[API, WEB, API]), anywhere) == [API, WEB]
    assert restart_plan.tier(request(loadBalancerArn=BALANCER), anywhere, [WEB, API]) == [WEB, API]


@pytest.mark.parametrize(
    ("fields", "balancer_groups", "error", "message"),
    [
        ({"targetGroupArn": WEB, "targetGroupArns": [WEB]}, None, InvalidInputError, "give only one of"),
        ({}, None, InvalidInputError, "targetGroupArn: not given, and the stack has no default target group"),
        ({"loadBalancerArn": BALANCER}, None, TargetGroupNotFoundError, f"load balancer {BALANCER} does not exist"),
        ({"loadBalancerArn": BALANCER}, [], NoTargetsError, "forwards to no target group"),
    ],
)
def test_a_tier_named_twice_not_at_all_or_behind_a_missing_load_balancer_is_refused(
    fields: dict[str, Any], balancer_groups: list[str] | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        restart_plan.tier(request(**fields), stack(TARGET_GROUP_ARN=""), balancer_groups)


def test_a_group_the_stack_may_not_restart_is_refused_naming_the_parameter() -> None:
    with pytest.raises(
        TargetGroupNotAllowedError, match=f"may only restart {WEB}, not {API}: .*AllowedTargetGroupArns"
    ):
        restart_plan.tier(request(targetGroupArn=API), stack())
    assert restart_plan.tier(request(targetGroupArn=API), stack(ALLOWED_TARGET_GROUP_ARNS=f" {API} ,")) == [API]


def test_a_missing_group_or_one_whose_targets_are_not_instances_is_refused() -> None:
    with pytest.raises(TargetGroupNotFoundError, match=f"target group {WEB} does not exist"):
        restart_plan.usable_target_group(WEB, None)
    with pytest.raises(InvalidInputError, match="has ip targets; only instances can reboot"):
        restart_plan.usable_target_group(WEB, TargetGroup(WEB, "ip", "vpc-1", 80, 10, 30))


def test_without_vpc_settings_or_on_another_health_port_the_probes_cannot_reach_the_instances() -> None:
    with pytest.raises(HealthUrlUnreachableError, match=r"VpcId, HealthCheckSubnetIds .* InstanceSecurityGroupId"):
        restart_plan.check_probe_network(request(), stack(HEALTH_PROBE_VPC_ID=""))
    with pytest.raises(HealthUrlUnreachableError, match=r"redeploy with HealthPort=9090, or leave health\.port out"):
        restart_plan.check_probe_network(request(health={"port": 9090}), stack())
    restart_plan.check_probe_network(request(health={"port": 8080, "path": "/up"}), stack())


def test_a_watched_alarm_already_firing_refuses_the_run() -> None:
    assert restart_plan.watched_alarms({"web-5xx": "OK", "web-latency": "INSUFFICIENT_DATA"}) == [
        "web-5xx",
        "web-latency",
    ]
    with pytest.raises(WatchedAlarmFiringError, match="watched alarm web-5xx already in ALARM"):
        restart_plan.watched_alarms({"web-5xx": "ALARM", "web-latency": "OK"})
    with pytest.raises(WatchedAlarmFiringError, match="watched alarms a, b already in ALARM"):
        restart_plan.watched_alarms({"b": "ALARM", "a": "ALARM"})


# -- the targets -----------------------------------------------------------------------------------------
def test_a_tier_with_no_target_is_refused() -> None:
    with pytest.raises(NoTargetsError, match=f"{WEB}, {API}: no registered targets"):
        restart_plan.check_registered([WEB, API], {WEB: [], API: []})


def test_targets_not_healthy_are_counted_and_named() -> None:
    described = {WEB: [*healthy(*IDS[:2]), TargetHealth(IDS[2], 8080, "unhealthy")]}
    assert restart_plan.not_healthy(described) == [IDS[2]]
    with pytest.raises(TargetsNotHealthyError, match=f"1 of 3 targets are not healthy: {IDS[2]} is unhealthy in web"):
        restart_plan.refuse_not_healthy(described, {})


def test_a_target_someone_put_on_standby_is_refused_saying_so() -> None:
    described = {WEB: [*healthy(IDS[0]), TargetHealth(IDS[1], 8080, "unused")]}
    with pytest.raises(InstanceNotRestartableError, match=f"{IDS[1]} is on Standby in Auto Scaling group web-asg"):
        restart_plan.refuse_not_healthy(described, {IDS[1]: Membership("web-asg", "Standby")})


def test_the_selection_must_be_in_the_tier_and_leave_a_healthy_target_serving() -> None:
    described = {WEB: healthy(*IDS[:4])}
    outside = "i-0123456789abcdef0"
    with pytest.raises(NoTargetsError, match=f"not registered in {WEB}: {outside}"):
        restart_plan.select(request(instanceIds=[outside]), stack(), [WEB], described)
    with pytest.raises(UnsafeBatchSizeError, match=r"batch size 4 would take all 4 healthy targets .* use at most 3"):
        restart_plan.select(request(batchSize=4), stack(), [WEB], described)
    with pytest.raises(UnsafeBatchSizeError, match="all 4 healthy targets"):
        restart_plan.select(request(batchSize="100%"), stack(), [WEB], described)


def test_the_batch_is_no_larger_than_the_selection_and_defaults_to_the_stack_s() -> None:
    described = {WEB: healthy(*IDS[:6])}
    chosen = restart_plan.select(request(batchSize=3, instanceIds=IDS[4:6]), stack(), [WEB], described)
    assert chosen == Selection(members=IDS[:6], selected=IDS[4:6], batch=2)
    assert restart_plan.select(request(), stack(DEFAULT_BATCH_SIZE="50%"), [WEB], described).batch == 3


# -- the instances ---------------------------------------------------------------------------------------
def test_an_instance_missing_stopped_or_without_the_restart_tag_is_refused_with_every_reason() -> None:
    found = {IDS[1]: ec2(IDS[1], state="stopped"), IDS[2]: ec2(IDS[2], tags={})}
    expected = f"{IDS[0]} does not exist; {IDS[1]} is stopped; {IDS[2]} lacks the tag opsflow:tier=web"
    with pytest.raises(InstanceNotRestartableError, match=expected):
        restart_plan.check_instances(IDS[:3], found, stack())


def test_a_long_list_of_problems_names_ten_and_counts_the_rest() -> None:
    with pytest.raises(
        InstanceNotRestartableError, match=rf"^{IDS[0]} does not exist; .*; {IDS[9]} does not exist \(and 2 more\)$"
    ):
        restart_plan.check_instances(IDS, {}, stack())


def test_an_instance_the_probes_cannot_reach_is_refused_naming_the_fix() -> None:
    found = {IDS[0]: ec2(IDS[0], vpc_id="vpc-2"), IDS[1]: ec2(IDS[1], security_group_ids=frozenset({"sg-other"}))}
    with pytest.raises(HealthUrlUnreachableError) as refused:
        restart_plan.check_instances(IDS[:2], found, stack())
    assert f"{IDS[0]} is in vpc-2, not in the stack's VpcId vpc-1" in str(refused.value)
    assert f"{IDS[1]} is not in the security group sg-probe (InstanceSecurityGroupId)" in str(refused.value)


# -- Auto Scaling groups ---------------------------------------------------------------------------------
def asg(desired: int = 4, minimum: int = 2, tagged: bool = True) -> dict[str, Any]:
    tags = [{"Key": "opsflow:tier", "Value": "web"}] if tagged else []
    return {"MinSize": minimum, "DesiredCapacity": desired, "MaxSize": 8, "HealthCheckType": "ELB", "Tags": tags}


def test_only_an_in_service_member_can_go_on_standby() -> None:
    restart_plan.check_in_service({IDS[0]: Membership("web-asg", "InService")})
    with pytest.raises(InstanceNotRestartableError, match=f"{IDS[0]} is Pending in Auto Scaling group web-asg"):
        restart_plan.check_in_service({IDS[0]: Membership("web-asg", "Pending")})


def test_a_group_s_plan_lowers_its_desired_capacity_by_at_most_the_batch() -> None:
    selection = Selection(members=IDS[:4], selected=IDS[:4], batch=3)
    members = {i: Membership("web-asg", "InService") for i in IDS[:2]}
    [(name, plan)] = restart_plan.auto_scaling_plans(selection, members, {"web-asg": asg()}, stack()).items()
    assert name == "web-asg" and plan.members == IDS[:2] and plan.on_standby_at_most == 2
    assert (plan.min_size, plan.desired_capacity, plan.max_size, plan.health_check_type) == (2, 4, 8, "ELB")


def test_a_batch_that_would_take_a_group_below_its_minimum_or_an_untagged_group_is_refused() -> None:
    selection = Selection(members=IDS[:4], selected=IDS[:4], batch=2)
    members = {i: Membership("web-asg", "InService") for i in IDS[:4]}
    with pytest.raises(
        UnsafeBatchSizeError, match=r"desired capacity 3 and minimum size 2: 2 of its members .* at most 1"
    ):
        restart_plan.auto_scaling_plans(selection, members, {"web-asg": asg(desired=3)}, stack())
    with pytest.raises(InstanceNotRestartableError, match="Auto Scaling group web-asg lacks the tag opsflow:tier=web"):
        restart_plan.auto_scaling_plans(selection, members, {"web-asg": asg(tagged=False)}, stack())


# -- other target groups the instances are in ------------------------------------------------------------
def test_only_instance_groups_of_the_instances_vpcs_outside_the_tier_are_asked() -> None:
    listed = [
        ListedGroup(WEB, "instance", "vpc-1"),
        ListedGroup(API, "instance", "vpc-1"),
        ListedGroup(f"{ACCOUNT}:targetgroup/ips/0123456789abcdef", "ip", "vpc-1"),
        ListedGroup(f"{ACCOUNT}:targetgroup/far/0123456789abcdef", "instance", "vpc-2"),
    ]
    assert restart_plan.candidate_groups(listed, {IDS[0]: ec2(IDS[0])}, [WEB]) == [API]


def test_another_group_an_instance_is_in_must_be_the_stack_s_to_drain() -> None:
    described = {API: healthy(IDS[0], IDS[5]), f"{ACCOUNT}:targetgroup/x/0123456789abcdef": healthy(IDS[7])}
    others = restart_plan.also_registered(IDS[:2], described, stack(ALLOWED_TARGET_GROUP_ARNS=API))
    assert list(others) == [API]
    with pytest.raises(TargetGroupNotAllowedError, match=f"{IDS[0]} is also registered in {API}, which this stack"):
        restart_plan.also_registered(IDS[:2], described, stack())


# -- resuming --------------------------------------------------------------------------------------------
def test_a_resume_of_another_workflow_or_with_its_own_selection_is_refused_before_any_call() -> None:
    preview = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-patch-preview:run-1"
    with pytest.raises(CannotResumeError, match=r"is an execution of .*opsflow-patch-preview, not of this rolling"):
        restart_plan.check_resume_request(request(resumeFrom=preview), THIS_RUN)
    with pytest.raises(InvalidInputError, match="instanceIds: cannot be combined with resumeFrom"):
        restart_plan.check_resume_request(request(resumeFrom=EARLIER, instanceIds=[IDS[0]]), THIS_RUN)
    restart_plan.check_resume_request(request(resumeFrom=EARLIER), THIS_RUN)


def test_only_an_execution_that_failed_timed_out_or_was_aborted_can_be_resumed() -> None:
    with pytest.raises(CannotResumeError, match="there is no execution"):
        restart_plan.check_resumable(EARLIER, None)
    with pytest.raises(CannotResumeError, match="it SUCCEEDED"):
        restart_plan.check_resumable(EARLIER, Execution("SUCCEEDED", None))
    with pytest.raises(CannotResumeError, match="it is still RUNNING"):
        restart_plan.check_resumable(EARLIER, Execution("RUNNING", None))
    assert restart_plan.check_resumable(EARLIER, Execution("ABORTED", None)).status == "ABORTED"


def record(**fields: Any) -> dict[str, Any]:
    return {
        "targetGroupArn": WEB,
        "targetGroupArns": json.dumps([WEB]),
        "instanceIds": json.dumps(IDS[:4]),
        "closedAt": "2026-11-24T08:00:00+00:00",
        "settings": json.dumps({"batchSize": 2, "errorBudget": 3, "health": {"port": 8080, "path": "/health"}}),
    } | fields


@pytest.mark.parametrize(
    ("fields", "run", "message"),
    [
        ({}, None, r"was refused before it changed anything \(UnsafeBatchSizeError\)"),
        ({"targetGroupArn": API}, record(), f"restarted target group {WEB}, not {API}"),
        ({"loadBalancerArn": BALANCER}, record(), "leave targetGroupArns and loadBalancerArn out"),
        ({}, record(closedAt=None), "is not cleaned up yet"),
        ({}, record(resumedBy=f"{MACHINE}:run-3"), "was resumed already by"),
    ],
)
def test_a_run_that_cannot_be_continued_is_refused_naming_why(
    fields: dict[str, Any], run: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(CannotResumeError, match=message):
        restart_plan.earlier_run(
            request(resumeFrom=EARLIER, **fields), Execution("FAILED", "UnsafeBatchSizeError"), run
        )


def test_a_resumed_run_restarts_what_the_earlier_did_not_finish_with_its_settings_unless_given_again() -> None:
    given = request(resumeFrom=EARLIER, errorBudget=5, health={"path": "/ready"}, dryRun=True)
    earlier = restart_plan.earlier_run(given, Execution("FAILED", "States.TaskFailed"), record())
    outcomes = [{"instanceId": IDS[0], "outcome": "restarted"}, {"instanceId": IDS[1], "outcome": "failed"}]

    continued, finished = restart_plan.continued_request(given, earlier, outcomes)

    assert finished == [IDS[0]]
    assert continued.instance_ids == IDS[1:4] and continued.target_group_arns == [WEB]
    assert (continued.batch_size, continued.error_budget, continued.dry_run) == (2, 5, True)
    assert continued.health is not None and (continued.health.port, continued.health.path) == (8080, "/ready")


def test_a_run_with_nothing_left_or_recorded_without_its_settings_is_refused() -> None:
    given = request(resumeFrom=EARLIER)
    done = [{"instanceId": i, "outcome": "restarted"} for i in IDS[:4]]
    with pytest.raises(CannotResumeError, match="restarted every instance it selected: nothing to resume"):
        restart_plan.continued_request(given, EarlierRun(record(), [WEB], IDS[:4]), done)
    old = record()
    del old["settings"]
    with pytest.raises(
        CannotResumeError, match=rf'start a new run with the same settings and instanceIds \["{IDS[0]}"'
    ):
        restart_plan.continued_request(given, EarlierRun(old, [WEB], IDS[:4]), [])


# -- the plan --------------------------------------------------------------------------------------------
def reads(ids: list[str], batch: int, zones: dict[str, str] | None = None, **overrides: Any) -> Reads:
    fields: dict[str, Any] = {
        "tier": [WEB],
        "groups": {WEB: group()},
        "described": {WEB: healthy(*ids)},
        "selection": Selection(members=ids, selected=ids, batch=batch),
        "instances": {i: ec2(i, (zones or {}).get(i, "eu-west-1a")) for i in ids},
        "memberships": {},
        "auto_scaling_groups": {},
        "command": None,
        "watched": [],
        "finished_before": [],
    }
    return Reads(**(fields | overrides))


NOW = 1_800_000_000


def test_the_plan_restarts_a_batch_at_a_time_and_keeps_the_rest_serving() -> None:
    run = restart_plan.plan_restart(request(batchSize=2), THIS_RUN, stack(), reads(IDS[:5], 2), NOW)

    assert run.plan.batches == [IDS[0:2], IDS[2:4], IDS[4:5]]
    assert (run.floor, run.floors, run.batch_size) == (3, {WEB: 3}, 2)
    assert run.plan.predicted_seconds_at_most == 3 * (30 + 45 + 10)  # drain + boot + one health check, per batch
    assert run.plan.summary.startswith("Restart 5 of 5 targets in web, 2 at a time (3 batches); at least 3 healthy")
    assert run.plan.where[IDS[0]] == "eu-west-1a: web:8080"
    assert run.lock_expires_at == NOW + 3600 + restart_plan.INSTANCE_PATIENCE_SECONDS + 45 + 10 + 3600
    assert run.plan.never_muted.rules == [] and run.settings["batchSize"] == 2


def test_one_zone_at_a_time_never_mixes_zones_in_a_batch_and_keeps_each_zone_serving() -> None:
    zones = dict(zip(IDS[:5], ["a", "b", "a", "b", "a"], strict=True))
    given = reads(IDS[:5], 2, zones)

    run = restart_plan.plan_restart(request(batchSize=2, oneZoneAtATime=True), THIS_RUN, stack(), given, NOW)

    assert run.plan.batches == [[IDS[0], IDS[2]], [IDS[4]], [IDS[1], IDS[3]]]
    assert [i.instance_id for i in run.instances] == [IDS[0], IDS[2], IDS[4], IDS[1], IDS[3]]
    assert run.zone_floors == {"a": 1, "b": 0} and json.loads(run.zones) == {"a": IDS[0:5:2], "b": IDS[1:5:2]}


def test_every_group_an_instance_is_in_keeps_its_own_floor() -> None:
    described = {WEB: healthy(*IDS[:4]), API: healthy(IDS[0], IDS[9], port=9090)}
    given = reads(IDS[:4], 2, described=described, groups={WEB: group(), API: group(API, interval=30, delay=60)})

    run = restart_plan.plan_restart(request(batchSize=2), THIS_RUN, stack(), given, NOW)

    assert run.floors == {WEB: 2, API: 1} and run.target_group_arns == [WEB, API]
    assert [r.port for r in run.instances[0].registrations] == [8080, 9090]
    assert run.plan.deregistration_delay_seconds == 60 and run.plan.seconds_to_healthy_after_boot == 30
    assert "Also drained from api, where they are registered too." in run.plan.summary


def test_a_batch_that_would_empty_another_group_the_instances_are_in_is_refused() -> None:
    described = {WEB: healthy(*IDS[:4]), API: healthy(IDS[0], IDS[1])}
    given = reads(IDS[:4], 2, described=described, groups={WEB: group(), API: group(API)})
    with pytest.raises(UnsafeBatchSizeError, match=f"all 2 healthy targets of {API} out of service; use at most 1"):
        restart_plan.plan_restart(request(batchSize=2), THIS_RUN, stack(), given, NOW)


def test_the_plan_of_a_command_names_it_and_the_auto_scaling_groups_it_lowers() -> None:
    command = restart_plan.resolve_command(request(action="command"), stack())
    plans = {
        "web-asg": restart_plan.AutoScalingGroupPlan(
            min_size=1, desired_capacity=3, max_size=6, health_check_type="ELB", members=IDS[:3], on_standby_at_most=1
        )
    }
    members = {i: Membership("web-asg", "InService") for i in IDS[:3]}
    given = reads(IDS[:3], 1, command=command, auto_scaling_groups=plans, memberships=members)

    run = restart_plan.plan_restart(request(action="command"), THIS_RUN, stack(), given, NOW)

    assert "Run a command on 3 of 3 targets" in run.plan.summary
    assert "run AWS-RunPatchBaseline (Operation=Install, RebootOption=RebootIfNeeded) with SSM" in run.plan.summary
    assert "(desired capacity 3 lowered by at most 1, never below 1)" in run.plan.summary
    assert run.instances[0].auto_scaling_group == "web-asg" and run.auto_scaling_groups == ["web-asg"]
    assert run.plan.where[IDS[0]].endswith("; Auto Scaling group web-asg")


def test_watched_alarms_and_the_stack_s_own_are_never_muted_and_a_resumed_run_says_what_it_continues() -> None:
    given = reads(IDS[:3], 1, watched=["web-5xx"], finished_before=[IDS[3]])
    asked = request(resumeFrom=EARLIER, alarms={"namePrefixes": ["web-", "opsflow-"]})

    run = restart_plan.plan_restart(asked, THIS_RUN, stack(), given, NOW)

    assert run.plan.never_muted.alarms == ["opsflow-executions-ended-badly", "web-5xx"]
    assert run.plan.summary.startswith("Continues run-1, which finished 1 instances. Restart 3 of 3")
    assert run.plan.finished_before == [IDS[3]] and run.resume_from == EARLIER
