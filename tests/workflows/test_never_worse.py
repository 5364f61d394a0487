"""Whatever fails, the tier ends no worse than it was: retried steps, lost responses, interrupted restarts."""

from collections import Counter
from collections.abc import Callable

from sandbox.fleet import GroupSpec, Spread
from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]


def alerts_for(given: Tier, instance_id: str) -> list[str]:
    return [
        n["Subject"]
        for n in given.notifications()
        if "failed to restart" in n["Subject"] and instance_id in n["Subject"]
    ]


def test_a_report_retried_after_its_alert_failed_counts_the_instance_once(tier: TierFactory) -> None:
    given = tier(size=5)
    broken = given.instances[1]
    given.sb.fleet.inject(broken, "never_ready")
    given.sb.inject_api_error(
        "sns", "Publish", "InternalError", count=1
    )  # the first alert fails; the report is retried

    result = given.run(web_input(batchSize=2, errorBudget=2), timeout=240)

    outcomes = Counter(o["outcome"] for o in given.outcomes(result).values())
    assert outcomes == {"failed": 1, "restarted": 4}, "one failure spent one unit of the budget of 2"
    assert len(alerts_for(given, broken)) == 1
    given.assert_invariants(result, floor=3)


def test_a_failure_count_whose_response_was_lost_is_counted_once(tier: TierFactory) -> None:
    given = tier(size=5)
    given.sb.fleet.inject(given.instances[1], "never_ready")
    given.sb.inject_api_error(
        "dynamodb",
        "UpdateItem",
        "InternalServerError",
        match={"UpdateExpression": "ADD failedInstances :one"},
        lost_response=True,
    )

    result = given.run(web_input(batchSize=2, errorBudget=2), timeout=240)

    assert Counter(o["outcome"] for o in given.outcomes(result).values()) == {"failed": 1, "restarted": 4}
    given.assert_invariants(result, floor=3)


def test_an_alert_whose_response_was_lost_still_counts_the_instance_once(tier: TierFactory) -> None:
    """SNS standard topics have no idempotent publish: the retried report may mail the alert again
    (botocore itself retries a call whose connection broke), but the budget and the record stay right."""
    given = tier(size=5)
    broken = given.instances[1]
    given.sb.fleet.inject(broken, "never_ready")
    given.sb.inject_api_error("sns", "Publish", "InternalError", count=1, lost_response=True)

    result = given.run(web_input(batchSize=2, errorBudget=2), timeout=240)

    assert Counter(o["outcome"] for o in given.outcomes(result).values()) == {"failed": 1, "restarted": 4}
    assert 1 <= len(alerts_for(given, broken)) <= 2
    assert given.outcomes(result)[broken]["alertedAt"]


RECONCILER = "RunReconcilerFunction"


def stop_while_rebooting(given: Tier) -> str:
    """Start a restart and stop it right after the first reboot calls: instances mid-reboot."""
    arn = given.sb.start_execution(SM, web_input(batchSize=2))
    given.sb.run_until(lambda: bool(given.sb.bridge.calls_to("ec2", "RebootInstances")))
    given.sb.stop(arn)
    assert given.sb.wait(arn).status == "ABORTED"
    return arn


def let_pass(given: Tier, sim_seconds: float) -> None:
    given.sb.run_until(at=given.sb.clock.now() + sim_seconds)


SLOW_SHUTDOWN = Spread(120.0)  # the stop finds the rebooted instances on their way down, whatever the timing


def test_instances_a_stopped_run_left_booting_are_put_back_once_they_answer(tier: TierFactory) -> None:
    given = tier(size=4, shutdown=SLOW_SHUTDOWN)
    stop_while_rebooting(given)
    out = [i for i in given.instances if i not in given.target_states()]
    assert out, "the stop left instances out of service"
    [first] = [n for n in given.notifications() if "safety net" in n["Subject"]]
    assert f"followed up: {len(out)}" in first["Message"]
    assert not [i for i in out if i in first["Message"]], "counted, not named: each is put back, or named once given up"

    given.sb.fire_schedule(RECONCILER)
    assert len(given.target_states()) < 4, "nothing answering as rebooted yet: followed up"
    let_pass(given, 700)  # beyond the reboot's patience to begin: what answers now is the rebooted instance
    given.sb.fire_schedule(RECONCILER)

    assert set(given.target_states()) == set(given.instances), "every instance is back in service"
    assert len([n for n in given.notifications() if "opsflow" in n["Subject"]]) == 1, "no second alert"


def test_an_instance_that_never_comes_back_is_named_in_one_alert_once_the_follow_up_gives_up(
    tier: TierFactory,
) -> None:
    given = tier(size=4, shutdown=SLOW_SHUTDOWN)
    sick = sorted(given.instances)[0]  # the plan takes instances in id order: among the first two
    given.sb.fleet.inject(sick, "never_ready")
    stop_while_rebooting(given)

    let_pass(given, 400)
    given.sb.fire_schedule(RECONCILER)
    assert not [n for n in given.notifications() if "reconciler" in n["Subject"]], "still within its patience"
    let_pass(given, 2000)  # beyond its startup patience
    given.sb.fire_schedule(RECONCILER)
    given.sb.fire_schedule(RECONCILER)

    [gave_up] = [n for n in given.notifications() if "reconciler" in n["Subject"]]
    assert sick in gave_up["Message"].split("left OUT")[1]
    assert naming(given, sick) == [gave_up["Subject"]], "the safety net's mail did not name it: one alert"
    assert sick not in given.target_states() and len(given.target_states()) == 3


