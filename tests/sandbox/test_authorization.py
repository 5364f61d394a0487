"""Each AWS call the project makes becomes the IAM requests AWS would evaluate; refusals as each service words them."""

from typing import Any

import pytest

from sandbox.authorization import OPERATIONS, UnmappedOperation, iam_action, refusal, requests_for

REGION, ACCOUNT = "eu-west-1", "123456789012"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT}:assumed-role/opsflow-RollingRestartStateMachineRole/RollingRestartStateMachine"
TG = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/web/0123456789abcdef"


class FakeAccount:
    region, account = REGION, ACCOUNT

    def __init__(self, tags: dict[str, dict[str, str]] | None = None) -> None:
        self._tags = tags or {}

    def tags(self, arn: str) -> dict[str, str]:
        return self._tags.get(arn, {})

    def key_arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id.removeprefix('alias/')}"

    def auto_scaling_group(self, name: str) -> tuple[str, dict[str, str]]:
        arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0000:autoScalingGroupName/{name}"
        return arn, self._tags.get(arn, {})


def asked(service: str, operation: str, params: dict[str, Any], account: FakeAccount | None = None) -> list[Any]:
    return requests_for(service, operation, params, account or FakeAccount(), PRINCIPAL)


def test_a_reboot_is_authorized_per_instance_with_each_instance_s_tags() -> None:
    first = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-1"
    account = FakeAccount({first: {"opsflow:tier": "web"}})

    requests = asked("ec2", "RebootInstances", {"InstanceIds": ["i-1", "i-2"]}, account)

    assert [(r.action, r.resource) for r in requests] == [
        ("ec2:RebootInstances", first),
        ("ec2:RebootInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-2"),
    ]
    assert requests[0].context["aws:ResourceTag/opsflow:tier"] == "web"
    assert requests[0].context["ec2:ResourceTag/opsflow:tier"] == "web"
    assert "aws:ResourceTag/opsflow:tier" not in requests[1].context
    assert requests[0].context["aws:PrincipalArn"] == PRINCIPAL
    assert requests[0].context["aws:RequestedRegion"] == REGION


