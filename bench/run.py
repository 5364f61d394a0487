"""`make bench`: the rolling restart against the ideal and against the original design, in one run.

Every scenario runs in a fresh sandbox (seeded, on the virtual clock with its latency model), once with
opsflow's state machine and once with the original design (bench/baseline_rolling_restart.asl.json), on
the same fleet; a pool of worker processes runs them, longest first. Writes bench/results.md and
bench/results.png. It reports; it never fails on a figure.

The bounds a makespan is compared with:

- *ideal* (deterministic scenarios): ceil(N / batch) x the per-instance critical path, drain + shutdown
  + boot + readiness + one health-check interval. The last term is the documented rule: a newly
  registered target "must pass one health check to be considered healthy" (ALB guide, "Health checks for
  Application Load Balancer target groups"), sent in the sandbox one interval after the registration.
- *sliding-window lower bound* (every scenario; the ratio shown for realistic ones): the instances in
  the plan's order, each taking its own sampled drain + shutdown + boot + readiness + one interval
  (read back from the fleet after the run), started as soon as one of the batch's slots is free (list
  scheduling, as the Map's MaxConcurrency does) with no time between steps. A sliding window over the
  same order cannot finish sooner, since each instance takes at least its sampled time. With exact
  timings it equals the ideal. An instance that never becomes ready is left out of it.

Cost per restarted instance, at list prices in US East (N. Virginia): Step Functions Standard
$0.025 per 1,000 state transitions, retries included (aws.amazon.com/step-functions/pricing); Lambda on
arm64 $0.20 per million requests and $0.0000133334 per GB-second, first tier (aws.amazon.com/lambda/pricing).
Duration is the handler's simulated time, rounded up to the millisecond, times the function's memory.
Sections are functions of SECTIONS: add one to add a section.
"""

import argparse
import datetime as dt
import functools
import heapq
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "shared")]

from sandbox.fleet import AutoScalingSpec, Fleet, FleetSpec, Spread  # noqa: E402
from tools.check_build import isolated_command, isolated_python, lambda_environment  # noqa: E402

BOOT, READY, DRAIN, SHUTDOWN, INTERVAL, HEALTHY = 45.0, 30.0, 5.0, 8.0, 10, 3
# The least one instance can take: one passing check after the registration (HEALTHY is for unhealthy targets).
PER_BATCH_IDEAL = DRAIN + SHUTDOWN + BOOT + READY + INTERVAL
PRICE_TRANSITION = 0.025 / 1000  # Standard workflows, us-east-1
PRICE_LAMBDA_REQUEST = 0.20 / 1_000_000  # us-east-1
PRICE_LAMBDA_GB_SECOND_ARM = 0.0000133334  # arm64, us-east-1, first tier
QUOTA = 25_000
LEFT_AS_IT_ENDED_SECONDS = 60  # capacity is sampled this long after a run's end, as the run left the tier
BASELINE = ROOT / "bench" / "baseline_rolling_restart.asl.json"


@dataclass(frozen=True)
class Scenario:
    size: int
    batch: int | str
    timing: str  # deterministic | realistic
    fault: str | None = None
    auto_scaling: bool = False  # every instance a member of one EC2 Auto Scaling group

    @property
    def name(self) -> str:
        fault = f", {self.fault.replace('_', '-')} instance" if self.fault else ""
        group = ", one Auto Scaling group" if self.auto_scaling else ""
        return f"{self.size} x batch {self.batch}, {self.timing}{fault}{group}"

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


def sliding_window_bound(fleet: Fleet, order: list[str], batch: int) -> float:
    """The least a sliding window of ``batch`` slots can take over ``order``, from the sampled times."""
    slots = [0.0] * batch
    for instance_id in order:
        duration = critical_path(fleet, instance_id)
        if math.isinf(duration):
            continue  # never ready: it holds no slot to the end in any design
        heapq.heappush(slots, heapq.heappop(slots) + duration)
    return max(slots)


