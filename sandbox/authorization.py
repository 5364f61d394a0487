"""What IAM authorizes for each AWS call, and how each service answers when it refuses.

A call (botocore service id, operation, parameters) becomes one or more IAM requests (sandbox/iam.py):
the IAM action, the resource ARN (``*`` for actions without resource-level permissions) and the
condition keys AWS puts in the request context (the resource's tags where the project's policies can
test them). The mapping follows the Service Authorization Reference ("Actions, resources, and
condition keys for <service>"); a call to several resources (RebootInstances of two instances,
DisableAlarmActions of three alarms) is authorized per resource, and fails if any one is denied.

Every operation a function or a state machine calls must be listed in OPERATIONS: a call that is not
fails with :class:`UnmappedOperation`, so no new call escapes the check. Extend OPERATIONS (and
tests/sandbox/test_authorization.py) when the project calls something new.

The names the project's tools share live here too: IAM prefixes of boto3 clients and of botocore
service ids, and the API operations whose IAM action has another name.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import botocore.session

from sandbox.iam import Request

# botocore service ids (as in event names: "before-call.<service id>.<Operation>") -> IAM prefixes, where
# they differ; a boto3 client's name gives its service id (service_id).
SERVICE_IDS = {
    "elastic-load-balancing-v2": "elasticloadbalancing",
    "auto-scaling": "autoscaling",
    "eventbridge": "events",
    "sfn": "states",
    "resource-groups-tagging-api": "tag",
}
# Step Functions' SDK integration names that differ from boto3's client names.
SDK_SERVICE_NAMES = {"elasticloadbalancingv2": "elbv2", "eventbridge": "events"}
# How AWS spells the service in SDK integration error names (``Ec2.Ec2Exception``,
# ``ElasticLoadBalancingV2.TargetGroupNotFoundException``); moto lowercases them.
SDK_ERROR_SERVICE_NAMES = {
    "ec2": "Ec2",
    "elasticloadbalancingv2": "ElasticLoadBalancingV2",
    "ssm": "Ssm",
    "sns": "Sns",
    "sqs": "Sqs",
    "cloudwatch": "CloudWatch",
    "eventbridge": "EventBridge",
    "s3": "S3",
    "lambda": "Lambda",
}
# API operations authorized by an IAM action of another name ("prefix:Operation" -> action).
ACTION_OF = {
    "s3:HeadObject": "s3:GetObject",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "lambda:Invoke": "lambda:InvokeFunction",
}


def iam_action(prefix: str, operation: str) -> str:
    """``("lambda", "Invoke")`` -> ``"lambda:InvokeFunction"``."""
    name = f"{prefix}:{operation}"
    return ACTION_OF.get(name, name)


class UnmappedOperation(RuntimeError):
    """A function or state machine called an operation the sandbox cannot authorize yet."""


class Lookups(Protocol):
    """What the mapping reads from the (simulated) account."""

    region: str
    account: str

    def tags(self, arn: str) -> dict[str, str]:
        """The tags of the resource (EC2 instances and ELB target groups)."""

    def key_arn(self, key_id: str) -> str:
        """The ARN of a KMS key given by id, ARN, alias name or alias ARN."""

    def auto_scaling_group(self, name: str) -> tuple[str, dict[str, str]]:
        """The ARN and tags of an Auto Scaling group given by name."""


Target = tuple[str, dict[str, str]]  # (resource ARN or "*", resource-specific condition keys)
Resolver = Callable[[dict[str, Any], Lookups], list[Target]]


def _anything(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [("*", {})]


def _arn(service: str, env: Lookups, resource: str) -> str:
    return f"arn:aws:{service}:{env.region}:{env.account}:{resource}"


def _tag_keys(tags: dict[str, str], *prefixes: str) -> dict[str, str]:
    return {f"{prefix}:ResourceTag/{k}": v for prefix in prefixes for k, v in tags.items()}


def _instances(params: dict[str, Any], env: Lookups) -> list[Target]:
    targets = []
    for instance_id in params.get("InstanceIds", []):
        arn = _arn("ec2", env, f"instance/{instance_id}")
        targets.append((arn, {**_tag_keys(env.tags(arn), "aws", "ec2"), "ec2:Region": env.region}))
    return targets


def _target_group(params: dict[str, Any], env: Lookups) -> list[Target]:
    arn = str(params["TargetGroupArn"])
    return [(arn, _tag_keys(env.tags(arn), "aws"))]


def _auto_scaling_group(params: dict[str, Any], env: Lookups) -> list[Target]:
    # autoScalingGroup resources with aws:ResourceTag and autoscaling:ResourceTag (Service Authorization
    # Reference, "Actions, resources, and condition keys for Amazon EC2 Auto Scaling").
    arn, tags = env.auto_scaling_group(str(params["AutoScalingGroupName"]))
    return [(arn, _tag_keys(tags, "aws", "autoscaling"))]


def _table(params: dict[str, Any], env: Lookups) -> list[Target]:
    name = str(params["TableName"])
    arn = name if name.startswith("arn:") else _arn("dynamodb", env, f"table/{name}")
    return [(f"{arn}/index/{params['IndexName']}" if params.get("IndexName") else arn, {})]


def _topic(params: dict[str, Any], env: Lookups) -> list[Target]:
    arn = params.get("TopicArn") or params.get("TargetArn")
    return [(str(arn), {})] if arn else [("*", {})]  # SMS to a phone number: no resource


def _queue(params: dict[str, Any], env: Lookups) -> list[Target]:
    account, name = urlparse(str(params["QueueUrl"])).path.strip("/").split("/")[-2:]
    return [(f"arn:aws:sqs:{env.region}:{account}:{name}", {})]


def _alarms(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(_arn("cloudwatch", env, f"alarm:{name}"), {}) for name in params.get("AlarmNames", [])]


def _rule(params: dict[str, Any], env: Lookups) -> list[Target]:
    bus = params.get("EventBusName") or "default"
    bus = str(bus).rsplit("/", 1)[-1]
    path = f"rule/{params['Name']}" if bus == "default" else f"rule/{bus}/{params['Name']}"
    return [(_arn("events", env, path), {})]


def _tagged_resource(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(str(params.get("ResourceARN") or params.get("ResourceArn")), {})]


def _object(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", {})]


def _bucket(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(f"arn:aws:s3:::{params['Bucket']}", {})]


def _key(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(env.key_arn(str(params["KeyId"])), {})]


def _function(params: dict[str, Any], env: Lookups) -> list[Target]:
    name = str(params["FunctionName"])
    arn = name if name.startswith("arn:") else _arn("lambda", env, f"function:{name}")
    if params.get("Qualifier"):
        arn = f"{arn}:{params['Qualifier']}"
    return [(arn, {})]


def _maintenance_window(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(_arn("ssm", env, f"maintenancewindow/{params['WindowId']}"), {})]


def _command(params: dict[str, Any], env: Lookups) -> list[Target]:
    """SendCommand is authorized on the document and on each instance (with its tags)."""
    name = str(params["DocumentName"])
    # AWS-owned documents have no account in their ARN (SSM user guide, identity-based policy examples).
    owner = "" if name.startswith(("AWS-", "AWSEC2-", "AWSSupport-")) else env.account
    document = name if name.startswith("arn:") else f"arn:aws:ssm:{env.region}:{owner}:document/{name}"
    instances = [_arn("ec2", env, f"instance/{i}") for i in params.get("InstanceIds", [])]
    # Instances carry aws:ResourceTag/* and Systems Manager's own ssm:resourceTag/* keys.
    return [(document, {}), *[(arn, _tag_keys(env.tags(arn), "aws", "ssm")) for arn in instances]]


def _state_machine(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(str(params["stateMachineArn"]), {})]


def _execution(params: dict[str, Any], env: Lookups) -> list[Target]:
    return [(str(params["executionArn"]), {})]


# "prefix:Operation" -> the resources it is authorized on. Read actions without resource-level
# permissions (most Describe*/List*) are authorized on "*".
OPERATIONS: dict[str, Resolver] = {
    # EC2
    "ec2:DescribeInstances": _anything,
    "ec2:DescribeInstanceStatus": _anything,
    "ec2:DescribeTags": _anything,
    "ec2:RebootInstances": _instances,
    # Elastic Load Balancing v2
    "elasticloadbalancing:DescribeTargetGroups": _anything,
    "elasticloadbalancing:DescribeTargetGroupAttributes": _anything,
    "elasticloadbalancing:DescribeTargetHealth": _anything,
    "elasticloadbalancing:DescribeLoadBalancers": _anything,
    "elasticloadbalancing:RegisterTargets": _target_group,
    "elasticloadbalancing:DeregisterTargets": _target_group,
    # EC2 Auto Scaling: Describe* on "*"; changes to a group on the group
    "autoscaling:DescribeAutoScalingInstances": _anything,
    "autoscaling:DescribeAutoScalingGroups": _anything,
    "autoscaling:EnterStandby": _auto_scaling_group,
    "autoscaling:ExitStandby": _auto_scaling_group,
    # DynamoDB
    **{f"dynamodb:{op}": _table for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan")},
    # SNS, SQS
    "sns:Publish": _topic,
    "sqs:SendMessage": _queue,
    "sqs:ReceiveMessage": _queue,
    "sqs:DeleteMessage": _queue,
    # CloudWatch, EventBridge
    "cloudwatch:DescribeAlarms": _anything,
    "cloudwatch:DescribeAlarmHistory": _anything,
    "cloudwatch:ListTagsForResource": _tagged_resource,
    "cloudwatch:DisableAlarmActions": _alarms,
    "cloudwatch:EnableAlarmActions": _alarms,
    "events:ListRules": _anything,
    "events:ListTagsForResource": _tagged_resource,
    "events:DisableRule": _rule,
    "events:EnableRule": _rule,
    # Resource Groups Tagging API: no resource-level permissions
    "tag:GetResources": _anything,
    # S3
    "s3:GetObject": _object,
    "s3:HeadObject": _object,
    "s3:PutObject": _object,
    "s3:CreateMultipartUpload": _object,
    "s3:UploadPart": _object,
    "s3:CompleteMultipartUpload": _object,
    "s3:AbortMultipartUpload": _object,
    "s3:ListObjectsV2": _bucket,
    # KMS
    "kms:GenerateMac": _key,
    "kms:VerifyMac": _key,
    # Lambda
    "lambda:Invoke": _function,
    "lambda:GetFunctionUrlConfig": _function,
    # Step Functions
    "states:SendTaskSuccess": _anything,  # the task token names the task; IAM cannot scope it
    "states:SendTaskFailure": _anything,
    "states:SendTaskHeartbeat": _anything,
    "states:StartExecution": _state_machine,
    "states:DescribeExecution": _execution,
    "states:StopExecution": _execution,
    # Systems Manager
    "ssm:GetMaintenanceWindow": _maintenance_window,
    "ssm:DescribeInstanceInformation": _anything,
    "ssm:DescribeInstancePatchStates": _anything,
    "ssm:DescribeInstancePatches": _anything,
    "ssm:SendCommand": _command,
    "ssm:GetCommandInvocation": _anything,
    "ssm:ListCommandInvocations": _anything,
}


def iam_prefix(service_id: str) -> str:
    return SERVICE_IDS.get(service_id, service_id)


@functools.cache
def service_id(client_name: str) -> str:
    """A boto3 client's name -> botocore's service id, as event names spell it ("elbv2" ->
    "elastic-load-balancing-v2"); botocore.exceptions.UnknownServiceError for a name boto3 lacks."""
    return str(_botocore().get_service_model(client_name).service_id.hyphenize())


def client_iam_prefix(client_name: str) -> str:
    """A boto3 client's name -> the IAM prefix of its actions ("elbv2" -> "elasticloadbalancing")."""
    return iam_prefix(service_id(client_name))


