"""What IAM calls an AWS API call: one home for the boto3 client name -> IAM action prefix map."""

# boto3 client names -> IAM prefixes, where they differ (the Service Authorization Reference lists the prefixes).
IAM_PREFIXES = {
    "elbv2": "elasticloadbalancing",
    "stepfunctions": "states",
    "resourcegroupstaggingapi": "tag",
}


def action_name(service: str, operation: str) -> str:
    """``("elbv2", "DescribeTargetHealth")`` -> ``"elasticloadbalancing:DescribeTargetHealth"``."""
    return f"{IAM_PREFIXES.get(service, service)}:{operation}"