def critical_path(fleet: Fleet, instance_id: str) -> float:
    """Drain + shutdown + boot + readiness + one health-check interval, as sampled for this instance."""
    registration = fleet.registrations[instance_id][0]
    drain = registration.drain_end - registration.deregistered_at
    requested = next(e.at for e in fleet.events if e.instance_id == instance_id and e.what == "reboot-requested")
    down, _, app_up = fleet.instances[instance_id].reboots[0]
    return drain + (down - requested) + (app_up - down) + fleet.spec.health_check_interval


def run_one(scenario: Scenario, design: str) -> dict[str, Any]:
    from sandbox.runtime import Sandbox

    spread = 0.4 if scenario.timing == "realistic" else 0.0
    spec = FleetSpec(
        size=scenario.size,
        boot=Spread(BOOT, spread),
        readiness=Spread(READY, spread),
        drain=Spread(DRAIN, spread),
        shutdown=Spread(SHUTDOWN),
        deregistration_delay=300,
        health_check_interval=INTERVAL,
        healthy_threshold=HEALTHY,
        seed=5,
        # Room for the whole fleet and for the batch on Standby (it leaves the desired capacity as it was).
        auto_scaling=AutoScalingSpec(max_size=2 * scenario.size) if scenario.auto_scaling else None,
    )
    health = {"port": spec.health_port, "path": spec.health_path}
    wall0, cpu0 = time.monotonic(), time.process_time()
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
        # Past the end too: a run that stops with instances out of service leaves the tier so (a run that
        # failed in its first second was sampled only before it had changed anything).
        timeline = sb.fleet.timeline(start, end + LEFT_AS_IT_ENDED_SECONDS)
        children = sb.child_events()
        api = [c for c in sb.bridge.calls if c.service not in ("sfn", "lambda")]
        billed = transitions(result.events) + transitions(children)
        invocations = sb.lambdas.invocations
        gb_seconds = sum(i.gb_seconds for i in invocations)
        dollars = (
            billed * PRICE_TRANSITION
            + len(invocations) * PRICE_LAMBDA_REQUEST
            + gb_seconds * PRICE_LAMBDA_GB_SECOND_ARM
        )
        restarted = [i for i in ids if sb.fleet.instances[i].reboots]
        groups = list(sb.fleet.auto_scaling.values())
        return {
            "scenario": scenario.name,
            "design": design,
            "status": result.status,
            "rebooted": len(restarted),  # a run may end "succeeded" with instances it never rebooted
            "makespan": end - start,
            "ideal": scenario.ideal(),
            "bound": sliding_window_bound(sb.fleet, restarted, scenario.batch_size()) if restarted else 0.0,
            "min_serving": timeline.min_serving,
            "floor": scenario.size - scenario.batch_size(),
            "dropped": math.ceil(timeline.dropped_requests),
            "transitions_per_instance": billed / scenario.size,
            "gb_seconds_per_instance": gb_seconds / scenario.size,
            "dollars_per_instance": dollars / scenario.size,
            "parent_events": len(result.events),
            "child_events_per_instance": len(children) / scenario.size,
            "lambda_per_instance": len(sb.lambdas.invocations) / scenario.size,
            "api_per_instance": len(api) / scenario.size,
            # Attempts ELB refused for its API rate (ElbApiBuckets): what a batch larger than a bucket waits for.
            "elb_throttled": sb.elb_buckets.count(throttled=True) if sb.elb_buckets else 0,
            "auto_scaling_per_instance": sum(c.service == "auto-scaling" for c in api) / scenario.size,
            "auto_scaling_calls": dict(Counter(c.operation for c in api if c.service == "auto-scaling")),
            "replaced": sum("Terminating" in a.description for g in groups for a in g.activities),
            "in_service_after": sum(g.lifecycle(i) == "InService" for g in groups for i in ids),
            "wall": time.monotonic() - wall0,
            "cpu": time.process_time() - cpu0,  # all the worker's threads: what the machine's load cannot inflate
            "size": scenario.size,
            "timing": scenario.timing,
        }


