"""Simulated time: one clock shared by Wait/Retry, timeouts, the fleet simulator and the execution history.

The clock is virtual: it starts at a given instant (by default the real current time, to the
second, so histories look like a real run) and moves only when the scheduler (sandbox/scheduler.py) moves it, to the
earliest deadline of a sandbox thread, once every sandbox thread waits. Running Python costs no
simulated time; what AWS itself takes (a state transition, a Lambda invoke, an API call) is added by
an explicit latency model (sandbox/latency.py).
"""

import datetime as _dt

NS = 1_000_000_000


class SimClock:
    """Simulated time, kept in whole nanoseconds: sums of waits and latencies are exact, so two threads
    that reach the same instant by different paths meet there, and timestamps never drift by a rounding."""

    def __init__(self, start: _dt.datetime | float | None = None) -> None:
        if start is None:  # on a whole second: history timestamps (milliseconds) then differ only as offsets do
            start = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        if isinstance(start, _dt.datetime):
            epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
            delta = start.astimezone(_dt.UTC) - epoch
            self._ns = (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000
        else:
            self._ns = round(start * NS)

    def now(self) -> float:
        """Simulated time as epoch seconds."""
        return self._ns / NS

    def now_ns(self) -> int:
        return self._ns

    def now_datetime(self) -> _dt.datetime:
        seconds, ns = divmod(self._ns, NS)
        return _dt.datetime.fromtimestamp(seconds, _dt.UTC) + _dt.timedelta(microseconds=ns // 1_000)

    def advance_to(self, t: float) -> None:
        """Move the clock forward to ``t`` epoch seconds (the scheduler's job: nothing else should call this)."""
        self.advance_to_ns(round(t * NS))

    def advance_to_ns(self, ns: int) -> None:
        if ns < self._ns:
            raise ValueError(f"simulated time cannot go back ({ns} < {self._ns} ns)")
        self._ns = ns
