"""Every file in statemachines/ is valid JSON, wired in template.yaml, and accepted by the ASL parser.

Nothing in SAM or cfn-lint looks inside DefinitionUri files, so a broken one would first fail at
deploy time (or later, when the broken branch runs). This deploys template.yaml into moto with each
state machine's DefinitionSubstitutions filled in, so moto's ASL parser (the one Step Functions
Local and LocalStack share) reads the real definitions. asl-validator, run by the Makefile just
before, finds missing transition targets and unreachable states.
"""

import json
import sys
from pathlib import Path

from sandbox.runtime import Sandbox
from template_model import ROOT, TemplateError, load_template


def check(root: Path = ROOT) -> list[str]:
    errors = []
    files = sorted((root / "statemachines").glob("*.asl.json"))
    if not files:
        errors.append("statemachines/: no *.asl.json files")
    template_path = root / "template.yaml"
    wired = {
        str(res["Properties"].get("DefinitionUri", "")).strip("./")
        for res in load_template(template_path)["Resources"].values()
        if res["Type"] == "AWS::Serverless::StateMachine"
    }
    for path in files:
        relative = path.relative_to(root).as_posix()
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            errors.append(f"{relative}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        if relative not in wired:
            errors.append(f"{relative}: not used by any AWS::Serverless::StateMachine in template.yaml")
    if errors:
        return errors
    try:
        with Sandbox(None, template_path=template_path):
            pass
    except TemplateError as exc:
        errors.append(str(exc))
    return errors


def main() -> int:
    errors = check()
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if not errors:
        print("state machines: every definition parses with its substitutions filled in")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
