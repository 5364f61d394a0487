"""The capacity gate renews the run's lock for one more instance, and stops a run that lost it."""

import contextlib
import json
from typing import Any

import boto3
import pytest

from opsflow import capacity_gate, shared_registration, targets, timeutil
from opsflow.errors import InvalidInputError, LockLostError, TargetNotYetInStateException
from opsflow.runs import OUT, RunTable, lock_pk
from opsflow.targets import Registration, TargetHealth
from opsflow.validation import parse_event
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
    healthy = [TargetHealth(f"i-{n:017x}", 80, "healthy") for n in range(12)]
    monkeypatch.setattr(targets, "describe", lambda arn, targets=None: healthy)
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
    web = [TargetHealth(ME_ID, 80, "healthy")] + [TargetHealth(f"i-{n:017x}", 80, "healthy") for n in range(11)]
    api = [TargetHealth(ME_ID, 9001, "healthy")] + [
        TargetHealth(f"i-{n:017x}", 9000, s) for n, s in enumerate(api_states)
    ]
    monkeypatch.setattr(targets, "describe", lambda arn, targets=None: api if arn == API else web)
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

    monkeypatch.setattr(targets, "describe", describe)
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


def test_on_the_way_back_the_instance_is_registered_once_and_a_retry_only_looks(
    run_table: str, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    back = event("target_gate", "in-service.json")
    me = back["instanceId"]
    RunTable(run_table).put_outcome(back["executionArn"], me, {"outcome": OUT})
    now = [1_800_000_000.0]
    timeutil.set_source(lambda: now[0], lambda s: now.__setitem__(0, now[0] + s))
    registered: list[list[str]] = []
    monkeypatch.setattr(shared_registration, "_send", lambda change, arn, batch: registered.append(batch))
    state = ["initial"]
    monkeypatch.setattr(targets, "describe", lambda arn, targets=None: [TargetHealth(me, 80, state[0])])
    gate = load_function("target_gate")

    with pytest.raises(TargetNotYetInStateException, match=f"{me} is initial"):
        gate.lambda_handler(back | {"waitSeconds": 3}, lambda_context)
    now[0] += 10
    state[0] = "healthy"
    result = gate.lambda_handler(back, lambda_context)  # the state machine's retry

    assert registered == [[f"{me}:80"]]
    assert result["registeredAt"] == "2027-01-15T08:00:00+00:00"  # when it was, not when the retry looked
    assert result["at"] == "2027-01-15T08:00:13+00:00"  # 3 s of looking, then the retry 10 s later


# -- The decisions, over plain data (no AWS) -------------------------------------------------------
def healths(group: list[tuple[str, int, str]]) -> list[TargetHealth]:
    return [TargetHealth(*t) for t in group]


def test_a_scaled_in_tier_lowers_each_floor_by_the_instances_gone_but_never_below_one() -> None:
    two_healthy = {TG: healths([(ME_ID, 80, "healthy"), ("i-00000000000000001", 80, "healthy")])}
    where = [Registration(target_group_arn=TG, port=80)]

    with pytest.raises(TargetNotYetInStateException, match=r"2 healthy targets in web; taking .* fewer than 2"):
        capacity_gate.group_room(ME_ID, where=where, floors={TG: 2}, default_floor=0, described=two_healthy)
    capacity_gate.group_room(ME_ID, where=where, floors={TG: 2}, default_floor=0, described=two_healthy, gone=1)
    with pytest.raises(TargetNotYetInStateException, match="fewer than 1"):
        capacity_gate.group_room(
            ME_ID, where=where, floors={}, default_floor=5, described={TG: healths([(ME_ID, 80, "healthy")])}, gone=9
        )


def test_only_the_ports_the_instance_leaves_count_as_leaving() -> None:
    """Registered on 80 and 8080, taken out of 80 only: its 8080 target keeps serving."""
    described = {
        TG: healths([(ME_ID, 80, "healthy"), (ME_ID, 8080, "healthy"), ("i-00000000000000001", 80, "unhealthy")])
    }

    capacity_gate.group_room(
        ME_ID, where=[Registration(target_group_arn=TG, port=80)], floors={TG: 1}, default_floor=0, described=described
    )
    with pytest.raises(TargetNotYetInStateException):
        capacity_gate.group_room(
            ME_ID, where=[Registration(target_group_arn=TG)], floors={TG: 1}, default_floor=0, described=described
        )


def test_a_zone_keeps_its_floor_counting_only_members_healthy_everywhere_they_are_listed() -> None:
    run = {"zones": json.dumps({"eu-west-1a": [ME_ID, "i-00000000000000001", "i-00000000000000002"]})}
    described = {
        TG: healths([(ME_ID, 80, "healthy"), ("i-00000000000000001", 80, "healthy")]),
        API: healths([("i-00000000000000001", 9000, "unhealthy")]),  # not serving: unhealthy in api
    }  # i-...2 is listed nowhere: not serving either
    zone: dict[str, Any] = {"zone": "eu-west-1a", "others_out": [], "run": run, "described": described}

    capacity_gate.zone_room(ME_ID, zone_floor=0, **zone)
    with pytest.raises(TargetNotYetInStateException, match=r"1 instances serve in eu-west-1a; .* fewer than 1"):
        capacity_gate.zone_room(ME_ID, zone_floor=1, **zone)


def test_of_two_zones_marked_at_once_the_later_mark_steps_back_and_a_tie_goes_to_the_smaller_id() -> None:
    at = "2026-11-24T02:00:00+00:00"
    other = {"instanceId": "i-00000000000000001", "outcome": OUT, "zone": "eu-west-1b", "takenOutAt": at}
    out = capacity_gate.out_elsewhere([other, {"instanceId": ME_ID, "outcome": OUT}], ME_ID, "eu-west-1a")

    assert out == [other], "the instance itself, and records without a zone, are not in another zone"
    wait = capacity_gate.later_mark_steps_back(ME_ID, "eu-west-1a", {"takenOutAt": at}, out)
    assert (
        wait is not None
        and str(wait) == "i-00000000000000001 of another zone went out at the same time; eu-west-1a waits for it"
    )
    assert (
        capacity_gate.later_mark_steps_back(ME_ID, "eu-west-1a", {"takenOutAt": "2026-11-24T01:59:59+00:00"}, out)
        is None
    )


def test_not_yet_names_the_state_in_each_group_not_reached() -> None:
    web, api = Registration(target_group_arn=TG, port=80), Registration(target_group_arn=API, port=9001)

    with pytest.raises(TargetNotYetInStateException, match=f"^{ME_ID} is draining in api$"):
        capacity_gate.reached(ME_ID, {web: "unused", api: "draining"}, {"unused"})
    assert capacity_gate.reached(ME_ID, {web: "unused", api: "unused"}, {"unused"}) == {"state": "unused"}


def test_a_run_s_start_without_a_zone_is_utc_and_without_a_record_is_now() -> None:
    assert capacity_gate.run_started({"startedAt": "2026-11-24T02:00:00"}, 0).isoformat() == "2026-11-24T02:00:00+00:00"
    assert capacity_gate.run_started({}, 1_800_000_000).isoformat() == "2027-01-15T08:00:00+00:00"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"check": "healthy"}, "check: Input should be 'capacity', 'drained' or 'in_service'"),
        ({"waitSeconds": 901}, "waitSeconds: Input should be less than or equal to 900"),
        ({"pollSeconds": 0.1}, "pollSeconds: Input should be greater than or equal to 0.5"),
        ({"errorBudget": 0}, "errorBudget: Input should be greater than or equal to 1"),
        ({"registrations": [{"targetGroupArn": TG, "port": 0}]}, "registrations.0.port"),
        ({"targetGroup": TG}, "targetGroup: Extra inputs are not permitted"),
        ({"register": True}, "register is for the in_service check only, not capacity: leave it out"),
        ({"deregister": True}, "deregister is for the drained check only, not capacity: leave it out"),
    ],
)
def test_a_malformed_gate_event_is_refused_naming_the_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_event(load_function("target_gate").GateEvent, event("target_gate", "capacity.json") | change)

    assert named in str(raised.value)
