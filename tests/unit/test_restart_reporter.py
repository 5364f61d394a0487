"""The reporter: the summary puts back what an interrupted restart left out, and never touches what the
run did not take out; what it says and records (opsflow.restart_report), and the events it refuses."""

import json
from typing import Any

import boto3
import pytest
import responses

from opsflow import timeutil
from opsflow.errors import InvalidInputError
from opsflow.placement import Verdict
from opsflow.restart_report import (
    COMMAND_STEPS,
    Failure,
    InstanceFailedEvent,
    SummaryEvent,
    cause_text,
    failed_step,
    failure_alert,
    failure_outcome,
    interrupted_outcome,
    summarize,
)
from opsflow.runs import RunTable
from tests.conftest import REGION, load_function

RUN = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1"


@pytest.fixture
def tier(run_table: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    instances = ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2)["Instances"]
    group = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance")
    arn = group["TargetGroups"][0]["TargetGroupArn"]
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="opsflow")["TopicArn"]
    monkeypatch.setenv("TOPIC_ARN", topic)
    return {"arn": arn, "instances": instances}


def summary_event(tier: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": "summary",
        "run": {"executionArn": RUN, "targetGroupArn": tier["arn"], "health": {"port": 8080, "path": "/health"}},
        "instanceCount": 2,
        "error": None,
    }


def test_an_instance_whose_restart_was_interrupted_is_put_back_once_it_answers(
    tier: dict[str, Any], lambda_context: Any
) -> None:
    taken_out, never_touched = tier["instances"]
    table = RunTable("runs")
    table.mark_taken_out(RUN, taken_out["InstanceId"], "2026-11-23T10:00:00+00:00")  # its child then failed
    with responses.RequestsMock() as http:
        http.get(f"http://{taken_out['PrivateIpAddress']}:8080/health", status=200)

        result = load_function("restart_reporter").lambda_handler(summary_event(tier), lambda_context)

    registered = boto3.client("elbv2", region_name=REGION).describe_target_health(TargetGroupArn=tier["arn"])
    assert [d["Target"]["Id"] for d in registered["TargetHealthDescriptions"]] == [taken_out["InstanceId"]]
    assert result["succeeded"] is False and result["failed"] == 1 and result["notStarted"] == 1
    outcome = table.get_outcome(RUN, taken_out["InstanceId"])
    assert outcome and outcome["error"] == "RestartInterrupted" and "registered again" in outcome["placement"]
    assert table.get_outcome(RUN, never_touched["InstanceId"]) is None


def test_a_failed_instance_still_registered_but_not_answering_is_taken_out_followed_up_and_alerted_once(
    tier: dict[str, Any], lambda_context: Any
) -> None:
    instance = tier["instances"][0]
    instance_id, elbv2 = instance["InstanceId"], boto3.client("elbv2", region_name=REGION)
    elbv2.register_targets(TargetGroupArn=tier["arn"], Targets=[{"Id": instance_id}])  # it failed once registered
    table = RunTable("runs")
    table.mark_taken_out(RUN, instance_id, timeutil.iso_now())
    table.ask_to_change("register", tier["arn"], [f"{instance_id}:"], timeutil.epoch())  # its gate timed out waiting
    report = {
        "action": "instance_failed",
        "instanceId": instance_id,
        "run": summary_event(tier)["run"],
        "times": {
            "drained": {"at": "2026-11-23T10:00:00+00:00", "deregisteredAt": "2026-11-23T10:00:00+00:00"},
            **dict.fromkeys(("rebooted", "down", "ready"), "2026-11-23T10:00:00+00:00"),
        },
        "failure": {"Error": "States.Timeout", "Cause": ""},
    }
    reporter = load_function("restart_reporter")
    with responses.RequestsMock() as http:
        http.get(f"http://{instance['PrivateIpAddress']}:8080/health", status=503)
        result = reporter.lambda_handler(report, lambda_context)
        first = table.get_outcome(RUN, instance_id) or {}
        reporter.lambda_handler(report, lambda_context)  # the state machine retries the report

    assert result == {
        "instanceId": instance_id,
        "outcome": "failed",
        "step": "Register the instance and wait until it is healthy in every target group",
    }
    assert elbv2.describe_target_health(TargetGroupArn=tier["arn"])["TargetHealthDescriptions"] == []
    assert table.pending_changes("register", tier["arn"]) == {}, "another instance's request would register it again"
    assert first["placement"] == "taken out of its target groups: its application does not answer"
    assert first["followUp"] is True and first["alertedAt"]
    again = table.get_outcome(RUN, instance_id) or {}
    assert again["alertedAt"] == first["alertedAt"], "one alert, however often the report is retried"
    assert again["followUp"] is True and again["placement"].startswith("left out of its target groups")


