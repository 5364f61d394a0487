"""The current time, from one replaceable source (the sandbox runs functions on simulated time)."""

import datetime as _dt
import time
from collections.abc import Callable


class _Clock:
    source: Callable[[], float] = time.time


def set_source(source: Callable[[], float] | None) -> None:
    """Read time from ``source`` (epoch seconds); None restores the real clock."""
    _Clock.source = source or time.time


def epoch() -> float:
    return _Clock.source()


def now() -> _dt.datetime:
    return _dt.datetime.fromtimestamp(epoch(), _dt.UTC)


def iso_now() -> str:
    return now().isoformat()
