"""The documentation tells the truth about the template and the sample events."""

import json
import re

from sandbox.template import load_template
from tests.conftest import ROOT


def test_the_readme_documents_every_template_parameter_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Configuration", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", section, re.MULTILINE))
    parameters = load_template()["Parameters"]
    assert documented == {name: str(p.get("Default", "")) for name, p in parameters.items()}


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
