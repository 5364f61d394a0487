"""The roles the sandbox enforces are those SAM generates from the template, resolved to the sandbox's ids."""

from typing import Any

import pytest

from sandbox import sam
from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox
from template_model import Stack, TemplateError, load_template


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
        changes = [  # the target gate sends them, one request for the run's instances leaving (back) together
            s
            for s in statements(roles["TargetGateFunction"])
            if "elasticloadbalancing:DeregisterTargets" in s["Action"]
            and "elasticloadbalancing:RegisterTargets" in s["Action"]
        ]
        assert [s["Resource"] for s in changes] == [target_group]


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


def tiny_template(policy_properties: dict[str, Any]) -> dict[str, Any]:
    """A function attaching the template's own managed policy, as template.yaml attaches UseTheStackKeyPolicy."""
    return {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "KeyPolicy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": policy_properties},
            "Reader": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "reader/",
                    "Handler": "app.handler",
                    "Runtime": "python3.13",
                    "Policies": [{"Ref": "KeyPolicy"}],
                },
            },
        },
    }


KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/stack-key"
USE_THE_KEY = {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": KEY_ARN}


def aws_managed(arn: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": []}


def test_a_managed_policy_of_the_template_is_part_of_each_role_that_attaches_it() -> None:
    template = tiny_template({"PolicyDocument": {"Version": "2012-10-17", "Statement": [USE_THE_KEY]}})
    stack = Stack(template)

    roles = sam.roles(sam.transform(template, stack), stack, aws_managed)

    assert USE_THE_KEY in statements(roles["Reader"])


def test_a_managed_policy_attaching_itself_to_roles_is_refused_with_how_to_attach_it() -> None:
    document = {"Version": "2012-10-17", "Statement": [USE_THE_KEY]}
    template = tiny_template({"PolicyDocument": document, "Roles": [{"Ref": "ReaderRole"}]})
    stack = Stack(template)

    with pytest.raises(TemplateError, match=r"KeyPolicy: attached through its Roles.*Policies \(- !Ref KeyPolicy\)"):
        sam.roles(sam.transform(template, stack), stack, aws_managed)
