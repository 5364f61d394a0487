"""The planner's reads (ELB target groups, EC2 instances, Step Functions executions) against moto: what
AWS answers becomes plain data, and "it does not exist" is an answer, not an exception."""

from typing import Any

import boto3

from opsflow import ec2_instances, executions, target_groups

REGION = "eu-west-1"


def a_group(name: str = "web", **attributes: str) -> tuple[str, str]:
    ec2, elbv2 = boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    arn = elbv2.create_target_group(
        Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance", HealthCheckIntervalSeconds=10
    )["TargetGroups"][0]["TargetGroupArn"]
    if attributes:
        elbv2.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in attributes.items()]
        )
    return arn, vpc


def test_a_group_is_described_with_its_deregistration_delay(aws: None) -> None:
    arn, vpc = a_group(**{"deregistration_delay.timeout_seconds": "45"})

    group = target_groups.describe(arn)

    assert group == target_groups.TargetGroup(arn, "instance", vpc, 8080, 10, 45)


def test_a_missing_group_or_load_balancer_is_none(aws: None) -> None:
    arn, _ = a_group()
    missing = arn[:-16] + "0123456789abcdef"
    balancer = arn.replace(":targetgroup/web/", ":loadbalancer/app/front/")

    assert target_groups.describe(missing) is None
    assert target_groups.of_load_balancer(balancer) is None


def test_every_group_is_listed_with_its_vpc_and_target_type(aws: None) -> None:
    web, vpc = a_group("web")
    api, other_vpc = a_group("api")

    listed = target_groups.every_group()

    assert sorted(listed, key=lambda g: g.arn) == sorted(
        [target_groups.ListedGroup(web, "instance", vpc), target_groups.ListedGroup(api, "instance", other_vpc)],
        key=lambda g: g.arn,
    )


def test_instances_are_read_a_chunk_of_ids_at_a_time_and_unknown_ids_are_absent(aws: None, monkeypatch: Any) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    launched = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=3,
        MaxCount=3,
        Placement={"AvailabilityZone": "eu-west-1b"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "opsflow:tier", "Value": "web"}]}],
    )["Instances"]
    ids = [i["InstanceId"] for i in launched]
    monkeypatch.setattr(ec2_instances, "DESCRIBE_AT_ONCE", 2)

    found = ec2_instances.describe([*ids, "i-0123456789abcdef0"])

    assert sorted(found) == sorted(ids)
    first = found[ids[0]]
    assert (first.state, first.zone, first.tags) == ("running", "eu-west-1b", {"opsflow:tier": "web"})
    assert first.private_ip == launched[0]["PrivateIpAddress"] and first.vpc_id == launched[0]["VpcId"]


def test_an_execution_that_does_not_exist_is_none(aws: None) -> None:
    missing = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1"
    assert executions.describe(missing) is None
