"""Waiting inside one invocation: ask again every few seconds until the answer is yes or time is up.

A state machine that polls by retrying pays a billed state transition and a Lambda request per
question (Standard workflows: $0.025 per 1,000 transitions, "each retry will be charged as an
additional state transition": AWS Step Functions pricing) and finds the change up to one retry
interval late. Polling within the invocation finds it within ``every`` seconds and costs only the
function's duration (256 MB on arm64: a transition's price buys about 7 s of it), so the workflow
asks a handler to keep asking for a bounded time and retries only when that time runs out.

The load balancer's questions share a budget: ELB throttles each account's Describe* requests per
Region with a token bucket of 40 that refills 10 a second, shared with every other caller in the
account (ELB user guide, "Request throttling for the ELB API"). A run keeps its waits to half of
that refill (:data:`ELB_DESCRIBE_SHARE`): each instance in flight asks every
:func:`elb_poll_seconds`, at its own phase of that period, so many waiters never ask at once.
"""

import math
import zlib
from collections.abc import Callable
from typing import Any

from opsflow import timeutil

# Left unused at the end of the invocation: one more check (a health URL request can take its timeout) fits.
MARGIN_SECONDS = 2.0

# DescribeTargetHealth requests a second a run allows itself: half the bucket's refill of 10 (the rest for others).
ELB_DESCRIBE_SHARE = 5.0
# The longest poll period: a waiter's invocation (20 s of asking) must contain at least one of its instants.
ELB_POLL_SECONDS_AT_MOST = 20.0


def elb_poll_seconds(in_flight: int, groups: int = 1) -> float:
    """How often each instance in flight may ask the load balancer (one request per target group it is in),
    so that ``in_flight`` of them stay within :data:`ELB_DESCRIBE_SHARE`: every second up to 5 waiters,
    every 10 s for 50; at most every 20 s (past 100 waiter-groups the run asks more than its share)."""
    wanted = max(1.0, in_flight * max(1, groups) / ELB_DESCRIBE_SHARE)
    return min(ELB_POLL_SECONDS_AT_MOST, math.ceil(wanted * 10) / 10)


def phase_of(key: str, every: float) -> float:
    """A stable offset in [0, every) for ``key`` (an instance id): spreads waiters over the period."""
    return (zlib.crc32(key.encode()) % 1000) / 1000 * every


def budget(wanted_seconds: float, context: Any, reserve_seconds: float = 0.0) -> float:
    """How long this invocation may keep asking: what the state machine wants, within the function's
    remaining time less what one more check may take."""
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else wanted_seconds
    return max(0.0, min(wanted_seconds, remaining - reserve_seconds - MARGIN_SECONDS))


def poll[T](
    check: Callable[[], T], *, not_yet: type[Exception], every: float, for_seconds: float, phase: float | None = None
) -> T:
    """``check()`` until it returns; it raises ``not_yet`` meanwhile, re-raised once ``for_seconds`` are spent.

    With ``phase``, checks happen only at the instants ``phase`` past a multiple of ``every`` on the clock,
    so one caller asks at most once per period, across invocations too: :func:`poll_on_schedule`."""
    if phase is not None:
        return poll_on_schedule(check, not_yet=not_yet, every=every, for_seconds=for_seconds, phase=phase)
    give_up_at = timeutil.epoch() + for_seconds
    for _ in range(int(for_seconds / every)):  # bounded even where a sleep takes no time
        try:
            return check()
        except not_yet:
            if timeutil.epoch() + every > give_up_at:
                raise
        timeutil.sleep(every)
    return check()


def poll_on_schedule[T](
    check: Callable[[], T], *, not_yet: type[Exception], every: float, for_seconds: float, phase: float
) -> T:
    """``check()`` at each instant ``phase`` past a multiple of ``every`` within ``for_seconds``; the first
    waits for its instant. "Not yet" is raised when ``for_seconds`` are spent, as by :func:`poll` (so the
    state machine's patience, in invocations, is the same at any period), without asking when no instant fell
    within them."""
    now = timeutil.epoch()
    give_up_at = now + for_seconds
    slot = now + (phase - now) % every
    for _ in range(int(for_seconds / every) + 1):  # bounded even where a sleep takes no time
        if slot > give_up_at:
            break
        timeutil.sleep(max(0.0, slot - timeutil.epoch()))
        try:
            return check()
        except not_yet:
            slot += every
            while slot <= timeutil.epoch():  # a check that took longer than a period skips the instants it missed
                slot += every
            if slot > give_up_at:
                timeutil.sleep(max(0.0, give_up_at - timeutil.epoch()))
                raise
    timeutil.sleep(max(0.0, give_up_at - timeutil.epoch()))
    raise not_yet(f"not asked: no instant to ask at within {for_seconds:g} s (one every {every:g} s)")
