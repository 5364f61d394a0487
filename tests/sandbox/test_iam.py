"""The policy evaluator decides as IAM documents it: explicit deny, allow, default deny, wildcards, conditions."""

from typing import Any

import pytest

from sandbox.iam import Request, UnsupportedPolicy, evaluate

INSTANCE = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"
ROLE = "arn:aws:sts::123456789012:assumed-role/opsflow-Role/session"


def policy(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def allow(action: Any = "ec2:RebootInstances", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def reboot(context: dict[str, Any] | None = None, resource: str = INSTANCE) -> Request:
    return Request("ec2:RebootInstances", resource, context or {})


# -- the decision ------------------------------------------------------------------------------
def test_a_matching_allow_statement_allows() -> None:
    decision = evaluate([policy(allow(Sid="Reboot"))], reboot())

    assert decision.allowed and not decision.explicit_deny and decision.statement == "Reboot"


def test_nothing_allows_by_default() -> None:
    decision = evaluate([policy(allow("ec2:DescribeInstances"))], reboot())

    assert not decision.allowed and not decision.explicit_deny


def test_an_explicit_deny_wins_over_any_allow() -> None:
    deny = {"Effect": "Deny", "Action": "ec2:*", "Resource": INSTANCE, "Sid": "NoTouch"}

    decision = evaluate([policy(allow()), policy(deny)], reboot())

    assert not decision.allowed and decision.explicit_deny and decision.statement == "NoTouch"


def test_the_denial_reads_as_aws_words_it() -> None:
    request = reboot()

    implicit = evaluate([], request).denial(ROLE, request)
    explicit = evaluate([policy({"Effect": "Deny", "Action": "*", "Resource": "*"})], request).denial(ROLE, request)

    assert implicit == (
        f"User: {ROLE} is not authorized to perform: ec2:RebootInstances on resource: {INSTANCE} "
        "because no identity-based policy allows the ec2:RebootInstances action"
    )
    assert explicit.endswith("with an explicit deny in an identity-based policy")


def test_a_single_statement_object_is_a_policy_too() -> None:
    assert evaluate([{"Statement": allow()}], reboot()).allowed


# -- Action and Resource -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "action", "allowed"),
    [
        ("ec2:Reboot*", "ec2:RebootInstances", True),
        ("ec2:Reboot?nstances", "ec2:RebootInstances", True),
        ("EC2:rebootinstances", "ec2:RebootInstances", True),  # action names are case-insensitive
        ("*", "kms:Decrypt", True),
        ("ec2:Describe*", "ec2:RebootInstances", False),
        ("ec2:RebootInstance", "ec2:RebootInstances", False),
        (["sns:Publish", "ec2:Reboot*"], "ec2:RebootInstances", True),
    ],
)
def test_actions_match_with_wildcards_whatever_their_case(pattern: Any, action: str, allowed: bool) -> None:
    assert evaluate([policy(allow(pattern))], Request(action, "*")).allowed is allowed


def test_not_action_allows_every_other_action() -> None:
    statement = {"Effect": "Allow", "NotAction": "ec2:Reboot*", "Resource": "*"}

    assert evaluate([policy(statement)], Request("ec2:DescribeInstances", "*")).allowed
    assert not evaluate([policy(statement)], reboot()).allowed


@pytest.mark.parametrize(
    ("pattern", "resource", "allowed"),
    [
        ("arn:aws:s3:::bucket/patch-preview/*", "arn:aws:s3:::bucket/patch-preview/run/fleet.json", True),
        ("arn:aws:s3:::bucket/patch-preview/*", "arn:aws:s3:::bucket/PATCH-preview/x", False),  # case-sensitive
        ("arn:aws:s3:::bucket/patch-preview/*", "arn:aws:s3:::bucket/collected/x", False),
        ("arn:aws:ec2:*:123456789012:instance/*", INSTANCE, True),
        ("arn:aws:ec2:eu-west-1:*:instance/i-0123456789abcdef?", INSTANCE, True),
        ("arn:aws:ec2:*:instance/*", INSTANCE, True),  # a * ending a segment may reach past colons
        ("arn:aws:ec2:eu-*-1:123456789012:instance/*", INSTANCE, True),
        ("arn:aws:ec2:eu-*1:instance/*", INSTANCE, False),  # a * inside a segment stays in it
        ("*", INSTANCE, True),
    ],
)
def test_resources_match_with_wildcards_and_case(pattern: str, resource: str, allowed: bool) -> None:
    assert evaluate([policy(allow("s3:*", pattern))], Request("s3:GetObject", resource)).allowed is allowed


def test_an_action_without_resource_level_permissions_needs_a_star_resource() -> None:
    scoped = policy(allow("ec2:DescribeInstances", "arn:aws:ec2:*:*:instance/*"))

    assert not evaluate([scoped], Request("ec2:DescribeInstances", "*")).allowed
    assert evaluate([policy(allow("ec2:DescribeInstances"))], Request("ec2:DescribeInstances", "*")).allowed


def test_not_resource_allows_every_other_resource() -> None:
    statement = {"Effect": "Allow", "Action": "ec2:*", "NotResource": "arn:aws:ec2:*:*:instance/i-0123456789abcdef0"}

    assert not evaluate([policy(statement)], reboot()).allowed
    assert evaluate([policy(statement)], reboot(resource=INSTANCE.replace("abcdef0", "abcdef1"))).allowed


# -- conditions --------------------------------------------------------------------------------
TIER = "aws:ResourceTag/opsflow:tier"
SOURCE = "aws:SourceArn"
MACHINES = "arn:aws:states:*:*:stateMachine:opsflow-*"
OURS = "arn:aws:states:eu-west-1:123456789012:stateMachine:opsflow-rolling-restart"
OTHER = "arn:aws:states:eu-west-1:123456789012:stateMachine:other"


@pytest.mark.parametrize(
    ("operator", "key", "policy_value", "request_value", "holds"),
    [
        ("StringEquals", TIER, "web", "web", True),
        ("StringEquals", TIER, "web", "Web", False),
        ("StringEquals", TIER, ["api", "web"], "web", True),  # several values: any of them
        ("StringNotEquals", TIER, "web", "db", True),
        ("StringNotEquals", TIER, ["db", "web"], "web", False),
        ("StringEqualsIgnoreCase", TIER, "WEB", "web", True),
        ("StringLike", TIER, "we?", "web", True),
        ("StringLike", TIER, "w*", "db", False),
        ("StringNotLike", TIER, "db*", "web", True),
        ("StringNotLike", TIER, "w*", "web", False),
        ("ArnEquals", SOURCE, MACHINES, OURS, True),
        ("ArnLike", SOURCE, MACHINES, OURS, True),
        ("ArnLike", SOURCE, MACHINES, OTHER, False),
        ("ArnNotLike", SOURCE, MACHINES, OTHER, True),
        ("ArnNotLike", SOURCE, MACHINES, OURS, False),
        ("ArnLike", SOURCE, "arn:aws:states:*:stateMachine:opsflow-*", OURS, False),  # part by part: 5 parts
        ("Bool", "aws:SecureTransport", "false", "false", True),
        ("Bool", "aws:SecureTransport", False, "true", False),
        ("NumericLessThan", "ec2:CpuCount", "4", "2", True),
        ("NumericLessThan", "ec2:CpuCount", "4", "4", False),
        ("NumericLessThanEquals", "ec2:CpuCount", "4", "4", True),
        ("NumericGreaterThan", "ec2:CpuCount", "4", "8", True),
        ("NumericGreaterThanEquals", "ec2:CpuCount", "4", "3", False),
        ("NumericEquals", "ec2:CpuCount", "4", "four", False),
        ("StringEqualsIfExists", TIER, "web", "web", True),
        ("StringEqualsIfExists", TIER, "web", "db", False),
    ],
)
def test_each_condition_operator(operator: str, key: str, policy_value: Any, request_value: str, holds: bool) -> None:
    statement = allow(Condition={operator: {key: policy_value}})

    assert evaluate([policy(statement)], reboot({key: request_value})).allowed is holds


@pytest.mark.parametrize(
    ("operator", "holds"),
    [
        ("StringEquals", False),  # the key is not in the request: the values do not match
        ("ArnLike", False),
        ("Bool", False),
        ("NumericLessThan", False),
        ("StringNotEquals", True),  # AWS: a negated operator is true when the key is absent
        ("StringNotLike", True),
        ("ArnNotLike", True),
        ("StringEqualsIfExists", True),  # ...IfExists: true when the key is absent
        ("ForAnyValue:StringEquals", False),
        ("ForAllValues:StringEquals", True),
    ],
)
def test_a_key_missing_from_the_request(operator: str, holds: bool) -> None:
    statement = allow(Condition={operator: {TIER: "web"}})

    assert evaluate([policy(statement)], reboot({"aws:ResourceTag/Name": "web-001"})).allowed is holds


def test_a_policy_variable_in_a_condition_key_is_not_resolved() -> None:
    """The deployed reboot statement of today's template: its key names a tag called ``${RestartTagKey}``."""
    literal = allow(Condition={"StringEquals": {"aws:ResourceTag/${RestartTagKey}": "web"}})
    fixed = allow(Condition={"StringEquals": {"aws:ResourceTag/opsflow:tier": "web"}})
    tagged = reboot({TIER: "web", "ec2:ResourceTag/opsflow:tier": "web", "RestartTagKey": "opsflow:tier"})

    assert not evaluate([policy(literal)], tagged).allowed
    assert evaluate([policy(fixed)], tagged).allowed


def test_policy_variables_in_values_and_resources_are_resolved_in_2012_policies_only() -> None:
    resource = "arn:aws:ec2:eu-west-1:${aws:PrincipalAccount}:instance/*"
    in_values = {"StringEquals": {TIER: "${aws:PrincipalTag/tier}"}}
    context = {"aws:PrincipalAccount": "123456789012", "aws:PrincipalTag/tier": "web", TIER: "web"}

    assert evaluate([policy(allow(resource=resource, Condition=in_values))], reboot(context)).allowed
    assert not evaluate([policy(allow(resource=resource), version="2008-10-17")], reboot(context)).allowed
    assert not evaluate([policy(allow(resource=resource))], reboot({})).allowed  # unresolvable: no match


def test_keys_under_one_operator_and_several_operators_must_all_hold() -> None:
    statement = allow(
        Condition={
            "StringEquals": {TIER: "web", "aws:RequestedRegion": "eu-west-1"},
            "Bool": {"aws:SecureTransport": "true"},
        }
    )
    context = {TIER: "web", "aws:RequestedRegion": "eu-west-1", "aws:SecureTransport": "true"}

    assert evaluate([policy(statement)], reboot(context)).allowed
    assert not evaluate([policy(statement)], reboot({**context, "aws:RequestedRegion": "us-east-1"})).allowed
    assert not evaluate([policy(statement)], reboot({**context, "aws:SecureTransport": "false"})).allowed


def test_condition_key_names_are_case_insensitive() -> None:
    statement = allow(Condition={"StringEquals": {"AWS:RESOURCETAG/OPSFLOW:TIER": "web"}})

    assert evaluate([policy(statement)], reboot({TIER: "web"})).allowed


def test_set_operators_on_multivalued_keys() -> None:
    any_value = allow(Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["tier", "team"]}})
    all_values = allow(Condition={"ForAllValues:StringLike": {"aws:TagKeys": ["tier", "team*"]}})

    assert evaluate([policy(any_value)], reboot({"aws:TagKeys": ["owner", "tier"]})).allowed
    assert not evaluate([policy(any_value)], reboot({"aws:TagKeys": ["owner"]})).allowed
    assert evaluate([policy(all_values)], reboot({"aws:TagKeys": ["tier", "team-a"]})).allowed
    assert not evaluate([policy(all_values)], reboot({"aws:TagKeys": ["tier", "owner"]})).allowed
    assert evaluate([policy(all_values)], reboot({"aws:TagKeys": []})).allowed


def test_null_tests_whether_the_key_is_present() -> None:
    absent = allow(Condition={"Null": {TIER: "true"}})
    present = allow(Condition={"Null": {TIER: "false"}})

    assert evaluate([policy(absent)], reboot({})).allowed
    assert not evaluate([policy(absent)], reboot({TIER: "web"})).allowed
    assert evaluate([policy(present)], reboot({TIER: "web"})).allowed


def test_a_deny_whose_condition_does_not_hold_does_not_deny() -> None:
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {TIER: "db"}}}

    assert evaluate([policy(allow(), deny)], reboot({TIER: "web"})).allowed
    assert evaluate([policy(allow(), deny)], reboot({TIER: "db"})).explicit_deny


@pytest.mark.parametrize("operator", ["DateLessThan", "IpAddress", "ForSomeValues:StringEquals", "NullIfExists"])
def test_an_operator_the_evaluator_does_not_know_is_an_error_not_a_silent_answer(operator: str) -> None:
    statement = allow(Condition={operator: {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})

    with pytest.raises(UnsupportedPolicy, match=operator.split(":", maxsplit=1)[0]):
        evaluate([policy(statement)], reboot({"aws:CurrentTime": "2029-01-01T00:00:00Z"}))
