"""Simulated time: one clock shared by Wait/Retry, the fleet simulator and the execution history.

Simulated time runs ``speed`` times faster than the wall clock from the moment the clock starts, and
starts at the real current time so histories look like a real run. Everything that waits in the
sandbox sleeps ``seconds / speed`` of wall time, so the relative timing of concurrent branches is
kept exactly as on AWS. Python run time is stretched too (1 ms of code is ``speed`` ms simulated),
which is why speeds of 100-1000 are sensible and not more.
"""

import datetime as _dt
import threading
import time


class SimClock:
    def __init__(self, speed: float = 500.0, start: _dt.datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = float(speed)
        self._start_sim = (start or _dt.datetime.now(_dt.UTC)).timestamp()
        self._start_wall = time.perf_counter()

    def now(self) -> float:
        """Simulated time as epoch seconds."""
        return self._start_sim + (time.perf_counter() - self._start_wall) * self.speed

    def now_datetime(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.now(), _dt.UTC)

    def wall_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) / self.speed

    def sleep(self, sim_seconds: float) -> None:
        time.sleep(self.wall_seconds(sim_seconds))

    def wait(self, event: threading.Event, sim_seconds: float | None) -> bool:
        """``event.wait`` with a timeout in simulated seconds (None: wait forever)."""
        return event.wait(None if sim_seconds is None else self.wall_seconds(sim_seconds))