# The decisions, over plain data (opsflow.restart_report): no AWS, milliseconds each.

GROUP = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"
REF = {"executionArn": RUN, "targetGroupArn": GROUP, "health": {"port": 8080, "path": "/health"}}


def failed_event(times: dict[str, Any], cause: str = "boom", action: str = "reboot") -> InstanceFailedEvent:
    return InstanceFailedEvent.model_validate(
        {
            "action": "instance_failed",
            "instanceId": "i-0123456789abcdef0",
            "run": REF | {"action": action},
            "times": times,
            "failure": {"Error": "InstanceCannotStartError", "Cause": cause},
        }
    )


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"action": "restart", "run": REF}, "action: 'restart' is not one of 'instance_failed', 'summary'"),
        ({"run": REF, "instanceCount": 2}, "action: Field required (one of 'instance_failed', 'summary')"),
        ({"action": "instance_failed", "run": REF, "failure": {}}, "instanceId: Field required"),
        ({"action": "summary", "run": REF, "instanceCount": -1}, "instanceCount: Input should be greater than"),
        ({"action": "summary", "run": {"targetGroupArn": GROUP}, "instanceCount": 1}, "run.executionArn: Field"),
    ],
)
def test_a_malformed_report_is_refused_naming_what_is_wrong_and_changes_nothing(
    event: dict[str, Any], named: str, lambda_context: Any
) -> None:
    # No AWS is mocked: reaching any service would fail the test differently (no network).
    with pytest.raises(InvalidInputError) as refused:
        load_function("restart_reporter").lambda_handler(event, lambda_context)

    assert named in str(refused.value)


def test_the_failed_step_is_the_first_that_recorded_no_time() -> None:
    assert failed_step({}) == "Deregister the instance and wait until it has drained from every target group"
    out = {"drained": {"at": "t", "deregisteredAt": "t"}}  # the gate records the deregistration beside the drain
    assert failed_step(out | {"rebooted": "t"}) == "Wait until the reboot has begun"
    assert failed_step(out, "command") == "Run the command on the instance"
    every_step = {k: {"at": "t", "deregisteredAt": "t", "registeredAt": "t"} for k, _ in COMMAND_STEPS}
    assert failed_step(every_step, "command") == "Record the instance as restarted"


def test_a_lambda_error_s_cause_shows_its_message_not_its_stack_trace() -> None:
    lambda_cause = json.dumps({"errorMessage": "no answer on :8080", "stackTrace": ["app.py line 3"]})
    assert cause_text(Failure(Error="E", Cause=lambda_cause)) == "no answer on :8080"
    assert cause_text(Failure(Error="E", Cause="States.Timeout after 900 s")) == "States.Timeout after 900 s"
    assert cause_text(Failure(Error="E", Cause="[1, 2]")) == "[1, 2]"


def test_a_failure_s_record_keeps_what_the_run_saw_and_drops_the_keys_and_an_earlier_follow_up() -> None:
    before = {
        "pk": "run#x",
        "sk": "instance#i",
        "instanceId": "i-0123456789abcdef0",
        "takenOutAt": "2026-11-23T10:00:00+00:00",
        "followUp": True,
    }
    times = {"drained": {"at": "2026-11-23T10:00:31+00:00", "deregisteredAt": "2026-11-23T10:00:01+00:00"}, "x": "y"}

    outcome = failure_outcome(failed_event(times, cause="c" * 3000), before, "left out of its target groups")

    assert outcome == {
        "takenOutAt": "2026-11-23T10:00:00+00:00",
        "outcome": "failed",
        "step": "Reboot the instance",
        "error": "InstanceCannotStartError",
        "cause": "c" * 2000,
        "placement": "left out of its target groups",
        "times": {"deregistered": "2026-11-23T10:00:01+00:00", "drained": "2026-11-23T10:00:31+00:00"},
    }


