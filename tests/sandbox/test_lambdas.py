"""The sandbox's Lambda runtime: what a handler sees of its time, and what an invocation bills."""

import os

import pytest

from sandbox import lambdas
from sandbox.lambdas import Invocation, LambdaContext, PrivateEnviron


def test_a_handlers_remaining_time_counts_down_on_the_simulated_clock() -> None:
    """As on Lambda: a handler that waits sees its time run out (context.get_remaining_time_in_millis)."""
    now = [1_000.0]
    context = LambdaContext("fn", "arn:fn", 256, 30, "request", deadline=1_030.0, clock=lambda: now[0])
    assert context.get_remaining_time_in_millis() == 30_000
    now[0] = 1_025.5
    assert context.get_remaining_time_in_millis() == 4_500
    now[0] = 1_031.0
    assert context.get_remaining_time_in_millis() == 0


def test_an_invocation_bills_its_duration_rounded_up_to_the_millisecond_times_its_memory() -> None:
    invocation = Invocation("Fn", {}, None, at=110.0000004, started=100.0, memory=512)
    assert invocation.gb_seconds == 10.001 * 0.5


def test_a_waiting_handler_keeps_its_environment_variables_to_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a handler waits, other threads see the sandbox's variables; when it runs again it has its own back."""
    monkeypatch.setenv("OPSFLOW_TEST_SHARED", "sandbox")
    monkeypatch.delenv("OPSFLOW_TEST_HANDLER_ONLY", raising=False)
    environ = PrivateEnviron()
    monkeypatch.setattr(lambdas._IN_HANDLER, "depth", 1, raising=False)
    monkeypatch.setenv("OPSFLOW_TEST_SHARED", "handler")
    monkeypatch.setenv("OPSFLOW_TEST_HANDLER_ONLY", "1")
    handlers = dict(os.environ)

    token = environ.suspend()
    assert os.environ["OPSFLOW_TEST_SHARED"] == "sandbox"
    assert "OPSFLOW_TEST_HANDLER_ONLY" not in os.environ
    assert dict(os.environ) == environ.base

    os.environ["OPSFLOW_TEST_SHARED"] = "another handler"  # what ran meanwhile
    environ.resume(token)
    assert dict(os.environ) == handlers
