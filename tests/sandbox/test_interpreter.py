"""The sandbox runs ASL as AWS documents it: each moto patch and each interpreter feature we use.

Asserted from the execution history, in simulated time: exact, since Python costs no simulated time
and AWS's own latency is the model's (sandbox/latency.py).
"""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from sandbox import moto_patches
from sandbox.runtime import ExecutionResult, Sandbox

SM = "FeaturesStateMachine"


def entered(result: ExecutionResult, name: str) -> list[dt.datetime]:
    return [e["timestamp"] for e in result.events if e.get("stateEnteredEventDetails", {}).get("name") == name]


def of_type(result: ExecutionResult, kind: str) -> list[dict[str, Any]]:
    return [e for e in result.events if e["type"] == kind]


def seconds(later: dt.datetime, earlier: dt.datetime) -> float:
    return round((later - earlier).total_seconds(), 3)


def test_wait_and_retry_intervals_are_kept_in_simulated_time(features: Sandbox) -> None:
    """Wait 300 s, then a Lambda failing twice with Retry 120 s x backoff 2: gaps of 300, 120, 240 s."""
    result = features.run(SM, {"path": "wait"})

    assert result.status == "SUCCEEDED"
    transition, invoke = features.latency.state_transition, features.latency.lambda_invoke
    wait_started = entered(result, "Wait five minutes")[0]
    scheduled = [e["timestamp"] for e in of_type(result, "TaskScheduled")]
    failed = [e["timestamp"] for e in of_type(result, "TaskFailed")]
    assert seconds(entered(result, "Retry slowly")[0], wait_started) == 300 + transition
    assert seconds(failed[0], scheduled[0]) == invoke
    assert seconds(scheduled[1], failed[0]) == 120
    assert seconds(scheduled[2], failed[1]) == 240


def test_stop_execution_interrupts_a_wait(features: Sandbox) -> None:
    arn = features.start_execution(SM, {"path": "wait"})
    start = features.clock.now()
    features.run_until(at=start + 100)  # 100 s into the 300 s Wait

    features.stop(arn, cause="enough")
    result = features.wait(arn)

    assert result.status == "ABORTED"
    assert result.events[-1]["type"] == "ExecutionAborted"
    assert seconds(result.events[-1]["timestamp"], result.events[0]["timestamp"]) == 100
    assert "Retry slowly" not in result.states_entered()


def test_an_execution_can_be_stopped_as_it_is_about_to_enter_a_state(features: Sandbox) -> None:
    features.stop_when_entering("Retry slowly", cause="stopped before the retries")

    result = features.run(SM, {"path": "wait"})

    assert result.status == "ABORTED"
    assert result.states_entered() == ["Choose the path", "Wait five minutes"]
    aborted = result.events[-1]
    assert aborted["executionAbortedEventDetails"]["cause"] == "stopped before the retries"
    transition = features.latency.state_transition
    assert seconds(aborted["timestamp"], entered(result, "Wait five minutes")[0]) == 300 + transition
    assert features.lambdas.invocations == [], "nothing of the state ran"


def test_a_lambda_error_reaches_retry_by_its_class_name(features: Sandbox) -> None:
    """InstanceNotYetStartedException is retried; the Map item succeeds on the third call."""
    result = features.run(SM, {"path": "map", "items": ["a", "b", "c", "d", "e"]})

    assert result.status == "SUCCEEDED"
    assert [item["calls"] for item in result.output] == [3] * 5
    errors = {
        json.loads(e["lambdaFunctionFailedEventDetails"]["cause"])["errorType"]
        for e in of_type(result, "LambdaFunctionFailed")
    }
    assert errors == {"InstanceNotYetStartedException"}


def test_executions_of_one_definition_at_once_each_run_their_own_states(features: Sandbox) -> None:
    """The sandbox parses a definition once per process and builds each execution's states afresh from
    the kept syntax tree (moto parses at every StartExecution): two Maps of one definition running at the
    same time keep their own items, results and histories."""
    features.run(SM, {"path": "map", "items": ["warm"]})  # the definition's tree is kept from here on
    assert any('"Call the flaky function per item"' in text for text in moto_patches.syntax_trees_kept())

    three = features.start_execution(SM, {"path": "map", "items": ["a", "b", "c"]})
    one = features.start_execution(SM, {"path": "map", "items": ["z"]})
    first, second = features.wait(three), features.wait(one)

    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    assert [item["calls"] for item in first.output] == [3, 3, 3]
    assert [item["calls"] for item in second.output] == [3]
    assert len(of_type(first, "MapIterationSucceeded")) == 3 and len(of_type(second, "MapIterationSucceeded")) == 1


