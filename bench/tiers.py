"""What several target groups and one zone at a time cost a rolling restart, in the sandbox.

The same 12-instance fleet (seeded, realistic spread), 3 at a time: a tier in one target group; the
same instances also behind a second load balancer (every instance drained from both); and that with
one zone at a time (two zones). Prints a Markdown table. It reports; it never fails on a figure.

    .venv/bin/python bench/tiers.py
"""

import math
import sys
import time
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


def main() -> None:
    print(f"{SIZE} instances, {BATCH} at a time, seed 5, boot {BOOT:.0f} s and readiness {READY:.0f} s +/- 40 %\n")
    print(
        "| tier | status | makespan | dropped | lowest serving per group | transitions / instance "
        "| Lambda / instance | ELB calls / instance | wall |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, case in CASES.items():
        r = run(*case)
        serving = ", ".join(f"{g} {n}" for g, n in r["min_serving"].items())
        print(
            f"| {name} | {r['status']} | {r['makespan']:.0f} s | {r['dropped']} | {serving} | {r['transitions']:.1f} "
            f"| {r['lambda']:.1f} | {r['elb']:.1f} | {r['wall']:.1f} s |"
        )


if __name__ == "__main__":
    main()
