"""Whatever fails, the tier ends no worse than it was: retried steps, lost responses, interrupted restarts."""

from collections import Counter
from collections.abc import Callable

from sandbox.fleet import Spread
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
    assert all(i in first["Message"].split("followed up")[1].split("\n")[0] for i in out)

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
