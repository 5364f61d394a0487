"""The capacity gate renews the run's lock for one more instance, and stops a run that lost it."""

import contextlib
from typing import Any

import boto3
import pytest

from opsflow import timeutil
from opsflow.errors import LockLostError, TargetNotYetInStateException
from opsflow.runs import RunTable, lock_pk
from opsflow.targets import TargetHealth
from tests.conftest import REGION, event, load_function

TG = event("target_gate", "capacity.json")["targetGroupArn"]
ME = event("target_gate", "capacity.json")["executionArn"]


def lock(owner: str, expires_at: int) -> None:
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName="runs",
        Item={
            "pk": {"S": lock_pk(TG)},
            "sk": {"S": "lock"},
            "ownerExecutionArn": {"S": owner},
            "expiresAt": {"N": str(expires_at)},
        },
    )


def lock_expiry() -> int:
    key = {"pk": {"S": lock_pk(TG)}, "sk": {"S": "lock"}}
    item = boto3.client("dynamodb", region_name=REGION).get_item(TableName="runs", Key=key)["Item"]
    return int(item["expiresAt"]["N"])


@pytest.fixture
def healthy_tier(run_table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = load_function("target_gate")
    healthy = [TargetHealth(f"i-{n:017x}", 80, "healthy") for n in range(12)]
    monkeypatch.setattr(gate, "describe", lambda arn, targets=None: healthy)
    timeutil.set_source(lambda: 1_800_000_000.0)


def test_each_instance_that_starts_renews_the_lock_for_one_more_instance(
    healthy_tier: None, lambda_context: Any
) -> None:
    lock(ME, expires_at=1_800_000_100)  # about to expire: a long run would lose it here

    result = load_function("target_gate").lambda_handler(event("target_gate", "capacity.json"), lambda_context)

    assert result["proceed"] is True
    assert lock_expiry() == 1_800_000_000 + event("target_gate", "capacity.json")["lockSeconds"]


def test_a_run_that_lost_its_lock_takes_no_instance_out(healthy_tier: None, lambda_context: Any) -> None:
    other = ME.replace("run-1", "run-2")
    lock(other, expires_at=1_800_009_999)  # expired under this run and taken by another

    with pytest.raises(LockLostError, match="no longer holds the lock"):
        load_function("target_gate").lambda_handler(event("target_gate", "capacity.json"), lambda_context)

    assert lock_expiry() == 1_800_009_999, "the other run's lock is untouched"
    assert RunTable("runs").get_run(ME) is None


API = TG.replace("targetgroup/web/", "targetgroup/api/")
ME_ID = event("target_gate", "capacity.json")["instanceId"]


def in_two_groups(api_healthy: int) -> dict[str, Any]:
    """The capacity event of an instance registered in web (port 80) and api (port override 9001)."""
    return event("target_gate", "capacity.json") | {
        "lockSeconds": 0,
        "registrations": [{"targetGroupArn": TG, "port": 80}, {"targetGroupArn": API, "port": 9001}],
        "floors": {TG: 9, API: api_healthy - 1},
    }


def two_groups(monkeypatch: pytest.MonkeyPatch, api_states: list[str]) -> None:
    gate = load_function("target_gate")
    web = [TargetHealth(ME_ID, 80, "healthy")] + [TargetHealth(f"i-{n:017x}", 80, "healthy") for n in range(11)]
    api = [TargetHealth(ME_ID, 9001, "healthy")] + [
        TargetHealth(f"i-{n:017x}", 9000, s) for n, s in enumerate(api_states)
    ]
    monkeypatch.setattr(gate, "describe", lambda arn, targets=None: api if arn == API else web)
    timeutil.set_source(lambda: 1_800_000_000.0)


def test_an_instance_in_two_groups_waits_while_either_is_at_its_floor(
    run_table: str, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    two_groups(monkeypatch, ["healthy", "unhealthy"])  # api: 2 of 3 healthy, its floor is 2 without this one

    with pytest.raises(TargetNotYetInStateException, match="in api; taking"):
        load_function("target_gate").lambda_handler(in_two_groups(api_healthy=3), lambda_context)

    assert RunTable("runs").get_outcome(ME, ME_ID) is None, "not marked as taken out"


def test_an_instance_in_two_groups_goes_when_both_keep_their_floor(
    run_table: str, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    two_groups(monkeypatch, ["healthy", "healthy"])

    result = load_function("target_gate").lambda_handler(in_two_groups(api_healthy=3), lambda_context)

    assert result["proceed"] is True
    marked = RunTable("runs").get_outcome(ME, ME_ID)
    assert marked is not None and "9001" in marked["registrations"], "what the cleanups put back, with its port"


def test_one_zone_at_a_time_waits_while_another_zone_has_an_instance_out(
    run_table: str, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    two_groups(monkeypatch, ["healthy", "healthy"])
    RunTable("runs").mark_taken_out(ME, "i-00000000000000001", "2026-11-24T02:00:00+00:00", zone="eu-west-1b")
    zoned = in_two_groups(api_healthy=3) | {"zone": "eu-west-1a", "oneZoneAtATime": True}

    with pytest.raises(TargetNotYetInStateException, match="of another zone are back"):
        load_function("target_gate").lambda_handler(zoned, lambda_context)

    assert RunTable("runs").get_outcome(ME, ME_ID) is None


def _waiting(instance_id: str, check: str = "drained") -> dict[str, Any]:
    return {"check": check, "instanceId": instance_id, "targetGroupArn": TG, "pollSeconds": 1}


def test_instances_waiting_on_a_group_share_one_question_to_elb_per_poll(
    run_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 instances in flight, one DescribeTargetHealth per poll: ELB's Describe* bucket refills 10 a second."""
    gate = load_function("target_gate")
    now = [1_800_000_000.0]
    timeutil.set_source(lambda: now[0], lambda s: now.__setitem__(0, now[0] + s))
    asked: list[float] = []

    def describe(arn: str, targets: Any = None) -> list[TargetHealth]:
        asked.append(now[0])
        return [TargetHealth("i-0000000000000000a", 80, "draining"), TargetHealth("i-0000000000000000b", 80, "healthy")]

    monkeypatch.setattr(gate, "describe", describe)
    waiting = [gate.GateEvent.model_validate(_waiting(i)) for i in ("i-0000000000000000a", "i-0000000000000000c")]

    for _ in range(25):  # each polls 4 times within a second
        for g in waiting:
            with contextlib.suppress(TargetNotYetInStateException):
                gate.wait_for(g, {"unused"})
        now[0] += 0.25

    assert len(asked) == 7  # once a second (a waiter sees an answer younger than pollSeconds), not 50 times
    assert gate.wait_for(waiting[1], {"unused"}) == {"state": "unused"}  # not listed: deregistered and gone
    with pytest.raises(TargetNotYetInStateException, match="i-0000000000000000a is draining in"):
        gate.wait_for(waiting[0], {"unused"})
