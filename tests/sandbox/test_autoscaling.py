"""The Auto Scaling group model (sandbox/autoscaling.py) through the API, as the User Guide documents it."""

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sandbox.fleet import AutoScalingSpec, FleetSpec, Spread
from sandbox.runtime import Sandbox

GROUP = "web-asg"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    spec = FleetSpec(
        size=4,
        boot=Spread(45),
        readiness=Spread(30),
        seed=5,
        auto_scaling=AutoScalingSpec(GROUP, grace_period=300, min_size=2, max_size=6),
    )
    with Sandbox(spec) as sandbox:
        yield sandbox


def lifecycle(sb: Sandbox) -> dict[str, str]:
    found = sb.client("autoscaling").describe_auto_scaling_instances()["AutoScalingInstances"]
    return {i["InstanceId"]: i["LifecycleState"] for i in found}


def desired(sb: Sandbox) -> int:
    [group] = sb.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    return int(group["DesiredCapacity"])


def later(sb: Sandbox, seconds: float) -> None:
    sb.run_until(at=sb.clock.now() + seconds)


def health(sb: Sandbox, instance_id: str) -> str:
    arn = sb.fleet_resources["TargetGroupArn"]
    found = sb.client("elbv2").describe_target_health(TargetGroupArn=arn, Targets=[{"Id": instance_id}])
    return str(found["TargetHealthDescriptions"][0]["TargetHealth"]["State"])


def call(sb: Sandbox, operation: str, **params: Any) -> dict[str, Any]:
    return dict(getattr(sb.client("autoscaling"), operation)(AutoScalingGroupName=GROUP, **params))


def test_the_group_holds_the_tier_and_is_attached_to_its_target_group(sb: Sandbox) -> None:
    assert lifecycle(sb) == dict.fromkeys(sb.fleet.instances, "InService")
    assert desired(sb) == 4
    [group] = sb.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    assert group["TargetGroupARNs"] == [sb.fleet_resources["TargetGroupArn"]]
    assert (group["HealthCheckType"], group["HealthCheckGracePeriod"]) == ("ELB", 300)


def test_a_member_taken_out_of_its_target_group_is_replaced_by_the_group(sb: Sandbox) -> None:
    """The ELB health check wants the load balancer to report the member healthy: deregistered, it is not."""
    member = sorted(sb.fleet.instances)[0]
    sb.client("elbv2").deregister_targets(TargetGroupArn=sb.fleet_resources["TargetGroupArn"], Targets=[{"Id": member}])
    later(sb, 1)
    states = lifecycle(sb)
    assert member not in states, "terminated and out of the group"
    assert len(states) == 4 and list(states.values()).count("Pending") == 1, "a replacement is launching"
    state = sb.client("ec2").describe_instances(InstanceIds=[member])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "terminated"
    replacement = next(i for i, s in states.items() if s == "Pending")
    later(sb, 50)  # booted: InService, and registered in the group's target group by the group
    assert lifecycle(sb)[replacement] == "InService"
    assert health(sb, replacement) in ("initial", "unhealthy")  # its application is still starting
    later(sb, 60)
    assert health(sb, replacement) == "healthy"
    later(sb, 400)  # past the grace period: healthy, so kept
    assert lifecycle(sb)[replacement] == "InService"


def test_a_new_instance_failing_health_checks_is_kept_for_the_grace_period_then_replaced(sb: Sandbox) -> None:
    member = sorted(sb.fleet.instances)[0]
    sb.client("elbv2").deregister_targets(TargetGroupArn=sb.fleet_resources["TargetGroupArn"], Targets=[{"Id": member}])
    later(sb, 1)
    replacement = next(i for i, s in lifecycle(sb).items() if s == "Pending")
    launched = sb.fleet.instances[replacement].launch
    assert launched is not None
    sb.fleet.instances[replacement].launch = (launched[0], launched[1], float("inf"))  # its application never starts
    later(sb, 45 + 200)
    assert health(sb, replacement) == "unhealthy" and lifecycle(sb)[replacement] == "InService", "in its grace period"
    later(sb, 120)
    assert replacement not in lifecycle(sb), "replaced once the grace period is over"


