"""The current time, from one replaceable source (the sandbox runs functions on simulated time)."""

import datetime as _dt
import time
from collections.abc import Callable

_source: Callable[[], float] = time.time


def set_source(source: Callable[[], float] | None) -> None:
    """Read time from ``source`` (epoch seconds); None restores the real clock."""
    global _source
    _source = source or time.time


def epoch() -> float:
    return _source()


def now() -> _dt.datetime:
    return _dt.datetime.fromtimestamp(_source(), _dt.UTC)


def iso_now() -> str:
    return now().isoformat()
