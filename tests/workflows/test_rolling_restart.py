"""The rolling restart, end to end in the sandbox: outcomes, and the invariants after every scenario."""

import datetime as dt
from collections import Counter
from collections.abc import Callable

import pytest

from sandbox.latency import AWS
from tests.conftest import put_alarm
from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]


def test_every_instance_restarts_a_batch_at_a_time_with_zero_downtime(tier: TierFactory) -> None:
    given = tier(size=6)

    result = given.run(web_input(batchSize=2))

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["restarted"] == 6 and result.output["succeeded"] is True
    reboots = Counter(i for c in given.sb.bridge.calls_to("ec2", "RebootInstances") for i in c.params["InstanceIds"])
    assert reboots == dict.fromkeys(given.instances, 1)
    given.assert_invariants(result, floor=4)
    summary = given.notifications()[-1]
    assert summary["Subject"].startswith("opsflow rolling restart succeeded: 6 restarted, 0 failed")
    assert all(instance_id in summary["Message"] for instance_id in given.instances)


def test_a_re_registered_instance_serves_again_after_one_passing_health_check(tier: TierFactory) -> None:
    """ALB guide: a registered target "must pass one health check to be considered healthy"; the
    HealthyThresholdCount (3 here) is for unhealthy targets. The workflow polls from the registration."""
    given = tier(size=3)

    result = given.run(web_input(batchSize=1))

    assert result.status == "SUCCEEDED", result.cause
    interval = given.sb.fleet.spec.health_check_interval
    assert given.sb.fleet.spec.healthy_threshold == 3
    for outcome in given.outcomes(result).values():
        registered, healthy = (
            dt.datetime.fromisoformat(outcome["times"][k]).timestamp() for k in ("registered", "healthy")
        )
        assert interval <= healthy - registered <= interval + 2  # the first check, seen within a poll; not 3 x 10 s
    given.assert_invariants(result, floor=2)


def test_alarms_are_muted_during_the_restart_and_restored_after(tier: TierFactory) -> None:
    given = tier(size=4)

    result = given.run(web_input(batchSize=1))

    muted = {
        name for c in given.sb.bridge.calls_to("cloudwatch", "DisableAlarmActions") for name in c.params["AlarmNames"]
    }
    assert muted == {"web-5xx-errors", "web-unhealthy-hosts", "web-target-latency-p99"}
    assert [c.params["Name"] for c in given.sb.bridge.calls_to("eventbridge", "DisableRule")] == [
        "web-instance-state-change-pager"
    ]
    first_reboot = given.sb.bridge.calls_to("ec2", "RebootInstances")[0].at
    assert all(c.at < first_reboot for c in given.sb.bridge.calls_to("cloudwatch", "DisableAlarmActions"))
    given.assert_invariants(result, floor=3)


def test_a_prefix_matching_the_stack_s_own_names_never_mutes_its_safety_net(tier: TierFactory) -> None:
    """The stack's parameters select by the stack's name: its safety-net rule and alarm stay on."""
    given = tier(size=3, parameters={"AlarmNamePrefix": "opsflow", "RuleNamePrefix": "opsflow"})
    # The team's own alarm, named like the stack: muted.
    put_alarm(given.sb.client("cloudwatch"), "opsflow-web-latency")
    given.before = given.sb.monitoring_state()
    assert given.before["alarm:opsflow-executions-ended-badly"] == "actions enabled"
    assert given.before["rule:opsflow-safety-net"] == "ENABLED"

    result = given.run({"batchSize": 1, "health": {"port": 8080}, "expectedBootSeconds": 45})

    assert result.status == "SUCCEEDED", result.cause
    muted = {n for c in given.sb.bridge.calls_to("cloudwatch", "DisableAlarmActions") for n in c.params["AlarmNames"]}
    assert muted == {"opsflow-web-latency"}
    assert given.sb.bridge.calls_to("eventbridge", "DisableRule") == []
    given.assert_invariants(result, floor=2)


def test_a_percentage_batch_size_is_a_share_of_the_tier(tier: TierFactory) -> None:
    given = tier(size=6)

    result = given.run(web_input(batchSize="50%"))

    assert result.status == "SUCCEEDED"
    given.assert_invariants(result, floor=3)


def test_realistic_timings_still_hold_the_floor(tier: TierFactory) -> None:
    given = tier(size=8, spread=0.4)

    result = given.run(web_input(batchSize=3))

    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=5)


