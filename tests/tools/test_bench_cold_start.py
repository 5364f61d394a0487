"""The benchmark's cold-start timer: one fresh interpreter per import, its own CPU time, its failure shown."""

import subprocess
from pathlib import Path

import pytest

from bench.run import (
    COMMON_IMPORTS,
    UTILITY_IMPORTS,
    ImportTime,
    _timed_import,
    cold_start_table,
    handler_dependencies,
)


def test_an_import_is_timed_in_a_child_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "busy.py").write_text("total = sum(i * i for i in range(2_000_000))\n")
    timed = _timed_import([tmp_path], "import busy", {})
    assert timed.cpu > 0 and timed.wall > 0


def test_an_import_that_fails_fails_the_benchmark_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise ImportError('no such layer module')\n")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _timed_import([tmp_path], "import broken", {})
    assert "no such layer module" in failed.value.stderr


def test_the_attribution_charges_each_import_what_it_adds_and_names_who_loads_it() -> None:
    common, utility = COMMON_IMPORTS, UTILITY_IMPORTS[0]
    ms = {"import boto3": 0.100, common[0].label: 0.110, common[1].label: 0.150}
    ms |= {dep.label: 0.170 for dep in UTILITY_IMPORTS}  # the parser, timed after pydantic
    imports = {name: ImportTime(wall=cpu, cpu=cpu) for name, cpu in ms.items()}
    imports["GateFunction"] = imports["GateFunction +SdkTracing"] = ImportTime(0.2, 0.2)
    users = {common[0].label: ["GateFunction"], common[1].label: ["GateFunction"], utility.label: []}

    lines = cold_start_table(imports, users)

    assert "| GateFunction | 200 ms | 2.00 |" in "\n".join(lines)  # the dependencies are not handlers
    assert f"| {common[0].label} | 10 ms | 0.10 | all |" in lines
    assert f"| {common[1].label} | 40 ms | 0.40 | all |" in lines
    assert f"| {utility.label} | 20 ms | 0.20 | none |" in lines
    batch = next(dep for dep in UTILITY_IMPORTS if dep.label == "Powertools batch")
    assert f"| {batch.label} | 60 ms | 0.60 | none |" in lines  # after Powertools' core, as handlers import it
    assert any("leaves 30 ms" in line for line in lines)
    assert any("takes 50 ms, 1.67 x the budget" in line for line in lines)


def test_the_dependencies_a_handler_loads_are_read_from_its_own_import(tmp_path: Path) -> None:
    (tmp_path / "SharedLayer" / "python").mkdir(parents=True)
    apps = {
        "PlainFunction": "",
        "ParsingFunction": f"import sys, types\nsys.modules[{UTILITY_IMPORTS[0].module!r}] = types.ModuleType('x')\n",
    }
    for name, body in apps.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(body)

    users = handler_dependencies(tmp_path)

    assert users[UTILITY_IMPORTS[0].label] == ["ParsingFunction"]
    assert users[COMMON_IMPORTS[1].label] == []
