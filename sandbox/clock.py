"""Simulated time: one clock shared by Wait/Retry, timeouts, the fleet simulator and the execution history.

The clock is virtual: it starts at a given instant (by default the real current time, to the
second, so histories look like a real run) and moves only when the scheduler (sandbox/scheduler.py) moves it, to the
earliest deadline of a sandbox thread, once every sandbox thread waits. Running Python costs no
simulated time; what AWS itself takes (a state transition, a Lambda invoke, an API call) is added by
an explicit latency model (sandbox/latency.py).
"""

import datetime as _dt


class SimClock:
    def __init__(self, start: _dt.datetime | float | None = None) -> None:
        if start is None:  # on a whole second: history timestamps (milliseconds) then differ only as offsets do
            start = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        self._now = start.timestamp() if isinstance(start, _dt.datetime) else float(start)

    def now(self) -> float:
        """Simulated time as epoch seconds."""
        return self._now

    def now_datetime(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self._now, _dt.UTC)

    def advance_to(self, t: float) -> None:
        """Move the clock forward to ``t`` (the scheduler's job: nothing else should call this)."""
        if t < self._now:
            raise ValueError(f"simulated time cannot go back ({t} < {self._now})")
        self._now = t