def test_an_instance_that_never_becomes_ready_is_reported_and_kept_out(tier: TierFactory) -> None:
    given = tier(size=4)
    broken = min(given.instances)  # the plan takes instances in id order: this one goes first
    given.sb.fleet.inject(broken, "never_ready")

    result = given.run(web_input(batchSize=1), timeout=180)

    assert result.status == "FAILED" and result.error == "InstancesFailedToRestart"
    outcomes = given.outcomes(result)
    assert outcomes[broken]["outcome"] == "failed"
    assert outcomes[broken]["step"] == "Check the application is up"
    assert given.target_states().get(broken, "unused") in ("draining", "unused")
    # The error budget (1 by default) is used up: no other instance starts.
    assert Counter(o["outcome"] for o in outcomes.values()) == {"failed": 1, "skipped": 3}
    alert = next(n for n in given.notifications() if "failed to restart" in n["Subject"])
    assert broken in alert["Subject"] and "Check the application is up" in alert["Message"]
    given.assert_invariants(result, floor=3)


def test_once_the_error_budget_is_used_up_instances_in_flight_finish_and_no_new_one_starts(
    tier: TierFactory,
) -> None:
    given = tier(size=6)
    given.sb.lambdas.inject_error("StartupCheckFunction", "InstanceCannotStartError")  # the first check fails

    result = given.run(web_input(batchSize=2))

    outcomes = Counter(o["outcome"] for o in given.outcomes(result).values())
    assert outcomes == {"failed": 1, "restarted": 1, "skipped": 4}
    given.assert_invariants(result, floor=4)


def test_a_larger_error_budget_lets_the_others_restart(tier: TierFactory) -> None:
    given = tier(size=5)
    given.sb.fleet.inject(given.instances[1], "never_ready")

    result = given.run(web_input(batchSize=2, errorBudget=2), timeout=180)

    outcomes = Counter(o["outcome"] for o in given.outcomes(result).values())
    assert outcomes == {"failed": 1, "restarted": 4}
    assert result.error == "InstancesFailedToRestart"
    given.assert_invariants(result, floor=3)


def test_a_slow_instance_is_waited_for(tier: TierFactory) -> None:
    given = tier(size=4)
    given.sb.fleet.inject(given.instances[2], "slow")

    result = given.run(web_input(batchSize=1), timeout=180)

    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=3)


def test_a_throttled_reboot_call_is_retried(tier: TierFactory) -> None:
    given = tier(size=3)
    given.sb.fleet.inject(given.instances[0], "throttle_reboot", count=2)

    result = given.run(web_input(batchSize=1))

    assert result.status == "SUCCEEDED", result.cause
    calls = [
        c for c in given.sb.bridge.calls_to("ec2", "RebootInstances") if c.params["InstanceIds"] == [given.instances[0]]
    ]
    assert len(calls) == 3
    given.assert_invariants(result, floor=2)


def test_a_failing_api_call_fails_only_that_instance(tier: TierFactory) -> None:
    given = tier(size=3)
    given.sb.inject_api_error("elastic-load-balancing-v2", "DeregisterTargets", "AccessDenied", count=1)

    result = given.run(web_input(batchSize=1, errorBudget=3))

    outcomes = given.outcomes(result)
    failed = [o for o in outcomes.values() if o["outcome"] == "failed"]
    assert (
        len(failed) == 1
        and failed[0]["step"] == "Deregister the instance and wait until it has drained from every target group"
    )
    assert "left in its target groups" in failed[0]["placement"]
    assert Counter(o["outcome"] for o in outcomes.values()) == {"failed": 1, "restarted": 2}
    given.assert_invariants(result, floor=2)


def test_transient_lambda_errors_are_retried(tier: TierFactory) -> None:
    given = tier(size=3)
    given.sb.lambdas.inject_error("TargetGateFunction", "Lambda.ServiceException", count=2)

    result = given.run(web_input(batchSize=1))

    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=2)


def test_a_dry_run_returns_the_plan_and_changes_nothing(tier: TierFactory) -> None:
    given = tier(size=6)

    result = given.run(web_input(batchSize=2, dryRun=True))

    assert result.status == "SUCCEEDED"
    plan = result.output
    assert [len(b) for b in plan["batches"]] == [2, 2, 2]
    assert plan["floor"] == 4 and plan["healthyTargets"] == 6
    # drain (the delay) + expected boot + one health-check interval: a re-registered target needs one passing check
    assert plan["predictedSecondsAtMost"] == 3 * (60 + 45 + 10)
    assert "at least 4 healthy targets keep serving" in plan["summary"]
    assert given.mutating_calls() == [] and not given.lock_held()


EXTERNAL_APPROVAL = {"ApprovalByEmail": "false"}  # the queue is left to the team's own system


