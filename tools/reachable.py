"""Which source files a function's code can reach: its own module and the shared-layer modules it imports."""

import ast
from pathlib import Path

from template_model import ROOT

LAYER = ROOT / "layers" / "shared"


def reachable_modules(app: Path) -> list[Path]:
    """The function's module and the ``opsflow`` modules it imports, transitively."""
    seen: list[Path] = []
    todo = [app]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if isinstance(node, ast.ImportFrom) and node.module == "opsflow":
                names = [f"opsflow.{alias.name}" for alias in node.names]
            for name in names:
                if name.startswith("opsflow."):
                    todo.append(LAYER / (name.replace(".", "/") + ".py"))
    return [p for p in seen if p.exists()]


def function_app(logical_id: str) -> Path:
    """``RestartPlannerFunction`` -> functions/restart_planner/app.py (the layout's naming rule)."""
    words, current = [], ""
    for char in logical_id.removesuffix("Function"):
        if char.isupper() and current:
            words.append(current)
            current = ""
        current += char.lower()
    words.append(current)
    return ROOT / "functions" / "_".join(words) / "app.py"
