"""Write template.yaml as CloudFormation sees it after the SAM transform (sandbox/sam.py, which the sandbox uses too).

The least-privilege tests read the IAM roles SAM generates from here: the policy templates expanded,
exactly what would be deployed. Usage: .venv/bin/python -m tools.transform_template OUT.json
"""

import json
import sys
from pathlib import Path

from sandbox.sam import transform
from template_model import TEMPLATE_PATH, Stack, load_template


def main() -> int:
    template = load_template(TEMPLATE_PATH)
    transformed = transform(template, Stack(template))  # default parameters, the sandbox's region and account
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(transformed, indent=1, default=str), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
