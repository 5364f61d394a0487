"""`make bench`: the rolling restart against the ideal and against the original design, in one run.

Every scenario runs in a fresh sandbox (its own process, seeded), once with opsflow's state machine
and once with the original design (bench/baseline_rolling_restart.asl.json), on the same fleet.
Writes bench/results.md and bench/results.png. It reports; it never fails on a figure.
"""

import argparse
import datetime as dt
import functools
import json
import math
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "shared")]

from sandbox.fleet import FleetSpec, Spread  # noqa: E402
from tools.check_build import isolated_python, lambda_environment  # noqa: E402

BOOT, READY, DRAIN, INTERVAL, HEALTHY = 45.0, 30.0, 5.0, 10, 3
PER_BATCH_IDEAL = DRAIN + BOOT + READY + INTERVAL * HEALTHY  # the least one instance can take
QUOTA = 25_000
BASELINE = ROOT / "bench" / "baseline_rolling_restart.asl.json"


@dataclass(frozen=True)
class Scenario:
    size: int
    batch: int | str
    timing: str  # deterministic | realistic
    fault: str | None = None

    @property
    def name(self) -> str:
        fault = f", {self.fault.replace('_', '-')} instance" if self.fault else ""
        return f"{self.size} x batch {self.batch}, {self.timing}{fault}"

    def batch_size(self) -> int:
        if isinstance(self.batch, str):
            return max(1, math.floor(self.size * int(self.batch[:-1]) / 100))
        return self.batch

    def ideal(self) -> float:
        return math.ceil(self.size / self.batch_size()) * PER_BATCH_IDEAL


def matrix() -> list[Scenario]:
    out = [Scenario(n, b, t) for t in ("deterministic", "realistic") for n in (4, 12, 48, 200) for b in (1, 3, "25%")]
    return [*out, Scenario(12, 3, "realistic", "never_ready"), Scenario(12, 3, "realistic", "slow")]


def transitions(events: list[dict[str, Any]]) -> int:
    """Billed state transitions: every state entered, plus every retry attempt."""
    kinds = Counter(e["type"] for e in events)
    entered = sum(n for k, n in kinds.items() if k.endswith("StateEntered"))
    attempts = kinds["TaskScheduled"] + kinds["LambdaFunctionScheduled"]
    return entered + max(0, attempts - kinds["TaskStateEntered"])


