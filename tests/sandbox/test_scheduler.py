"""The scheduler: one sandbox thread at a time, time moving only to the earliest deadline, in a fixed order."""

import random
import threading
import time
from collections.abc import Callable

import pytest

from sandbox.clock import SimClock
from sandbox.scheduler import Scheduler, SimThread, Stalled

T0 = 1_000_000.0


@pytest.fixture
def sched() -> Scheduler:
    return Scheduler(SimClock(T0))


def spawn(sched: Scheduler, *targets: Callable[[], None]) -> list[SimThread]:
    """Start participants from outside, as the sandbox does (under the baton: none runs before all exist)."""
    with sched.external():
        threads = [sched.Thread(target=t, name=f"p{i}", daemon=True) for i, t in enumerate(targets)]
        for thread in threads:
            thread.start()
    return threads


def test_time_jumps_to_the_earliest_deadline(sched: Scheduler) -> None:
    woke: list[tuple[str, float]] = []

    def sleeper(name: str, seconds: float) -> Callable[[], None]:
        def run() -> None:
            sched.sleep(seconds)
            woke.append((name, sched.now() - T0))

        return run

    spawn(sched, sleeper("slow", 300), sleeper("fast", 10), sleeper("middle", 120))
    assert sched.now() == T0, "starting threads takes no simulated time"

    sched.run(until=lambda: len(woke) == 3, timeout=10)

    assert woke == [("fast", 10), ("middle", 120), ("slow", 300)]
    assert sched.now() == T0 + 300


def test_nothing_advances_while_a_participant_runs(sched: Scheduler) -> None:
    seen: list[tuple[str, float]] = []

    def busy() -> None:
        before = sched.now()
        time.sleep(0.3)  # wall time spent computing, holding the baton
        seen.append(("busy", sched.now() - before))

    def short() -> None:
        sched.sleep(0.001)
        seen.append(("short", sched.now() - T0))

    spawn(sched, busy, short)
    sched.run(until=lambda: len(seen) == 2, timeout=10)

    assert seen == [("busy", 0.0), ("short", pytest.approx(0.001))], "the 1 ms sleeper waits for the busy thread"


def test_threads_waking_at_the_same_instant_run_in_the_order_they_started_waiting(sched: Scheduler) -> None:
    order: list[int] = []

    def worker(n: int) -> Callable[[], None]:
        def run() -> None:
            sched.sleep(5)
            order.append(n)

        return run

    spawn(sched, *(worker(n) for n in range(8)))
    sched.run(until=lambda: len(order) == 8, timeout=10)

    assert order == list(range(8))


def test_an_interleaving_of_many_threads_is_the_same_on_every_run() -> None:
    def one_run() -> list[tuple[int, float]]:
        sched = Scheduler(SimClock(T0))
        rng = random.Random(7)  # shared, as the fleet model's: the order of draws is the order of running
        trace: list[tuple[int, float]] = []

        def worker(n: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(20):
                    sched.sleep(rng.choice([0.5, 1.0, 2.0]))
                    trace.append((n, sched.now()))

            return run

        spawn(sched, *(worker(n) for n in range(6)))
        sched.run(until=lambda: len(trace) == 120, timeout=30)
        return trace

    assert one_run() == one_run()


def test_with_nothing_runnable_and_no_deadline_time_stands_still_until_an_outside_event(sched: Scheduler) -> None:
    approval = sched.Event()
    resumed: list[float] = []

    def waiter() -> None:
        approval.wait()  # no timeout: an approval only the test sends
        resumed.append(sched.now())
        sched.sleep(60)
        resumed.append(sched.now())

    spawn(sched, waiter)
    with pytest.raises(Stalled, match="an Event"):
        sched.run(timeout=5)
    assert sched.now() == T0 and resumed == []

    with sched.external():  # the test acts: the woken thread runs when the action ends
        approval.set()
    assert resumed == [T0], "the waiter ran up to its next wait, at the same instant"

    sched.run(until=lambda: len(resumed) == 2, timeout=5)
    assert resumed == [T0, T0 + 60]


def test_an_event_wakes_a_timed_wait_before_its_deadline(sched: Scheduler) -> None:
    stop = sched.Event()
    result: list[tuple[bool, float]] = []

    def waiting() -> None:
        result.append((stop.wait(300), sched.now() - T0))  # a Wait state StopExecution interrupts

    def stopper() -> None:
        sched.sleep(42)
        stop.set()
        stop.clear()  # moto pulses the program state event

    spawn(sched, waiting, stopper)
    sched.run(until=lambda: bool(result), timeout=5)

    assert result == [(True, 42)]


def test_run_until_a_time_stops_the_clock_exactly_there(sched: Scheduler) -> None:
    ticks: list[float] = []

    def ticker() -> None:
        while True:
            sched.sleep(10)
            ticks.append(sched.now() - T0)

    spawn(sched, ticker)
    sched.run(at=T0 + 35, timeout=5)

    assert ticks == [10, 20, 30] and sched.now() == T0 + 35
    sched.run(at=T0 + 40, timeout=5)
    assert ticks == [10, 20, 30, 40], "what is due at the stop time has run"


def test_a_thread_waiting_for_a_lock_lets_the_others_run(sched: Scheduler) -> None:
    lock = sched.Lock()
    log: list[tuple[str, float]] = []

    def holder() -> None:
        with lock:
            sched.sleep(30)  # e.g. a retry back-off while holding it
            log.append(("holder done", sched.now() - T0))

    def contender() -> None:
        with lock:
            log.append(("contender got it", sched.now() - T0))

    def bystander() -> None:
        sched.sleep(5)
        log.append(("bystander", sched.now() - T0))

    spawn(sched, holder, contender, bystander)
    sched.run(until=lambda: len(log) == 3, timeout=5)

    assert log == [("bystander", 5), ("holder done", 30), ("contender got it", 30)]


def test_join_and_condition_use_simulated_time(sched: Scheduler) -> None:
    cond = sched.Condition()
    items: list[int] = []
    log: list[tuple[str, float]] = []

    def producer() -> None:
        for n in range(3):
            sched.sleep(10)
            with cond:
                items.append(n)
                cond.notify_all()

    def consumer() -> None:
        with cond:
            cond.wait_for(lambda: len(items) == 3)
        log.append(("consumed", sched.now() - T0))

    def parent() -> None:
        child = sched.Thread(target=consumer)
        child.start()
        child.join(timeout=5)
        log.append(("join timed out" if child.is_alive() else "joined", sched.now() - T0))
        child.join()
        log.append(("joined", sched.now() - T0))

    spawn(sched, producer, parent)
    sched.run(until=lambda: len(log) == 3, timeout=5)

    assert log == [("join timed out", 5), ("consumed", 30), ("joined", 30)]


def test_a_thread_that_never_waits_is_reported_by_the_wall_clock_safety_net(sched: Scheduler) -> None:
    stop = threading.Event()

    def spinner() -> None:
        while not stop.is_set():  # a plain Event: invisible to the scheduler
            time.sleep(0.01)

    thread = sched.Thread(target=spinner, daemon=True)
    thread.start()  # outside the baton: it starts running at once
    try:
        with pytest.raises(TimeoutError, match="did not come to a wait"):
            sched.run(timeout=0.5)
    finally:
        stop.set()
        thread.join(timeout=5)
