"""Waiting inside one invocation: ask again every few seconds until the answer is yes or time is up.

A state machine that polls by retrying pays a billed state transition and a Lambda request per
question (Standard workflows: $0.025 per 1,000 transitions, "each retry will be charged as an
additional state transition": AWS Step Functions pricing) and finds the change up to one retry
interval late. Polling within the invocation finds it within ``every`` seconds and costs only the
function's duration (256 MB on arm64: a transition's price buys about 7 s of it), so the workflow
asks a handler to keep asking for a bounded time and retries only when that time runs out.
"""

from collections.abc import Callable
from typing import Any

from opsflow import timeutil

# Left unused at the end of the invocation: one more check (a health URL request can take its timeout) fits.
MARGIN_SECONDS = 2.0


def budget(wanted_seconds: float, context: Any, reserve_seconds: float = 0.0) -> float:
    """How long this invocation may keep asking: what the state machine wants, within the function's
    remaining time less what one more check may take."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else wanted_seconds
    return max(0.0, min(wanted_seconds, remaining - reserve_seconds - MARGIN_SECONDS))


def poll[T](check: Callable[[], T], *, not_yet: type[Exception], every: float, for_seconds: float) -> T:
    """``check()`` until it returns; it raises ``not_yet`` meanwhile, re-raised once ``for_seconds`` are spent."""
    give_up_at = timeutil.epoch() + for_seconds
    for _ in range(int(for_seconds / every)):  # bounded even where a sleep takes no time
        try:
            return check()
        except not_yet:
            if timeutil.epoch() + every > give_up_at:
                raise
        timeutil.sleep(every)
    return check()
