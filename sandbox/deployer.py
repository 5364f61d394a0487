"""template.yaml deployed into moto, as CloudFormation would deploy it.

One table, :data:`RESOURCE_TYPES`, says per CloudFormation type how its physical ids are named and
how it is created; a type not in it resolves (Ref, GetAtt) but creates nothing. Adding a resource of
a known type to template.yaml needs no change here.
"""

import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from sandbox.environment import ACCOUNT, REGION, client
from sandbox.lambdas import FunctionSpec, LambdaRuntime
from sandbox.network import Placement
from template_model import Stack, TemplateError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
ARN = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:{{}}"


def fill_definition(text: str, substitutions: dict[str, Any], source: str) -> str:
    """SAM's DefinitionSubstitutions: replace ``${Name}``; an unknown name is an error naming it."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in substitutions:
            raise TemplateError(f"{source}: placeholder ${{{name}}} has no DefinitionSubstitutions entry")
        return str(substitutions[name])

    return _PLACEHOLDER.sub(replace, text)


def table_arguments(props: Mapping[str, Any]) -> dict[str, Any]:
    """CreateTable arguments from an AWS::DynamoDB::Table's properties: keys, attributes, global indexes.

    Billing is on demand whatever the template says (the sandbox has no capacity to provision).
    """
    args: dict[str, Any] = {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    indexes = props.get("GlobalSecondaryIndexes", [])
    if indexes:
        args["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")} for index in indexes
        ]
    return args


def function_rules(stack: Stack, logical_id: str, props: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """The function's EventBridge rules: (name, pattern, state). Unnamed ones get a name as CloudFormation would."""
    rules = []
    for event_id, source in props.get("Events", {}).items():
        if source.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
            spec = stack.resolve(source["Properties"])
            name = spec.get("RuleName") or f"{stack.name}-{logical_id}{event_id}"[:64]
            rules.append((str(name), spec["Pattern"], str(spec.get("State", "ENABLED"))))
    return rules


def event_rules(stack: Stack) -> list[tuple[str, str, dict[str, Any]]]:
    """(function name, rule name, pattern) of every function's EventBridge rule."""
    return [
        (stack.physical[logical_id]["Ref"], rule_name, pattern)
        for logical_id, res in stack.resources("AWS::Serverless::Function").items()
        for rule_name, pattern, _ in function_rules(stack, logical_id, res["Properties"])
    ]


Ids = dict[str, str]


@dataclass(frozen=True)
class ResourceType:
    """How one CloudFormation type is deployed: its physical ids, named before anything is created so any
    resource may refer to any other; then its creation from (deployer, logical id, properties, ids)."""

    physical_ids: Callable[["StackDeployer", str, dict[str, Any]], Ids]
    create: Callable[["StackDeployer", str, dict[str, Any], Ids], None] | None = None


