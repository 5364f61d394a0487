"""The ELB API throttles the account's requests with token buckets per action category, as AWS documents.

"ELB uses the token bucket algorithm ... the token bucket size for non-mutating API actions is 40
tokens ... a refill rate of 10 tokens per second" (ELB user guide, "Request throttling for the ELB
API"); RegisterTargets/DeregisterTargets have a bucket of their own (20 tokens, 4 a second). A
throttled request gets HTTP 400, code Throttling, "Rate exceeded".
"""

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.elb_throttling import DESCRIBE, REGISTRATION, ElbApiBuckets, category
from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox
from tests.sandbox.conftest import FIXTURE_TEMPLATE, inline_map

SM = "FeaturesStateMachine"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def admitted(buckets: ElbApiBuckets, operation: str, n: int) -> int:
    return sum(buckets.admit(operation, "SomeFunction") for _ in range(n))


def test_a_burst_takes_the_whole_bucket_then_requests_are_throttled_until_it_refills() -> None:
    clock = Clock()
    buckets = ElbApiBuckets(clock)

    assert admitted(buckets, "DescribeTargetHealth", 41) == DESCRIBE.capacity == 40
    clock.t = 0.5  # 10 tokens a second: 5 more
    assert admitted(buckets, "DescribeTargetGroups", 6) == 5
    clock.t = 100.0  # never more than the bucket holds
    assert admitted(buckets, "DescribeTargetHealth", 50) == 40
    assert buckets.count("DescribeTargetHealth", throttled=True) == 11
    assert buckets.count(throttled=False) == 85


def test_each_category_has_its_own_bucket() -> None:
    buckets = ElbApiBuckets(Clock())
    admitted(buckets, "DescribeTargetHealth", 40)

    assert admitted(buckets, "DeregisterTargets", 15) + admitted(buckets, "RegisterTargets", 10) == 20
    assert REGISTRATION.capacity == 20
    assert admitted(buckets, "ModifyTargetGroupAttributes", 1) == 1
    assert [category(op) for op in ("DescribeTags", "RegisterTargets", "CreateRule")] == [
        "describe",
        "registration",
        "mutating",
    ]


def test_other_callers_in_the_account_can_hold_part_of_a_bucket() -> None:
    clock = Clock()
    buckets = ElbApiBuckets(clock)

    buckets.reserve("describe", per_second=6, burst=30)  # a controller and a dashboard poll too

    assert admitted(buckets, "DescribeTargetHealth", 20) == 10
    clock.t = 1.0
    assert admitted(buckets, "DescribeTargetHealth", 20) == 4


@pytest.mark.parametrize(
    ("bucket", "per_second", "burst", "named"),
    [
        ("describes", 1, 0, "no ELB API bucket 'describes'"),
        ("describe", 10, 0, "below the describe bucket's refill of 10"),
        ("registration", 1, 20, "below the registration bucket's capacity of 20"),
        ("describe", -1, 0, "per_second must be 0 or more"),
    ],
)
def test_a_reservation_the_buckets_cannot_hold_is_refused(
    bucket: str, per_second: float, burst: float, named: str
) -> None:
    buckets = ElbApiBuckets(Clock())

    with pytest.raises(ValueError, match=named):
        buckets.reserve(bucket, per_second=per_second, burst=burst)

    assert admitted(buckets, "DescribeTargetHealth", 41) == 40  # nothing changed


def fifty_at_once(action: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A definition making 50 calls of one ELB action at the same instant, each caught."""
    task = {
        "Type": "Task",
        "Resource": f"arn:aws:states:::aws-sdk:elasticloadbalancingv2:{action}",
        "Parameters": {"TargetGroupArn.$": "$.targetGroupArn", **parameters},
        "ResultSelector": {"ok": True},
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Throttled"}],
        "End": True,
    }
    return {
        "StartAt": "Call fifty times",
        "States": {
            "Call fifty times": inline_map(
                {"targetGroupArn.$": "$.targetGroupArn", "instanceId.$": "$.instanceId"},
                {"Call": task, "Throttled": {"Type": "Pass", "End": True}},
                End=True,
            )
        },
    }


@pytest.fixture
def many_describes() -> Iterator[Sandbox]:
    """FeaturesStateMachine replaced by 50 DescribeTargetHealth calls at the same instant, each caught."""
    definition = fifty_at_once("describeTargetHealth", {})
    with Sandbox(FleetSpec(size=2), template_path=FIXTURE_TEMPLATE, definitions={SM: definition}) as sb:
        yield sb


def test_a_task_over_the_bucket_is_throttled_with_elb_s_error(many_describes: Sandbox) -> None:
    sb = many_describes
    result = sb.run(
        SM, {"items": list(range(50)), "targetGroupArn": sb.fleet_resources["TargetGroupArn"], "instanceId": ""}
    )

    assert result.status == "SUCCEEDED"
    answers: list[Any] = result.output
    assert sum(1 for a in answers if a == {"ok": True}) == 40
    throttled = [a for a in answers if a != {"ok": True}]
    assert len(throttled) == 10
    assert {a["Error"] for a in throttled} == {"ElasticLoadBalancingV2.ElasticLoadBalancingV2Exception"}
    assert all("Rate exceeded" in a["Cause"] and "Status Code: 400" in a["Cause"] for a in throttled)
    assert sb.elb_buckets is not None and sb.elb_buckets.count("DescribeTargetHealth", throttled=True) == 10


def test_the_harness_own_calls_take_no_tokens(many_describes: Sandbox) -> None:
    elbv2 = many_describes.client("elbv2")
    arn = many_describes.fleet_resources["TargetGroupArn"]

    for _ in range(60):
        elbv2.describe_target_health(TargetGroupArn=arn)

    assert many_describes.elb_buckets is not None and many_describes.elb_buckets.requests == []


def test_deregistrations_the_sandbox_answers_itself_still_draw_from_the_registration_bucket() -> None:
    """The sandbox answers DeregisterTargets itself (moto refuses a target that is not registered; ELB does
    not): that answer comes after the bucket, so fifty at once are throttled past the 20 it holds."""
    definition = fifty_at_once("deregisterTargets", {"Targets": [{"Id.$": "$.instanceId"}]})
    with Sandbox(FleetSpec(size=2), template_path=FIXTURE_TEMPLATE, definitions={SM: definition}) as sb:
        arn, instance = sb.fleet_resources["TargetGroupArn"], sorted(sb.fleet.instances)[0]
        result = sb.run(SM, {"items": list(range(50)), "targetGroupArn": arn, "instanceId": instance})

        assert result.status == "SUCCEEDED"
        assert sum(1 for a in result.output if a == {"ok": True}) == REGISTRATION.capacity
        assert sb.elb_buckets is not None and sb.elb_buckets.count("DeregisterTargets", throttled=True) == 30
