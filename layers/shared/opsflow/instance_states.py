"""EC2's view of a run's instances: which of them no longer run (an Auto Scaling group terminated them)."""

from opsflow import clients

DESCRIBE_AT_ONCE = 200  # instance ids per DescribeInstances filter
ENDED = ("shutting-down", "terminated")


def terminated(instance_ids: list[str]) -> set[str]:
    """Those that are shutting down, terminated, or gone (terminated a while ago: EC2 no longer lists them)."""
    paginator = clients.client("ec2").get_paginator("describe_instances")
    running: set[str] = set()
    for start in range(0, len(instance_ids), DESCRIBE_AT_ONCE):
        chunk = instance_ids[start : start + DESCRIBE_AT_ONCE]
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
            running |= {
                i["InstanceId"] for r in page["Reservations"] for i in r["Instances"] if i["State"]["Name"] not in ENDED
            }
    return set(instance_ids) - running
