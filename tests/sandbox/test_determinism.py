"""A run with a given seed is the same run: the same history to the millisecond, on an idle or a loaded machine.

Each run is a rolling restart whose fleet draws boot, readiness and drain times from its seeded
generator while Map iterations run side by side: the same history needs the same time *and* the
same interleaving of the threads.
"""

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.fleet import FleetSpec, Spread
from sandbox.runtime import Sandbox
from tests.conftest import ROOT

START = dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)
INPUT = {
    "batchSize": 2,
    "alarms": {"namePrefixes": ["web-"]},
    "rules": {"namePrefixes": ["web-"]},
    "health": {"port": 8080, "path": "/health"},
    "expectedBootSeconds": 45,
}


def _event(e: dict[str, Any]) -> list[Any]:
    details = e.get("stateEnteredEventDetails") or e.get("stateExitedEventDetails") or {}
    iteration = e.get("mapIterationStartedEventDetails") or e.get("mapIterationSucceededEventDetails") or {}
    timestamp = e["timestamp"]
    stamp = timestamp if isinstance(timestamp, str) else timestamp.isoformat(timespec="milliseconds")
    return [e["id"], e.get("previousEventId"), e["type"], details.get("name"), iteration.get("index"), stamp]


def signature_of_a_run(seed: int = 11) -> dict[str, Any]:
    """What must not change between two runs of the scenario with the same seed."""
    fleet = FleetSpec(size=6, boot=Spread(45, 0.4), readiness=Spread(30, 0.4), drain=Spread(5, 0.6), seed=seed)
    with Sandbox(fleet, start=START) as sb:
        result = sb.run("RollingRestartStateMachine", INPUT, timeout=300)
        return {
            "status": result.status,
            "events": [_event(e) for e in result.events],
            "children": [_event(e) for e in sb.child_events()],
            "fleet": [
                [round(ev.at, 3), sb.fleet.names[ev.instance_id], ev.instance_id, ev.what] for ev in sb.fleet.events
            ],
            "calls": [[c.service, c.operation, round(c.at, 3), c.caller] for c in sb.bridge.calls],
        }


@contextmanager
def busy_cpus(seconds: float = 180) -> Iterator[None]:
    """Another process loading every core (bounded in time, and killed when done)."""
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def in_another_process(hash_seed: str) -> dict[str, Any]:
    """The same run in a fresh interpreter with another string-hash seed (set and dict orders of str)."""
    code = "import json\nfrom tests.sandbox import test_determinism as t\nprint(json.dumps(t.signature_of_a_run()))"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.splitlines()[-1]))


def test_the_same_seed_gives_the_same_history_to_the_millisecond_idle_or_loaded() -> None:
    first = json.loads(json.dumps(signature_of_a_run()))
    assert first["status"] == "SUCCEEDED"
    assert len({e[-1] for e in first["events"] + first["children"]}) > 20, "a run with many distinct instants"

    assert json.loads(json.dumps(signature_of_a_run())) == first, "idle"
    with busy_cpus():
        assert json.loads(json.dumps(signature_of_a_run())) == first, "while another process loads every core"
    assert in_another_process(hash_seed="12345") == first, "in another interpreter"


def test_another_seed_gives_another_run() -> None:
    assert signature_of_a_run(seed=12)["fleet"] != signature_of_a_run(seed=11)["fleet"]
