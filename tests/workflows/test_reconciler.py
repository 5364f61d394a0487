"""The reconciler: runs that ended without being cleaned up are cleaned up, once; running ones are left alone.

EventBridge delivers the status-change event that starts the safety net on a best-effort basis; the
sandbox drops, duplicates or delays it on demand, and fires the reconciler as its schedule would.
"""

from collections.abc import Callable

from sandbox.aws_fleet import ApiCall
from sandbox.fleet import Spread
from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]
RECONCILER = "RunReconcilerFunction"
READS = ("Describe", "List", "Get", "Query", "Scan")


def open_runs(given: Tier) -> list[str]:
    from opsflow.runs import RunTable

    return RunTable(given.sb.stack.physical["RunTable"]["Ref"], given.sb.client("dynamodb")).open_runs()


def changes(calls: list[ApiCall]) -> list[str]:
    """The calls that change something (reads and the run table's lookups aside)."""
    return [f"{c.service}:{c.operation}" for c in calls if not c.operation.startswith(READS)]


def start_and_stop_midway(given: Tier, batch_size: int = 2) -> str:
    """Start a restart and stop it once the first instance is rebooting (alarms muted, lock held)."""
    arn = given.sb.start_execution(SM, web_input(batchSize=batch_size))
    given.sb.run_until(lambda: bool(given.sb.bridge.calls_to("ec2", "RebootInstances")))
    given.sb.stop(arn)
    assert given.sb.wait(arn).status == "ABORTED"
    return arn


# A clean shutdown that takes 2 minutes: a stop right after the reboot calls finds those instances still
# on their way down, so their cleanup must follow them up until they answer as rebooted.
SLOW_SHUTDOWN = Spread(120.0)


def after_the_follow_up(given: Tier) -> dict[str, object]:
    """Let the rebooted instances come back, then the reconciler's pass that puts them back and closes the run."""
    given.sb.run_until(at=given.sb.clock.now() + 700)  # beyond the reboot's patience to begin (opsflow.placement)
    return dict(given.sb.fire_schedule(RECONCILER))


def alerts(given: Tier, subject: str) -> list[dict[str, str]]:
    return [n for n in given.notifications() if n["Subject"].startswith(subject)]


def test_a_stopped_run_whose_status_event_was_lost_is_cleaned_up_by_the_reconciler(tier: TierFactory) -> None:
    given = tier(size=4, shutdown=SLOW_SHUTDOWN)
    given.sb.status_events = "drop"
    arn = start_and_stop_midway(given)

    assert [e.fate for e in given.sb.status_event_log] == ["dropped"]
    assert given.sb.monitoring_state()["alarm:web-5xx-errors"] == "actions disabled", "nothing restored it yet"
    assert given.lock_held() and open_runs(given) == [arn]

    answer = given.sb.fire_schedule(RECONCILER)

    assert answer["followingUp"] == [arn] and answer["failed"] == []
    assert given.sb.monitoring_state() == given.before, "alarms and rules restored"
    assert not given.lock_held(), "the lock released"
    [alert] = alerts(given, "opsflow reconciler: rolling restart ended ABORTED")
    registered = set(given.target_states())
    still_out = [i for i in given.instances if i not in registered]
    assert f"followed up: {len(still_out)}" in alert["Message"], "those still out are followed up"
    assert not [i for i in still_out if i in alert["Message"]], "and not named: one alert only if they never answer"
    assert "unhealthy" not in given.target_states().values()
    assert not alerts(given, "opsflow safety net")
    assert after_the_follow_up(given)["cleanedUp"] == [arn]
    assert open_runs(given) == [] and set(given.target_states()) == set(given.instances)
    assert len(alerts(given, "opsflow reconciler")) == 1, "putting them back mails nothing more"

    first_call, mails = len(given.sb.bridge.calls), len(given.notifications())
    again = given.sb.fire_schedule(RECONCILER)

    assert again == {
        "openRuns": 0,
        "stillRunning": [],
        "cleanedUp": [],
        "closed": [],
        "skipped": [],
        "followingUp": [],
        "failed": [],
    }
    assert changes(given.sb.bridge.calls[first_call:]) == [], "a second pass changes nothing"
    assert len(given.notifications()) == mails, "and mails nothing"


