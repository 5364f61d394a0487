"""The rolling restart under IAM as deployed: the reboot statement's tag condition decides whether instances restart.

The reboot is the instance action function's (its role holds the statement); the preflight's EC2 dry
run, made with that role, proves before anything changes that the reboots will be allowed.

Two variants of the template are built here, whatever template.yaml says today: the reboot
statement's condition key written with a ``${...}`` placeholder (IAM reads it literally: a tag named
``${RestartTagKey}``, which no instance has) and with the fixed key ``aws:ResourceTag/opsflow:tier``.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from template_model import ROOT, TEMPLATE_PATH, load_template
from tests.workflows.conftest import Tier, web_input

TierFactory = Callable[..., Tier]
LITERAL_KEY = "aws:ResourceTag/${RestartTagKey}"
FIXED_KEY = "aws:ResourceTag/opsflow:tier"  # the simulated tier's instances carry opsflow:tier=web


def reboot_statement(template: dict[str, Any]) -> dict[str, Any]:
    """The statement of the rebooting function's role that allows ec2:RebootInstances (the template's own dict)."""
    policies = template["Resources"]["InstanceActionFunction"]["Properties"]["Policies"]
    found: list[dict[str, Any]] = [
        s
        for policy in policies
        if isinstance(policy, dict)
        for s in policy.get("Statement", [])
        if "ec2:RebootInstances" in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    [statement] = found
    return statement


def with_reboot_condition_key(tmp_path: Path, key: str) -> Path:
    """A copy of template.yaml whose reboot statement tests the restart tag under ``key``."""
    template = load_template(TEMPLATE_PATH)
    statement = reboot_statement(template)
    [(operator, test)] = statement["Condition"].items()  # e.g. StringEquals: {<tag key>: <RestartTagValue>}
    [(_, value)] = test.items()
    statement["Condition"] = {operator: {key: value}}
    for folder in ("functions", "statemachines", "layers"):  # the code the template's relative paths name
        (tmp_path / folder).symlink_to(ROOT / folder)
    path = tmp_path / "template.yaml"
    path.write_text(json.dumps(template), encoding="utf-8")  # JSON is YAML, intrinsics in their long form
    return path


def test_with_a_placeholder_in_the_condition_key_the_preflight_refuses_before_anything_changes(
    tier: TierFactory, tmp_path: Path
) -> None:
    given = tier(size=3, template_path=with_reboot_condition_key(tmp_path, LITERAL_KEY))

    result = given.run(web_input(batchSize=1))

    given.assert_refused(result, "PreflightFailedError", "may not be rebooted (EC2 dry run: UnauthorizedOperation)")
    denials = {(d.principal, d.action, d.code) for d in given.sb.bridge.denied}
    assert denials == {("InstanceActionFunction", "ec2:RebootInstances", "UnauthorizedOperation")}
    assert all(instance_id in (result.cause or "") for instance_id in given.instances)
    assert not any(i.reboots for i in given.sb.fleet.instances.values()), "moto never saw a reboot"


def test_with_the_fixed_tag_key_every_instance_restarts(tier: TierFactory, tmp_path: Path) -> None:
    given = tier(size=3, template_path=with_reboot_condition_key(tmp_path, FIXED_KEY))

    result = given.run(web_input(batchSize=1))

    assert result.status == "SUCCEEDED", result.cause
    assert given.sb.bridge.denied == []
    assert {o["outcome"] for o in given.outcomes(result).values()} == {"restarted"}
    given.assert_invariants(result, floor=2)
