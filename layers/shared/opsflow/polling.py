"""Waiting inside one invocation: ask again every few seconds until the answer is yes or time is up.

A state machine that polls by retrying pays a billed state transition and a Lambda request per
question (Standard workflows: $0.025 per 1,000 transitions, "each retry will be charged as an
additional state transition": AWS Step Functions pricing) and finds the change up to one retry
interval late. Polling within the invocation finds it within ``every`` seconds and costs only the
function's duration (the waiting functions have 128 MB on arm64: a transition's price buys 15 s of it), so the workflow
asks a handler to keep asking for a bounded time and retries only when that time runs out.

The load balancer's questions share a budget: ELB throttles each account's Describe* requests per
Region with a token bucket of 40 that refills 10 a second, shared with every other caller in the
account (ELB user guide, "Request throttling for the ELB API"). The instances in flight share one
answer per target group per poll (target gate), and the poll period keeps a run's questions to half
of that refill (:data:`ELB_DESCRIBE_SHARE`, :func:`elb_poll_seconds`).
"""

import math
from collections.abc import Callable
from typing import Any

from opsflow import timeutil

# Left unused at the end of the invocation: one more check (a health URL request can take its timeout) fits.
MARGIN_SECONDS = 2.0

# DescribeTargetHealth requests a second a run allows itself: half the bucket's refill of 10 (the rest for others).
ELB_DESCRIBE_SHARE = 5.0


def elb_poll_seconds(groups: int = 1) -> float:
    """How often the run asks ELB about each target group while instances wait on it (one shared answer per
    group per poll, however many are in flight): every second for up to 5 groups, so that all of them stay
    within :data:`ELB_DESCRIBE_SHARE`; longer for more."""
    return math.ceil(max(1.0, max(1, groups) / ELB_DESCRIBE_SHARE) * 10) / 10


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
