"""The `sam build` output is what Lambda will run: layer under python/, functions importable.

- the layer has our package and its dependencies directly under ``python/`` (not ``python/python``),
  and its compiled modules are built for the expected architecture;
- every module in the layer and the functions has hash-based bytecode for the runtime's Python
  (tools/compile_bytecode.py: Lambda cannot write ``__pycache__``, so a module shipped without it is
  compiled again on every cold start);
- with ``--import``, each built function is imported by python3.13 in isolation (no site-packages),
  with only its own folder and the built layer on ``sys.path`` (the layer ships its own pinned SDK).
  It writes no bytecode, so it imports (and the benchmark times) exactly what would be deployed.
  Then each function, with SDK tracing on, builds a client for every service its policies let it
  call and the HTTP session, and must still fit its MemorySize with room to spare.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from template_model import Stack, load_template
from tools.compile_bytecode import runtime_version

ELF_MACHINES = {0xB7: "arm64", 0x3E: "x86_64"}

# What a function may hold, as a share of its MemorySize, once it has imported and built every client it
# can use: Lambda counts the runtime's own memory too (its interface client runs in the handler's
# interpreter), and an invocation's data comes on top.
MEMORY_BUDGET = 0.8
# The SAM policy templates template.yaml uses, by the service each lets a function call.
POLICY_TEMPLATE_SERVICES = {"SNSPublishMessagePolicy": "sns", "LambdaInvokePolicy": "lambda"}
# IAM action prefixes whose boto3 client has another name.
BOTO3_NAMES = {"elasticloadbalancing": "elbv2", "states": "stepfunctions", "tag": "resourcegroupstaggingapi"}


def elf_arch(path: Path) -> str | None:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), "other")


def modules_without_bytecode(folder: Path, python_version: str) -> list[Path]:
    """The ``.py`` files under ``folder`` with no hash-based bytecode for ``python_version`` beside them."""
    tag = f"cpython-{python_version.replace('.', '')}"
    missing = []
    for source in sorted(folder.rglob("*.py")):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        # Header: magic (4 bytes), then flags; bit 0 set means hash-based (PEP 552).
        header = pyc.read_bytes()[:8] if pyc.exists() else b""
        if len(header) < 8 or not int.from_bytes(header[4:8], "little") & 1:
            missing.append(source)
    return missing


def check_layout(build_dir: Path, expect_arch: str) -> tuple[list[str], dict[str, Path], Path | None]:
    errors: list[str] = []
    template = load_template(build_dir / "template.yaml")
    functions: dict[str, Path] = {}
    layer: Path | None = None
    for logical_id, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            functions[logical_id] = build_dir / props["CodeUri"]
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            layer = build_dir / props["ContentUri"] / "python"
    if layer is None:
        return ["no layer in the built template"], functions, None
    for wanted in (
        "opsflow/__init__.py",
        "aws_lambda_powertools/__init__.py",
        "requests/__init__.py",
        "boto3/__init__.py",
    ):
        if not (layer / wanted).exists():
            errors.append(f"layer: python/{wanted} missing")
    if (layer / "python").exists():
        errors.append("layer: python/python exists (the package would not be importable)")
    arches = {elf_arch(so) for so in layer.rglob("*.so")} - {None}
    if arches and arches != {expect_arch}:
        errors.append(f"layer: compiled modules are {sorted(a or '' for a in arches)}, expected {expect_arch}")
    for logical_id, path in functions.items():
        if not (path / "app.py").exists():
            errors.append(f"{logical_id}: {path}/app.py missing")
    python_version = runtime_version(build_dir)
    for name, folder in [("layer", layer), *sorted(functions.items())]:
        missing = modules_without_bytecode(folder, python_version) if folder.exists() else []
        if missing:
            example = missing[0].relative_to(folder)
            errors.append(
                f"{name}: {len(missing)} modules without hash-based python{python_version} bytecode (e.g. {example}); "
                f"compile it with `python{python_version} -m tools.compile_bytecode {build_dir}` (`make build` does)"
            )
    return errors, functions, layer


def lambda_environment(function_dir: Path, parameters: dict[str, str] | None = None) -> dict[str, str]:
    """What decides how a handler starts on Lambda: the POWERTOOLS_* variables template.yaml's Globals
    give every function (for these stack parameters, else the defaults), and the task root, by which
    Powertools and the X-Ray SDK know they run in Lambda."""
    template = load_template()
    stack = Stack(template, parameters or {})
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    env = {k: str(stack.resolve(v)) for k, v in variables.items() if k.startswith("POWERTOOLS_")}
    return {**env, "LAMBDA_TASK_ROOT": str(function_dir), "AWS_LAMBDA_FUNCTION_NAME": f"opsflow-{function_dir.name}"}


def isolated_command(
    paths: list[Path], code: str, env: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a fresh python3.13 that runs ``code`` seeing the standard library and
    ``paths`` only, and writes no bytecode into them (as on Lambda, where they are read-only)."""
    python = getattr(sys, "_base_executable", sys.executable)
    prologue = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}; "
    env = {"AWS_DEFAULT_REGION": "eu-west-1", "PATH": os.environ.get("PATH", ""), **(env or {})}
    return [python, "-I", "-S", "-B", "-c", prologue + code], env


