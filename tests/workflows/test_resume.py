"""Resume: ``resumeFrom`` continues a run that failed or was stopped, restarting only what it did not finish."""

from collections import Counter
from collections.abc import Callable
from typing import Any

from sandbox.runtime import ExecutionResult
from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]
RECONCILER = "RunReconcilerFunction"


def restarted(given: Tier, result: ExecutionResult) -> set[str]:
    return {i for i, o in given.outcomes(result).items() if o["outcome"] == "restarted"}


def settle_the_stopped_run(given: Tier, arn: str) -> None:
    """The safety net ran on the stop; instances it still follows up are put back by the reconciler's next pass."""
    from opsflow.runs import RunTable

    table = RunTable(given.sb.stack.physical["RunTable"]["Ref"], given.sb.client("dynamodb"))
    for _ in range(3):
        if (table.get_run(arn) or {}).get("closedAt"):
            # An instance put back passes its health checks before a new run may start (TargetsNotHealthyError).
            given.sb.run_until(at=given.sb.clock.now() + 60)
            assert set(given.target_states().values()) == {"healthy"}
            return
        given.sb.run_until(at=given.sb.clock.now() + 700)  # beyond a reboot's patience to begin (opsflow.placement)
        given.sb.fire_schedule(RECONCILER)
    raise AssertionError(f"{arn} is still open after three reconciler passes")


def test_a_stopped_run_is_resumed_restarting_each_instance_once_across_both_runs(tier: TierFactory) -> None:
    given = tier(size=6)
    first = given.sb.start_execution(SM, web_input(batchSize=2))
    given.sb.run_until(lambda: len(given.reboot_calls()) == 3)  # two done or nearly, the third just rebooted
    given.sb.stop(first)
    stopped = given.sb.wait(first)
    assert stopped.status == "ABORTED"
    settle_the_stopped_run(given, first)
    rebooted_before = set(given.reboot_calls())

    second = given.run({"resumeFrom": first})

    assert second.status == "SUCCEEDED", second.cause
    assert Counter(given.reboot_calls()) == dict.fromkeys(given.instances, 1), "each instance rebooted once in all"
    assert set(given.outcomes(second)) == set(given.instances) - rebooted_before, "only what the first did not finish"
    assert second.output["restarted"] == 6 - len(rebooted_before)
    given.assert_invariants(second, floor=4)


def test_a_failed_run_is_resumed_with_its_settings_and_the_failed_instance_is_tried_again(tier: TierFactory) -> None:
    given = tier(size=5)
    unlucky = sorted(given.instances)[1]  # the plan takes instances in id order: the second one fails
    given.sb.inject_api_error(
        "elastic-load-balancing-v2",
        "DeregisterTargets",
        "AccessDenied",
        count=1,  # refused once: the target gate does not retry what an AccessDenied would refuse again
        match={"Targets": [{"Id": unlucky, "Port": 8080}]},
    )
    first = given.run(web_input(batchSize=1))
    assert first.error == "InstancesFailedToRestart"
    assert Counter(o["outcome"] for o in given.outcomes(first).values()) == {"restarted": 1, "failed": 1, "skipped": 3}

    second = given.run({"resumeFrom": first.arn})

    assert second.status == "SUCCEEDED", second.cause
    assert set(given.outcomes(second)) == set(given.instances) - restarted(given, first)
    assert Counter(given.reboot_calls()) == dict.fromkeys(given.instances, 1)
    # The same settings: the first run's alarm selection muted again by the second.
    mutes = given.sb.bridge.calls_to("cloudwatch", "DisableAlarmActions")
    assert len(mutes) == 2 and {tuple(c.params["AlarmNames"]) for c in mutes} == {
        ("web-5xx-errors", "web-target-latency-p99", "web-unhealthy-hosts")
    }
    given.assert_invariants(second, floor=4)


def test_a_run_stopped_on_alarm_is_resumed_once_the_alarm_is_ok_with_a_setting_overridden(tier: TierFactory) -> None:
    given = tier(size=6)
    first = given.sb.start_execution(SM, web_input(batchSize=1, stopOnAlarms={"names": ["web-5xx-errors"]}))
    given.sb.run_until(lambda: len(given.reboot_calls()) == 1)
    given.sb.set_alarm_state("web-5xx-errors", "ALARM")
    assert given.sb.wait(first).error == "StoppedOnAlarm"

    still_firing = given.run({"resumeFrom": first})  # the resumed run watches the same alarm
    assert still_firing.error == "WatchedAlarmFiringError", still_firing.cause

    given.sb.set_alarm_state("web-5xx-errors", "OK")
    plan = given.run({"resumeFrom": first, "batchSize": 2, "dryRun": True})
    assert plan.status == "SUCCEEDED", plan.cause
    assert plan.output["resumedFrom"] == first and plan.output["watchedAlarms"] == ["web-5xx-errors"]
    assert len(plan.output["finishedBefore"]) == 1 and plan.output["batches"][0] != plan.output["finishedBefore"]
    assert [len(b) for b in plan.output["batches"]] == [2, 2, 1]

    second = given.run({"resumeFrom": first, "batchSize": 2})

    assert second.status == "SUCCEEDED", second.cause
    assert Counter(given.reboot_calls()) == dict.fromkeys(given.instances, 1)
    given.assert_invariants(second, floor=4)


