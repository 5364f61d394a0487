"""The pure decisions of stop on alarm and resume: may the gate let one more instance out, which instances remain."""

import json
from typing import Any

import pytest

from opsflow import capacity_gate, placement, resume, watch

SEEN_AT = "2026-11-24T02:12:00+00:00"
ARN = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1"


def decide(**given: object) -> tuple[bool, str]:
    arguments: dict[str, Any] = {
        "failed": 0,
        "error_budget": 1,
        "stopped_on_alarm": None,
        "firing": [],
        "seen_at": SEEN_AT,
    } | given
    decision = capacity_gate.may_take_out(**arguments)
    return decision.proceed, decision.reason


def test_the_gate_lets_an_instance_out_when_nothing_fired_and_budget_is_left() -> None:
    assert decide() == (True, "")
    assert decide(failed=1, error_budget=2)[0] is True


def test_a_firing_watched_alarm_keeps_every_new_instance_in() -> None:
    proceed, reason = decide(firing=["web-5xx-errors", "web-p99"])
    assert not proceed and reason == f"stopped on alarm web-5xx-errors, web-p99 (in ALARM, seen at {SEEN_AT})"


def test_an_alarm_that_fired_earlier_in_the_run_keeps_it_stopped_after_it_is_ok_again() -> None:
    proceed, reason = decide(stopped_on_alarm={"alarms": ["web-5xx-errors"], "at": "2026-11-24T02:10:00+00:00"})
    assert not proceed and "web-5xx-errors" in reason and "02:10:00" in reason


def test_an_alarm_names_the_stop_even_when_the_error_budget_is_used_up_too() -> None:
    proceed, reason = decide(failed=1, firing=["web-5xx-errors"])
    assert not proceed and reason.startswith("stopped on alarm")
    assert decide(failed=1) == (False, "error budget used up (1 of 1 failures)")


def history(*states: str) -> list[dict[str, str]]:
    return [
        {"HistoryItemType": "StateUpdate", "HistoryData": json.dumps({"newState": {"stateValue": s}})} for s in states
    ]


def test_a_flap_through_alarm_is_found_in_the_history() -> None:
    assert watch.went_to_alarm(history("ALARM", "OK"))
    assert not watch.went_to_alarm(history("INSUFFICIENT_DATA", "OK"))
    assert not watch.went_to_alarm([{"HistoryItemType": "Action", "HistoryData": "not json"}])


def test_only_alarms_in_alarm_are_firing() -> None:
    assert watch.firing({"a": "OK", "b": "ALARM", "c": "INSUFFICIENT_DATA"}) == ["b"]


SELECTED = ["i-1", "i-2", "i-3", "i-4", "i-5", "i-6"]


def test_a_resumed_run_restarts_what_the_earlier_one_did_not_finish_in_its_order() -> None:
    items = [
        {"instanceId": "i-1", "outcome": "restarted"},
        {"instanceId": "i-2", "outcome": "failed", "step": "Deregister the instance from the target group"},
        {"instanceId": "i-3", "outcome": "skipped", "reason": "stopped on alarm web-5xx-errors"},
        # Stopped after its reboot was queued, put back by the safety net once it answered as rebooted: done.
        {"instanceId": "i-4", "outcome": "failed", "rebootRequestedAt": "t", "placement": placement.REGISTERED_AGAIN},
        # Stopped after its reboot was queued, and it never answered: left out, still to do.
        {
            "instanceId": "i-5",
            "outcome": "failed",
            "rebootRequestedAt": "t",
            "placement": "left out of the target group",
        },
    ]
    assert resume.remaining(SELECTED, items) == ["i-2", "i-3", "i-5", "i-6"]


def test_an_instance_put_back_before_its_reboot_was_queued_is_restarted_again() -> None:
    items = [{"instanceId": "i-1", "outcome": "failed", "placement": placement.LEFT_IN}]
    assert resume.remaining(["i-1"], items) == ["i-1"]


@pytest.mark.parametrize("status", ["FAILED", "ABORTED", "TIMED_OUT"])
def test_failed_stopped_and_timed_out_runs_may_be_resumed(status: str) -> None:
    assert resume.status_refusal(status) is None


@pytest.mark.parametrize(
    ("status", "says"),
    [("RUNNING", "still RUNNING"), ("SUCCEEDED", "nothing to resume"), ("PENDING_REDRIVE", "redriven")],
)
def test_running_succeeded_and_redriven_runs_are_not_resumed(status: str, says: str) -> None:
    assert says in str(resume.status_refusal(status))


def test_the_state_machine_of_an_execution() -> None:
    assert resume.state_machine_of(ARN) == "arn:aws:states:eu-west-1:123456789012:stateMachine:opsflow-rolling-restart"
    with pytest.raises(ValueError, match="not a standard execution ARN"):
        resume.state_machine_of("arn:aws:states:eu-west-1:123456789012:stateMachine:opsflow-rolling-restart")


def test_the_new_input_overrides_the_earlier_settings_field_by_field() -> None:
    earlier = {"batchSize": 1, "errorBudget": 1, "health": {"port": 8080, "path": "/health"}, "requireApproval": True}
    given = {"resumeFrom": ARN, "batchSize": 3, "health": {"path": "/ready"}, "dryRun": True, "instanceIds": ["i-1"]}
    assert resume.merged_settings(earlier, given) == {
        "batchSize": 3,
        "errorBudget": 1,
        "health": {"port": 8080, "path": "/ready"},
        "requireApproval": True,
    }
