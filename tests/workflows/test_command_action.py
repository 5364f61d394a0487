"""The rolling restart with the ``command`` action: patches installed behind the load balancer, a batch at a time.

The command is SSM's AWS-RunPatchBaseline (Install, RebootIfNeeded) unless the input names another. It
is contained like a failed reboot when it fails, times out or cannot reach the instance, and the same
invariants as for the reboot hold after every scenario (tests/workflows/conftest.py).
"""

from collections import Counter
from collections.abc import Callable

import pytest

from tests.workflows.conftest import Tier, web_input

TierFactory = Callable[..., Tier]


def patch_input(**fields: object) -> dict[str, object]:
    return web_input(action="command", **fields)


def pending(given: Tier, instance_id: str) -> int:
    counts = given.sb.bridge.patches.data[instance_id].state_counts()  # type: ignore[union-attr]
    return counts["Missing"] + counts["Failed"]


def test_patches_are_installed_a_batch_at_a_time_and_the_summary_names_each_command(tier: TierFactory) -> None:
    given = tier(size=4)
    assert all(pending(given, i) for i in given.instances), "every instance has patches to install"

    result = given.run(patch_input(batchSize=2), timeout=300)

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["restarted"] == 4
    sent = given.sb.bridge.calls_to("ssm", "SendCommand")
    assert sorted(i for c in sent for i in c.params["InstanceIds"]) == sorted(given.instances)
    assert {c.params["DocumentName"] for c in sent} == {"AWS-RunPatchBaseline"}
    assert sent[0].params["Parameters"] == {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]}
    assert given.reboot_calls() == [], "the command reboots the instance itself: no EC2 reboot call"
    assert [pending(given, i) for i in given.instances] == [0, 0, 0, 0]
    summary = given.notifications()[-1]["Message"]
    assert summary.count("(AWS-RunPatchBaseline): Success") == 4
    given.assert_invariants(result, floor=2)


def test_a_patch_that_needs_a_reboot_is_waited_for_and_one_that_does_not_is_not(tier: TierFactory) -> None:
    given = tier(size=3)
    up_to_date = given.instances[1]
    data = given.sb.bridge.patches.data  # type: ignore[union-attr]
    for patch in data[up_to_date].patches:
        patch["State"] = "Installed"
    data[up_to_date].pending_reboot = 0

    result = given.run(patch_input(batchSize=1), timeout=300)

    assert result.status == "SUCCEEDED", result.cause
    rebooted = {i for i in given.instances if given.sb.fleet.instances[i].reboots}
    assert rebooted == set(given.instances) - {up_to_date}
    for instance_id in rebooted:  # registered again only after the patched instance came back up
        (down, _, app_up) = given.sb.fleet.instances[instance_id].reboots[0]
        registered = [
            e.at for e in given.sb.fleet.events if e.instance_id == instance_id and e.what.startswith("registered")
        ]
        assert registered and registered[-1] >= app_up > down
    given.assert_invariants(result, floor=2)


def test_a_failing_command_is_reported_kept_out_and_uses_the_error_budget(tier: TierFactory) -> None:
    given = tier(size=4)
    broken = min(given.instances)  # the plan takes instances in id order: this one goes first
    given.sb.commands.inject(broken, "command_fails")

    result = given.run(patch_input(batchSize=1), timeout=300)

    assert result.status == "FAILED" and result.error == "InstancesFailedToRestart"
    outcomes = given.outcomes(result)
    assert outcomes[broken]["error"] == "CommandFailedError"
    assert outcomes[broken]["step"] == "Wait until the command has finished"
    assert Counter(o["outcome"] for o in outcomes.values()) == {"failed": 1, "skipped": 3}
    # The application never went down, so the instance answers: it is put back, healthy.
    assert given.target_states()[broken] in ("initial", "healthy")
    alert = next(n for n in given.notifications() if "failed to restart" in n["Subject"])
    assert "exit code 1" in alert["Message"] and "Installation of 1 package failed" in alert["Message"]
    given.assert_invariants(result, floor=3)