def refused(given: Tier, payload: dict[str, Any], cause_mentions: str, error: str = "CannotResumeError") -> None:
    """The resume is refused with a cause a person can act on, and changes nothing."""
    calls_before, lock_before = len(given.sb.bridge.calls), given.lock_held()
    result = given.run(payload)
    assert result.status == "FAILED" and result.error == error, f"{result.error}: {result.cause}"
    assert cause_mentions in (result.cause or ""), result.cause
    changed = [
        c for c in given.sb.bridge.calls[calls_before:] if c.operation in ("DeregisterTargets", "RebootInstances")
    ]
    assert changed == [] and given.lock_held() == lock_before
    assert given.sb.monitoring_state() == given.before


def test_what_cannot_be_resumed_is_refused_and_nothing_changes(tier: TierFactory) -> None:
    given = tier(size=3, parameters={"ApprovalByEmail": "false"})
    machine = given.sb.state_machine_arn(SM)
    execution = machine.replace(":stateMachine:", ":execution:")
    succeeded = given.run(web_input(batchSize=1))
    assert succeeded.status == "SUCCEEDED"
    refused_at_planning = given.run(web_input(batchSize=9))
    assert refused_at_planning.error == "UnsafeBatchSizeError"

    refused(given, {"resumeFrom": f"{execution}:no-such-run"}, "there is no execution")
    preview = given.sb.state_machine_arn("PatchPreviewStateMachine").replace(":stateMachine:", ":execution:")
    refused(given, {"resumeFrom": f"{preview}:run-1"}, "not of this rolling restart")
    refused(given, {"resumeFrom": succeeded.arn}, "it SUCCEEDED")
    refused(given, {"resumeFrom": refused_at_planning.arn}, "refused before it changed anything")

    waiting = given.sb.start_execution(SM, web_input(batchSize=1, requireApproval=True))
    given.sqs_message()  # it holds the lock and waits for approval
    refused(given, {"resumeFrom": waiting}, "it is still RUNNING")


def test_a_run_of_another_target_group_is_not_resumed(tier: TierFactory) -> None:
    given = tier(size=3, parameters={"TargetGroupArn": ""})  # a stack that may restart any target group
    given.sb.inject_api_error("elastic-load-balancing-v2", "DeregisterTargets", "AccessDenied", count=1)
    first = given.run(web_input(batchSize=1, targetGroupArn=given.target_group_arn))
    assert first.error == "InstancesFailedToRestart"
    other = given.target_group_arn[:-16] + "0123456789abcdef"

    refused(given, {"resumeFrom": first.arn, "targetGroupArn": other}, "leave targetGroupArn out")


def test_a_run_is_resumed_once(tier: TierFactory) -> None:
    given = tier(size=4)
    given.sb.inject_api_error("elastic-load-balancing-v2", "DeregisterTargets", "AccessDenied", count=1)
    first = given.run(web_input(batchSize=1))
    assert first.error == "InstancesFailedToRestart"
    second = given.run({"resumeFrom": first.arn})
    assert second.status == "SUCCEEDED", second.cause

    refused(given, {"resumeFrom": first.arn}, f"was resumed already by {second.arn}")


def test_two_resumes_planned_at_once_do_not_both_run(tier: TierFactory) -> None:
    """The planner saw the run not resumed yet; another resume marks it first: this one is refused under the lock."""
    from opsflow.runs import RunTable

    given = tier(size=4)
    given.sb.inject_api_error("elastic-load-balancing-v2", "DeregisterTargets", "AccessDenied", count=1)
    first = given.run(web_input(batchSize=1))
    table = RunTable(given.sb.stack.physical["RunTable"]["Ref"], given.sb.client("dynamodb"))
    late = given.sb.start_execution(SM, {"resumeFrom": first.arn})

    def entered() -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"] for e in given.sb.history(late) if "stateEnteredEventDetails" in e
        ]

    given.sb.run_until(lambda: "Take the target group locks" in entered())
    table.set_run_fields(
        first.arn, resumedBy="arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:other"
    )
    calls_before = len(given.sb.bridge.calls)

    result = given.sb.wait(late)

    assert result.error == "CannotResumeError" and "resumed by another run meanwhile" in (result.cause or "")
    assert [
        c for c in given.sb.bridge.calls[calls_before:] if c.operation in ("DeregisterTargets", "RebootInstances")
    ] == []
    assert not given.lock_held() and given.sb.monitoring_state() == given.before
