"""The sandbox's Lambda runtime: what a handler sees of its time, and what an invocation bills."""

from sandbox.lambdas import Invocation, LambdaContext


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
