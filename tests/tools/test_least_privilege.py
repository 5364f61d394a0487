"""IAM, as SAM generates it from template.yaml, allows what each workflow and function calls, and no more.

- State machines: the actions their Task states call (from the ASL), plus what their configuration
  needs (Distributed Map children, logging, tracing, the stack's KMS key).
- Functions: every AWS call a function was seen making in sandbox runs of the workflows is allowed;
  every mutating action its role allows is one that code it can reach calls.
- No role allows a wildcard action.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from sandbox.authorization import ACTION_OF, client_iam_prefix, iam_prefix
from template_model import Stack
from tests.conftest import ROOT
from tools.asl import SYNC_NEEDS, definitions, distributed_maps, map_data_actions, tasks
from tools.reachable import reachable_modules

TRANSFORMED = ROOT / "build" / "template.transformed.json"
READ_VERBS = ("Describe", "List", "Get", "BatchGet", "Query", "Scan")
# Needed by configuration rather than by a call in the code: encryption with the stack's key.
PLATFORM = {"kms:GenerateDataKey", "kms:Decrypt"}
MANAGED = "AWS::IAM::ManagedPolicy"
LOG_DELIVERY = {
    f"logs:{a}"
    for a in (
        "CreateLogDelivery",
        "GetLogDelivery",
        "UpdateLogDelivery",
        "DeleteLogDelivery",
        "ListLogDeliveries",
        "PutResourcePolicy",
        "DescribeResourcePolicies",
        "DescribeLogGroups",
    )
}


def mutating(action: str) -> bool:
    return not action.split(":", 1)[1].startswith(READ_VERBS)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    assert TRANSFORMED.exists(), "build it with `make build/template.transformed.json` (make unit does)"
    return dict(json.loads(TRANSFORMED.read_text(encoding="utf-8")))


def policy_documents(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The role's inline policies and the template's managed policies it attaches (``- !Ref <Policy>``)."""
    props = template["Resources"][role]["Properties"]
    documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
    for attached in props.get("ManagedPolicyArns", []):
        if isinstance(attached, dict) and template["Resources"].get(attached.get("Ref"), {}).get("Type") == MANAGED:
            documents.append(template["Resources"][attached["Ref"]]["Properties"]["PolicyDocument"])
    return documents


def allowed_actions(template: dict[str, Any], role: str) -> set[str]:
    stack = Stack(template, {})
    actions: set[str] = set()
    for document in policy_documents(template, role):
        for statement in document["Statement"]:
            if statement.get("Effect") == "Allow":
                action = stack.resolve(statement["Action"])
                actions.update([action] if isinstance(action, str) else action)
    return actions


