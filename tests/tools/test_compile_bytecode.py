"""The build ships bytecode that Lambda uses: a read-only function compiles every module it imports, at
every cold start, unless its bytecode is already there (tools/compile_bytecode.py says why)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tools.check_build import check_layout, isolated_python
from tools.compile_bytecode import compile_build

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
# `sam package` zips every file with this timestamp (its make_zip_with_permissions leaves ZipInfo's default).
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z


def sam_build(root: Path, runtime: str = RUNTIME) -> Path:
    """The shape of `sam build` output: a template, the layer under python/, one function folder."""
    (root / "template.yaml").write_text(
        textwrap.dedent(
            f"""\
            Globals:
              Function:
                Runtime: {runtime}
            Resources:
              SharedLayer:
                Type: AWS::Serverless::LayerVersion
                Properties:
                  ContentUri: SharedLayer
              GateFunction:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: GateFunction
            """
        )
    )
    layer = root / "SharedLayer" / "python"
    for package in ("opsflow", "aws_lambda_powertools", "requests", "boto3"):
        (layer / package).mkdir(parents=True)
        (layer / package / "__init__.py").write_text(f"NAME = {package!r}\n")
    (root / "GateFunction").mkdir()
    (root / "GateFunction" / "app.py").write_text(
        "import opsflow\n\ndef lambda_handler(event, context):\n    return 1\n"
    )
    return root


def test_a_build_without_bytecode_fails_the_check_naming_how_to_compile_it(tmp_path: Path) -> None:
    errors, _, _ = check_layout(sam_build(tmp_path), "x86_64")

    assert any(e.startswith("layer: 4 modules without hash-based") for e in errors), errors
    assert any(e.startswith("GateFunction: 1 modules without hash-based") for e in errors), errors
    assert all("tools.compile_bytecode" in e for e in errors)


def test_the_compiled_build_passes_and_loads_its_bytecode_whatever_the_zip_did_to_timestamps(tmp_path: Path) -> None:
    build = sam_build(tmp_path)

    assert compile_build(build) == []
    assert check_layout(build, "x86_64")[0] == []

    for path in build.rglob("*.py"):
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH))
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-v", "-c", f"import sys; sys.path[:0] = [{str(build / 'GateFunction')!r}, "
         f"{str(build / 'SharedLayer' / 'python')!r}]; import app"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    loaded_from = [line for line in done.stderr.splitlines() if line.startswith("# code object from")]
    assert any("GateFunction/__pycache__/app." in line for line in loaded_from), loaded_from
    assert any("opsflow/__pycache__/__init__." in line for line in loaded_from), loaded_from


def test_bytecode_for_another_python_is_refused_and_nothing_is_compiled(tmp_path: Path) -> None:
    other = f"python{sys.version_info.major}.{sys.version_info.minor - 1}"
    build = sam_build(tmp_path, runtime=other)

    [error] = compile_build(build)

    assert f"the functions run {other} but this is {RUNTIME}" in error
    assert not list(build.rglob("*.pyc"))


def test_the_import_check_writes_no_bytecode_into_the_build(tmp_path: Path) -> None:
    build = sam_build(tmp_path)

    isolated_python([build / "GateFunction", build / "SharedLayer" / "python"], "import app").check_returncode()

    assert not list(build.rglob("*.pyc"))
