"""The planner's bounds agree with the state machine they plan for."""

import json
from typing import Any

from opsflow import restart_plan
from opsflow.restart_request import CommandRequest, PlannerSettings, RestartRequest
from template_model import Stack, load_template
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
    assert per_instance_patience() <= restart_plan.INSTANCE_PATIENCE_SECONDS


def _settings(documents: str = "AWS-RunPatchBaseline") -> PlannerSettings:
    return PlannerSettings.model_construct(allowed_documents=documents)  # type: ignore[call-arg]


def test_the_command_action_defaults_to_installing_patches_and_rebooting_only_if_needed() -> None:
    command = restart_plan.resolve_command(RestartRequest(action="command"), _settings())
    assert command == {
        "documentName": "AWS-RunPatchBaseline",
        "parameters": {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]},
        "timeoutSeconds": 600,
    }
    assert restart_plan.resolve_command(RestartRequest(), _settings()) is None


def test_a_command_the_stack_does_not_allow_or_without_the_command_action_is_refused() -> None:
    import pytest

    from opsflow.errors import InvalidInputError

    other = CommandRequest(document_name="AWS-RunShellScript")
    with pytest.raises(InvalidInputError, match="CommandDocuments"):
        restart_plan.resolve_command(RestartRequest(action="command", command=other), _settings())
    with pytest.raises(InvalidInputError, match='only with "action": "command"'):
        restart_plan.resolve_command(RestartRequest(command=other), _settings())
    allowed = _settings("AWS-RunPatchBaseline,AWS-RunShellScript")
    command = restart_plan.resolve_command(RestartRequest(action="command", command=other), allowed)
    assert command is not None and command["parameters"] == {}