def roles(template: dict[str, Any], kind: str) -> Iterator[tuple[str, str]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == kind and f"{logical_id}Role" in template["Resources"]:
            yield logical_id, f"{logical_id}Role"


def test_no_role_allows_a_wildcard_action(template: dict[str, Any]) -> None:
    for role, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            assert not [a for a in allowed_actions(template, role) if "*" in a], role


def test_the_stack_key_policy_allows_using_that_key_only_and_every_role_of_the_stack_data_has_it(
    template: dict[str, Any],
) -> None:
    [statement] = template["Resources"]["UseTheStackKeyPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert set(statement["Action"]) == PLATFORM
    assert statement["Resource"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
    # A role that touches the encrypted table, topic, queue or bucket needs the key: here, each but the URL
    # function's (it only verifies links and answers the task token).
    with_key = {
        role
        for role, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role" and allowed_actions(template, role) >= PLATFORM
    }
    stack_roles = {f"{logical_id}Role" for logical_id, _ in roles(template, "AWS::Lambda::Function")} | {
        f"{logical_id}Role" for logical_id, _ in roles(template, "AWS::StepFunctions::StateMachine")
    }
    assert stack_roles - with_key == {"ApprovalVerifierFunctionRole"}


def test_state_machines_may_do_what_their_states_call_and_no_more(template: dict[str, Any]) -> None:
    files = {p.removesuffix(".asl.json"): p for p in definitions()}
    for logical_id, role in roles(template, "AWS::StepFunctions::StateMachine"):
        name = template["Resources"][logical_id]["Properties"]["StateMachineName"]["Fn::Sub"].split("}-", 1)[1]
        definition = definitions()[next(f for f in files if f.replace("_", "-") == name)]
        needed = {task.iam_action for task in tasks(definition)} | map_data_actions(definition)
        for task in tasks(definition):  # a .sync Task follows what it started
            if task.state["Resource"].endswith((".sync", ".sync:2")):
                needed |= SYNC_NEEDS[task.state["Resource"].removeprefix("arn:aws:states:::").split(".")[0]]
        if distributed_maps(definition):  # the children, and redriving a failed Map Run
            needed |= {
                "states:StartExecution",
                "states:DescribeExecution",
                "states:StopExecution",
                "states:RedriveExecution",
            }
        allowed = allowed_actions(template, role)
        assert needed - allowed == set(), f"{logical_id} may not call what its states call"
        extra = {a for a in allowed if mutating(a)} - needed - PLATFORM - LOG_DELIVERY
        assert extra == set(), f"{logical_id} may do what no state does"


def statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = template["Resources"][role]["Properties"].get("Policies", [])
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_reboots_are_limited_to_instances_with_the_restart_tag(template: dict[str, Any]) -> None:
    role = statements(template, "InstanceActionFunctionRole")
    [reboot] = [s for s in role if s.get("Action") == "ec2:RebootInstances"]
    # IAM takes condition keys literally (policy variables only work in Resource and condition values),
    # so the key is fixed, and the functions that check and name the tag are told the same key.
    for function in ("InstanceActionFunction", "RestartPlannerFunction"):
        key = template["Resources"][function]["Properties"]["Environment"]["Variables"]["RESTART_TAG_KEY"]
        assert reboot["Condition"] == {"StringEquals": {f"aws:ResourceTag/{key}": {"Ref": "RestartTagValue"}}}
    assert not [s for r in roles_of(template) for s in statements(template, r) if "ec2:RebootInstances" in str(s)][1:]


def test_standby_is_limited_to_auto_scaling_groups_with_the_restart_tag(template: dict[str, Any]) -> None:
    """EnterStandby and ExitStandby support the autoScalingGroup resource and aws:ResourceTag (Service
    Authorization Reference, Amazon EC2 Auto Scaling): only groups tagged like the instances, by the
    functions that move members, and no role may change a group's size or processes."""
    group_arn = (
        "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:autoScalingGroupName/*"
    )
    movers = {"InstanceActionFunctionRole", "RestartReporterFunctionRole", "RestoreSafetyNetFunctionRole"}
    movers.add("RunReconcilerFunctionRole")
    for role in roles_of(template):
        found = [s for s in statements(template, role) if "Standby" in str(s.get("Action"))]
        assert bool(found) == (role in movers), role
        for statement in found:
            assert statement["Resource"] == {"Fn::Sub": group_arn}
            assert statement["Condition"] == {
                "StringEquals": {"aws:ResourceTag/opsflow:tier": {"Ref": "RestartTagValue"}}
            }
        changes = {a for a in allowed_actions(template, role) if a.startswith("autoscaling:") and mutating(a)}
        assert changes <= {"autoscaling:EnterStandby", "autoscaling:ExitStandby"}, role
    assert "autoscaling:EnterStandby" not in allowed_actions(template, "RunReconcilerFunctionRole")


def roles_of(template: dict[str, Any]) -> list[str]:
    return [k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"]


def _placeholders(value: Any, inside_sub: bool = False) -> Iterator[str]:
    """Literal ``${...}`` left in keys or values that no Fn::Sub will substitute."""
    if isinstance(value, dict):
        for key, item in value.items():
            if "${" in key:
                yield key
            yield from _placeholders(item, inside_sub or key == "Fn::Sub")
    elif isinstance(value, list):
        for item in value:
            yield from _placeholders(item, inside_sub)
    elif isinstance(value, str) and "${" in value and not inside_sub:
        yield value


def test_no_iam_policy_keeps_an_unsubstituted_placeholder(template: dict[str, Any]) -> None:
    for role in roles_of(template):
        left = list(_placeholders(template["Resources"][role]["Properties"].get("Policies", [])))
        assert left == [], f"{role}: IAM would take these literally: {left}"


# -- functions ----------------------------------------------------------------------------------
MODELS = botocore.session.get_session()


def operation_name(service: str, method: str) -> str | None:
    model = MODELS.get_service_model(service)
    return next((op for op in model.operation_names if xform_name(op) == method), None)


def possible_calls(app: Path) -> set[str]:
    """IAM actions of every AWS call the reachable code can make (a static over-approximation)."""
    actions: set[str] = set()
    for module in reachable_modules(app):
        source = module.read_text(encoding="utf-8")
        for service in set(re.findall(r'client\("([a-z0-9-]+)"\)', source)):
            prefix = client_iam_prefix(service)
            for method in set(re.findall(r"\.([a-z_]+)\(", source)) | set(
                re.findall(r'get_paginator\("([a-z_]+)"\)', source)
            ):
                op = operation_name(service, method)
                if op:
                    actions.add(ACTION_OF.get(f"{prefix}:{op}", f"{prefix}:{op}"))
            if service == "s3" and "upload_fileobj" in source:  # managed transfer: multipart, aborted on failure
                actions |= {"s3:PutObject", "s3:AbortMultipartUpload"}
        if "DynamoDBPersistenceLayer(" in source:  # Powertools idempotency records
            actions |= {f"dynamodb:{op}" for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")}
    return actions


@pytest.fixture(scope="module")
def observed() -> dict[str, set[str]]:
    """The AWS calls each function made in sandbox runs that take every workflow through its paths."""
    from sandbox.fleet import FleetSpec
    from sandbox.runtime import Sandbox

    calls: dict[str, set[str]] = {}

    def keep(sb: Sandbox) -> None:
        for call in sb.bridge.calls:
            if call.caller:
                action = f"{iam_prefix(call.service)}:{call.operation}"
                calls.setdefault(call.caller, set()).add(ACTION_OF.get(action, action))

    web = {"health": {"port": 8080}, "alarms": {"namePrefixes": ["web-"]}, "rules": {"namePrefixes": ["web-"]}}
    with Sandbox(FleetSpec(size=4)) as sb:  # approval by email, a failing instance, the summary
        sb.fleet.inject(sorted(sb.fleet.instances)[0], "never_ready")
        arn = sb.start_execution("RollingRestartStateMachine", {**web, "batchSize": 2, "requireApproval": True})
        from tests.workflows.conftest import Tier

        links = Tier(sb, {}).approval_links()
        sb.invoke_url("ApprovalVerifierFunction", "POST", body=links["approve"])
        sb.wait(arn, timeout=180)
        keep(sb)
    by_tag = {"namePrefixes": ["web-"], "tags": {"tier": "web"}}
    with Sandbox(FleetSpec(size=4)) as sb:  # selection by tags; stopped midway: the safety net
        arn = sb.start_execution(
            "RollingRestartStateMachine", {**web, "alarms": by_tag, "rules": by_tag, "batchSize": 2}
        )
        assert sb.run_until(lambda: bool(sb.bridge.calls_to("ec2", "RebootInstances"))), sb.result(arn)
        sb.stop(arn)
        sb.wait(arn)
        keep(sb)
    with Sandbox(FleetSpec(size=4), status_events="drop") as sb:  # the event lost: the reconciler
        arn = sb.start_execution("RollingRestartStateMachine", {**web, "batchSize": 2})
        assert sb.run_until(lambda: bool(sb.bridge.calls_to("ec2", "RebootInstances"))), sb.result(arn)
        sb.fire_schedule("RunReconcilerFunction")  # still running: left alone
        sb.stop(arn)
        sb.wait(arn)
        sb.fire_schedule("RunReconcilerFunction")  # ended: cleaned up
        keep(sb)
    with Sandbox(FleetSpec(size=4)) as sb:  # the patch preview
        sb.run("PatchPreviewStateMachine", {})
        keep(sb)
    with Sandbox(FleetSpec(size=3)) as sb:  # the patch workflow: SSM commands, one failing; the compliance report
        from tests.workflows.conftest import Tier

        sb.commands.inject(sorted(sb.fleet.instances)[0], "command_fails")
        arn = sb.start_execution("PatchTierStateMachine", {**web, "batchSize": 1, "errorBudget": 2})
        sb.invoke_url("ApprovalVerifierFunction", "POST", body=Tier(sb, {}).approval_links()["approve"])
        sb.wait(arn, timeout=300)
        keep(sb)
    return calls


FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))


def logical_id(folder: str) -> str:
    return "".join(part.title() for part in folder.split("_")) + "Function"


@pytest.mark.parametrize("folder", FUNCTIONS)
def test_functions_may_do_what_their_code_does_and_no_more(
    template: dict[str, Any], observed: dict[str, set[str]], folder: str
) -> None:
    function = logical_id(folder)
    allowed = allowed_actions(template, f"{function}Role")
    seen = observed.get(function, set())
    assert seen, f"{function} made no AWS call in the scenarios: extend the `observed` fixture"
    assert seen - allowed == set(), f"{function} called what its role does not allow"
    possible = possible_calls(ROOT / "functions" / folder / "app.py")
    if folder == "api_collector":  # its operations come from its allowlist, which is exactly its IAM policy
        possible |= {a for a in allowed if not mutating(a)}
    if "DeadLetterConfig" in template["Resources"][function]["Properties"]:
        possible.add("sqs:SendMessage")  # Lambda sends failed asynchronous events there as the function
    extra = {a for a in allowed if mutating(a)} - possible - PLATFORM
    assert extra == set(), f"{function} may do what its code never does"


def test_the_public_approval_url_can_verify_links_but_never_mint_them(template: dict[str, Any]) -> None:
    verifier = allowed_actions(template, "ApprovalVerifierFunctionRole")
    mailer = allowed_actions(template, "ApprovalMailerFunctionRole")
    assert {"kms:VerifyMac", "states:SendTaskSuccess", "states:SendTaskFailure"} <= verifier
    assert not verifier & {"kms:GenerateMac", "sns:Publish"}, "a compromised URL function could mint links"
    assert "kms:GenerateMac" in mailer
    assert not mailer & {"kms:VerifyMac", "states:SendTaskSuccess", "states:SendTaskFailure"}