class StackDeployer:
    """Creates the stack's resources in moto and the functions in the Lambda runtime."""

    def __init__(
        self,
        stack: Stack,
        lambdas: LambdaRuntime,
        template_path: Path,
        definitions: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.stack = stack
        self.lambdas = lambdas
        self.template_path = template_path
        # State machine logical id -> an ASL to deploy instead of its file (a test of "what if the workflow did X").
        self.definitions = dict(definitions or {})
        self.placements: dict[str, Placement | None] = {}  # function logical id -> its VPC placement
        self._role: str | None = None

    def deploy(self) -> None:
        stack = self.stack
        # Physical ids first, so any resource can refer to any other whatever the order.
        for logical_id, res in stack.resources().items():
            stack.physical[logical_id] = _type_of(res).physical_ids(self, logical_id, res.get("Properties", {}))
            if "FunctionUrlConfig" in res.get("Properties", {}):  # SAM's generated <Function>Url resource
                url = f"https://{stack.physical[logical_id]['Ref']}.lambda-url.{REGION}.on.aws/"
                stack.physical[f"{logical_id}Url"] = {"Ref": url, "FunctionUrl": url}
        for logical_id, res in stack.resources().items():
            create = _type_of(res).create
            if create is not None:
                create(self, logical_id, res.get("Properties", {}), stack.physical[logical_id])
        for logical_id, res in stack.resources("AWS::Serverless::Function").items():
            self._wire_function(logical_id, res["Properties"])

    def name(self, logical_id: str, props: dict[str, Any], key: str) -> str:
        """The resource's explicit name property, else CloudFormation's stack-logical id name."""
        explicit = props.get(key)
        return str(self.stack.resolve(explicit)) if explicit else f"{self.stack.name}-{logical_id}"

    def role_arn(self) -> str:
        """The one role moto's Lambda and Step Functions APIs ask for (IAM is evaluated elsewhere)."""
        if self._role is None:
            role = client("iam").create_role(RoleName="sandbox-execution-role", AssumeRolePolicyDocument="{}")
            self._role = str(role["Role"]["Arn"])
        return self._role

    def definition(self, logical_id: str) -> str:
        """The state machine's ASL with its DefinitionSubstitutions filled in."""
        res = self.stack.resources("AWS::Serverless::StateMachine")[logical_id]
        props = res["Properties"]
        path = self.template_path.parent / str(props["DefinitionUri"])
        substitutions = self.stack.resolve(props.get("DefinitionSubstitutions", {}))
        override = self.definitions.get(logical_id)
        text = json.dumps(override) if override is not None else path.read_text(encoding="utf-8")
        return fill_definition(text, substitutions, str(props["DefinitionUri"]))

    def deploy_definition(self, name: str, path: Path, substitutions: dict[str, Any]) -> str:
        """Create a state machine that is not in the template; ``substitutions`` resolved against the stack."""
        text = fill_definition(path.read_text(encoding="utf-8"), self.stack.resolve(substitutions), str(path))
        arn = str(
            client("stepfunctions").create_state_machine(name=name, definition=text, roleArn=self.role_arn())[
                "stateMachineArn"
            ]
        )
        self.stack.physical[name] = {"Ref": arn, "Arn": arn, "Name": name}
        return arn

    def _wire_function(self, logical_id: str, props: dict[str, Any]) -> None:
        """Function URLs, SQS event sources and EventBridge rules, as the template declares them.

        moto invokes a function synchronously when a message reaches a queue it is mapped to.
        """
        name = self.stack.physical[logical_id]["Ref"]
        lam = client("lambda")
        if "FunctionUrlConfig" in props:
            lam.create_function_url_config(
                FunctionName=name, AuthType=props["FunctionUrlConfig"].get("AuthType", "NONE")
            )
        for source in props.get("Events", {}).values():
            if source.get("Type") == "SQS":
                spec = self.stack.resolve(source["Properties"])
                lam.create_event_source_mapping(
                    EventSourceArn=spec["Queue"], FunctionName=name, BatchSize=int(spec.get("BatchSize", 10))
                )
        for rule_name, pattern, state in function_rules(self.stack, logical_id, props):
            client("events").put_rule(Name=rule_name, EventPattern=json.dumps(pattern), State=state)


# -- one entry per CloudFormation type: physical ids, then creation --------------------------------
def _function_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    name = d.name(logical_id, props, "FunctionName")
    return {"Ref": name, "Arn": ARN.format("lambda", f"function:{name}")}


def _create_function(d: StackDeployer, logical_id: str, props: dict[str, Any], ids: Ids) -> None:
    env = d.stack.resolve(props.get("Environment", {}).get("Variables", {}))
    d.placements[logical_id] = Placement.from_vpc_config(d.stack.resolve(props.get("VpcConfig")))
    spec = FunctionSpec(
        logical_id=logical_id,
        function_name=ids["Ref"],
        arn=ids["Arn"],
        code_dir=(d.template_path.parent / str(props["CodeUri"])).resolve(),
        handler=str(props["Handler"]),
        environment={k: str(v) for k, v in env.items()},
        timeout=int(props.get("Timeout", 3)),
        memory=int(props.get("MemorySize", 128)),
    )
    d.lambdas.add(spec)
    client("lambda").create_function(
        FunctionName=spec.function_name,
        Runtime=str(props.get("Runtime", "python3.13")),
        Role=d.role_arn(),
        Handler=spec.handler,
        Code={"ZipFile": _EMPTY_ZIP},
        Timeout=spec.timeout,
        MemorySize=spec.memory,
    )


def _state_machine_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    name = d.name(logical_id, props, "Name")
    arn = ARN.format("states", f"stateMachine:{name}")
    return {"Ref": arn, "Arn": arn, "Name": name}


def _create_state_machine(d: StackDeployer, logical_id: str, props: dict[str, Any], ids: Ids) -> None:
    try:
        client("stepfunctions").create_state_machine(
            name=ids["Name"], definition=d.definition(logical_id), roleArn=d.role_arn()
        )
    except ClientError as exc:  # moto answers InvalidDefinition, or a bare error naming the parser's
        message = exc.response["Error"].get("Message", str(exc)).split(" in definition '", 1)[0]
        raise TemplateError(f"{props['DefinitionUri']}: rejected by the ASL parser: {message}") from exc


def _topic_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    name = d.name(logical_id, props, "TopicName")
    return {"Ref": ARN.format("sns", name), "TopicArn": ARN.format("sns", name), "TopicName": name}


def _queue_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    name = d.name(logical_id, props, "QueueName")
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
    return {"Ref": url, "QueueUrl": url, "Arn": ARN.format("sqs", name), "QueueName": name}


def _table_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    name = d.name(logical_id, props, "TableName")
    return {"Ref": name, "Arn": ARN.format("dynamodb", f"table/{name}")}


def _bucket_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    name = d.name(logical_id, props, "BucketName").lower()
    return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}


def _key_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    """A key's id is chosen by KMS, so the key is created while naming it."""
    key_id = client("kms").create_key(
        Description=logical_id,
        KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
        KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
    )["KeyMetadata"]["KeyId"]
    return {"Ref": key_id, "KeyId": key_id, "Arn": ARN.format("kms", f"key/{key_id}")}


