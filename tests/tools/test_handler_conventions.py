"""Conventions every Lambda handler follows, read from its source."""

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from template_model import load_template
from tests.conftest import ROOT
from tools.asl import definitions

HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


def layer_constant(name: str) -> object:
    """A constant of opsflow.observability, read from its source: importing it here would build the
    layer's Logger and Tracer with this process's environment, before a sandbox sets the functions'."""
    module = ast.parse((ROOT / "layers" / "shared" / "opsflow" / "observability.py").read_text(encoding="utf-8"))
    [value] = [
        node.value
        for node in module.body
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]
    ]
    return ast.literal_eval(value)


def decorators(module: ast.Module, function: str) -> list[str]:
    [handler] = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == function]
    return [ast.unparse(d) for d in handler.decorator_list]


@pytest.mark.parametrize("folder", HANDLERS)
def test_a_handler_flushes_metrics_only_if_it_emits_some(folder: str) -> None:
    """Powertools' log_metrics warns on each invocation that emitted no metric: a decorator on a
    handler that never emits one is a warning per invocation and nothing else."""
    source = (ROOT / "functions" / folder / "app.py").read_text(encoding="utf-8")
    module = ast.parse(source)
    emits = any(
        isinstance(node, ast.Call) and ast.unparse(node.func) == "metrics.add_metric" for node in ast.walk(module)
    )
    flushes = "metrics.log_metrics" in decorators(module, "lambda_handler")
    assert flushes == emits, f"{folder}: emits metrics: {emits}, @metrics.log_metrics: {flushes}"


def lambda_tasks(states: dict[str, Any], in_child: bool = False) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(name, state, runs in a Distributed Map child execution) of every Lambda invoke Task."""
    for name, state in states.items():
        if state.get("Type") == "Task" and state.get("Resource", "").startswith("arn:aws:states:::lambda:invoke"):
            yield name, state, in_child
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                distributed = state[key].get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
                yield from lambda_tasks(state[key]["States"], in_child or distributed)
        for branch in state.get("Branches", []):
            yield from lambda_tasks(branch["States"], in_child)


def every_lambda_task() -> list[tuple[str, str, dict[str, Any], bool]]:
    return [(file, *task) for file, definition in definitions().items() for task in lambda_tasks(definition["States"])]


def test_every_lambda_task_passes_the_run_s_execution_arn_for_log_correlation() -> None:
    for file, name, state, in_child in every_lambda_task():
        payload = state["Parameters"]["Payload"]
        assert layer_constant("RUN_CORRELATION_ID_PATH") == "executionArn"
        assert "executionArn.$" in payload, f"{file}: {name!r} does not pass executionArn"
        if in_child:  # there $$.Execution.Id is the child execution's ARN, not the run's
            assert payload["executionArn.$"] != "$$.Execution.Id", f"{file}: {name!r} passes the child's ARN"


def test_every_function_a_state_machine_invokes_takes_its_correlation_id_from_there() -> None:
    resources = load_template()["Resources"]
    invoked = {
        state["Parameters"]["FunctionName"].removeprefix("${").removesuffix("Arn}")
        for _, _, state, _ in every_lambda_task()
    }
    assert invoked, "no Lambda task found"
    for function in sorted(invoked):
        folder = Path(resources[function]["Properties"]["CodeUri"]).name
        module = ast.parse((ROOT / "functions" / folder / "app.py").read_text(encoding="utf-8"))
        assert "logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)" in decorators(
            module, "lambda_handler"
        ), f"{folder}: its logs do not carry the run's execution ARN"
