"""The planner's bounds agree with the state machine they plan for."""

import json
from typing import Any

from template_model import Stack, load_template
from tests.conftest import load_function
from tools.asl import definitions, states

SDK_CALL_SECONDS = 60  # an SDK integration call: botocore's read timeout with its retries, generously


def _retry_wait(retrier: dict[str, Any]) -> float:
    """The longest a retrier waits in all (no jitter assumed shorter than the capped interval)."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return float(sum(min(interval * rate**k, cap) for k in range(retrier.get("MaxAttempts", 3))))


def retry_patience(state: dict[str, Any]) -> float:
    """How long a state keeps asking about its first ("not yet") error: the waits between its retries,
    plus what every attempt itself keeps asking (its handler's ``waitSeconds``)."""
    retrier = state["Retry"][0]
    asking = float(state.get("Parameters", {}).get("Payload", {}).get("waitSeconds", 0))
    attempts = 1 + int(retrier.get("MaxAttempts", 3))
    return _retry_wait(retrier) + attempts * asking


def per_instance_patience() -> float:
    """Every per-instance Task at its worst: all retry waits, every attempt at its timeout."""
    template = Stack(load_template(), {"ApprovalByEmail": "false"})
    functions = template.resources("AWS::Serverless::Function")
    machine = definitions()["rolling_restart"]
    processor = machine["States"]["Restart the instances a batch at a time"]["ItemProcessor"]
    total = 0.0
    for _, state in states(processor):
        if state["Type"] != "Task":
            continue
        function = json.dumps(state.get("Parameters", {}))
        timeouts = [int(f["Properties"].get("Timeout", 3)) for k, f in functions.items() if f"${{{k}Arn}}" in function]
        attempt = timeouts[0] if timeouts else SDK_CALL_SECONDS
        retriers = state.get("Retry", [])
        attempts = 1 + sum(r.get("MaxAttempts", 3) for r in retriers)
        total += sum(_retry_wait(r) for r in retriers) + attempts * attempt
    return total


def test_the_lock_outlives_the_slowest_instance_the_workflow_allows() -> None:
    planner = load_function("restart_planner")
    assert per_instance_patience() <= planner.INSTANCE_PATIENCE_SECONDS


def _settings(planner: Any, documents: str = "AWS-RunPatchBaseline") -> Any:
    return planner.Settings.model_construct(allowed_documents=documents)


def test_the_command_action_defaults_to_installing_patches_and_rebooting_only_if_needed() -> None:
    planner = load_function("restart_planner")
    command = planner.resolve_command(planner.RestartRequest(action="command"), _settings(planner))
    assert command == {
        "documentName": "AWS-RunPatchBaseline",
        "parameters": {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]},
        "timeoutSeconds": 600,
    }
    assert planner.resolve_command(planner.RestartRequest(), _settings(planner)) is None


def test_a_command_the_stack_does_not_allow_or_without_the_command_action_is_refused() -> None:
    import pytest

    from opsflow.errors import InvalidInputError

    planner = load_function("restart_planner")
    other = planner.CommandRequest(document_name="AWS-RunShellScript")
    with pytest.raises(InvalidInputError, match="CommandDocuments"):
        planner.resolve_command(planner.RestartRequest(action="command", command=other), _settings(planner))
    with pytest.raises(InvalidInputError, match='only with "action": "command"'):
        planner.resolve_command(planner.RestartRequest(command=other), _settings(planner))
    allowed = _settings(planner, "AWS-RunPatchBaseline,AWS-RunShellScript")
    assert planner.resolve_command(planner.RestartRequest(action="command", command=other), allowed)["parameters"] == {}
