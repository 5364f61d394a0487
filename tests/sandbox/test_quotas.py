"""The sandbox enforces Step Functions' payload and history quotas as AWS does.

- 256 KiB per state input (after Parameters) and output; States.DataLimitExceeded is terminal:
  "States.ALL ... can't catch the States.DataLimitExceeded terminal error" (Handling errors in Step
  Functions workflows, Step Functions developer guide).
- 25,000 events per execution history ("Quotas related to state machine executions", Step Functions
  service quotas); the 25,000th is ExecutionFailed, States.Runtime. Distributed Map children have
  histories of their own.
"""

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.fleet import FleetSpec
from sandbox.moto_patches import HISTORY_LIMIT, HISTORY_LIMIT_CAUSE
from sandbox.runtime import Sandbox
from tests.sandbox.conftest import FIXTURE_TEMPLATE, inline_map

SM = "FeaturesStateMachine"
BLOB = "x" * 100_000  # three of them exceed 256 KiB, one does not


@pytest.fixture
def machine(open_sandbox: Callable[..., Sandbox]) -> Callable[[dict[str, Any]], Sandbox]:
    def deploy(definition: dict[str, Any]) -> Sandbox:
        return open_sandbox(FleetSpec(size=1), template_path=FIXTURE_TEMPLATE, definitions={SM: definition})

    return deploy


def test_an_output_over_256_kib_fails_the_execution_past_a_states_all_catcher(machine: Any) -> None:
    sb = machine(
        {
            "StartAt": "Copy the blob three times",
            "States": {
                "Copy the blob three times": inline_map(
                    {"blob.$": "$.blob"},
                    {"Echo": {"Type": "Pass", "End": True}},
                    Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                    End=True,
                ),
                "Caught": {"Type": "Pass", "End": True},
            },
        }
    )

    result = sb.run(SM, {"blob": BLOB, "items": [1, 2, 3]})

    assert result.status == "FAILED"
    assert result.error == "States.DataLimitExceeded"
    assert "Caught" not in result.states_entered()


def test_a_runtime_error_fails_the_execution_past_a_states_all_catcher(machine: Any) -> None:
    """ "States.ALL ... can't catch the States.DataLimitExceeded terminal error or Runtime error types"
    (Handling errors in Step Functions workflows): a path that matches nothing is one."""
    branch = {
        "StartAt": "Read a field the input lacks",
        "States": {"Read a field the input lacks": {"Type": "Pass", "Parameters": {"v.$": "$.missing"}, "End": True}},
    }
    catch_all = {"ErrorEquals": ["States.ALL"], "Next": "Caught"}
    sb = machine(
        {
            "StartAt": "Run the branch",
            "States": {
                "Run the branch": {"Type": "Parallel", "Branches": [branch], "Catch": [catch_all], "End": True},
                "Caught": {"Type": "Pass", "End": True},
            },
        }
    )

    result = sb.run(SM, {})

    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "Caught" not in result.states_entered()


def test_a_task_whose_parameters_name_a_missing_field_fails_the_execution(machine: Any) -> None:
    """A Task's Parameters path that matches nothing is a runtime error too (moto called it "Exception", which
    States.ALL caught): the workflow must not rely on a catcher for an input it never checked."""
    task = {"Type": "Task", "Resource": "${FlakyFunctionArn}", "Parameters": {"key.$": "$.missing"}}
    sb = machine(
        {
            "StartAt": "Call with a missing field",
            "States": {
                "Call with a missing field": task
                | {"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True},
                "Caught": {"Type": "Pass", "End": True},
            },
        }
    )

    result = sb.run(SM, {})

    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "Caught" not in result.states_entered()
    assert "'$.missing' could not be found" in (result.cause or "")


def test_a_state_output_within_256_kib_passes(machine: Any) -> None:
    sb = machine({"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}})

    result = sb.run(SM, {"blob": BLOB})

    assert result.status == "SUCCEEDED"


def test_the_input_after_parameters_is_limited_too(machine: Any) -> None:
    sb = machine(
        {
            "StartAt": "Triple the blob",
            "States": {
                "Triple the blob": {
                    "Type": "Pass",
                    "Parameters": {"a.$": "$.blob", "b.$": "$.blob", "c.$": "$.blob"},
                    "ResultPath": None,
                    "End": True,
                }
            },
        }
    )

    result = sb.run(SM, {"blob": BLOB})

    assert result.status == "FAILED"
    assert result.error == "States.DataLimitExceeded"
    assert "Triple the blob" in (result.cause or "")


def test_an_execution_fails_at_its_25000th_history_event(machine: Any) -> None:
    sb = machine(
        {
            "StartAt": "Count",
            "States": {
                "Count": {
                    "Type": "Pass",
                    "Parameters": {"n.$": "States.MathAdd($.n, 1)"},
                    "Next": "Again?",
                },
                "Again?": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.n", "NumericLessThan": 1_000_000, "Next": "Count"}],
                    "Default": "Done",
                },
                "Done": {"Type": "Succeed"},
            },
        }
    )

    result = sb.run(SM, {"n": 0}, timeout=300)

    assert result.status == "FAILED"
    assert (result.error, result.cause) == ("States.Runtime", HISTORY_LIMIT_CAUSE)
    assert len(result.events) == HISTORY_LIMIT
    assert result.events[-1]["type"] == "ExecutionFailed" and result.events[-1]["id"] == HISTORY_LIMIT


def test_distributed_map_children_have_histories_of_their_own(machine: Any) -> None:
    sb = machine(
        {
            "StartAt": "Each item",
            "States": {
                "Each item": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "Echo",
                        "States": {"Echo": {"Type": "Pass", "End": True}},
                    },
                    "End": True,
                }
            },
        }
    )

    result = sb.run(SM, {"items": [1, 2, 3]})

    assert result.status == "SUCCEEDED"
    histories = sb.child_histories()
    assert len(histories) == 3
    for history in histories:
        assert [e["type"] for e in history] == [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded",
        ]
    assert not [e for e in result.events if e["type"].startswith("PassState")], "not in the parent's history"