def isolated_python(
    paths: list[Path], code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh isolated python3.13 (:func:`isolated_command`)."""
    command, environment = isolated_command(paths, code, env)
    return subprocess.run(command, capture_output=True, text=True, env=environment, check=False)


def check_imports(functions: dict[str, Path], layer: Path) -> list[str]:
    errors = []
    for logical_id, path in sorted(functions.items()):
        done = isolated_python(
            [path, layer],
            "import app; assert callable(app.lambda_handler), 'no lambda_handler'",
            lambda_environment(path),
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            errors.append(f"{logical_id}: import failed: {last}")
        else:
            print(f"  {logical_id}: imports")
    return errors


def services_of(stack: Stack, function: dict[str, Any]) -> list[str]:
    """The boto3 clients a function's policies let it use: the prefixes of its inline statements' actions
    (resolved for the stack's parameters) and the services of its SAM policy templates (a managed policy
    it references names none)."""
    services: set[str] = set()
    for policy in function.get("Properties", {}).get("Policies", []):
        if not isinstance(policy, dict) or "Ref" in policy:
            continue
        if "Statement" not in policy:
            (name,) = policy
            if name not in POLICY_TEMPLATE_SERVICES:
                raise ValueError(f"policy template {name}: add the service it grants to POLICY_TEMPLATE_SERVICES")
            services.add(POLICY_TEMPLATE_SERVICES[name])
            continue
        for statement in policy["Statement"]:
            actions = stack.resolve(statement["Action"])
            for action in [actions] if isinstance(actions, str) else actions:
                prefix = action.split(":")[0]
                services.add(BOTO3_NAMES.get(prefix, prefix))
    return sorted(services)


def check_memory(functions: dict[str, Path], layer: Path, template: dict[str, Any]) -> list[str]:
    """Each function, imported with SDK tracing on, then with a client for every service it may call and
    the HTTP session: its peak resident memory must stay within MEMORY_BUDGET of its MemorySize (its own,
    else the Globals', else Lambda's default of 128 MB)."""
    errors, stack = [], Stack(template, {})
    for logical_id, path in sorted(functions.items()):
        function = stack.with_globals(template["Resources"][logical_id])  # every function built, whatever its Condition
        services = services_of(stack, function)
        code = (
            "import app; from opsflow import clients; "
            f"[clients.client(s) for s in {services!r}]; clients.http_session(); "
            # The peak of this process's own memory, in KiB. Not getrusage's ru_maxrss: Linux carries it
            # over from the parent through fork and exec, so a large parent (a test runner) would show.
            "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))"
        )
        done = isolated_python([path, layer], code, lambda_environment(path, {"SdkTracing": "true"}))
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            errors.append(f"{logical_id}: building its clients failed: {last[:300]}")
            continue
        peak, size = int(done.stdout.split()[-1]) / 1024, int(function["Properties"].get("MemorySize", 128))
        if peak > MEMORY_BUDGET * size:
            errors.append(
                f"{logical_id}: holds {peak:.0f} MiB with its clients ({', '.join(services)}), more than "
                f"{MEMORY_BUDGET:.0%} of its MemorySize {size} MB; raise MemorySize in template.yaml"
            )
        else:
            print(f"  {logical_id}: {peak:.0f} MiB of {size} MB with its clients")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build-dir", type=Path, required=True)
    parser.add_argument("--expect-arch", choices=sorted(set(ELF_MACHINES.values())), required=True)
    parser.add_argument("--import", dest="do_import", action="store_true")
    args = parser.parse_args()
    errors, functions, layer = check_layout(args.build_dir, args.expect_arch)
    if not errors and args.do_import and layer is not None:
        if sys.version_info[:2] != (3, 13):
            errors.append(f"the import check needs python3.13, this is {sys.version.split()[0]}")
        else:
            errors += check_imports(functions, layer)
            errors += check_memory(functions, layer, load_template(args.build_dir / "template.yaml"))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if not errors:
        print(f"{args.build_dir}: layer and {len(functions)} functions OK ({args.expect_arch})")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
