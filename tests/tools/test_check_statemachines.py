"""A broken state machine fails the checks with a message naming the file and what is wrong."""

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tools.check_statemachines import check

ASL = "statemachines/rolling_restart.asl.json"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's template, functions, layer and state machines."""
    for part in ("template.yaml", "statemachines", "functions", "layers"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / part)
    return tmp_path


def edit(project: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = project / ASL
    definition = json.loads(path.read_text())
    change(definition)
    path.write_text(json.dumps(definition))


def test_the_project_s_state_machines_pass(project: Path) -> None:
    assert check(project) == []


def test_a_file_that_is_not_json_is_named(project: Path) -> None:
    (project / ASL).write_text('{"StartAt": ')
    assert check(project) == [f"{ASL}: not JSON: Expecting value at line 1 column 13"]


def test_a_file_no_state_machine_uses_is_named(project: Path) -> None:
    shutil.copy(project / ASL, project / "statemachines" / "orphan.asl.json")
    assert check(project) == [
        "statemachines/orphan.asl.json: not used by any AWS::Serverless::StateMachine in template.yaml"
    ]


def test_a_definition_the_asl_parser_rejects_is_named(project: Path) -> None:
    edit(project, lambda d: d["States"]["Restore alarms and rules"]["Retry"][0].update(IntervalSeconds=0))
    [error] = check(project)
    assert error.startswith(f"{ASL}: rejected by the ASL parser") and "IntervalSeconds" in error


def test_a_placeholder_without_a_substitution_is_named(project: Path) -> None:
    edit(project, lambda d: d["States"]["Record the run"]["Parameters"].update(TableName="${RunsTable}"))
    assert check(project) == [f"{ASL}: placeholder ${{RunsTable}} has no DefinitionSubstitutions entry"]


def test_asl_validator_names_the_file_and_a_missing_state(project: Path) -> None:
    validator = ROOT / "node_modules" / ".bin" / "asl-validator"
    assert validator.exists(), "node_modules is installed by the Makefile (make test / make unit)"
    edit(project, lambda d: d["States"]["Is this a dry run?"].update(Default="Record the rnu"))

    done = subprocess.run([validator, "--json-path", str(project / ASL)], capture_output=True, text=True, check=False)

    assert done.returncode != 0
    assert str(project / ASL) in done.stderr + done.stdout
    assert "Missing 'StartAt'|'Next'|'Default' target: Record the rnu" in done.stderr + done.stdout