@pytest.mark.parametrize(
    ("service", "operation", "params", "action", "resource"),
    [
        (
            "elastic-load-balancing-v2",
            "DeregisterTargets",
            {"TargetGroupArn": TG},
            "elasticloadbalancing:DeregisterTargets",
            TG,
        ),
        (
            "elastic-load-balancing-v2",
            "DescribeTargetHealth",
            {"TargetGroupArn": TG},
            "elasticloadbalancing:DescribeTargetHealth",
            "*",
        ),
        (
            "dynamodb",
            "PutItem",
            {"TableName": "runs"},
            "dynamodb:PutItem",
            f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/runs",
        ),
        (
            "dynamodb",
            "Query",
            {"TableName": "runs", "IndexName": "byTg"},
            "dynamodb:Query",
            f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/runs/index/byTg",
        ),
        (
            "sns",
            "Publish",
            {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"},
            "sns:Publish",
            f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts",
        ),
        (
            "sqs",
            "SendMessage",
            {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/approvals"},
            "sqs:SendMessage",
            f"arn:aws:sqs:{REGION}:{ACCOUNT}:approvals",
        ),
        (
            "eventbridge",
            "DisableRule",
            {"Name": "pager"},
            "events:DisableRule",
            f"arn:aws:events:{REGION}:{ACCOUNT}:rule/pager",
        ),
        (
            "eventbridge",
            "EnableRule",
            {"Name": "pager", "EventBusName": "ops"},
            "events:EnableRule",
            f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ops/pager",
        ),
        (
            "s3",
            "PutObject",
            {"Bucket": "data", "Key": "patch-preview/a.json"},
            "s3:PutObject",
            "arn:aws:s3:::data/patch-preview/a.json",
        ),
        (
            "s3",
            "UploadPart",
            {"Bucket": "data", "Key": "collected/a.jsonl"},
            "s3:PutObject",
            "arn:aws:s3:::data/collected/a.jsonl",
        ),
        (
            "s3",
            "AbortMultipartUpload",
            {"Bucket": "data", "Key": "k"},
            "s3:AbortMultipartUpload",
            "arn:aws:s3:::data/k",
        ),
        ("kms", "GenerateMac", {"KeyId": "1234"}, "kms:GenerateMac", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"),
        (
            "lambda",
            "Invoke",
            {"FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:opsflow-gate"},
            "lambda:InvokeFunction",
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:opsflow-gate",
        ),
        (
            "lambda",
            "GetFunctionUrlConfig",
            {"FunctionName": "opsflow-approval"},
            "lambda:GetFunctionUrlConfig",
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:opsflow-approval",
        ),
        ("sfn", "SendTaskSuccess", {"taskToken": "t", "output": "{}"}, "states:SendTaskSuccess", "*"),
        (
            "ssm",
            "GetMaintenanceWindow",
            {"WindowId": "mw-0123456789abcdef0"},
            "ssm:GetMaintenanceWindow",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:maintenancewindow/mw-0123456789abcdef0",
        ),
        ("ssm", "DescribeInstancePatches", {"InstanceId": "i-1"}, "ssm:DescribeInstancePatches", "*"),
    ],
)
def test_each_call_names_its_iam_action_and_resource(
    service: str, operation: str, params: dict[str, Any], action: str, resource: str
) -> None:
    [request] = asked(service, operation, params)

    assert (request.action, request.resource) == (action, resource)


def test_toggling_alarms_is_authorized_per_alarm() -> None:
    requests = asked("cloudwatch", "DisableAlarmActions", {"AlarmNames": ["web-5xx", "web-latency"]})

    assert [r.resource for r in requests] == [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-5xx",
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:web-latency",
    ]


def test_target_group_tags_are_in_the_context() -> None:
    [request] = asked(
        "elastic-load-balancing-v2", "RegisterTargets", {"TargetGroupArn": TG}, FakeAccount({TG: {"tier": "web"}})
    )

    assert request.context["aws:ResourceTag/tier"] == "web"


def test_an_operation_the_sandbox_cannot_authorize_fails_loudly_naming_where_to_add_it() -> None:
    with pytest.raises(UnmappedOperation, match=r"ec2:TerminateInstances .*sandbox/authorization\.py"):
        asked("ec2", "TerminateInstances", {"InstanceIds": ["i-1"]})


def test_the_shared_names_of_actions() -> None:
    assert iam_action("lambda", "Invoke") == "lambda:InvokeFunction"
    assert iam_action("s3", "CompleteMultipartUpload") == "s3:PutObject"
    assert iam_action("ec2", "RebootInstances") == "ec2:RebootInstances"
    assert all(key.count(":") == 1 for key in OPERATIONS)


@pytest.mark.parametrize(
    ("prefix", "code", "status"),
    [
        ("ec2", "UnauthorizedOperation", 403),
        ("elasticloadbalancing", "AccessDenied", 403),
        ("sns", "AuthorizationError", 403),
        ("sqs", "AccessDenied", 403),
        ("cloudwatch", "AccessDenied", 403),
        ("s3", "AccessDenied", 403),
        ("dynamodb", "AccessDeniedException", 400),
        ("events", "AccessDeniedException", 400),
        ("kms", "AccessDeniedException", 400),
        ("states", "AccessDeniedException", 400),
        ("lambda", "AccessDeniedException", 403),
    ],
)
def test_each_service_refuses_with_its_own_error_code(prefix: str, code: str, status: int) -> None:
    answer, _ = refusal(prefix, "User: x is not authorized")

    assert (answer.code, answer.status) == (code, status)


def test_ec2_words_a_refusal_its_own_way() -> None:
    _, message = refusal("ec2", "User: x is not authorized to perform: ec2:RebootInstances")

    assert message.startswith("You are not authorized to perform this operation. User: x is not authorized")


def test_standby_is_authorized_on_the_group_with_its_tags() -> None:
    """EnterStandby and ExitStandby take the autoScalingGroup resource and its tags (Service Authorization
    Reference, Amazon EC2 Auto Scaling); DescribeAutoScalingInstances has no resource-level permissions."""
    arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0000:autoScalingGroupName/web-asg"
    account = FakeAccount({arn: {"opsflow:tier": "web"}})
    for operation in ("EnterStandby", "ExitStandby"):
        [request] = asked("auto-scaling", operation, {"AutoScalingGroupName": "web-asg"}, account)
        assert (request.action, request.resource) == (f"autoscaling:{operation}", arn)
        assert request.context["aws:ResourceTag/opsflow:tier"] == "web"
        assert request.context["autoscaling:ResourceTag/opsflow:tier"] == "web"
    [described] = asked("auto-scaling", "DescribeAutoScalingInstances", {"InstanceIds": ["i-1"]})
    assert described.resource == "*"
