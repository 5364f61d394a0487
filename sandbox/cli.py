"""Command line of the sandbox.

    python -m sandbox run RollingRestartStateMachine --input events/rolling_restart/demo.json \\
        --fleet size=12,boot=45 --fault never_ready:3 --seed 7 --out build/demo

Prints live progress and a summary, writes the execution history and a timeline picture, and exits
non-zero when the execution did not succeed. Bad arguments get a one-line error.
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from botocore.exceptions import UnknownServiceError

from sandbox.authorization import service_id
from sandbox.fleet import FleetSpec, Spread
from template_model import TemplateError

FLEET_KEYS = {
    "size": ("size", int),
    "boot": ("boot", float),
    "readiness": ("readiness", float),
    "spread": ("spread", float),
    "delay": ("deregistration_delay", int),
    "interval": ("health_check_interval", int),
    "healthy": ("healthy_threshold", int),
    "unhealthy": ("unhealthy_threshold", int),
    "rps": ("requests_per_second", float),
    "port": ("health_port", int),
}
INSTANCE_FAULTS = ("never_ready", "slow", "throttle_reboot")
COMMAND_FAULTS = ("command_fails", "command_times_out", "undeliverable", "agent_offline")  # sandbox/commands.py


class UsageError(Exception):
    """A bad command-line argument: reported in one line."""


def _service_id(service: str) -> str:
    """The service as API faults name it: a boto3 client name ("elbv2") or a botocore service id as is."""
    try:
        return service_id(service)
    except UnknownServiceError:
        return service


def parse_fleet(text: str, seed: int) -> FleetSpec:
    """``12`` or ``size=12,boot=45,readiness=30,spread=0.2,delay=60,...``."""
    values: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, raw = part.partition("=")
        if not sep:
            key, raw = "size", key
        key = key.strip()
        if key not in FLEET_KEYS:
            raise UsageError(f"--fleet: unknown key {key!r} (known: {', '.join(FLEET_KEYS)})")
        name, kind = FLEET_KEYS[key]
        try:
            values[name] = kind(raw)
        except ValueError:
            raise UsageError(f"--fleet: {key} must be a {kind.__name__}, got {raw!r}") from None
    spread = values.pop("spread", 0.0)
    if not 0 <= spread < 1:
        raise UsageError("--fleet: spread must be in [0, 1)")
    for name in ("boot", "readiness"):
        values[name] = Spread(values[name] if name in values else _default(name).mean, spread)
    try:
        return FleetSpec(seed=seed, **values)
    except ValueError as exc:
        raise UsageError(f"--fleet: {exc}") from None


def _default(name: str) -> Spread:
    return next(f.default for f in fields(FleetSpec) if f.name == name)  # type: ignore[return-value]


def parse_input(text: str) -> Any:
    path = Path(text)
    source = path.read_text(encoding="utf-8") if not text.lstrip().startswith(("{", "[")) and path.exists() else text
    if source is text and not text.lstrip().startswith(("{", "[")):
        raise UsageError(f"--input: {text!r} is neither a file nor JSON")
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--input: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Run opsflow workflows offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one state machine of template.yaml against a simulated fleet")
    run.add_argument("state_machine", help="logical id in template.yaml, e.g. RollingRestartStateMachine")
    run.add_argument("--input", default="{}", help="execution input: a JSON file or inline JSON")
    run.add_argument("--fleet", default="12", help="size, or key=value list: " + ",".join(FLEET_KEYS))
    run.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="FAULT",
        help="never_ready:N | slow:N | throttle_reboot:N[:count] | command_fails:N | command_times_out:N | "
        "undeliverable:N | agent_offline:N (N = instance number), "
        "api:SERVICE.Operation:Code[:count], lambda:FunctionLogicalId:ErrorType[:count], "
        "stop_after:SECONDS",
    )
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="template parameter")
    run.add_argument("--seed", type=int, default=1, help="seed of the fleet's and the interpreter's randomness")
    run.add_argument("--speed", type=float, help=argparse.SUPPRESS)  # before the virtual clock; ignored
    run.add_argument("--out", type=Path, default=Path("build/sandbox"), help="where history and picture go")
    run.add_argument("--timeout", type=float, default=600.0, help="wall seconds after which the run is stopped")
    run.add_argument("--quiet", action="store_true", help="no live progress")
    run.add_argument("--approve", action="store_true", help="approve the run's approval request by its mailed link")
    sub.add_parser("list", help="list the state machines of template.yaml")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            from template_model import load_template

            for logical_id, res in load_template()["Resources"].items():
                if res["Type"] == "AWS::Serverless::StateMachine":
                    print(logical_id)
            return 0
        return run(args)
    except (UsageError, TemplateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _faults(specs: list[str], size: int) -> tuple[list[tuple[str, ...]], float | None]:
    parsed: list[tuple[str, ...]] = []
    stop_after: float | None = None
    for spec in specs:
        kind, _, rest = spec.partition(":")
        parts = rest.split(":") if rest else []
        try:
            if kind in INSTANCE_FAULTS + COMMAND_FAULTS:
                number = int(parts[0])
                if not 1 <= number <= size:
                    raise UsageError(f"--fault {spec}: instance number must be 1..{size}")
                parsed.append((kind, str(number), parts[1] if len(parts) > 1 else "1"))
            elif kind == "api":
                service, _, operation = parts[0].partition(".")
                if not operation or len(parts) < 2:
                    raise UsageError(f"--fault {spec}: expected api:SERVICE.Operation:Code[:count]")
                parsed.append(
                    (
                        "api",
                        _service_id(service),
                        operation,
                        parts[1],
                        parts[2] if len(parts) > 2 else "1",
                    )
                )
            elif kind == "lambda":
                if len(parts) < 2:
                    raise UsageError(f"--fault {spec}: expected lambda:FunctionLogicalId:ErrorType[:count]")
                parsed.append(("lambda", parts[0], parts[1], parts[2] if len(parts) > 2 else "1"))
            elif kind == "stop_after":
                stop_after = float(parts[0])
            else:
                raise UsageError(f"--fault {spec}: unknown kind {kind!r}")
        except (IndexError, ValueError):
            raise UsageError(f"--fault {spec}: malformed") from None
    return parsed, stop_after


def run(args: argparse.Namespace) -> int:
    spec = parse_fleet(args.fleet, args.seed)
    payload = parse_input(args.input)
    faults, stop_after = _faults(args.fault, spec.size)
    if args.speed is not None:
        print("note: --speed is ignored: the sandbox runs on a virtual clock, as fast as it can", file=sys.stderr)
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--param {item}: expected KEY=VALUE")
        params[key] = value

    from sandbox.progress import Progress
    from sandbox.runtime import Sandbox

    with Sandbox(spec, parameters=params) as sb:
        if args.state_machine not in sb.stack.resources("AWS::Serverless::StateMachine"):
            raise UsageError(f"no state machine {args.state_machine!r} in template.yaml")
        ids = sorted(sb.fleet.instances, key=lambda i: sb.fleet.names[i])
        for fault in faults:
            if fault[0] in COMMAND_FAULTS:
                sb.commands.inject(ids[int(fault[1]) - 1], fault[0])  # type: ignore[arg-type]
            elif fault[0] in INSTANCE_FAULTS:
                sb.fleet.inject(ids[int(fault[1]) - 1], fault[0], int(fault[2]))  # type: ignore[arg-type]
            elif fault[0] == "api":
                sb.inject_api_error(fault[1], fault[2], fault[3], int(fault[4]))
            else:
                try:
                    sb.lambdas.inject_error(fault[1], fault[2], int(fault[3]))
                except KeyError as exc:
                    raise UsageError(f"--fault lambda: {exc.args[0]}") from None
        before = sb.monitoring_state()
        wall0 = time.monotonic()
        arn = sb.start_execution(args.state_machine, payload)
        progress = Progress(sb, arn, quiet=args.quiet, stop_after=stop_after, approve=args.approve)
        result = progress.follow(timeout=args.timeout)
        report = progress.report(result, before, sb.monitoring_state(), time.monotonic() - wall0, args.out)
        print(report)
        return 0 if result.status == "SUCCEEDED" else 1
