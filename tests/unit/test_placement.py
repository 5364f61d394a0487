"""Where an instance the run took out belongs: the rules every cleanup shares (opsflow.placement)."""

import datetime as dt

from opsflow.placement import REBOOT_BEGIN_PATIENCE_SECONDS, STARTUP_PATIENCE_SECONDS, Verdict, verdict
from tests.unit.test_restart_planner import retry_patience
from tools.asl import definitions, states

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


NOW = T0.timestamp()
TAKEN_OUT = {"takenOutAt": at(-120)}
REBOOT_REQUESTED = {**TAKEN_OUT, "rebootRequestedAt": at(-30)}
SEEN_DOWN = {**REBOOT_REQUESTED, "downSeenAt": at(-20)}


def test_an_instance_that_was_never_rebooted_goes_back_when_it_answers() -> None:
    assert verdict(TAKEN_OUT, answering=True, now=NOW, boot_seconds=60) is Verdict.PUT_BACK


def test_the_old_process_answering_before_the_reboot_began_is_not_taken_for_up() -> None:
    assert verdict(REBOOT_REQUESTED, answering=True, now=NOW, boot_seconds=60) is Verdict.WAIT


def test_after_it_was_seen_down_an_answer_is_the_rebooted_instance() -> None:
    assert verdict(SEEN_DOWN, answering=True, now=NOW, boot_seconds=60) is Verdict.PUT_BACK


def test_a_reboot_that_never_began_within_its_patience_leaves_the_instance_as_it_was() -> None:
    later = NOW + REBOOT_BEGIN_PATIENCE_SECONDS
    assert verdict(REBOOT_REQUESTED, answering=True, now=later, boot_seconds=60) is Verdict.PUT_BACK


def test_an_instance_that_does_not_answer_is_waited_for_until_its_startup_patience_ends() -> None:
    assert verdict(SEEN_DOWN, answering=False, now=NOW + 60, boot_seconds=60) is Verdict.WAIT
    end = T0.timestamp() - 20 + 60 + STARTUP_PATIENCE_SECONDS
    assert verdict(SEEN_DOWN, answering=False, now=end - 1, boot_seconds=60) is Verdict.WAIT
    assert verdict(SEEN_DOWN, answering=False, now=end, boot_seconds=60) is Verdict.GIVE_UP


def test_the_patience_matches_the_workflow_s() -> None:
    processor = definitions()["rolling_restart"]["States"]["Restart the instances a batch at a time"]["ItemProcessor"]
    by_name = dict(states(processor))
    assert retry_patience(by_name["Wait until the reboot has begun"]) == REBOOT_BEGIN_PATIENCE_SECONDS
    assert retry_patience(by_name["Check the application is up"]) <= STARTUP_PATIENCE_SECONDS
