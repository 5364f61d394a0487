"""The current time, from one replaceable source (the sandbox runs functions on simulated time)."""

import datetime as _dt
import time
from collections.abc import Callable


class _Clock:
    source: Callable[[], float] = time.time
    sleeper: Callable[[float], None] = time.sleep


def set_source(source: Callable[[], float] | None, sleeper: Callable[[float], None] | None = None) -> None:
    """Read time from ``source`` (epoch seconds) and sleep with ``sleeper``; None restores the real ones."""
    _Clock.source = source or time.time
    _Clock.sleeper = sleeper or time.sleep


def sleep(seconds: float) -> None:
    _Clock.sleeper(seconds)


def epoch() -> float:
    return _Clock.source()


def now() -> _dt.datetime:
    return _dt.datetime.fromtimestamp(epoch(), _dt.UTC)


def iso_now() -> str:
    return now().isoformat()