def test_an_api_error_can_target_the_call_of_one_task_state(features: Sandbox) -> None:
    """The fault matrix fails one state's own call: other states calling the same function are spared."""
    features.inject_api_error("lambda", "Invoke", "AccessDeniedException", state="Call the flaky function fatally")
    spared = features.run(SM, {"path": "map", "items": ["a"]})
    features.inject_api_error("lambda", "Invoke", "AccessDeniedException", state="Call flaky")
    failed = features.run(SM, {"path": "map", "items": ["a"]})

    assert spared.status == "SUCCEEDED"
    assert failed.status == "FAILED" and "injected AccessDeniedException" in (failed.cause or ""), failed.cause
    assert [e.count for e in features.bridge.errors] == [1, 0], "the first never applied; the second once"


def test_an_api_error_can_target_one_map_item(features: Sandbox) -> None:
    """The fault matrix fails one item of a Map (on AWS, one child of a Distributed Map): the others are spared."""
    features.inject_api_error("lambda", "Invoke", "AccessDeniedException", 99, state="Call flaky", item=1)

    result = features.run(SM, {"path": "map", "items": ["a", "b", "c"]})

    assert result.status == "FAILED" and "injected AccessDeniedException" in (result.cause or ""), result.cause
    failed = [json.loads(c.params["Payload"]) for c in features.bridge.calls_to("lambda", "Invoke") if c.failed]
    assert failed == [{"key": "b"}], "only the item of index 1 failed"


def test_map_runs_at_most_max_concurrency_iterations_at_once(features: Sandbox) -> None:
    result = features.run(SM, {"path": "map", "items": [f"k{i}" for i in range(6)]})

    spans: dict[int, list[dt.datetime]] = {}
    for event in result.events:
        details = event.get("mapIterationStartedEventDetails") or event.get("mapIterationSucceededEventDetails")
        if details:
            spans.setdefault(details["index"], []).append(event["timestamp"])
    assert len(spans) == 6
    moments = sorted({t for span in spans.values() for t in span})
    peak = max(sum(1 for s, e in spans.values() if s <= m < e) for m in moments)
    assert peak == 2


def test_an_error_that_must_not_be_retried_goes_to_its_catcher(features: Sandbox) -> None:
    result = features.run(SM, {"path": "fatal"})

    assert result.status == "SUCCEEDED"
    assert result.output["Error"] == "InstanceCannotStartError"
    assert len(of_type(result, "LambdaFunctionScheduled")) == 1


def test_a_function_that_outlives_its_timeout_is_stopped_there_and_fails_as_lambda_unknown(features: Sandbox) -> None:
    """Lambda ends an invocation at its timeout, mid-wait, and runs none of its code after it; Step Functions
    reports the timeout as Lambda.Unknown (Developer Guide, "Handle Lambda service exceptions")."""
    result = features.run(SM, {"path": "slow"})  # the handler waits 25 s; the fixture's timeout is 10 s

    assert result.status == "SUCCEEDED"
    assert result.output["Error"] == "Lambda.Unknown"
    assert "Task timed out after 10.00 seconds" in result.output["Cause"]
    scheduled, failed = of_type(result, "LambdaFunctionScheduled")[0], of_type(result, "LambdaFunctionFailed")[0]
    assert seconds(failed["timestamp"], scheduled["timestamp"]) == 10 + features.latency.lambda_invoke
    (invocation,) = [i for i in features.lambdas.invocations if i.event.get("key") == "slow"]
    assert (invocation.error_type, invocation.at - invocation.started) == ("Lambda.Unknown", 10)  # billed: 10 s
    assert "slow: done waiting" not in features.lambdas.logs.get("FlakyFunction", [])  # nothing ran after it