def run_one(scenario: Scenario, design: str) -> dict[str, Any]:
    from sandbox.runtime import Sandbox

    spread = 0.4 if scenario.timing == "realistic" else 0.0
    spec = FleetSpec(
        size=scenario.size,
        boot=Spread(BOOT, spread),
        readiness=Spread(READY, spread),
        drain=Spread(DRAIN, spread),
        deregistration_delay=300,
        health_check_interval=INTERVAL,
        healthy_threshold=HEALTHY,
        seed=5,
    )
    health = {"port": spec.health_port, "path": spec.health_path}
    wall0 = time.monotonic()
    with Sandbox(spec) as sb:
        ids = sorted(sb.fleet.instances)
        if scenario.fault:
            sb.fleet.inject(ids[len(ids) // 2], scenario.fault)  # type: ignore[arg-type]
        selectors: dict[str, Any] = {"alarms": {"namePrefixes": ["web-"]}, "rules": {"namePrefixes": ["web-"]}}
        payload: dict[str, Any]
        if design == "opsflow":
            payload = {"batchSize": scenario.batch, "health": health, "expectedBootSeconds": int(BOOT), **selectors}
            payload["errorBudget"] = 1000  # benchmarks measure every instance, not the stop rule
            arn = sb.start_execution("RollingRestartStateMachine", payload)
        else:
            sb.deploy_definition(
                "Baseline",
                BASELINE,
                {
                    "AlarmTogglerFunctionArn": {"Fn::GetAtt": ["AlarmTogglerFunction", "Arn"]},
                    "StartupCheckFunctionArn": {"Fn::GetAtt": ["StartupCheckFunction", "Arn"]},
                    "NotificationTopicArn": {"Ref": "NotificationTopic"},
                },
            )
            payload = {
                "batchSize": scenario.batch_size(),
                "instanceIds": ids,
                "health": health,
                "targetGroupArn": sb.fleet_resources["TargetGroupArn"],
                **selectors,
            }
            arn = sb.start_execution("Baseline", payload)
        result = sb.wait(arn, timeout=1800)
        start, end = result.events[0]["timestamp"].timestamp(), result.events[-1]["timestamp"].timestamp()
        timeline = sb.fleet.timeline(start, end)
        children = sb.child_events()
        api = [c for c in sb.bridge.calls if c.service not in ("sfn", "lambda")]
        return {
            "scenario": scenario.name,
            "design": design,
            "status": result.status,
            "makespan": end - start,
            "ideal": scenario.ideal(),
            "min_serving": timeline.min_serving,
            "floor": scenario.size - scenario.batch_size(),
            "dropped": math.ceil(timeline.dropped_requests),
            "transitions_per_instance": (transitions(result.events) + transitions(children)) / scenario.size,
            "parent_events": len(result.events),
            "child_events_per_instance": len(children) / scenario.size,
            "lambda_per_instance": len(sb.lambdas.invocations) / scenario.size,
            "api_per_instance": len(api) / scenario.size,
            "wall": time.monotonic() - wall0,
            "size": scenario.size,
            "timing": scenario.timing,
        }


def run_scenario(scenario: Scenario) -> list[dict[str, Any]]:
    return [run_one(scenario, "opsflow"), run_one(scenario, "baseline")]


def sandbox_hour() -> dict[str, float]:
    """Wall time of a simulated hour: Wait 300 s, a Lambda retried at 120 s, then the rest of the hour."""
    from sandbox.runtime import Sandbox

    with Sandbox(None, template_path=ROOT / "tests" / "sandbox" / "fixture" / "template.yaml") as sb:
        t0 = time.perf_counter()
        result = sb.run("FeaturesStateMachine", {"path": "hour"}, timeout=120)
        return {"simulated": result.sim_seconds, "wall": time.perf_counter() - t0}


COLD_START_TARGET = 1.3  # issue #14: each handler with its layer imports in <= 1.3 x a bare `import boto3`
COLD_START_REPEAT = 7


@dataclass(frozen=True)
class ImportTime:
    """Medians over the repetitions of one fresh interpreter's import, in seconds."""

    wall: float
    cpu: float  # user + system time of the child: what the import costs, whatever else holds the cores


def import_times(build: Path, repeat: int = COLD_START_REPEAT) -> dict[str, ImportTime]:
    """Each built handler imported with its built layer by a fresh python3.13, as Lambda starts it (the
    template's Powertools variables, its task root): with SDK tracing off (the default) and on.

    Repetitions are interleaved (every target once, then again), so a change in the machine's load
    touches every figure alike; the ratio is taken on CPU time, which another process's load barely moves.
    """
    layer = build / "SharedLayer" / "python"
    functions = sorted(p for p in build.iterdir() if (p / "app.py").exists())
    targets: dict[str, tuple[str, list[Path], dict[str, str]]] = {"import boto3": ("import boto3", [layer], {})}
    for fn in functions:
        targets[fn.name] = ("import app", [fn, layer], lambda_environment(fn))
    for fn in functions:
        targets[f"{fn.name} +SdkTracing"] = ("import app", [fn, layer], lambda_environment(fn, {"SdkTracing": "true"}))
    walls: dict[str, list[float]] = {name: [] for name in targets}
    cpus: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(repeat):
        for name, (code, paths, env) in targets.items():
            before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            isolated_python(paths, code, env).check_returncode()
            t1, after = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            walls[name].append(t1 - t0)
            cpus[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {name: ImportTime(statistics.median(walls[name]), statistics.median(cpus[name])) for name in targets}


def cold_start_section(imports: dict[str, ImportTime], repeat: int = COLD_START_REPEAT) -> list[str]:
    lines = ["", f"## Cold start: importing each handler with its layer (median of {repeat}, python3.13)", ""]
    if not imports:
        return [*lines, "Not measured: no host build (`make check-build` makes .aws-sam/build-host)."]
    base = imports["import boto3"]
    handlers = [name for name in imports if name != "import boto3" and not name.endswith(" +SdkTracing")]
    met = sum(imports[name].cpu / base.cpu <= COLD_START_TARGET for name in handlers)
    lines += [
        "As deployed (SdkTracing=false: Lambda active tracing records each invocation, no X-Ray SDK in the "
        "function), and with SdkTracing=true (Powertools Tracer on the X-Ray SDK, subsegments for every call). "
        f"Ratios on CPU time; target <= {COLD_START_TARGET} x `import boto3`: met by {met} of {len(handlers)}.",
        "",
        "| handler | CPU time | / `import boto3` | wall time | with SdkTracing=true: CPU | / `import boto3` |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| `import boto3` | {base.cpu * 1000:.0f} ms | 1.00 | {base.wall * 1000:.0f} ms | | |",
    ]
    for name in handlers:
        now, traced = imports[name], imports[f"{name} +SdkTracing"]
        lines.append(
            f"| {name} | {now.cpu * 1000:.0f} ms | {fmt(now.cpu / base.cpu)} | {now.wall * 1000:.0f} ms | "
            f"{traced.cpu * 1000:.0f} ms | {fmt(traced.cpu / base.cpu)} |"
        )
    return lines


def collector_memory(counts: tuple[int, ...] = (10_000, 50_000)) -> list[dict[str, Any]]:
    """Peak memory and throughput of the collector vs building the whole list, over many pages."""
    import os

    import boto3
    from moto import mock_aws

    from opsflow import clients
    from sandbox.aws_fleet import AwsBridge
    from sandbox.fleet import Fleet
    from sandbox.patches import InstancePatches, PatchService

    class DiscardingS3:
        """The function's memory is measured, not the bucket's (moto would keep the object in memory)."""

        def upload_fileobj(self, fileobj: Any, bucket: str, key: str, **_: Any) -> None:
            while fileobj.read(1 << 20):
                pass

    rows = []
    for count in counts:
        # Note: itertools.islice over the simulator's list still walks skipped items: pages cost O(offset).
        with mock_aws():
            os.environ.update(
                AWS_DEFAULT_REGION="eu-west-1",
                COLLECTOR_ALLOWED_OPERATIONS="ssm:DescribeInstancePatches",
                BUCKET_NAME="bench",
            )
            boto3.setup_default_session(region_name="eu-west-1")
            patches = [
                {
                    "Title": f"pkg-{n}",
                    "KBId": f"pkg-{n}.1.0",
                    "Classification": "Security",
                    "Severity": "Low",
                    "State": "Missing",
                    "CVEIds": f"CVE-2026-{n:05d}",
                }
                for n in range(count)
            ]
            bridge = AwsBridge(Fleet(FleetSpec(size=1), 0.0), time.time)
            bridge.patches = PatchService(
                {"i-0123456789abcdef0": InstancePatches("i-0123456789abcdef0", "web", patches)}
            )
            bridge.install(boto3.DEFAULT_SESSION)
            clients.reset()
            clients.inject("s3", DiscardingS3())
            import importlib

            app = importlib.import_module("functions.api_collector.app")
            app.settings.cache_clear()
            request = app.CollectRequest(
                service="ssm",
                operation="DescribeInstancePatches",
                collect="Patches",
                parameters={"InstanceId": "i-0123456789abcdef0", "MaxResults": 100},
            )
            del patches
            approaches: dict[str, Callable[[], object]] = {
                "collector (streaming)": functools.partial(app.collect, request, app.settings()),
                "naive (whole list)": functools.partial(_naive, request),
            }
            for label, fn in approaches.items():
                tracemalloc.start()
                t0 = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - t0
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                rows.append(
                    {"items": count, "approach": label, "items_per_s": count / elapsed, "peak_mib": peak / 2**20}
                )
            clients.reset()
    return rows


def _naive(request: Any) -> str:
    from opsflow import clients

    items: list[Any] = []
    paginator = clients.client("ssm").get_paginator("describe_instance_patches")
    for page in paginator.paginate(**request.parameters):
        items.extend(page["Patches"])
    return json.dumps(items, default=str)


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def write(
    rows: list[dict[str, Any]],
    *,
    imports: dict[str, ImportTime],
    memory: list[dict[str, Any]],
    hour: dict[str, float],
    wall: float,
    out: Path,
) -> None:
    versions = _versions()
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d} ({wall / 60:.0f} min wall, "
        f"{platform.machine()}, {', '.join(f'{k} {v}' for k, v in versions.items())}). Seeded: the same command gives "
        "the same fleets. Every figure below was measured in this one run.",
        "",
        f"Timings: boot {BOOT:.0f} s, application readiness {READY:.0f} s, drain {DRAIN:.0f} s, health checks "
        f"{HEALTHY} x {INTERVAL} s; *realistic* varies boot, readiness and drain per instance by +/-40 %. Ideal "
        f"makespan = ceil(N / batch) x {PER_BATCH_IDEAL:.0f} s. The baseline is the original design "
        "(bench/baseline_rolling_restart.asl.json: fixed 60 s wait, startup check retried every 120 s x 3, no drain "
        "wait, no wait for healthy).",
        "",
        "## Rolling restart",
        "",
        "| scenario | design | status | makespan | / ideal | min serving (floor) | dropped | transitions / instance | "
        "events: parent, per child | Lambda / instance | API calls / instance | wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        floor_ok = "held" if r["min_serving"] >= r["floor"] else "**BROKEN**"
        ratio = fmt(r["makespan"] / r["ideal"]) if r["timing"] == "deterministic" else "-"
        lines.append(
            f"| {r['scenario']} | {r['design']} | {r['status']} | {r['makespan'] / 60:.1f} min | {ratio} | "
            f"{r['min_serving']} ({r['floor']}, {floor_ok}) | {r['dropped']} | "
            f"{fmt(r['transitions_per_instance'], 1)} | "
            f"{r['parent_events']}, {fmt(r['child_events_per_instance'], 1)} | {fmt(r['lambda_per_instance'], 1)} | "
            f"{fmt(r['api_per_instance'], 1)} | {r['wall']:.0f} s |"
        )
    lines += [*_summary(rows), "", (ROOT / "bench" / "missed-targets.md").read_text(encoding="utf-8").rstrip()]
    lines += cold_start_section(imports)
    lines += [
        "",
        "## Paginating collector: 100 items a page",
        "",
        "| items | approach | items / s | peak memory |",
        "| --- | --- | --- | --- |",
    ]
    for m in memory:
        lines.append(f"| {m['items']:,} | {m['approach']} | {m['items_per_s']:,.0f} | {m['peak_mib']:.1f} MiB |")
    lines += [
        "",
        "## The sandbox's simulated time",
        "",
        f"A simulated hour (Wait 300 s, a Lambda retried at 120 s then 240 s, Wait 2,940 s: "
        f"{hour['simulated'] / 60:.0f} min of history) ran in {hour['wall']:.2f} s of wall time (virtual clock: "
        "simulated time jumps from one deadline to the next).",
    ]
    lines += ["", "![makespan / ideal and minimum serving capacity](results.png)", ""]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    ops = [r for r in rows if r["design"] == "opsflow"]
    det = [r for r in ops if r["timing"] == "deterministic"]
    worst = max(det, key=lambda r: r["makespan"] / r["ideal"])
    per_child = max(r["child_events_per_instance"] for r in ops)
    parent = max(r["parent_events"] for r in ops)
    baseline_events = max((r["parent_events"] / r["size"] for r in rows if r["design"] == "baseline"), default=1)
    pairs = {(r["scenario"]): r for r in rows if r["design"] == "baseline"}
    faster = sum(1 for r in ops if r["timing"] == "realistic" and r["makespan"] < pairs[r["scenario"]]["makespan"])
    realistic = sum(1 for r in ops if r["timing"] == "realistic")
    return [
        "",
        "### Against the targets",
        "",
        f"- makespan / ideal on deterministic scenarios: worst {fmt(worst['makespan'] / worst['ideal'])} "
        f"({worst['scenario']}); target <= 1.10.",
        f"- faster than the baseline on {faster} of {realistic} realistic scenarios.",
        f"- floor held by opsflow on {sum(r['min_serving'] >= r['floor'] for r in ops)} of {len(ops)} scenarios; "
        f"by the baseline on {sum(r['min_serving'] >= r['floor'] for r in rows if r['design'] == 'baseline')} of "
        f"{len(rows) - len(ops)}. Requests dropped: opsflow {sum(r['dropped'] for r in ops)}, baseline "
        f"{sum(r['dropped'] for r in rows if r['design'] == 'baseline')}.",
        f"- history quota: opsflow's parent execution had at most {parent} events (Distributed Map: constant in N), "
        f"each child execution at most {per_child:.0f} events per instance; a 1,000-instance fleet fits. The baseline "
        f"(inline Map) uses {baseline_events:.0f} events per instance in one history: at most "
        f"{int(QUOTA / baseline_events):,} instances fit.",
    ]


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"Python": platform.python_version(), **{p: version(p) for p in ("moto", "boto3", "aws-lambda-powertools")}}


def chart(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    det = [r for r in rows if r["timing"] == "deterministic"]
    names = list(dict.fromkeys(r["scenario"].split(",")[0] for r in det))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for offset, design, colour in ((-0.2, "opsflow", "#2e4057"), (0.2, "baseline", "#d1495b")):
        ratios = [
            next(r["makespan"] / r["ideal"] for r in det if r["design"] == design and r["scenario"].startswith(n + ","))
            for n in names
        ]
        left.bar([i + offset for i in range(len(names))], ratios, width=0.4, color=colour, label=design)
        margin = [
            next(r["min_serving"] - r["floor"] for r in rows if r["design"] == design and r["scenario"] == s)
            for s in dict.fromkeys(r["scenario"] for r in rows)
        ]
        right.bar([i + offset for i in range(len(margin))], margin, width=0.4, color=colour, label=design)
    left.axhline(1.10, color="grey", linestyle="--", linewidth=1, label="target 1.10")
    left.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    left.set_ylabel("makespan / ideal (deterministic)")
    left.legend(fontsize=8)
    right.axhline(0, color="grey", linewidth=1)
    right.set_xticks([])
    right.set_xlabel("every scenario (order of the table)")
    right.set_ylabel("min serving - floor (below 0: capacity broken)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small subset, for trying the benchmark out")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    scenarios = matrix()
    if args.quick:
        scenarios = [s for s in scenarios if s.size <= 12 and s.batch in (3, "25%")][:3]
    wall0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for i, scenario_rows in enumerate(pool.map(run_scenario, scenarios), 1):
            rows += scenario_rows
            print(
                f"[{i}/{len(scenarios)}] {scenario_rows[0]['scenario']}: "
                + "; ".join(f"{r['design']} {r['makespan'] / 60:.1f} min" for r in scenario_rows),
                flush=True,
            )
    build = ROOT / ".aws-sam" / "build-host"
    imports = import_times(build) if build.exists() else {}
    memory = collector_memory()
    hour = sandbox_hour()
    out = ROOT / "bench" / ("results-quick.md" if args.quick else "results.md")
    write(rows, imports=imports, memory=memory, hour=hour, wall=time.monotonic() - wall0, out=out)
    chart(rows, out.with_suffix(".png"))
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)} and {out.with_suffix('.png').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