def _cost(task: tuple[Scenario, str]) -> float:
    """Rough wall time of a run, for starting the longest first (the pool then ends together)."""
    scenario, design = task
    return scenario.size * (1.6 if design == "opsflow" else 1.0) + 20


def run_matrix(scenarios: list[Scenario], jobs: int) -> list[dict[str, Any]]:
    """Every (scenario, design) run on a pool of ``jobs`` processes, longest first; rows in matrix order."""
    tasks = [(scenario, design) for scenario in scenarios for design in ("opsflow", "baseline")]
    rows: dict[tuple[Scenario, str], dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, *task): task for task in sorted(tasks, key=_cost, reverse=True)}
        for done, future in enumerate(as_completed(futures), 1):
            row = rows[futures[future]] = future.result()
            print(
                f"[{done}/{len(tasks)}] {row['scenario']}, {row['design']}: {row['makespan'] / 60:.1f} min, "
                f"{row['wall']:.0f} s wall, {row['cpu']:.0f} s CPU",
                flush=True,
            )
    return [rows[task] for task in tasks]


def sandbox_hour() -> dict[str, float]:
    """Wall time of a simulated hour: Wait 300 s, a Lambda retried at 120 s, then the rest of the hour."""
    from sandbox.runtime import Sandbox

    with Sandbox(None, template_path=ROOT / "tests" / "sandbox" / "fixture" / "template.yaml") as sb:
        t0 = time.perf_counter()
        result = sb.run("FeaturesStateMachine", {"path": "hour"}, timeout=120)
        return {"simulated": result.sim_seconds, "wall": time.perf_counter() - t0}


def patch_preview_at_scale(size: int) -> dict[str, Any]:
    """One patch preview of ``size`` servers: the largest state payload and the histories, against the quotas."""
    from sandbox.runtime import Sandbox

    with Sandbox(FleetSpec(size=size)) as sb:
        wall0 = time.monotonic()
        result = sb.run("PatchPreviewStateMachine", {}, timeout=3600)
        wall = time.monotonic() - wall0
        children = sb.child_histories()
        return {
            "servers": size,
            "status": result.status,
            "largest_payload": result.largest_payload(),
            "parent_events": len(result.events),
            "children": len(children),
            "max_child_events": max((len(h) for h in children), default=0),
            "virtual": result.sim_seconds,
            "wall": wall,
        }