def test_sdk_integrations_use_step_functions_service_names(features: Sandbox) -> None:
    result = features.run(SM, {"path": "sdk", "targetGroupArn": features.fleet_resources["TargetGroupArn"]})

    assert result.status == "SUCCEEDED"
    assert {d["TargetHealth"]["State"] for d in result.output["TargetHealthDescriptions"]} == {"healthy"}


def test_sdk_errors_have_aws_style_names(features: Sandbox) -> None:
    arn = features.fleet_resources["TargetGroupArn"][:-4] + "0000"
    result = features.run(SM, {"path": "sdk", "targetGroupArn": arn})

    assert result.output["Error"] == "ElasticLoadBalancingV2.TargetGroupNotFoundException"


def test_timestamps_in_sdk_results_are_iso_strings(features: Sandbox) -> None:
    result = features.run(SM, {"path": "instances"})

    assert result.status == "SUCCEEDED"
    assert dt.datetime.fromisoformat(result.output["launched"])


def test_the_context_object_carries_iso_timestamps_in_simulated_time(features: Sandbox) -> None:
    result = features.run(SM, {"path": "context"})

    started = dt.datetime.fromisoformat(result.output["started"])
    entered_at = dt.datetime.fromisoformat(result.output["entered"])
    assert started <= entered_at
    assert abs((entered_at - result.events[0]["timestamp"]).total_seconds()) < 60


def callback_token(features: Sandbox) -> tuple[str, str]:
    """Start the callback path and run until its task token is in the queue: (execution ARN, token)."""
    arn = features.start_execution(SM, {"path": "callback"})
    sqs = features.client("sqs")
    queue = sqs.get_queue_url(QueueName="opsflow-Queue")["QueueUrl"]
    messages: list[dict[str, Any]] = []

    def asked() -> bool:
        messages.extend(sqs.receive_message(QueueUrl=queue).get("Messages", []))
        return bool(messages)

    features.run_until(asked)  # simulated time runs until the request is in the queue
    return arn, json.loads(messages[0]["Body"])["token"]


def test_wait_for_task_token_resumes_with_the_callback_output(features: Sandbox) -> None:
    arn, token = callback_token(features)
    asked_at = features.clock.now()

    features.client("stepfunctions").send_task_success(taskToken=token, output=json.dumps({"approved": True}))

    result = features.wait(arn)
    assert result.status == "SUCCEEDED" and result.output == {"approved": True}
    succeeded = of_type(result, "TaskSucceeded")[0]["timestamp"].timestamp()
    assert succeeded == pytest.approx(asked_at, abs=0.001), "the answer lands at the instant it was sent"


def test_send_task_failure_passes_its_error_and_cause_to_the_execution(features: Sandbox) -> None:
    """SendTaskFailure's cause reaches the state machine (moto's API layer drops it)."""
    arn, token = callback_token(features)

    features.client("stepfunctions").send_task_failure(taskToken=token, error="Rejected", cause="rejected by mail")

    result = features.wait(arn)
    assert (result.status, result.error, result.cause) == ("FAILED", "Rejected", "rejected by mail")


def test_a_task_token_answers_once_then_is_task_timed_out(features: Sandbox) -> None:
    """A token already answered is refused: "TaskTimedOut: the task token has either expired or the task
    associated with the token has already been closed" (SendTaskSuccess, Step Functions API Reference)."""
    arn, token = callback_token(features)
    sfn = features.client("stepfunctions")
    sfn.send_task_success(taskToken=token, output=json.dumps({"approved": True}))

    with pytest.raises(sfn.exceptions.TaskTimedOut):
        sfn.send_task_success(taskToken=token, output=json.dumps({"approved": False}))

    assert features.wait(arn).output == {"approved": True}


def test_with_nothing_else_to_do_a_callback_wait_stands_still_until_answered(features: Sandbox) -> None:
    arn = features.start_execution(SM, {"path": "callback"})
    sqs = features.client("sqs")
    queue = sqs.get_queue_url(QueueName="opsflow-Queue")["QueueUrl"]
    features.run_until(lambda: "Messages" in sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0))
    asked_at = features.clock.now()

    for _ in range(3):  # reading the run does not move time
        assert features.result(arn).status == "RUNNING"
    assert features.clock.now() == asked_at


