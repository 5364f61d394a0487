"""The summary puts back what an interrupted restart left out, and never touches what the run did not take out."""

from typing import Any

import boto3
import pytest
import responses

from opsflow.runs import RunTable
from tests.conftest import REGION, load_function

RUN = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1"


@pytest.fixture
def tier(run_table: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    instances = ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2)["Instances"]
    group = elbv2.create_target_group(Name="web", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance")
    arn = group["TargetGroups"][0]["TargetGroupArn"]
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="opsflow")["TopicArn"]
    monkeypatch.setenv("TOPIC_ARN", topic)
    return {"arn": arn, "instances": instances}


def summary_event(tier: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": "summary",
        "run": {"executionArn": RUN, "targetGroupArn": tier["arn"], "health": {"port": 8080, "path": "/health"}},
        "instanceCount": 2,
        "error": None,
    }


def test_an_instance_whose_restart_was_interrupted_is_put_back_once_it_answers(
    tier: dict[str, Any], lambda_context: Any
) -> None:
    taken_out, never_touched = tier["instances"]
    table = RunTable("runs")
    table.mark_taken_out(RUN, taken_out["InstanceId"], "2026-11-23T10:00:00+00:00")  # its child then failed
    with responses.RequestsMock() as http:
        http.get(f"http://{taken_out['PrivateIpAddress']}:8080/health", status=200)

        result = load_function("restart_reporter").lambda_handler(summary_event(tier), lambda_context)

    registered = boto3.client("elbv2", region_name=REGION).describe_target_health(TargetGroupArn=tier["arn"])
    assert [d["Target"]["Id"] for d in registered["TargetHealthDescriptions"]] == [taken_out["InstanceId"]]
    assert result["succeeded"] is False and result["failed"] == 1 and result["notStarted"] == 1
    outcome = table.get_outcome(RUN, taken_out["InstanceId"])
    assert outcome and outcome["error"] == "RestartInterrupted" and "registered again" in outcome["placement"]
    assert table.get_outcome(RUN, never_touched["InstanceId"]) is None