def preview_lines(previews: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Patch preview at scale",
        "",
        "Quotas: 256 KiB per state input or output, 25,000 events per execution history (each Distributed Map "
        "child has its own). Wall time is the run's, after the sandbox's set-up.",
        "",
        "| servers | status | largest state payload | events: parent | child executions | events: largest child | "
        "virtual time | wall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in previews:
        lines.append(
            f"| {p['servers']:,} | {p['status']} | {p['largest_payload'] / 1024:.1f} KiB | {p['parent_events']} | "
            f"{p['children']} | {p['max_child_events']} | {p['virtual']:.1f} s | {p['wall']:.0f} s |"
        )
    return lines


COLD_START_TARGET = 1.3  # issue #14: each handler with its layer imports in <= 1.3 x a bare `import boto3`
COLD_START_REPEAT = 7


@dataclass(frozen=True)
class Dependency:
    """A library import whose cold-start cost the benchmark attributes: its own CPU time, in a fresh
    interpreter, after ``import boto3`` and the first ``after`` COMMON_IMPORTS rows (what a handler imports
    before it)."""

    label: str
    module: str  # in sys.modules once a handler has imported it
    code: str
    after: int


# What every handler imports beside boto3, each timed on top of the rows before it.
COMMON_IMPORTS = (
    Dependency(
        "Powertools Logger, Metrics, Tracer",
        "aws_lambda_powertools",
        "from aws_lambda_powertools import Logger, Metrics, Tracer",
        0,
    ),
    Dependency("pydantic's BaseModel (for Powertools' parser)", "pydantic.main", "from pydantic import BaseModel", 1),
    Dependency(
        "pydantic's first model with a constrained field (loads annotated_types, pydantic.types)",
        "annotated_types",
        "from pydantic import Field, create_model; create_model('First', n=(int, Field(ge=1)))",
        2,
    ),
)
# Powertools utilities some handlers add, each timed alone after what precedes it in a handler: Powertools'
# core (import sorting puts `aws_lambda_powertools` before `pydantic`), and pydantic for the parser, which
# needs it. The order matters: Powertools batch imports the parser and its record models if pydantic is loaded.
UTILITY_IMPORTS = (
    Dependency(
        "Powertools parser",
        "aws_lambda_powertools.utilities.parser",
        "from aws_lambda_powertools.utilities.parser import parse",
        2,
    ),
    Dependency(
        "Powertools parser's event models",
        "aws_lambda_powertools.utilities.parser.models",
        "from aws_lambda_powertools.utilities.parser.models import EventBridgeModel",
        2,
    ),
    Dependency(
        "Powertools event handler",
        "aws_lambda_powertools.event_handler",
        "from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver",
        1,
    ),
    Dependency(
        "Powertools batch",
        "aws_lambda_powertools.utilities.batch",
        "from aws_lambda_powertools.utilities.batch import BatchProcessor",
        1,
    ),
    Dependency(
        "Powertools idempotency",
        "aws_lambda_powertools.utilities.idempotency",
        "from aws_lambda_powertools.utilities.idempotency import idempotent_function",
        1,
    ),
)


def _increment_code(dep: Dependency) -> str:
    """Import what precedes ``dep`` in a handler, then print the CPU time ``dep``'s own import takes."""
    before = "; ".join(["import time", "import boto3", *(d.code for d in COMMON_IMPORTS[: dep.after])])
    return f"{before}; t = time.process_time(); {dep.code}; print(time.process_time() - t)"


@dataclass(frozen=True)
class ImportTime:
    """Medians over the repetitions of one fresh interpreter's import, in seconds."""

    wall: float
    cpu: float  # user + system time of the child: what the import costs, whatever else holds the cores


def _timed_import(paths: list[Path], code: str, env: dict[str, str]) -> ImportTime:
    """One fresh interpreter's import: its wall time, and the CPU time of that child alone (os.wait4), so
    an import running beside it on the other core is not counted."""
    command, environment = isolated_command(paths, code, env)
    t0 = time.perf_counter()
    child = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:  # run it again to show why
        isolated_python(paths, code, env).check_returncode()
    return ImportTime(wall, usage.ru_utime + usage.ru_stime)


def import_times(build: Path, repeat: int = COLD_START_REPEAT, jobs: int = 1) -> dict[str, ImportTime]:
    """Each built handler imported with its built layer by a fresh python3.13, as Lambda starts it (the
    template's Powertools variables, its task root): with SDK tracing off (the default) and on.

    Repetitions are interleaved (every target once, then again), so a change in the machine's load
    touches every figure alike; the ratio is taken on CPU time, which another process's load barely moves.
    ``jobs`` imports run at once, one a core: each child's CPU time is its own.
    """
    layer = build / "SharedLayer" / "python"
    functions = sorted(p for p in build.iterdir() if (p / "app.py").exists())
    targets: dict[str, tuple[str, list[Path], dict[str, str]]] = {"import boto3": ("import boto3", [layer], {})}
    for fn in functions:
        targets[fn.name] = ("import app", [fn, layer], lambda_environment(fn))
    for fn in functions:
        targets[f"{fn.name} +SdkTracing"] = ("import app", [fn, layer], lambda_environment(fn, {"SdkTracing": "true"}))
    runs = [name for _ in range(repeat) for name in targets]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        timed = list(pool.map(lambda name: _timed_import(targets[name][1], targets[name][0], targets[name][2]), runs))
    by_target: dict[str, list[ImportTime]] = {name: [] for name in targets}
    for name, one in zip(runs, timed, strict=True):
        by_target[name].append(one)
    return {
        name: ImportTime(statistics.median(t.wall for t in times), statistics.median(t.cpu for t in times))
        for name, times in by_target.items()
    }


@dataclass(frozen=True)
class Attribution:
    """What each of COMMON_IMPORTS and UTILITY_IMPORTS adds to a cold start, and which handlers load it."""

    cost: dict[str, float]  # label -> median CPU seconds of the import alone, timed in-process
    users: dict[str, list[str]]  # label -> handlers that load it when imported, as deployed


def attribute_imports(build: Path, repeat: int = COLD_START_REPEAT, jobs: int = 1) -> Attribution:
    """Time each dependency's import ``repeat`` times (``jobs`` at once, one a core), and ask each built
    handler which of them it loads when imported."""
    layer = build / "SharedLayer" / "python"
    functions = sorted(p for p in build.iterdir() if (p / "app.py").exists())
    deps = (*COMMON_IMPORTS, *UTILITY_IMPORTS)

    def run(paths: list[Path], code: str, env: dict[str, str]) -> str:
        done = isolated_python(paths, code, env)
        done.check_returncode()
        return done.stdout

    as_deployed = lambda_environment(functions[0])  # the Powertools variables every function has
    runs = [dep for _ in range(repeat) for dep in deps]
    modules = [dep.module for dep in deps]
    probe = f"import app, sys; print(' '.join(m for m in {modules!r} if m in sys.modules))"
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        timed = list(pool.map(lambda dep: float(run([layer], _increment_code(dep), as_deployed)), runs))
        loaded = list(pool.map(lambda fn: set(run([fn, layer], probe, lambda_environment(fn)).split()), functions))
    cost = {dep.label: statistics.median(t for d, t in zip(runs, timed, strict=True) if d is dep) for dep in deps}
    users = {
        dep.label: [fn.name for fn, mods in zip(functions, loaded, strict=True) if dep.module in mods] for dep in deps
    }
    return Attribution(cost, users)


def _attribution_lines(base: float, attribution: Attribution, handlers: int, repeat: int) -> list[str]:
    """Where a handler's import time goes beyond `import boto3`, against the target's budget."""
    budget = (COLD_START_TARGET - 1) * base
    common = sum(attribution.cost[dep.label] for dep in COMMON_IMPORTS)
    lines = [
        "",
        f"Where it goes (CPU time of the import itself, median of {repeat}): the target leaves {budget * 1000:.0f} ms "
        f"({COLD_START_TARGET - 1:.2f} x `import boto3`) for all a handler adds to boto3. Each import is timed in a "
        "fresh interpreter after `import boto3` and what a handler imports before it: the rows above it in the "
        "first part; Powertools' core for a utility, and pydantic too for the parser, which needs it (the "
        "utilities share modules, so they do not add up: the event models include the parser).",
        "",
        "| import | CPU time | / `import boto3` | handlers that load it when imported |",
        "| --- | --- | --- | --- |",
    ]
    for dep in (*COMMON_IMPORTS, *UTILITY_IMPORTS):
        cost, who = attribution.cost[dep.label], attribution.users[dep.label]
        named = "all" if len(who) == handlers else ", ".join(who) or "none"
        lines.append(f"| {dep.label} | {cost * 1000:.0f} ms | {fmt(cost / base)} | {named} |")
    lines += [
        "",
        f"What every handler imports beside boto3 (the first part) takes {common * 1000:.0f} ms, "
        f"{fmt(common / budget)} x the budget, before any utility or opsflow code.",
    ]
    return lines


def cold_start_table(
    imports: dict[str, ImportTime], attribution: Attribution | None = None, repeat: int = COLD_START_REPEAT
) -> list[str]:
    lines = [f"## Cold start: importing each handler with its layer (median of {repeat}, python3.13)", ""]
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
    if attribution:
        lines += _attribution_lines(base.cpu, attribution, len(handlers), repeat)
    return lines


def collector_memory(counts: tuple[int, ...] = (10_000, 50_000)) -> list[dict[str, Any]]:
    """Peak memory and throughput of the collector vs building the whole list, over many pages."""
    import os

    import boto3
    from moto import mock_aws

    from opsflow import clients
    from sandbox.aws_fleet import AwsBridge
    from sandbox.fleet import Fleet
    from sandbox.patch_data import InstancePatches, PatchService

    class DiscardingS3:
        """The function's memory is measured, not the bucket's (moto would keep the object in memory)."""

        def upload_fileobj(self, fileobj: Any, bucket: str, key: str, **_: Any) -> None:
            while fileobj.read(1 << 20):
                pass

    rows = []
    for count in counts:
        # The simulator slices an unfiltered page (O(page)), so items / s is the collector's own rate.
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


def rolling_restart_section(args: argparse.Namespace) -> list[str]:
    scenarios = matrix()
    if args.quick:
        scenarios = [s for s in scenarios if s.size <= 12 and s.batch in (3, "25%")][:3]
    rows = run_matrix(scenarios, args.jobs)
    out = args.out
    chart(rows, out.with_suffix(".png"))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    lines = [
        "## Rolling restart",
        "",
        f"Timings: drain {DRAIN:.0f} s, shutdown {SHUTDOWN:.0f} s (the old process answers after the reboot "
        f"call), boot {BOOT:.0f} s, application readiness {READY:.0f} s, health checks every {INTERVAL} s "
        f"(HealthyThresholdCount {HEALTHY}, which applies to unhealthy targets only); *realistic* varies boot, "
        "readiness and drain per instance by +/-40 %. Ideal makespan = ceil(N / batch) x "
        f"{PER_BATCH_IDEAL:.0f} s (deterministic); *bound* is the sliding-window lower bound from the sampled "
        "times (bench/run.py). Cost per instance at list prices in us-east-1 (Step Functions Standard $0.025 "
        "per 1,000 transitions; Lambda arm64 $0.20 per million requests, $0.0000133334 per GB-second). The "
        "baseline is the original design (bench/baseline_rolling_restart.asl.json: fixed 60 s wait, startup "
        "check retried every 120 s x 3, no drain wait, no wait for healthy).",
        "",
        "| scenario | design | status | makespan | / ideal | / bound | min serving (floor) | dropped | "
        "transitions / instance | Lambda / instance | GB-s / instance | $ / 1,000 instances | "
        "events: parent, per child | API calls / instance (ELB throttled in all) | wall (CPU) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        floor_ok = "held" if r["min_serving"] >= r["floor"] else "**BROKEN**"
        ratio = fmt(r["makespan"] / r["ideal"]) if r["timing"] == "deterministic" else "-"
        bound = fmt(r["makespan"] / r["bound"]) if r["bound"] else "-"
        status = r["status"] if done(r) else f"{r['status']}, {r['rebooted']} of {r['size']} rebooted"
        lines.append(
            f"| {r['scenario']} | {r['design']} | {status} | {r['makespan'] / 60:.1f} min | {ratio} | {bound} | "
            f"{r['min_serving']} ({r['floor']}, {floor_ok}) | {r['dropped']} | "
            f"{fmt(r['transitions_per_instance'], 1)} | {fmt(r['lambda_per_instance'], 1)} | "
            f"{fmt(r['gb_seconds_per_instance'], 1)} | {fmt(r['dollars_per_instance'] * 1000, 3)} | "
            f"{r['parent_events']}, {fmt(r['child_events_per_instance'], 1)} | "
            f"{fmt(r['api_per_instance'], 1)} ({r['elb_throttled']}) | {r['wall']:.0f} s ({r['cpu']:.0f} s) |"
        )
    cpu = sum(r["cpu"] for r in rows)
    lines += [
        "",
        f"The matrix's {len(rows)} runs took {cpu / 60:.1f} min of CPU in the worker processes "
        f"({cpu / 60 / args.jobs:.1f} min each for {args.jobs} workers if nothing else ran; wall time above).",
    ]
    lines += [*_summary(rows), "", (ROOT / "bench" / "missed-targets.md").read_text(encoding="utf-8").rstrip()]
    return [*lines, "", f"![makespan / ideal and minimum serving capacity]({out.with_suffix('.png').name})"]


def tiers_section(args: argparse.Namespace) -> list[str]:
    from bench import tiers

    return tiers.section(args.jobs)


def cold_start_section(args: argparse.Namespace) -> list[str]:
    build = ROOT / ".aws-sam" / "build-host"
    if not build.exists():
        return cold_start_table({})
    return cold_start_table(import_times(build, jobs=args.jobs), attribute_imports(build, jobs=args.jobs))


def collector_section(args: argparse.Namespace) -> list[str]:
    lines = [
        "## Paginating collector: 100 items a page",
        "",
        "| items | approach | items / s | peak memory |",
        "| --- | --- | --- | --- |",
    ]
    for m in collector_memory():
        lines.append(f"| {m['items']:,} | {m['approach']} | {m['items_per_s']:,.0f} | {m['peak_mib']:.1f} MiB |")
    return lines


def sandbox_time_section(args: argparse.Namespace) -> list[str]:
    hour = sandbox_hour()
    return [
        "## The sandbox's simulated time",
        "",
        f"A simulated hour (Wait 300 s, a Lambda retried at 120 s then 240 s, Wait 2,940 s: "
        f"{hour['simulated'] / 60:.0f} min of history) ran in {hour['wall']:.2f} s of wall time (virtual clock: "
        "simulated time jumps from one deadline to the next).",
    ]


def patch_preview_section(args: argparse.Namespace) -> list[str]:
    sizes = (100,) if args.quick else (1000, 5000)
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(sizes))) as pool:
        return preview_lines(list(pool.map(patch_preview_at_scale, sizes)))[1:]


