"""The benchmark's cold-start timer: one fresh interpreter per import, its own CPU time, its failure shown."""

import subprocess
import sysconfig
from pathlib import Path

import pytest

from bench.run import (
    COMMON_IMPORTS,
    UTILITY_IMPORTS,
    Attribution,
    ImportTime,
    _timed_import,
    attribute_imports,
    cold_start_table,
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


def test_the_attribution_weighs_each_import_against_the_budget_and_names_who_loads_it() -> None:
    imports = {"import boto3": ImportTime(0.100, 0.100), "GateFunction": ImportTime(0.2, 0.2)}
    imports["GateFunction +SdkTracing"] = ImportTime(0.25, 0.25)
    cost = {dep.label: 0.005 for dep in (*COMMON_IMPORTS, *UTILITY_IMPORTS)}
    cost[COMMON_IMPORTS[1].label] = 0.040
    users: dict[str, list[str]] = {dep.label: [] for dep in (*COMMON_IMPORTS, *UTILITY_IMPORTS)}
    users[COMMON_IMPORTS[0].label] = users[COMMON_IMPORTS[1].label] = ["GateFunction"]

    lines = cold_start_table(imports, Attribution(cost, users))

    assert "| GateFunction | 200 ms | 2.00 |" in "\n".join(lines)
    assert f"| {COMMON_IMPORTS[0].label} | 5 ms | 0.05 | all |" in lines
    assert f"| {COMMON_IMPORTS[1].label} | 40 ms | 0.40 | all |" in lines
    assert f"| {UTILITY_IMPORTS[0].label} | 5 ms | 0.05 | none |" in lines
    assert any("leaves 30 ms" in line for line in lines)
    assert any("takes 50 ms, 1.67 x the budget" in line for line in lines)


def test_an_import_is_attributed_its_own_time_after_what_precedes_it_in_a_handler(tmp_path: Path) -> None:
    """Real imports (the test environment's packages as the layer); a handler that loads the parser."""
    (tmp_path / "SharedLayer").mkdir()
    (tmp_path / "SharedLayer" / "python").symlink_to(sysconfig.get_paths()["purelib"])
    apps = {
        "PlainFunction": "",
        "ParsingFunction": f"import sys, types\nsys.modules[{UTILITY_IMPORTS[0].module!r}] = types.ModuleType('x')\n",
    }
    for name, body in apps.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(body)

    found = attribute_imports(tmp_path, repeat=1)

    assert found.users[UTILITY_IMPORTS[0].label] == ["ParsingFunction"]
    assert found.users[COMMON_IMPORTS[1].label] == []
    assert all(cost > 0 for cost in found.cost.values())