def _security_group_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    """A group's id is chosen by EC2, so the group is created while naming it."""
    group_id = client("ec2").create_security_group(
        GroupName=f"{d.stack.name}-{logical_id}",
        Description=str(d.stack.resolve(props.get("GroupDescription", logical_id))),
        VpcId=str(d.stack.resolve(props["VpcId"])),
    )["GroupId"]
    return {"Ref": group_id, "GroupId": group_id}


def _set_egress(d: StackDeployer, logical_id: str, props: dict[str, Any], ids: Ids) -> None:
    """As CloudFormation does: declared egress rules replace the default allow-all rule."""
    rules = d.stack.resolve(props.get("SecurityGroupEgress"))
    if not rules:
        return
    ec2 = client("ec2")
    ec2.revoke_security_group_egress(
        GroupId=ids["GroupId"], IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    ec2.authorize_security_group_egress(
        GroupId=ids["GroupId"], IpPermissions=[_ip_permission(r, "DestinationSecurityGroupId") for r in rules]
    )


def _create_ingress(d: StackDeployer, logical_id: str, props: dict[str, Any], ids: Ids) -> None:
    rule = d.stack.resolve(props)
    client("ec2").authorize_security_group_ingress(
        GroupId=rule["GroupId"], IpPermissions=[_ip_permission(rule, "SourceSecurityGroupId")]
    )


def _alarm_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    name = d.name(logical_id, props, "AlarmName")
    return {"Ref": name, "Arn": ARN.format("cloudwatch", f"alarm:{name}")}


def _managed_policy_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    """Ref is the policy's ARN; its document is evaluated with the roles it is attached to (sandbox/sam.py)."""
    name = d.name(logical_id, props, "ManagedPolicyName")
    arn = f"arn:aws:iam::{ACCOUNT}:policy/{name}"
    return {"Ref": arn, "PolicyArn": arn}


def _generic_ids(d: StackDeployer, logical_id: str, props: dict[str, Any]) -> Ids:
    """Not simulated (roles, log groups, dashboards...): names that resolve, nothing created."""
    generic = f"{d.stack.name}-{logical_id}"
    return {"Ref": generic, "Arn": ARN.format("sandbox", generic)}


RESOURCE_TYPES: dict[str, ResourceType] = {
    "AWS::Serverless::Function": ResourceType(_function_ids, _create_function),
    "AWS::Serverless::StateMachine": ResourceType(_state_machine_ids, _create_state_machine),
    "AWS::Serverless::LayerVersion": ResourceType(
        lambda d, logical_id, props: {"Ref": ARN.format("lambda", f"layer:{logical_id}:1")}
    ),
    "AWS::SNS::Topic": ResourceType(
        _topic_ids, lambda d, logical_id, props, ids: client("sns").create_topic(Name=ids["TopicName"])
    ),
    "AWS::SQS::Queue": ResourceType(
        _queue_ids, lambda d, logical_id, props, ids: client("sqs").create_queue(QueueName=ids["QueueName"])
    ),
    "AWS::DynamoDB::Table": ResourceType(
        _table_ids,
        lambda d, logical_id, props, ids: client("dynamodb").create_table(
            TableName=ids["Ref"], **table_arguments(d.stack.resolve(props))
        ),
    ),
    "AWS::S3::Bucket": ResourceType(
        _bucket_ids,
        lambda d, logical_id, props, ids: client("s3").create_bucket(
            Bucket=ids["Ref"], CreateBucketConfiguration={"LocationConstraint": REGION}
        ),
    ),
    "AWS::KMS::Key": ResourceType(_key_ids),
    "AWS::IAM::ManagedPolicy": ResourceType(_managed_policy_ids),
    "AWS::EC2::SecurityGroup": ResourceType(_security_group_ids, _set_egress),
    "AWS::EC2::SecurityGroupIngress": ResourceType(_generic_ids, _create_ingress),
    # Its properties are PutMetricAlarm's parameters.
    "AWS::CloudWatch::Alarm": ResourceType(
        _alarm_ids,
        lambda d, logical_id, props, ids: client("cloudwatch").put_metric_alarm(
            **{**d.stack.resolve(props), "AlarmName": ids["Ref"]}
        ),
    ),
}
_NOT_SIMULATED = ResourceType(_generic_ids)


def _type_of(res: dict[str, Any]) -> ResourceType:
    return RESOURCE_TYPES.get(res["Type"], _NOT_SIMULATED)


def _ip_permission(rule: dict[str, Any], group_key: str) -> dict[str, Any]:
    """A template security group rule (resolved) as an EC2 IpPermission."""
    permission: dict[str, Any] = {"IpProtocol": str(rule["IpProtocol"])}
    if "FromPort" in rule:
        permission.update(FromPort=int(rule["FromPort"]), ToPort=int(rule["ToPort"]))
    if rule.get(group_key):
        permission["UserIdGroupPairs"] = [{"GroupId": rule[group_key]}]
    if rule.get("CidrIp"):
        permission["IpRanges"] = [{"CidrIp": rule["CidrIp"]}]
    return permission


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README", "code runs in-process in the sandbox")
    return buf.getvalue()


_EMPTY_ZIP = _empty_zip()