def auto_scaling_section(args: argparse.Namespace) -> list[str]:
    """The matrix's 12 x batch 3 (deterministic) with every instance a member of one Auto Scaling group: each
    member goes on Standby while it restarts (so its group neither replaces nor scales it in) and back after."""
    scenario = Scenario(12, 3, "deterministic", auto_scaling=True)
    r = run_one(scenario, "opsflow")
    return [
        "## Auto Scaling group members",
        "",
        f"{scenario.name}: every instance is a member of one group (ELB health checks, 300 s grace period); "
        "compare with the matrix's row without a group. Auto Scaling calls in the run: "
        + ", ".join(f"{op} {n}" for op, n in sorted(r["auto_scaling_calls"].items()))
        + ".",
        "",
        "| scenario | status | makespan | / ideal | min serving (floor) | members replaced | InService after | "
        "transitions / instance | Lambda / instance | GB-s / instance | Auto Scaling calls / instance | "
        "API calls / instance | wall (CPU) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {r['scenario']} | {r['status']} | {r['makespan'] / 60:.1f} min | {fmt(r['makespan'] / r['ideal'])} | "
        f"{r['min_serving']} ({r['floor']}) | {r['replaced']} | {r['in_service_after']} of {r['size']} | "
        f"{fmt(r['transitions_per_instance'], 1)} | {fmt(r['lambda_per_instance'], 1)} | "
        f"{fmt(r['gb_seconds_per_instance'], 1)} | {fmt(r['auto_scaling_per_instance'], 2)} | "
        f"{fmt(r['api_per_instance'], 1)} | {r['wall']:.0f} s ({r['cpu']:.0f} s) |",
    ]


