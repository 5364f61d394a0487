"""Simulated time: one clock shared by Wait/Retry, the fleet simulator and the execution history.

Simulated time runs ``speed`` times faster than the wall clock from the moment the clock starts, and
starts at the real current time so histories look like a real run. Everything that waits in the
sandbox waits until its deadline in simulated time, so the relative timing of concurrent branches is
kept as on AWS.

Handlers cost no simulated time: while one runs (``paused()``, around every Lambda invocation) the
clock stands still, so a slow or loaded machine does not make a poll of the health URL "take" a minute
and miss a reboot that a real poll, taking milliseconds, would see. A handler that itself sleeps
(botocore's retry back-off) lets time run for that sleep. The interpreter's own Python between states
is still stretched by ``speed`` (a few seconds per state at most); a fully virtual clock would remove
that too.
"""

import contextlib
import datetime as _dt
import threading
import time
from collections.abc import Iterator

MIN_WALL_SLEEP = 0.001  # while the clock stands still, waiters poll at this pace instead of spinning


class SimClock:
    def __init__(self, speed: float = 500.0, start: _dt.datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._start_sim = (start or _dt.datetime.now(_dt.UTC)).timestamp()
        self._start_wall = time.perf_counter()
        self._lock = threading.Lock()
        self._paused_wall = 0.0  # wall seconds during which the clock stood still, before the current pause
        self._pause_started: float | None = None
        self._pauses = 0  # how many threads hold the clock still (a handler, the harness reading results)
        self._holder = threading.local()  # whether this thread holds the pause (it runs a handler)

    def _running_wall(self) -> float:
        now = time.perf_counter()
        with self._lock:
            paused = self._paused_wall + (now - self._pause_started if self._pause_started is not None else 0.0)
        return now - self._start_wall - paused

    def now(self) -> float:
        """Simulated time as epoch seconds."""
        return self._start_sim + self._running_wall() * self.speed

    def now_datetime(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.now(), _dt.UTC)

    def wall_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) / self.speed

    def _pause(self) -> None:
        with self._lock:
            self._pauses += 1
            if self._pauses == 1:
                self._pause_started = time.perf_counter()

    def _resume(self) -> None:
        with self._lock:
            self._pauses -= 1
            if self._pauses == 0 and self._pause_started is not None:
                self._paused_wall += time.perf_counter() - self._pause_started
                self._pause_started = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stand still while the block runs: a handler, or the harness reading what happened."""
        if getattr(self._holder, "paused", False):  # a handler invoking another: already standing still
            yield
            return
        self._pause()
        self._holder.paused = True
        try:
            yield
        finally:
            self._holder.paused = False
            self._resume()

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """Inside a paused block, a sleep lets time run (a handler that backs off does take time)."""
        holds = getattr(self._holder, "paused", False)
        if holds:
            self._resume()
        try:
            yield
        finally:
            if holds:
                self._pause()

    def sleep(self, sim_seconds: float) -> None:
        with self._running():
            deadline = self.now() + max(0.0, sim_seconds)
            while (left := deadline - self.now()) > 0:
                time.sleep(max(MIN_WALL_SLEEP, self.wall_seconds(left)))

    def wait(self, event: threading.Event, sim_seconds: float | None) -> bool:
        """``event.wait`` with a timeout in simulated seconds (None: wait forever)."""
        if sim_seconds is None:
            return event.wait()
        with self._running():
            deadline = self.now() + max(0.0, sim_seconds)
            while (left := deadline - self.now()) > 0:
                if event.wait(max(MIN_WALL_SLEEP, self.wall_seconds(left))):
                    return True
            return event.is_set()