def test_a_followed_up_failure_s_alert_says_until_when_it_may_still_come_back() -> None:
    outcome = failure_outcome(failed_event({}), None, "out") | {"downSeenAt": "2026-11-23T10:00:00+00:00"}
    run = failed_event({}).run.model_copy(update={"expected_boot_seconds": 120})

    subject, followed = failure_alert(run, "i-0123456789abcdef0", outcome, followed_up=True, failures=2)
    _, not_followed = failure_alert(run, "i-0123456789abcdef0", outcome, followed_up=False, failures=2)

    assert subject == "opsflow: i-0123456789abcdef0 failed to restart (InstanceCannotStartError)"
    # Seen down at 10:00, 120 s to boot and the 900 s startup patience: until 10:17.
    assert "as soon as its application answers, until 10:17 UTC" in followed
    assert "followed up" not in not_followed
    assert "Failures in this run so far: 2." in followed and f"Execution: {RUN}" in followed


def test_an_interrupted_instance_still_coming_up_is_recorded_out_and_followed_up() -> None:
    item = {"pk": "p", "sk": "s", "instanceId": "i-1", "outcome": "out", "takenOutAt": "t"}

    waiting = interrupted_outcome(item, Verdict.WAIT, "not answering yet: followed up")
    back = interrupted_outcome(item, Verdict.PUT_BACK, "registered again: its application answers")

    assert waiting["placement"] == "out of its target groups, not answering yet: followed up"
    assert waiting["followUp"] is True and waiting["error"] == "RestartInterrupted"
    assert back["placement"] == "registered again: its application answers" and "followUp" not in back
    assert "pk" not in back and back["takenOutAt"] == "t"


def summary_of(outcomes: list[dict[str, Any]], run: dict[str, Any] | None = None, **event: Any) -> Any:
    parsed = SummaryEvent.model_validate({"action": "summary", "run": REF, "instanceCount": 3, "error": None} | event)
    return summarize(parsed, outcomes, run or {}, {})


RESTARTED = {
    "instanceId": "i-1",
    "outcome": "restarted",
    "times": {"deregistered": "2026-11-23T10:00:00+00:00", "healthy": "2026-11-23T10:03:05+00:00"},
}
FAILED = {"instanceId": "i-2", "outcome": "failed", "step": "Reboot the instance", "error": "E", "cause": "why"}


def test_the_summary_counts_outcomes_and_instances_never_started_and_fails_the_run_for_either() -> None:
    report = summary_of([RESTARTED, FAILED])

    assert report.subject == "opsflow rolling restart FAILED: 1 restarted, 1 failed (web)"
    assert report.result == {
        "restarted": 1,
        "failed": 1,
        "skipped": 0,
        "notStarted": 1,
        "succeeded": False,
        "subject": report.subject,
        "stoppedOnAlarm": None,
    }
    assert "Instances: 1 restarted, 1 failed, 0 skipped, 1 not started" in report.message
    assert "10:00:00" in report.message and "185 s" in report.message  # out of service, deregistered to healthy
    assert "    Reboot the instance: E: why" in report.message


def test_every_instance_restarted_is_a_success() -> None:
    report = summary_of([RESTARTED | {"instanceId": f"i-{n}"} for n in range(3)])
    assert report.result["succeeded"] is True and report.subject.startswith("opsflow rolling restart succeeded: 3")


def test_a_run_stopped_on_alarm_says_which_alarm_and_how_to_resume() -> None:
    stop = {"stoppedOnAlarm": {"alarms": ["web-5xx"], "at": "2026-11-23T10:05:00+00:00"}}

    report = summary_of([RESTARTED], stop)

    assert report.subject.startswith("opsflow rolling restart STOPPED on alarm")
    assert report.result["stoppedOnAlarm"] == (
        "Stopped on alarm web-5xx (in ALARM at 2026-11-23T10:05:00+00:00): no instance was taken out after it, "
        f'those in flight finished; 1 restarted, 2 not. Once the alarm is OK, continue with {{"resumeFrom": "{RUN}"}}.'
    )


def test_a_command_run_s_summary_names_its_columns_after_the_command() -> None:
    plain = summary_of([RESTARTED])
    assert " sent " not in plain.message

    parsed = SummaryEvent.model_validate({"action": "summary", "run": REF | {"action": "command"}, "instanceCount": 1})
    sent = {"i-1": {"commandId": "c-1", "documentName": "AWS-RunShellScript", "status": "Success"}}
    report = summarize(parsed, [RESTARTED], {}, sent)
    assert " sent " in report.message and " finished " in report.message and " rebooted " not in report.message
    assert "    command c-1 (AWS-RunShellScript): Success" in report.message