def test_standby_takes_the_member_out_of_the_target_group_and_out_of_the_health_checks(sb: Sandbox) -> None:
    member = sorted(sb.fleet.instances)[1]
    answer = call(sb, "enter_standby", InstanceIds=[member], ShouldDecrementDesiredCapacity=True)
    assert "Moving EC2 instance to Standby" in answer["Activities"][0]["Description"]
    assert lifecycle(sb)[member] == "Standby" and desired(sb) == 3
    assert health(sb, member) == "draining"
    sb.client("ec2").reboot_instances(InstanceIds=[member])
    later(sb, 600)  # rebooted, deregistered the whole time: the group neither checks nor replaces it
    assert lifecycle(sb) == {**dict.fromkeys(sb.fleet.instances, "InService"), member: "Standby"}
    call(sb, "exit_standby", InstanceIds=[member])
    assert lifecycle(sb)[member] == "InService" and desired(sb) == 4
    assert health(sb, member) == "initial", "registered again by the group"
    later(sb, 11)
    assert health(sb, member) == "healthy"


def test_standby_without_decrementing_launches_a_replacement(sb: Sandbox) -> None:
    member = sorted(sb.fleet.instances)[1]
    call(sb, "enter_standby", InstanceIds=[member], ShouldDecrementDesiredCapacity=False)
    states = lifecycle(sb)
    assert desired(sb) == 4 and list(states.values()).count("Pending") == 1 and states[member] == "Standby"


def test_standby_refuses_to_go_below_the_minimum_size_and_changes_nothing(sb: Sandbox) -> None:
    a, b, c = sorted(sb.fleet.instances)[:3]
    call(sb, "enter_standby", InstanceIds=[a, b], ShouldDecrementDesiredCapacity=True)
    with pytest.raises(ClientError) as raised:
        call(sb, "enter_standby", InstanceIds=[c], ShouldDecrementDesiredCapacity=True)
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "minimum size 2" in raised.value.response["Error"]["Message"]
    assert lifecycle(sb)[c] == "InService" and desired(sb) == 2 and health(sb, c) == "healthy"


def test_exit_standby_refuses_an_instance_that_is_not_in_standby(sb: Sandbox) -> None:
    with pytest.raises(ClientError) as raised:
        call(sb, "exit_standby", InstanceIds=[sorted(sb.fleet.instances)[0]])
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "not in Standby" in raised.value.response["Error"]["Message"]


def test_scale_in_terminates_in_service_members_never_one_in_standby(sb: Sandbox) -> None:
    members = sorted(sb.fleet.instances)
    call(sb, "enter_standby", InstanceIds=[members[0]], ShouldDecrementDesiredCapacity=True)
    call(sb, "set_desired_capacity", DesiredCapacity=2)
    states = lifecycle(sb)
    assert states[members[0]] == "Standby"
    assert sorted(states.values()) == ["InService", "InService", "Standby"]
    gone = [i for i in members if i not in states]
    assert len(gone) == 1 and health(sb, gone[0]) == "draining", "deregistered (drained) before it terminates"


def test_scale_in_balances_the_zones() -> None:
    spec = FleetSpec(size=5, zones=2, seed=5, auto_scaling=AutoScalingSpec(GROUP, min_size=1))
    with Sandbox(spec) as sandbox:
        zone_of = {i: m.zone for i, m in sandbox.fleet.auto_scaling[GROUP].members.items()}
        call(sandbox, "set_desired_capacity", DesiredCapacity=4)
        [gone] = [i for i in zone_of if i not in lifecycle(sandbox)]
        assert zone_of[gone] == max(set(zone_of.values()), key=list(zone_of.values()).count)
