"""A function must fit its MemorySize once it has built its clients: an invocation that needs more ends in
an out-of-memory error, which Step Functions reports as Lambda.Unknown (sandbox/lambdas.py cites it), and
the waiting functions run at 128 MB to halve what their waits cost."""

from pathlib import Path
from typing import Any

import pytest

from template_model import Stack
from tools.check_build import check_memory, services_of

ONE_MIB = 1024 * 1024


def build_holding(root: Path, mib: int, memory_size: int) -> tuple[dict[str, Path], Path, dict[str, Any]]:
    """A built function whose cold start holds ``mib`` MiB, and a layer whose clients cost nothing."""
    layer = root / "SharedLayer" / "python" / "opsflow"
    layer.mkdir(parents=True)
    (layer / "__init__.py").write_text("")
    (layer / "clients.py").write_text("def client(service): return None\ndef http_session(): return None\n")
    function = root / "GateFunction"
    function.mkdir()
    (function / "app.py").write_text(f"HELD = b'x' * {mib * ONE_MIB}  # written, so resident\n")
    template = {
        "Globals": {"Function": {"MemorySize": 256}},
        "Resources": {"GateFunction": {"Type": "AWS::Serverless::Function", "Properties": {"MemorySize": memory_size}}},
    }
    return {"GateFunction": function}, root / "SharedLayer" / "python", template


def test_a_function_holding_more_than_its_budget_fails_naming_it_and_the_setting_to_raise(tmp_path: Path) -> None:
    functions, layer, template = build_holding(tmp_path, mib=110, memory_size=128)

    (error,) = check_memory(functions, layer, template)

    assert error.startswith("GateFunction: holds ")
    assert "more than 80% of its MemorySize 128 MB; raise MemorySize in template.yaml" in error


def test_the_same_function_fits_twice_the_memory(tmp_path: Path) -> None:
    functions, layer, template = build_holding(tmp_path, mib=110, memory_size=256)

    assert check_memory(functions, layer, template) == []


def test_the_clients_built_are_those_the_policies_allow_named_as_boto3_names_them() -> None:
    function = {
        "Properties": {
            "Policies": [
                {"Statement": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}]},
                {"Statement": [{"Action": ["elasticloadbalancing:RegisterTargets", "dynamodb:GetItem"]}]},
                {"Statement": [{"Action": {"Fn::Split": [",", {"Ref": "Reads"}]}}]},
                {"SNSPublishMessagePolicy": {"TopicName": "t"}},
                {"Ref": "UseTheStackKeyPolicy"},  # a managed policy: the services using the key call it
            ]
        }
    }
    stack = Stack({"Parameters": {"Reads": {"Type": "String", "Default": "tag:GetResources,ssm:GetParameter"}}}, {})

    assert services_of(stack, function) == ["dynamodb", "ec2", "elbv2", "resourcegroupstaggingapi", "sns", "ssm"]


def test_a_policy_template_it_does_not_know_is_refused_by_name() -> None:
    function = {"Properties": {"Policies": [{"SQSPollerPolicy": {"QueueName": "q"}}]}}

    with pytest.raises(ValueError, match="SQSPollerPolicy: add the service it grants to POLICY_TEMPLATE_SERVICES"):
        services_of(Stack({}, {}), function)
