"""Mermaid diagrams of the state machines, generated from the ASL (`make docs` writes docs/workflows.md).

tests/tools/test_docs.py fails when the committed diagrams no longer match the definitions.
"""

import re
from typing import Any

from template_model import ROOT
from tools.asl import definitions

OUT = ROOT / "docs" / "workflows.md"
SHAPES = {"Choice": ("{", "}"), "Succeed": ("([", "])"), "Fail": ("[[", "]]"), "Wait": ("[/", "/]"), "Pass": ("(", ")")}


def _id(path: str) -> str:
    return "s_" + re.sub(r"\W+", "_", path).strip("_")


def _label(text: str) -> str:
    return text.replace('"', "'")


def _choice_label(rule: dict[str, Any]) -> str:
    if "Not" in rule:
        return "not " + str(_choice_label(rule["Not"]))
    variable = str(rule.get("Variable", ""))
    for key, value in rule.items():
        if key not in ("Variable", "Next"):
            return f"{variable} {key} {str(value).lower() if isinstance(value, bool) else value}"
    return variable


def _flow(definition: dict[str, Any], prefix: str, lines: list[str], indent: str) -> str:
    """Nodes and edges of one level; returns the id of its start state."""
    ids = {name: _id(prefix + name) for name in definition["States"]}
    for name, state in definition["States"].items():
        node = ids[name]
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            mode = inner.get("ProcessorConfig", {}).get("Mode", "INLINE").lower()
            lines.append(f'{indent}subgraph {node}["{_label(name)} (Map, {mode}: each item)"]')
            _flow(inner, prefix + name + "/", lines, indent + "  ")
            lines.append(f"{indent}end")
        else:
            left, right = SHAPES.get(state["Type"], ("[", "]"))
            lines.append(f'{indent}{node}{left}"{_label(name)}"{right}')
        source = node
        for rule in state.get("Choices", []):
            lines.append(f'{indent}{source} -->|"{_label(_choice_label(rule))}"| {ids[rule["Next"]]}')
        if "Default" in state:
            lines.append(f'{indent}{source} -->|"otherwise"| {ids[state["Default"]]}')
        if "Next" in state:
            lines.append(f"{indent}{source} --> {ids[state['Next']]}")
        for catch in state.get("Catch", []):
            errors = ", ".join(catch["ErrorEquals"])
            lines.append(f'{indent}{source} -.->|"{_label(errors)}"| {ids[catch["Next"]]}')
    return ids[definition["StartAt"]]


def mermaid(definition: dict[str, Any]) -> str:
    lines: list[str] = []
    start = _flow(definition, "", lines, "  ")
    return "\n".join(["flowchart TD", f"  start((start)) --> {start}", *lines])


def document() -> str:
    parts = [
        "# Workflows",
        "",
        "Generated from `statemachines/*.asl.json` by `make docs`; a test fails when they differ.",
        "Dotted arrows are Catch paths (labelled with the errors they catch); retries are not drawn.",
    ]
    for name, definition in definitions().items():
        parts += ["", f"## {name}", "", definition.get("Comment", ""), "", "```mermaid", mermaid(definition), "```"]
    return "\n".join(parts) + "\n"


def main() -> int:
    OUT.write_text(document(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
