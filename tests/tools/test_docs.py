"""The documentation tells the truth about the template and the sample events."""

import json
import re

from template_model import load_template
from tests.conftest import ROOT


def test_the_docs_document_every_template_parameter_with_its_default() -> None:
    from tools.readme_parameters import DOCUMENTS, table

    for document in DOCUMENTS:
        assert table() in document.read_text(encoding="utf-8"), f"run `make docs` ({document.name})"
    parameters = load_template()["Parameters"]
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", table(), re.MULTILINE))
    assert documented == {name: str(p.get("Default", "")) for name, p in parameters.items()}


def error_names() -> set[str]:
    """Every error a workflow can end with or report: Fail states, caught refusals, error classes."""
    import inspect

    import opsflow.errors
    from tools.asl import definitions, states

    names = {n for n, c in inspect.getmembers(opsflow.errors, inspect.isclass) if c.__module__ == "opsflow.errors"}
    names -= {"OpsflowError"}
    for definition in definitions().values():
        for _, state in states(definition):
            if state.get("Type") == "Fail" and "Error" in state:
                names.add(state["Error"])
            for catch in state.get("Catch", []):
                names.update(e for e in catch["ErrorEquals"] if not e.startswith("States."))
            for retry in state.get("Retry", []):
                names.update(e for e in retry["ErrorEquals"] if not e.startswith(("States.", "DynamoDB.", "SNS.")))
    for function in (ROOT / "functions").glob("*/app.py"):
        names.update(re.findall(r"^class (\w+Error)\(", function.read_text(encoding="utf-8"), re.MULTILINE))
    return names


def test_the_operator_guide_explains_every_error_name() -> None:
    guide = (ROOT / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    missing = sorted(name for name in error_names() if f"`{name}`" not in guide)
    assert missing == [], f"explain these in docs/operator-guide.md: {missing}"


def test_every_sample_event_is_json() -> None:
    for path in (ROOT / "events").rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))


def test_the_readme_names_only_make_targets_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.MULTILINE))
    assert set(re.findall(r"`make ([a-z-]+)", readme)) <= targets


def test_the_workflow_diagrams_match_the_state_machines() -> None:
    from tools.diagrams import OUT, document

    assert OUT.read_text(encoding="utf-8") == document(), "run `make docs` to regenerate docs/workflows.md"


def test_the_fault_matrix_table_has_one_row_per_case_and_is_linked() -> None:
    """docs/fault-matrix.md lists exactly the cases enumerated from the ASL (each case checks its own row)."""
    from tests.workflows.fault_matrix import all_cases, documented

    assert list(documented()) == all_cases(), "run `make docs` (docs/fault-matrix.md)"
    assert "(fault-matrix.md)" in (ROOT / "docs" / "sandbox.md").read_text(encoding="utf-8")
    assert "(fault-matrix.md)" in (ROOT / "docs" / "operator-guide.md").read_text(encoding="utf-8")
