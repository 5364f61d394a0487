"""The sandbox runs ASL as AWS documents it: each moto patch and each interpreter feature we use.

Asserted from the execution history, in simulated time.
"""

import datetime as dt
import json
import time
from typing import Any

from sandbox.runtime import ExecutionResult, Sandbox

SM = "FeaturesStateMachine"


def entered(result: ExecutionResult, name: str) -> list[dt.datetime]:
    return [e["timestamp"] for e in result.events if e.get("stateEnteredEventDetails", {}).get("name") == name]


def of_type(result: ExecutionResult, kind: str) -> list[dict[str, Any]]:
    return [e for e in result.events if e["type"] == kind]


def test_wait_and_retry_intervals_are_kept_in_simulated_time(features: Sandbox) -> None:
    """Wait 300 s, then a Lambda failing twice with Retry 120 s x backoff 2: gaps of 300, 120, 240 s."""
    result = features.run(SM, {"path": "wait"})

    assert result.status == "SUCCEEDED"
    wait_started = entered(result, "Wait five minutes")[0]
    scheduled = [e["timestamp"] for e in of_type(result, "TaskScheduled")]
    failed = [e["timestamp"] for e in of_type(result, "TaskFailed")]
    # Lower bounds are exact; the small excess is Python run time stretched by the time warp.
    assert 300 <= (entered(result, "Retry slowly")[0] - wait_started).total_seconds() <= 300 * 1.1
    assert 120 <= (scheduled[1] - failed[0]).total_seconds() <= 120 * 1.1
    assert 240 <= (scheduled[2] - failed[1]).total_seconds() <= 240 * 1.1


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


def test_wait_for_task_token_resumes_with_the_callback_output(features: Sandbox) -> None:
    arn = features.start_execution(SM, {"path": "callback"})
    sqs = features.client("sqs")
    queue = sqs.get_queue_url(QueueName="opsflow-Queue")["QueueUrl"]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
    token = json.loads(messages[0]["Body"])["token"]

    features.client("stepfunctions").send_task_success(taskToken=token, output=json.dumps({"approved": True}))

    result = features.wait(arn)
    assert result.status == "SUCCEEDED" and result.output == {"approved": True}


def test_wait_for_task_token_times_out_in_simulated_time(features: Sandbox) -> None:
    result = features.run(SM, {"path": "callback"}, timeout=60)

    assert result.output["Error"] == "States.Timeout"
    assert 3600 <= result.sim_seconds <= 3600 * 1.05


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