_botocore = functools.cache(botocore.session.get_session)  # its loader caches the service models it reads


def requests_for(
    service_id: str, operation: str, params: dict[str, Any], env: Lookups, principal: str
) -> list[Request]:
    """The IAM requests one call makes; UnmappedOperation if the sandbox does not know the operation."""
    prefix = iam_prefix(service_id)
    resolver = OPERATIONS.get(f"{prefix}:{operation}")
    if resolver is None:
        raise UnmappedOperation(
            f"{prefix}:{operation} is not mapped to IAM: add it to OPERATIONS in sandbox/authorization.py "
            "(its IAM action, resources and condition keys: see the Service Authorization Reference)"
        )
    common = {
        "aws:RequestedRegion": env.region,
        "aws:PrincipalArn": principal,
        "aws:PrincipalAccount": env.account,
        "aws:SecureTransport": "true",
    }
    action = iam_action(prefix, operation)
    return [Request(action, resource, {**common, **keys}) for resource, keys in resolver(params, env)]


# -- how each service says no ---------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    code: str
    status: int


# The error code and HTTP status each service answers an IAM denial with (their API references'
# "Common Errors", and what the SDKs receive): AccessDeniedException for the JSON-protocol
# services, AccessDenied for the query-protocol ones, EC2 and SNS their own.
REFUSALS = {
    "ec2": Refusal("UnauthorizedOperation", 403),
    "elasticloadbalancing": Refusal("AccessDenied", 403),
    "autoscaling": Refusal("AccessDenied", 403),
    "cloudwatch": Refusal("AccessDenied", 403),
    "sns": Refusal("AuthorizationError", 403),
    "sqs": Refusal("AccessDenied", 403),
    "s3": Refusal("AccessDenied", 403),
    "sts": Refusal("AccessDenied", 403),
    "iam": Refusal("AccessDenied", 403),
    "lambda": Refusal("AccessDeniedException", 403),
    "dynamodb": Refusal("AccessDeniedException", 400),
    "kms": Refusal("AccessDeniedException", 400),
    "events": Refusal("AccessDeniedException", 400),
    "states": Refusal("AccessDeniedException", 400),
    "ssm": Refusal("AccessDeniedException", 400),
    "logs": Refusal("AccessDeniedException", 400),
}


def refusal(prefix: str, message: str) -> tuple[Refusal, str]:
    """The service's error code and status, and its message (EC2 words it its own way)."""
    answer = REFUSALS.get(prefix, Refusal("AccessDeniedException", 400))
    if prefix == "ec2":
        message = (
            f"You are not authorized to perform this operation. {message}. "
            "Encoded authorization failure message: (not encoded by the sandbox)"
        )
    return answer, message
