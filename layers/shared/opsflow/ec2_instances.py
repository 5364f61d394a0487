"""EC2 reads: the instances DescribeInstances finds for a set of filters, with their tags."""

from typing import Any

from opsflow import clients

Filters = list[dict[str, Any]]  # DescribeInstances filters: Name, Values


def tags_of_instances(queries: list[Filters]) -> dict[str, dict[str, str]]:
    """Every instance any of the DescribeInstances filter sets matches (each paginated), with its tags."""
    found: dict[str, dict[str, str]] = {}
    paginator = clients.client("ec2").get_paginator("describe_instances")
    for query in queries:
        for page in paginator.paginate(Filters=query):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    found[instance["InstanceId"]] = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    return found
