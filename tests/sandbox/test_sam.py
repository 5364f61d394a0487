"""The roles the sandbox enforces are those SAM generates from the template, resolved to the sandbox's ids."""

from typing import Any

import pytest

from sandbox import sam
from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox
from template_model import Stack, load_template


def statements(role: sam.Role) -> list[dict[str, Any]]:
    return [
        s
        for policy in role.policies
        for s in ([policy["Statement"]] if isinstance(policy["Statement"], dict) else policy["Statement"])
    ]


def test_each_function_and_state_machine_gets_its_generated_role(features: Sandbox) -> None:
    assert features.bridge.iam is not None
    roles = features.bridge.iam.roles

    assert set(roles) == {"FlakyFunction", "CallerFunction", "FeaturesStateMachine"}
    caller = statements(roles["CallerFunction"])
    topic = features.stack.physical["Topic"]["TopicArn"]
    assert any(s["Action"] == ["sns:Publish"] and s["Resource"] == topic for s in caller), "policy template expanded"
    assert any("logs:PutLogEvents" in s["Action"] for s in caller), "AWSLambdaBasicExecutionRole, as SAM attaches it"
    machine = statements(roles["FeaturesStateMachine"])
    queue_arn = features.stack.physical["Queue"]["Arn"]
    assert any(s["Resource"] == queue_arn for s in machine), "intrinsics resolved to the sandbox's ids"


def test_parameters_and_conditions_shape_the_roles() -> None:
    """With ApprovalByEmail=false there is no approval function; TargetGroupArn scopes the target changes."""
    with Sandbox(FleetSpec(size=1), parameters={"ApprovalByEmail": "false"}) as sb:
        assert sb.bridge.iam is not None
        roles = sb.bridge.iam.roles
        target_group = sb.fleet_resources["TargetGroupArn"]

        assert "ApprovalFunction" not in roles
        deregister = [
            s
            for s in statements(roles["RollingRestartStateMachine"])
            if "elasticloadbalancing:DeregisterTargets" in s["Action"]
        ]
        assert [s["Resource"] for s in deregister] == [target_group]


def test_a_transform_is_made_once_per_template_and_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    translate = sam._translate

    def counted(template: dict[str, Any], values: dict[str, Any], region: str) -> dict[str, Any]:
        made.append(region)
        return translate(template, values, region)

    monkeypatch.setattr(sam, "_translate", counted)
    template = load_template()
    template["Description"] = "a template no other test transformed"

    first = sam.transform(template, Stack(template))
    second = sam.transform(template, Stack(template))
    sam.transform(template, Stack(template, {"ApprovalByEmail": "false"}))

    assert first == second and len(made) == 2
    assert first["Resources"]["RollingRestartStateMachineRole"]["Type"] == "AWS::IAM::Role"