def test_a_duplicated_status_event_changes_nothing_the_second_time(tier: TierFactory) -> None:
    given = tier(size=4, shutdown=SLOW_SHUTDOWN)
    given.sb.status_events = "duplicate"
    start_and_stop_midway(given)

    first, second = given.sb.status_event_log
    safety_net = given.sb.stack.physical["RestoreSafetyNetFunction"]["Ref"]
    assert first.answers[safety_net]["action"] == "following up"
    assert second.answers[safety_net]["action"] in ("none", "following up"), "at most a silent follow-up pass"
    tier_changes = [c for c in changes(second.calls) if not c.startswith("dynamodb:")]  # its own run record aside
    assert tier_changes == [], "the second delivery changes nothing on the tier"
    assert len(alerts(given, "opsflow safety net: rolling restart ended ABORTED")) == 1, "and sends no second alert"
    assert given.sb.monitoring_state() == given.before and not given.lock_held()
    after_the_follow_up(given)
    assert open_runs(given) == []


def test_the_reconciler_leaves_a_running_restart_alone(tier: TierFactory) -> None:
    given = tier(size=3)
    arn = given.sb.start_execution(SM, web_input(batchSize=1))
    given.sb.run_until(lambda: bool(given.sb.bridge.calls_to("ec2", "RebootInstances")))

    answer = given.sb.fire_schedule(RECONCILER)

    assert answer["stillRunning"] == [arn] and answer["cleanedUp"] == answer["closed"] == []
    by_reconciler = [c for c in given.sb.bridge.calls if c.caller == RECONCILER]
    assert {c.operation for c in by_reconciler} == {"Query", "DescribeExecution"}, "it only looked"
    result = given.sb.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    given.assert_invariants(result, floor=2)
    assert open_runs(given) == [], "a run that ends normally closes itself"
    assert given.sb.fire_schedule(RECONCILER)["openRuns"] == 0


def test_a_run_whose_alarms_could_not_be_restored_stays_open_until_they_are(tier: TierFactory) -> None:
    given = tier(size=2)
    given.sb.status_events = "drop"
    given.sb.inject_api_error("cloudwatch", "EnableAlarmActions", "AccessDenied", count=7)  # every retry fails

    result = given.run(web_input(batchSize=1))

    assert result.error == "AlarmsNotRestored"
    assert open_runs(given) == [result.arn], "not closed: its alarms are still muted"
    assert given.sb.monitoring_state()["alarm:web-5xx-errors"] == "actions disabled"

    answer = given.sb.fire_schedule(RECONCILER)

    assert answer["cleanedUp"] == [result.arn]
    given.assert_invariants(result, floor=1)
    assert open_runs(given) == []


def test_a_late_status_event_and_the_reconciler_clean_up_once_whichever_comes_first(tier: TierFactory) -> None:
    given = tier(size=4, shutdown=SLOW_SHUTDOWN)
    given.sb.status_events, given.sb.status_event_delay = "delay", 600
    start_and_stop_midway(given)

    given.sb.fire_schedule(RECONCILER)
    given.sb.wait_for_status_events()

    cleanups = [n for n in given.notifications() if "rolling restart ended ABORTED" in n["Subject"]]
    assert len(cleanups) == 1, [n["Subject"] for n in cleanups]
    assert given.sb.monitoring_state() == given.before and not given.lock_held()
    after_the_follow_up(given)
    assert open_runs(given) == []
    assert len([n for n in given.notifications() if "rolling restart ended ABORTED" in n["Subject"]]) == 1