def test_wait_for_task_token_times_out_in_simulated_time(features: Sandbox) -> None:
    result = features.run(SM, {"path": "callback"}, timeout=60)

    assert result.output["Error"] == "States.Timeout"
    # TimeoutSeconds 3600, and three state transitions (Choice, the Task, the Pass reporting the timeout).
    assert result.sim_seconds == pytest.approx(3600 + 3 * features.latency.state_transition, abs=0.001)


def test_an_injected_lambda_error_is_seen_by_the_state_machine(features: Sandbox) -> None:
    features.lambdas.inject_error("FlakyFunction", "InstanceCannotStartError")
    result = features.run(SM, {"path": "fatal"})
    assert result.output["Error"] == "InstanceCannotStartError"
    assert "injected by the sandbox" in result.output["Cause"]


def test_a_definite_json_path_with_an_index_yields_the_value(features: Sandbox) -> None:
    """AWS: ``$.Reservations[0].Instances[0].LaunchTime`` is the timestamp itself, not a list."""
    result = features.run(SM, {"path": "instances"})
    assert isinstance(result.output["launched"], str)


def test_indefinite_json_paths_still_yield_lists(features: Sandbox) -> None:
    result = features.run(SM, {"path": "paths", "items": [{"id": "a"}, {"id": "b"}]})
    assert result.output == {"ids": ["a", "b"], "first": "a", "firstOfAll": ["a"]}


def test_a_nested_execution_takes_and_answers_pascal_case_as_on_aws(features: Sandbox, tmp_path: Path) -> None:
    """moto hands StateMachineArn/Input to boto3 as they are (it wants camelCase), names an unnamed
    execution "None" and answers camelCase; on AWS the integration is PascalCase both ways."""
    child = tmp_path / "child.asl.json"
    child.write_text(json.dumps({"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}))
    parent = tmp_path / "parent.asl.json"
    nested = {
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "${Child}", "Input.$": "$"},
        "ResultSelector": {"echoed.$": "$.Output", "status.$": "$.Status"},
    }
    parent.write_text(
        json.dumps({"StartAt": "A", "States": {"A": {**nested, "Next": "B"}, "B": {**nested, "End": True}}})
    )
    child_arn = features.deploy_definition("Child", child, {})
    parent_arn = features.deploy_definition("Parent", parent, {"Child": child_arn})

    execution = features.client("stepfunctions").start_execution(stateMachineArn=parent_arn, input='{"n": 1}')
    result = features.wait(execution["executionArn"])

    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"echoed": {"echoed": {"n": 1}, "status": "SUCCEEDED"}, "status": "SUCCEEDED"}


def test_stopping_a_parent_stops_the_nested_execution_it_waits_for_and_reports_its_end(
    features: Sandbox, tmp_path: Path
) -> None:
    """moto stops waiting and leaves the child running; AWS stops it with the parent's role (a .sync
    parent needs states:StopExecution on its children: "IAM policies for AWS Step Functions"), and
    EventBridge reports the child's end like any execution's."""
    child = tmp_path / "child.asl.json"
    child.write_text(
        json.dumps({"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}}})
    )
    parent = tmp_path / "parent.asl.json"
    nested = {
        "Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "${Child}", "Input.$": "$"},
        "End": True,
    }
    parent.write_text(json.dumps({"StartAt": "Run the child", "States": {"Run the child": nested}}))
    child_machine = features.deploy_definition("Child", child, {})
    parent_arn = features.deploy_definition("Parent", parent, {"Child": child_machine})
    sfn = features.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=parent_arn, input="{}")["executionArn"]
    features.run_until(at=features.clock.now() + 60)
    [nested_run] = sfn.list_executions(stateMachineArn=child_machine)["executions"]

    features.stop(execution)
    assert features.wait(execution).status == "ABORTED"
    features.run_until(lambda: not features.running(nested_run["executionArn"]), timeout=30)
    features.wait_for_status_events()

    stopped = sfn.describe_execution(executionArn=nested_run["executionArn"])
    assert stopped["status"] == "ABORTED"
    assert (stopped["stopDate"] - stopped["startDate"]).total_seconds() < 62, "stopped with its parent, not later"
    reported = {(e.execution_arn, e.status) for e in features.status_event_log}
    assert (nested_run["executionArn"], "ABORTED") in reported, "its end is reported like any execution's"
