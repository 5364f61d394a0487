"""Write template.yaml as CloudFormation sees it after the SAM transform (run with the SAM CLI's Python).

The least-privilege tests read the IAM roles SAM generates from here: the policy templates expanded,
exactly what would be deployed. Usage: .venv-sam/bin/python tools/transform_template.py OUT.json
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from samtranslator.translator.transform import transform  # type: ignore[import-not-found]  # noqa: E402

from sandbox.template import load_template  # noqa: E402

PSEUDO = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "opsflow",
}


class _NoManagedPolicyLookups:
    """The template names managed policies by ARN only: nothing to look up."""

    def load(self) -> dict[str, str]:
        return {}


def main() -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])  # the translator asks boto3 for one
    template = load_template(ROOT / "template.yaml")
    for name, resource in template["Resources"].items():  # what `sam package` does to local paths
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://opsflow-artifacts/{name}"
    transformed = transform(template, PSEUDO, _NoManagedPolicyLookups())
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(transformed, indent=1, default=str), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