def test_an_approved_restart_runs(tier: TierFactory) -> None:
    given = tier(size=3, parameters=EXTERNAL_APPROVAL)
    arn = given.sb.start_execution(SM, web_input(batchSize=1, requireApproval=True))

    request = given.sqs_message()
    assert request["plan"]["floor"] == 2 and request["executionArn"] == arn
    given.sb.client("stepfunctions").send_task_success(taskToken=request["taskToken"], output='{"approvedBy": "ops"}')

    result = given.sb.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=2)


def test_a_rejected_restart_changes_nothing(tier: TierFactory) -> None:
    given = tier(size=3, parameters=EXTERNAL_APPROVAL)
    arn = given.sb.start_execution(SM, web_input(batchSize=1, requireApproval=True))

    request = given.sqs_message()
    given.sb.client("stepfunctions").send_task_failure(
        taskToken=request["taskToken"], error="Rejected", cause="change freeze"
    )

    result = given.sb.wait(arn)
    given.assert_refused(result, "RestartNotApproved", "change freeze")


def test_the_approval_email_link_approves_after_confirmation(tier: TierFactory) -> None:
    given = tier(size=3)
    arn = given.sb.start_execution(SM, web_input(batchSize=1, requireApproval=True))
    links = given.approval_links()

    shown = given.sb.invoke_url("ApprovalVerifierFunction", "GET", query=links["approve"])
    assert shown["statusCode"] == 200 and '<form method="post">' in shown["body"]
    assert given.sb.result(arn).status == "RUNNING", "opening the link decides nothing"
    assert given.mutating_calls() == []

    tampered = links["approve"].replace("decision=approve", "decision=reject")
    assert given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=tampered)["statusCode"] == 403
    approved = given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=links["approve"])
    assert approved["statusCode"] == 200 and "approved" in approved["body"]
    replayed = given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=links["reject"])
    assert replayed["statusCode"] == 410, "a link works once: the task token is used"

    result = given.sb.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=2)


def test_the_approval_email_link_rejects(tier: TierFactory) -> None:
    given = tier(size=3)
    arn = given.sb.start_execution(SM, web_input(batchSize=1, requireApproval=True))

    given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=given.approval_links()["reject"])

    given.assert_refused(given.sb.wait(arn), "RestartNotApproved", "rejected with the email link")


def test_a_link_of_another_request_is_refused(tier: TierFactory) -> None:
    given = tier(size=3)
    arn = given.sb.start_execution(SM, web_input(batchSize=1, requireApproval=True))
    links = given.approval_links()
    other_run = links["approve"].replace("execution=arn", "execution=xarn")

    assert given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=other_run)["statusCode"] == 403
    assert given.sb.invoke_url("ApprovalVerifierFunction", "GET", query="decision=approve")["statusCode"] == 400
    given.sb.invoke_url("ApprovalVerifierFunction", "POST", body=links["reject"])
    assert given.sb.wait(arn).error == "RestartNotApproved"


def test_an_unanswered_approval_times_out_and_changes_nothing(tier: TierFactory) -> None:
    given = tier(size=3)

    result = given.run(web_input(batchSize=1, requireApproval=True, approvalTimeoutSeconds=120))

    given.assert_refused(result, "RestartNotApproved", "States.Timeout")
    assert result.sim_seconds >= 120, "it waited the whole approval timeout"


def test_a_second_run_on_the_same_target_group_is_refused(tier: TierFactory) -> None:
    given = tier(size=3, parameters=EXTERNAL_APPROVAL)
    first = given.sb.start_execution(SM, web_input(batchSize=1, requireApproval=True))
    request = given.sqs_message()  # the first run holds the lock while it waits for approval

    second = given.run(web_input(batchSize=1))

    assert second.status == "FAILED" and second.error == "RestartAlreadyRunning"
    assert given.mutating_calls() == []
    given.sb.client("stepfunctions").send_task_failure(taskToken=request["taskToken"], error="Rejected", cause="test")
    assert given.sb.wait(first).error == "RestartNotApproved"
    assert not given.lock_held()


def test_a_run_stopped_midway_is_cleaned_up_by_the_safety_net(tier: TierFactory) -> None:
    given = tier(size=4)
    given.sb.stop_when_entering("Wait until the reboot has begun")  # the first instance was just rebooted

    result = given.run(web_input(batchSize=2))

    assert result.status == "ABORTED"
    assert given.reboot_calls(), "stopped midway: after a reboot"
    assert given.sb.monitoring_state() == given.before, "the safety net restored alarms and rules"
    assert not given.lock_held(), "the safety net released the lock"
    alert = next(n for n in given.notifications() if "safety net" in n["Subject"])
    registered = set(given.target_states())
    left_out = [i for i in given.instances if i not in registered]
    assert left_out, "stopped after a reboot: that instance is still coming up"
    # Counted, not named: the follow-up puts each back once it answers, or names it when it gives up.
    assert f"followed up: {len(left_out)}" in alert["Message"]
    assert "unhealthy" not in given.target_states().values()
    given.sb.run_until(at=given.sb.clock.now() + 700)  # past the reboot's patience: they all answer by now
    given.sb.fire_schedule("RunReconcilerFunction")
    assert set(given.target_states()) == set(given.instances), "the follow-up put every instance back"


