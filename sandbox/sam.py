"""template.yaml as CloudFormation deploys it: SAM's transform, and the IAM roles it generates.

The transform is aws-sam-translator, pinned to the version the SAM CLI uses (requirements/sam.txt),
so the roles are exactly those ``sam deploy`` creates: one per function and per state machine, with
the policy templates expanded. The sandbox evaluates every call against them (sandbox/iam.py), and
tools/transform_template.py writes the same transform for the least-privilege tests.

A transform takes 0.05-0.08 s; results are cached in-process by the template's content and the
parameter values (SAM resolves some parameters itself, e.g. ``Role`` or ``Tracing``).
"""

import copy
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from samtranslator.metrics.method_decorator import MetricsMethodWrapperSingleton
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

from template_model import Stack, TemplateError

_LOCAL_PATHS = ("CodeUri", "ContentUri", "DefinitionUri")
_cache: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def package(template: Mapping[str, Any]) -> dict[str, Any]:
    """What ``sam package`` does before the transform: local code paths become S3 locations."""
    packaged = copy.deepcopy(dict(template))
    for name, resource in packaged["Resources"].items():
        props = resource.get("Properties", {})
        for key in _LOCAL_PATHS:
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://opsflow-artifacts/{name}"
    return packaged


def pseudo_parameters(stack: Stack) -> dict[str, str]:
    return {name: stack.pseudo(name) for name in ("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName")}


def transform(template: Mapping[str, Any], stack: Stack) -> dict[str, Any]:
    """The CloudFormation template SAM makes of ``template`` with the stack's parameter values."""
    values = {**stack.parameters, **pseudo_parameters(stack)}
    key = hashlib.sha256(json.dumps([template, values], sort_keys=True, default=str).encode()).hexdigest()
    with _lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _cache[key] = _translate(package(template), values, stack.region)
    return copy.deepcopy(cached)


def _translate(template: dict[str, Any], values: dict[str, Any], region: str) -> dict[str, Any]:
    # samtranslator.translator.transform.transform, with the region given rather than read from the environment.
    to_py27_compatible_template(template, values)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        transformed = translator.translate(template, parameter_values=values, get_managed_policy_map=dict)
    finally:
        MetricsMethodWrapperSingleton.get_instance().publish()  # else it warns when garbage-collected
    return dict(undo_mark_unicode_str_in_template(transformed))


# -- the roles ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Role:
    logical_id: str  # "RollingRestartStateMachineRole"
    name: str  # CloudFormation adds a random suffix; the sandbox does not
    policies: tuple[dict[str, Any], ...]  # inline and managed policy documents, intrinsics resolved

    def session_arn(self, account: str, session: str) -> str:
        """The principal that makes the calls: the role's assumed-role session."""
        return f"arn:aws:sts::{account}:assumed-role/{self.name}/{session}"


# Properties naming the execution role of the resources whose code calls AWS.
_ROLE_PROPERTY = {"AWS::Lambda::Function": "Role", "AWS::StepFunctions::StateMachine": "RoleArn"}
_UNSUPPORTED = ("AWS::IAM::Policy", "AWS::IAM::RolePolicy")


def roles(
    transformed: dict[str, Any], stack: Stack, managed_policy: Callable[[str], dict[str, Any] | None]
) -> dict[str, Role]:
    """The role of each function and state machine (by logical id), its policies resolved to the stack's ids.

    ``stack`` holds the parameter values and physical ids (the transformed template keeps the logical
    ids of the template's resources). ``managed_policy`` returns the document of an AWS managed policy.
    """
    deployed = Stack(transformed, stack.parameters, stack.region, stack.account, stack.name, stack.physical)
    found: dict[str, Role] = {}
    for kind in _UNSUPPORTED:
        if deployed.resources(kind):
            raise TemplateError(
                f"{kind} resources are not evaluated by the sandbox: {', '.join(deployed.resources(kind))}"
            )
    for logical_id, policy in deployed.resources("AWS::IAM::ManagedPolicy").items():
        attached_by_itself = sorted({"Roles", "Users", "Groups"} & set(policy["Properties"]))
        if attached_by_itself:
            raise TemplateError(
                f"{logical_id}: attached through its {', '.join(attached_by_itself)}, which the sandbox does not"
                f" evaluate; attach it in the function's or state machine's Policies (- !Ref {logical_id}) instead"
            )
    for kind, prop in _ROLE_PROPERTY.items():
        for logical_id, resource in deployed.resources(kind).items():
            ref = resource["Properties"].get(prop)
            if not (isinstance(ref, Mapping) and "Fn::GetAtt" in ref):
                raise TemplateError(
                    f"{logical_id}: its role {ref!r} is not defined in the template; the sandbox cannot enforce it"
                )
            role_id = ref["Fn::GetAtt"][0] if isinstance(ref["Fn::GetAtt"], list) else ref["Fn::GetAtt"].split(".")[0]
            found[logical_id] = _role(deployed, role_id, managed_policy)
    return found


def _role(deployed: Stack, role_id: str, managed_policy: Callable[[str], dict[str, Any] | None]) -> Role:
    props = deployed.template["Resources"][role_id]["Properties"]
    if "PermissionsBoundary" in props:
        raise TemplateError(f"{role_id}: permissions boundaries are not evaluated by the sandbox")
    documents = [deployed.resolve(p["PolicyDocument"]) for p in props.get("Policies", [])]
    for attached in props.get("ManagedPolicyArns", []):
        in_template = _template_managed_policy(deployed, attached)
        if in_template is not None:
            documents.append(in_template)
            continue
        arn = deployed.resolve(attached)
        document = managed_policy(str(arn))
        if document is None:
            raise TemplateError(f"{role_id}: managed policy {arn} is unknown to the sandbox")
        documents.append(document)
    return Role(role_id, f"{deployed.name}-{role_id}", tuple(documents))


def _template_managed_policy(deployed: Stack, attached: Any) -> dict[str, Any] | None:
    """The document of an AWS::IAM::ManagedPolicy of the template that ``attached`` refers to (``!Ref``)."""
    if not (isinstance(attached, Mapping) and set(attached) == {"Ref"}):
        return None
    resource = deployed.template["Resources"].get(attached["Ref"], {})
    if resource.get("Type") != "AWS::IAM::ManagedPolicy":
        return None
    return dict(deployed.resolve(resource["Properties"]["PolicyDocument"]))