def test_a_command_that_times_out_is_contained_like_a_failed_reboot(tier: TierFactory) -> None:
    given = tier(size=3)
    slow = min(given.instances)
    given.sb.commands.inject(slow, "command_times_out")

    result = given.run(patch_input(batchSize=1, errorBudget=2), timeout=300)

    outcomes = given.outcomes(result)
    assert outcomes[slow]["error"] == "CommandTimedOutError"
    assert "Execution Timed Out" in outcomes[slow]["cause"]
    assert Counter(o["outcome"] for o in outcomes.values()) == {"failed": 1, "restarted": 2}
    given.assert_invariants(result, floor=2)


def test_an_instance_ssm_cannot_reach_mid_run_is_reported_and_the_others_are_patched(tier: TierFactory) -> None:
    given = tier(size=3)
    lost = given.instances[0]
    given.sb.commands.inject(lost, "undeliverable")

    result = given.run(patch_input(batchSize=1, errorBudget=2), timeout=300)

    outcomes = given.outcomes(result)
    assert outcomes[lost]["error"] == "CommandUndeliverableError"
    assert Counter(o["outcome"] for o in outcomes.values()) == {"failed": 1, "restarted": 2}
    assert given.target_states()[lost] in ("initial", "healthy"), "its application still answers: put back"
    given.assert_invariants(result, floor=2)


def test_an_instance_whose_agent_is_offline_refuses_the_run_before_anything_changes(tier: TierFactory) -> None:
    given = tier(size=3)
    offline = given.instances[2]
    given.sb.commands.inject(offline, "agent_offline")

    result = given.run(patch_input(batchSize=1))

    given.assert_refused(result, "PreflightFailedError", f"{offline}: SSM cannot run a command on it")
    assert given.sb.bridge.calls_to("ssm", "SendCommand") == []


def test_a_run_stopped_while_a_command_runs_puts_the_instance_back_only_once_the_command_has_ended(
    tier: TierFactory,
) -> None:
    given = tier(size=3)
    given.sb.stop_when_entering("Wait until the command has finished")  # the first command was just sent

    result = given.run(patch_input(batchSize=1))
    given.sb.wait_for_status_events()

    assert result.status == "ABORTED"
    [first] = [i for c in given.sb.bridge.calls_to("ssm", "SendCommand") for i in c.params["InstanceIds"]]
    assert given.target_states().get(first, "unused") in ("draining", "unused"), "not put back mid-command"
    assert given.sb.monitoring_state() == given.before and not given.lock_held(), "the safety net cleaned up"
    [invocation] = given.sb.commands.invocations.values()
    given.sb.run_until(at=invocation.end_at + 60)
    given.sb.fire_schedule("RunReconcilerFunction")
    assert given.target_states().get(first) == "initial", "registered again once the command ended and it answers"
    assert pending(given, first) == 0, "the command the stopped run sent still installed the patches"
    assert "unhealthy" not in given.target_states().values()
    start, end = result.events[0]["timestamp"].timestamp(), given.sb.clock.now()
    assert given.sb.fleet.timeline(start, end).dropped_requests == 0, "no request was cut by the command's reboot"


@pytest.mark.parametrize(
    ("action", "state"), [("command", "Run the command on the instance"), ("reboot", "Reboot the instance")]
)
def test_a_lost_answer_from_lambda_retries_the_step_without_a_second_command_or_reboot(
    tier: TierFactory, action: str, state: str
) -> None:
    """Lambda runs the action, then its answer is lost (ServiceException, HTTP 500): the state machine retries the
    state ("Handle Lambda service exceptions") and the retry gets the first answer; nothing is done twice."""
    given = tier(size=3)
    first = min(given.instances)  # the plan takes instances in id order
    given.sb.inject_api_error("lambda", "Invoke", "ServiceException", state=state, lost_response=True, item=0)

    result = given.run(web_input(action=action, batchSize=1), timeout=300)

    assert result.status == "SUCCEEDED", result.cause
    sent = [i for c in given.sb.bridge.calls_to("ssm", "SendCommand") for i in c.params["InstanceIds"]]
    assert sorted(sent + given.reboot_calls()) == sorted(given.instances), "one command or reboot per instance"
    assert len(given.sb.fleet.instances[first].reboots) == 1, "the instance whose answer was lost rebooted once"
    given.assert_invariants(result, floor=2)
