"""Stop on an alarm: the application's alarms the input names stop the run, and are never muted."""

from collections import Counter
from collections.abc import Callable

from tests.workflows.conftest import SM, Tier, web_input

TierFactory = Callable[..., Tier]
WATCH = {"names": ["web-5xx-errors"]}


def test_an_alarm_firing_mid_run_stops_new_instances_and_the_run_fails_naming_it(tier: TierFactory) -> None:
    given = tier(size=6)
    arn = given.sb.start_execution(SM, web_input(batchSize=2, stopOnAlarms=WATCH))
    # The first two instances are out of service when the alarm fires: they finish, no other starts.
    given.sb.run_until(lambda: len(given.reboot_calls()) == 2)
    given.sb.set_alarm_state("web-5xx-errors", "ALARM")

    result = given.sb.wait(arn)

    assert result.status == "FAILED" and result.error == "StoppedOnAlarm", result.cause
    assert "web-5xx-errors" in (result.cause or "") and arn in (result.cause or "")
    outcomes = given.outcomes(result)
    assert Counter(o["outcome"] for o in outcomes.values()) == {"restarted": 2, "skipped": 4}
    assert sorted(given.reboot_calls()) == sorted(i for i, o in outcomes.items() if o["outcome"] == "restarted")
    assert all("stopped on alarm web-5xx-errors" in o["reason"] for o in outcomes.values() if o["outcome"] == "skipped")
    assert set(given.target_states().values()) == {"healthy"}, "the instances in flight were put back"
    muted = {n for c in given.sb.bridge.calls_to("cloudwatch", "DisableAlarmActions") for n in c.params["AlarmNames"]}
    assert "web-5xx-errors" not in muted, "a watched alarm is never muted"
    assert muted == {"web-unhealthy-hosts", "web-target-latency-p99"}
    summary = given.notifications()[-1]
    assert summary["Subject"].startswith("opsflow rolling restart STOPPED on alarm: 2 restarted")
    assert "Stopped on alarm web-5xx-errors" in summary["Message"] and "resumeFrom" in summary["Message"]
    given.assert_invariants(result, floor=4)


def test_an_alarm_already_firing_refuses_the_run_before_anything_changes(tier: TierFactory) -> None:
    given = tier(size=3)
    given.sb.set_alarm_state("web-target-latency-p99", "ALARM")

    result = given.run(web_input(batchSize=1, stopOnAlarms={"namePrefixes": ["web-target-"], "names": WATCH["names"]}))

    given.assert_refused(result, "WatchedAlarmFiringError", "web-target-latency-p99 already in ALARM")
    assert given.reboot_calls() == []


def test_a_watched_alarm_that_goes_back_to_ok_does_not_restart_the_run(tier: TierFactory) -> None:
    """Once fired, the run stays stopped: a flapping alarm must not let instances out between two flaps."""
    given = tier(size=4)
    arn = given.sb.start_execution(SM, web_input(batchSize=1, stopOnAlarms=WATCH))
    given.sb.run_until(lambda: len(given.reboot_calls()) == 1)
    given.sb.set_alarm_state("web-5xx-errors", "ALARM")
    given.sb.set_alarm_state("web-5xx-errors", "OK", after=20)

    result = given.sb.wait(arn)

    assert result.error == "StoppedOnAlarm"
    assert Counter(o["outcome"] for o in given.outcomes(result).values()) == {"restarted": 1, "skipped": 3}
    given.assert_invariants(result, floor=3)


def test_a_dry_run_shows_the_watched_alarms_and_that_a_mute_selection_leaves_them_on(tier: TierFactory) -> None:
    given = tier(size=3)

    result = given.run(web_input(batchSize=1, dryRun=True, stopOnAlarms={"namePrefixes": ["web-5xx"]}))

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["watchedAlarms"] == ["web-5xx-errors"]
    assert "web-5xx-errors" in result.output["neverMuted"]["alarms"]
    assert given.mutating_calls() == []


MISSING = [
    ({"names": ["web-5xx-error"]}, "no CloudWatch alarm is named 'web-5xx-error'"),
    ({"namePrefixes": ["api-"]}, "no CloudWatch alarm name starts with 'api-'"),
]


def test_a_watched_alarm_that_does_not_exist_is_an_input_error(tier: TierFactory) -> None:
    given = tier(size=2)
    for watch, named in MISSING:
        given.assert_refused(given.run(web_input(stopOnAlarms=watch)), "InvalidInputError", named)