def test_the_safety_net_leaves_a_run_that_cleaned_up_after_itself_alone(tier: TierFactory) -> None:
    given = tier(size=3)
    given.sb.fleet.inject(given.instances[0], "never_ready")

    result = given.run(web_input(batchSize=1), timeout=180)

    assert result.status == "FAILED"  # the safety net is triggered by FAILED too
    assert not [n for n in given.notifications() if "safety net" in n["Subject"]]
    given.assert_invariants(result, floor=2)


def test_a_batch_size_that_would_take_the_whole_tier_down_is_refused(tier: TierFactory) -> None:
    given = tier(size=4)
    given.assert_refused(given.run(web_input(batchSize=4)), "UnsafeBatchSizeError", "use at most 3")
    given.assert_refused(given.run(web_input(batchSize="100%")), "UnsafeBatchSizeError", "all 4 healthy targets")


def test_a_target_group_with_an_unhealthy_target_is_refused(tier: TierFactory) -> None:
    given = tier(size=3)
    sick = given.instances[1]
    given.sb.fleet.inject(sick, "never_ready")
    given.sb.fleet.reboot(sick, given.sb.clock.now() - 600)

    result = given.run(web_input(batchSize=1))

    assert result.error == "TargetsNotHealthyError" and f"{sick} is unhealthy" in (result.cause or "")
    assert given.mutating_calls() == [] and not given.lock_held()


def test_a_missing_target_group_is_refused(tier: TierFactory) -> None:
    given = tier(size=2, parameters={"TargetGroupArn": ""})  # a stack not tied to one target group
    missing = given.target_group_arn[:-16] + "0123456789abcdef"
    given.assert_refused(given.run(web_input(targetGroupArn=missing)), "TargetGroupNotFoundError", "does not exist")


def test_another_target_group_than_the_stack_s_is_refused(tier: TierFactory) -> None:
    other = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/0123456789abcdef"
    given = tier(size=2, parameters={"TargetGroupArn": other})
    result = given.run(web_input(targetGroupArn=given.sb.fleet_resources["TargetGroupArn"]))
    given.assert_refused(result, "TargetGroupNotAllowedError", "may only restart")


def test_instances_outside_the_target_group_are_refused(tier: TierFactory) -> None:
    given = tier(size=2)
    given.assert_refused(
        given.run(web_input(instanceIds=["i-0123456789abcdef0"])), "NoTargetsError", "i-0123456789abcdef0"
    )


def test_an_instance_without_the_restart_tag_is_refused(tier: TierFactory) -> None:
    given = tier(size=3)
    given.sb.client("ec2").delete_tags(Resources=[given.instances[2]], Tags=[{"Key": "opsflow:tier"}])
    given.assert_refused(given.run(web_input()), "InstanceNotRestartableError", f"{given.instances[2]} lacks the tag")


# Every malformed field is a unit test on the input model (tests/unit/test_restart_planner.py); these prove
# the path from a bad input to a refused run that changed nothing.
MALFORMED = [({"batchSize": 0}, "batchSize"), ({"batchsize": 2}, "batchsize")]


@pytest.mark.parametrize(("payload", "named"), MALFORMED, ids=[m[1] + str(i) for i, m in enumerate(MALFORMED)])
def test_malformed_input_is_refused_naming_the_field(tier: TierFactory, payload: dict[str, object], named: str) -> None:
    given = tier(size=2)
    given.assert_refused(given.run(payload), "InvalidInputError", named)


def test_an_input_that_is_not_an_object_is_refused(tier: TierFactory) -> None:
    given = tier(size=2)
    given.assert_refused(given.run(["i-0123456789abcdef0"]), "InvalidInputError", "input")


def test_the_preflight_does_not_take_longer_per_instance(tier: TierFactory) -> None:
    """IAM reading each instance's tags is part of one dry-run request, not a call of its own: the sandbox
    charged an EC2 call's latency per instance for it (20 s before a 200-instance restart)."""
    given = tier(size=12)

    result = given.run(web_input(batchSize=1, dryRun=True))

    entered = {
        e["stateEnteredEventDetails"]["name"]: e["timestamp"] for e in result.events if "StateEntered" in e["type"]
    }
    preflight = entered["Is this a dry run?"] - entered["Check the run can succeed before changing anything"]
    assert preflight.total_seconds() < 12 * AWS.api("ec2", "DescribeTags")  # what charging per instance would take