def test_a_refused_run_s_late_safety_net_never_touches_the_running_one_s_instances(tier: TierFactory) -> None:
    given = tier(size=4, shutdown=SLOW_SHUTDOWN)
    given.sb.status_events, given.sb.status_event_delay = "delay", 120  # arrives while the winner drains and reboots
    winner = given.sb.start_execution(SM, web_input(batchSize=2))

    refused = given.run(web_input(batchSize=1))  # the same instant: it recorded its run, then the lock refused it

    assert refused.error == "RestartAlreadyRunning"
    result = given.sb.wait(winner, timeout=240)
    given.sb.wait_for_status_events()
    safety_net = given.sb.stack.physical["RestoreSafetyNetFunction"]["Ref"]
    assert [e.fate for e in given.sb.status_event_log if e.execution_arn == refused.arn] == ["delivered"]
    assert any(safety_net in e.answers for e in given.sb.status_event_log if e.execution_arn == refused.arn)
    cleanup_calls = [c for c in given.sb.bridge.calls if c.caller == "RestoreSafetyNetFunction"]
    assert not [c for c in cleanup_calls if c.operation in ("RegisterTargets", "DeregisterTargets")]
    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=2)


# -- instances reported failed while they were out: followed up like those of a stopped run ----------------
CHECK_DENIED = ("lambda", "Invoke", "AccessDeniedException")  # the startup check cannot be invoked: a broken role
EVERY_ATTEMPT = 99
# A second load balancer's group with every instance on a port override: a put-back must restore both exactly.
API_ON_OVERRIDES = (GroupSpec("api", port=9000, port_overrides=((0, 9001), (1, 9001), (2, 9001)), share=0.5),)
BOTH_GROUPS = {"AllowedTargetGroupArns": "{TargetGroupArn:api}"}


def naming(given: Tier, instance_id: str) -> list[str]:
    """Subjects of the alerts that name the instance."""
    return [a["Subject"] for a in given.alerts() if instance_id in a["Subject"] + a["Message"]]


def fail_while_booting(given: Tier) -> tuple[str, str]:
    """A run whose startup check cannot run: its first instance (the plan goes in id order) is reported
    failed while it boots, and the error budget of 1 starts no other. Returns the run and that instance."""
    given.sb.inject_api_error(*CHECK_DENIED, state="Check the application is up")  # not retried: caught at once
    result = given.run(web_input(batchSize=1), timeout=240)
    assert result.error == "InstancesFailedToRestart", result.cause
    return result.arn, sorted(given.instances)[0]


def test_an_instance_reported_failed_while_it_boots_is_put_back_everywhere_once_it_answers(
    tier: TierFactory,
) -> None:
    given = tier(size=3, more_groups=API_ON_OVERRIDES, parameters=BOTH_GROUPS)
    before = {i: given.registrations(i) for i in given.instances}
    run, failed = fail_while_booting(given)
    assert set(given.registrations(failed).values()) <= {"unused", "draining"}, "out while its check failed"
    [alert] = naming(given, failed)
    assert "failed to restart" in alert

    let_pass(given, 300)  # its application answers by now
    given.sb.fire_schedule(RECONCILER)
    let_pass(given, 60)  # the load balancers' health checks pass

    assert given.registrations(failed) == before[failed], "healthy again in every group, on its own port"
    assert naming(given, failed) == [alert], "the failure's alert stays the only one naming it"
    assert given.sb.fire_schedule(RECONCILER)["openRuns"] == 0, "the follow-up is over"
    assert given.outcomes(given.sb.wait(run))[failed]["placement"] == "registered again: its application answers"


def test_the_follow_up_never_puts_back_an_instance_another_run_took_out_since(tier: TierFactory) -> None:
    given = tier(size=3)
    _, failed = fail_while_booting(given)
    let_pass(given, 300)  # it answers; someone registers it again and restarts it with a new run
    given.sb.client("elbv2").register_targets(TargetGroupArn=given.target_group_arn, Targets=[{"Id": failed}])
    let_pass(given, 60)  # its health checks pass
    assert given.target_states()[failed] == "healthy"
    second = given.sb.start_execution(SM, web_input(batchSize=1, instanceIds=[failed]))
    given.sb.run_until(lambda: given.target_states().get(failed) == "draining")  # the new run drains it

    given.sb.fire_schedule(RECONCILER)  # the first run's follow-up: it answers, but it is the new run's now

    reconciler_calls = [c for c in given.sb.bridge.calls if c.caller == RECONCILER]
    assert not [c for c in reconciler_calls if c.operation == "RegisterTargets"], "left to the run that holds it"
    result = given.sb.wait(second, timeout=240)
    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=2)
    assert given.sb.fire_schedule(RECONCILER)["openRuns"] == 0


def test_an_instance_whose_failure_report_itself_failed_is_named_in_one_alert(tier: TierFactory) -> None:
    given = tier(size=3)
    sick = sorted(given.instances)[0]
    given.sb.fleet.inject(sick, "never_ready")
    given.sb.inject_api_error(*CHECK_DENIED, EVERY_ATTEMPT, state="Handle the failed instance")

    result = given.run(web_input(batchSize=1), timeout=240)
    let_pass(given, 2400)  # beyond its startup patience
    given.sb.fire_schedule(RECONCILER)

    assert result.error == "InstancesFailedToRestart"
    assert sick not in given.target_states()
    [alert] = naming(given, sick)
    assert f"{sick} failed to restart (RestartInterrupted)" in alert
