"""EC2 Auto Scaling groups of the tier's instances: who belongs to one, and putting a member back in service.

A group with ELB health checks replaces an InService member the load balancer does not report healthy
(taken out of its target groups, rebooting): "This feature helps you stop and start the instances or
reboot them without worrying about Amazon EC2 Auto Scaling terminating the instances as part of its
health checks or during scale-in events" (User Guide, "Temporarily remove instances from your Auto
Scaling group"). So a member is put on Standby (desired capacity decremented, so no replacement is
launched) before it leaves service, and back (ExitStandby increments it again) once it answers.
"""

from typing import Any, NamedTuple

from opsflow import clients

DESCRIBE_INSTANCES_AT_ONCE = 50  # DescribeAutoScalingInstances: "up to 50 instances" per call (API reference)


class Membership(NamedTuple):
    group: str
    lifecycle: str  # InService, Standby, Pending, Terminating... (LifecycleState)


def memberships(instance_ids: list[str]) -> dict[str, Membership]:
    """Instance id -> its group and lifecycle state, for the instances that belong to a group."""
    autoscaling = clients.client("autoscaling")
    paginator = autoscaling.get_paginator("describe_auto_scaling_instances")
    found: dict[str, Membership] = {}
    for start in range(0, len(instance_ids), DESCRIBE_INSTANCES_AT_ONCE):
        chunk = instance_ids[start : start + DESCRIBE_INSTANCES_AT_ONCE]
        for page in paginator.paginate(InstanceIds=chunk):
            for inst in page["AutoScalingInstances"]:
                found[inst["InstanceId"]] = Membership(inst["AutoScalingGroupName"], inst["LifecycleState"])
    return found


def groups(names: list[str]) -> dict[str, dict[str, Any]]:
    """Group name -> its description (MinSize, MaxSize, DesiredCapacity, TargetGroupARNs, HealthCheckType...)."""
    if not names:
        return {}
    paginator = clients.client("autoscaling").get_paginator("describe_auto_scaling_groups")
    return {
        group["AutoScalingGroupName"]: group
        for page in paginator.paginate(AutoScalingGroupNames=sorted(set(names)))
        for group in page["AutoScalingGroups"]
    }


def enter_standby(group: str, instance_id: str) -> None:
    """On Standby with the desired capacity decremented, so the group launches no replacement."""
    clients.client("autoscaling").enter_standby(
        AutoScalingGroupName=group, InstanceIds=[instance_id], ShouldDecrementDesiredCapacity=True
    )


def exit_standby(group: str, instance_id: str) -> bool:
    """Put a member the run left on Standby back in service, once: False when it is not on Standby (any more).

    ExitStandby increments the desired capacity and the group registers the instance in its target
    groups again (ExitStandby, API reference; "Temporarily remove instances from your Auto Scaling group").
    """
    found = memberships([instance_id]).get(instance_id)
    if found is None or found.lifecycle != "Standby":
        return False
    clients.client("autoscaling").exit_standby(AutoScalingGroupName=group, InstanceIds=[instance_id])
    return True
