"""Conventions every Lambda handler follows, read from its source."""

import ast

import pytest

from tests.conftest import ROOT

HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


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
