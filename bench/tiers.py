"""What several target groups and one zone at a time cost a rolling restart, in the sandbox.

The same 12-instance fleet (seeded, realistic spread), 3 at a time: a tier in one target group; the
same instances also behind a second load balancer (every instance drained from both); and that with
one zone at a time (two zones). A section of `make bench` (bench/run.py); alone, it prints its table:

    .venv/bin/python bench/tiers.py
"""

import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "shared")]

from bench.run import BOOT, DRAIN, HEALTHY, INTERVAL, READY, transitions  # noqa: E402
from sandbox.fleet import FleetSpec, GroupSpec, Spread  # noqa: E402

SIZE, BATCH = 12, 3
SECOND_LOAD_BALANCER = (GroupSpec("api", port=9000, load_balancer="api", share=0.5),)
Case = tuple[dict[str, Any], dict[str, Any], dict[str, str]]  # fleet, input, groups the stack may also change
CASES: dict[str, Case] = {
    "one target group": ({}, {}, {}),
    "two target groups (second load balancer)": ({"more_groups": SECOND_LOAD_BALANCER}, {}, {"api": ""}),
    "two target groups, one zone at a time": (
        {"more_groups": SECOND_LOAD_BALANCER, "zones": 2},
        {"oneZoneAtATime": True},
        {"api": ""},
    ),
}


def run(spec_fields: dict[str, Any], payload_fields: dict[str, Any], allowed: dict[str, str]) -> dict[str, Any]:
    from sandbox.runtime import Sandbox

    spec = FleetSpec(
        size=SIZE,
        boot=Spread(BOOT, 0.4),
        readiness=Spread(READY, 0.4),
        drain=Spread(DRAIN, 0.4),
        health_check_interval=INTERVAL,
        healthy_threshold=HEALTHY,
        seed=5,
        **spec_fields,
    )
    parameters = {"AllowedTargetGroupArns": ",".join(f"{{TargetGroupArn:{g}}}" for g in allowed)} if allowed else {}
    payload = {
        "batchSize": BATCH,
        "health": {"port": spec.health_port, "path": spec.health_path},
        "expectedBootSeconds": int(BOOT),
        "errorBudget": 1000,
        **payload_fields,
    }
    wall = time.monotonic()
    with Sandbox(spec, parameters=parameters) as sb:
        result = sb.wait(sb.start_execution("RollingRestartStateMachine", payload), timeout=1800)
        start, end = result.events[0]["timestamp"].timestamp(), result.events[-1]["timestamp"].timestamp()
        timeline = sb.fleet.timeline(start, end)
        elb = [c for c in sb.bridge.calls if c.service == "elastic-load-balancing-v2"]
        return {
            "status": result.status,
            "makespan": end - start,
            "dropped": math.ceil(timeline.dropped_requests),
            "min_serving": {g: timeline.min_serving_in(g) for g in sb.fleet.groups},
            "transitions": (transitions(result.events) + transitions(sb.child_events())) / SIZE,
            "lambda": len(sb.lambdas.invocations) / SIZE,
            "elb": len(elb) / SIZE,
            "wall": time.monotonic() - wall,
        }


def section(jobs: int) -> list[str]:
    """The Markdown section of bench/results.md (bench/run.py runs it with the other sections)."""
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(CASES)))) as pool:
        results = list(pool.map(run, *zip(*CASES.values(), strict=True)))
    lines = [
        "## Several target groups and one zone at a time",
        "",
        f"{SIZE} instances, {BATCH} at a time, seed 5, boot {BOOT:.0f} s and readiness {READY:.0f} s +/- 40 %: "
        "the same fleet in one target group, also behind a second load balancer (each instance drained from "
        "both), and that one zone at a time over two zones.",
        "",
        "| tier | status | makespan | dropped | lowest serving per group | transitions / instance "
        "| Lambda / instance | ELB calls / instance | wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in zip(CASES, results, strict=True):
        serving = ", ".join(f"{g} {n}" for g, n in r["min_serving"].items())
        lines.append(
            f"| {name} | {r['status']} | {r['makespan']:.0f} s | {r['dropped']} | {serving} | {r['transitions']:.1f} "
            f"| {r['lambda']:.1f} | {r['elb']:.1f} | {r['wall']:.1f} s |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(section(jobs=2)))