SECTIONS: list[Callable[[argparse.Namespace], list[str]]] = [
    rolling_restart_section,
    tiers_section,
    auto_scaling_section,
    patch_preview_section,
    cold_start_section,
    collector_section,
    sandbox_time_section,
]


def done(row: dict[str, Any]) -> bool:
    """Whether the run rebooted every instance (a row from before the count was kept: assumed so)."""
    return bool(row.get("rebooted", row["size"]) >= row["size"])


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    ops = [r for r in rows if r["design"] == "opsflow"]
    det = [r for r in ops if r["timing"] == "deterministic"]
    worst = max(det, key=lambda r: r["makespan"] / r["ideal"])
    per_child = max(r["child_events_per_instance"] for r in ops)
    parent = max(r["parent_events"] for r in ops)
    baseline_events = max((r["parent_events"] / r["size"] for r in rows if r["design"] == "baseline"), default=1)
    pairs = {(r["scenario"]): r for r in rows if r["design"] == "baseline"}
    # A baseline that left instances not rebooted did not do the job, however soon it stopped.
    faster = sum(
        1
        for r in ops
        if r["timing"] == "realistic"
        and (r["makespan"] < pairs[r["scenario"]]["makespan"] or not done(pairs[r["scenario"]]))
    )
    realistic = sum(1 for r in ops if r["timing"] == "realistic")
    spread = [r["makespan"] / r["bound"] for r in ops if r["timing"] == "realistic" and r["bound"]] or [0.0]
    return [
        "",
        "### Against the targets",
        "",
        f"- makespan / ideal on deterministic scenarios: worst {fmt(worst['makespan'] / worst['ideal'])} "
        f"({worst['scenario']}); target <= 1.05.",
        f"- makespan / sliding-window bound on realistic scenarios: {fmt(min(spread))} to {fmt(max(spread))}.",
        f"- cost per restarted instance (opsflow): {fmt(min(r['transitions_per_instance'] for r in ops), 1)} to "
        f"{fmt(max(r['transitions_per_instance'] for r in ops), 1)} transitions, "
        f"{fmt(min(r['lambda_per_instance'] for r in ops), 1)} to {fmt(max(r['lambda_per_instance'] for r in ops), 1)} "
        f"Lambda invocations, {fmt(min(r['gb_seconds_per_instance'] for r in ops), 1)} to "
        f"{fmt(max(r['gb_seconds_per_instance'] for r in ops), 1)} GB-s: "
        f"${min(r['dollars_per_instance'] for r in ops):.5f} to ${max(r['dollars_per_instance'] for r in ops):.5f}.",
        f"- faster than the baseline on {faster} of {realistic} realistic scenarios (or the baseline stopped with "
        "instances not rebooted).",
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
    left.axhline(1.05, color="grey", linestyle="--", linewidth=1, label="target 1.05")
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
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="worker processes (default: CPUs)")
    args = parser.parse_args()
    args.out = ROOT / "bench" / ("results-quick.md" if args.quick else "results.md")
    wall0 = time.monotonic()
    body: list[str] = []
    timings: list[str] = []
    for section in SECTIONS:
        t0 = time.monotonic()
        body += ["", *section(args)]
        timings.append(f"{section.__name__} {time.monotonic() - t0:.0f} s")
    wall = time.monotonic() - wall0
    versions = _versions()
    header = [
        "# Benchmark results",
        "",
        f"Produced by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d}: {wall / 60:.1f} min wall on "
        f"{os.cpu_count()} CPUs with {args.jobs} worker processes ({'; '.join(timings)}), {platform.machine()}, "
        f"{', '.join(f'{k} {v}' for k, v in versions.items())}. Seeded and on the virtual clock: the same command "
        "gives the same histories on any machine; only the wall times vary. Every figure below was measured in "
        "this one run.",
    ]
    args.out.write_text("\n".join([*header, *body]) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(ROOT)} in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
