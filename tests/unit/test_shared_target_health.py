"""The shared DescribeTargetHealth answer in the run table: a claim never rewrites the answer, and a waiter
reads the answer's time and its own targets only, so neither grows with the target group."""

from typing import Any

import boto3
import pytest

from opsflow import targets, timeutil
from opsflow.errors import TargetNotYetInStateException
from opsflow.runs import HEALTH_DAYS, HEALTH_SK, RunTable, health_pk
from opsflow.shared_target_health import shared_listing
from opsflow.targets import TargetHealth
from tests.conftest import REGION

TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"
ME = "i-0000000000000000a"
NOW = 1_800_000_000.0
# A group of 200 targets: ME on two ports (a port override), 199 others healthy.
GROUP = [
    TargetHealth(ME, 80, "draining"),
    TargetHealth(ME, 8080, "healthy"),
    *(TargetHealth(f"i-1{n:016x}", 80, "healthy") for n in range(199)),
]


@pytest.fixture
def table(run_table: str) -> RunTable:
    return RunTable(run_table, ddb=boto3.client("dynamodb", region_name=REGION))


def raw(run_table: str, sk: str) -> dict[str, Any]:
    key = {"pk": {"S": health_pk(TG)}, "sk": {"S": sk}}
    return dict(boto3.client("dynamodb", region_name=REGION).get_item(TableName=run_table, Key=key).get("Item", {}))


def answered(table: RunTable, at: float = NOW) -> None:
    table.put_target_health(TG, at, GROUP)


def test_a_claim_leaves_the_shared_answer_as_it_was(table: RunTable, run_table: str) -> None:
    answered(table)
    before = raw(run_table, HEALTH_SK)

    assert table.claim_health_poll(TG, NOW + 1, every=1.0)
    assert not table.claim_health_poll(TG, NOW + 1.5, every=1.0)  # claimed within the poll: another asks

    assert raw(run_table, HEALTH_SK) == before  # not one target rewritten by the claim


def test_a_waiter_reads_the_answer_s_time_and_its_own_targets_only(table: RunTable) -> None:
    answered(table)
    answers: list[dict[str, Any]] = []
    table.ddb.meta.events.register("after-call.dynamodb.GetItem", lambda parsed, **_: answers.append(parsed))

    mine = table.target_health(TG, ME)

    assert mine == (NOW, [TargetHealth(ME, 80, "draining"), TargetHealth(ME, 8080, "healthy")])  # both ports
    assert set(answers[0]["Item"]) == {"at", "targets"}
    assert list(answers[0]["Item"]["targets"]["M"]) == [ME]  # not the other 199


def test_a_target_elb_did_not_list_reads_as_no_targets_and_no_answer_yet_as_none(table: RunTable) -> None:
    assert table.target_health(TG, ME) is None
    answered(table)
    assert table.target_health(TG, "i-0000000000000ffff") == (NOW, [])


def test_the_answer_and_the_claim_expire_a_day_after_they_are_written(table: RunTable, run_table: str) -> None:
    answered(table, at=NOW)
    table.claim_health_poll(TG, NOW + 5, every=1.0)

    assert int(raw(run_table, HEALTH_SK)["expiresAt"]["N"]) == int(NOW) + HEALTH_DAYS * 86400
    assert int(raw(run_table, "claim")["expiresAt"]["N"]) == int(NOW) + 5 + HEALTH_DAYS * 86400


def test_waiters_see_their_own_state_from_one_question_to_elb(table: RunTable, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [NOW]
    timeutil.set_source(lambda: now[0], lambda s: now.__setitem__(0, now[0] + s))
    asked: list[float] = []

    def describe(arn: str, targets: Any = None) -> list[TargetHealth]:
        asked.append(now[0])
        return GROUP

    monkeypatch.setattr(targets, "describe", describe)

    leader = shared_listing(table, 1.0, ME)(TG)
    other = shared_listing(table, 1.0, "i-10000000000000001")(TG)

    assert leader == [TargetHealth(ME, 80, "draining"), TargetHealth(ME, 8080, "healthy")]
    assert other == [TargetHealth("i-10000000000000001", 80, "healthy")]
    assert asked == [NOW]


def test_a_waiter_that_lost_the_claim_and_finds_no_answer_is_not_yet(
    table: RunTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeutil.set_source(lambda: NOW, lambda s: None)
    monkeypatch.setattr(targets, "describe", lambda arn, targets=None: pytest.fail("the claim was another's"))
    assert table.claim_health_poll(TG, NOW, every=1.0)  # another waiter is asking ELB now

    with pytest.raises(TargetNotYetInStateException, match="another instance is asking ELB about web"):
        shared_listing(table, 1.0, ME)(TG)


def documented_size(value: dict[str, Any]) -> int:
    """An attribute value's size by "DynamoDB item sizes and formats" (developer guide): strings their
    UTF-8 bytes, numbers 1 byte per two significant digits + 1, lists and maps 3 bytes + 1 per element."""
    (kind, v), *_ = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return (len(v.replace(".", "").strip("0")) + 1) // 2 + 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + documented_size(e) + 1 for k, e in v.items())
    if kind == "L":
        return 3 + sum(documented_size(e) + 1 for e in v)
    raise AssertionError(kind)


def test_one_read_unit_holds_the_answer_for_130_targets(table: RunTable, run_table: str) -> None:
    """The operator guide's figure: every waiter's strongly consistent read is billed by the whole item,
    4 KB to a read unit ("DynamoDB read and write operations")."""
    table.put_target_health(TG, NOW, [TargetHealth(f"i-1{n:016x}", 80, "healthy") for n in range(130)])
    item = raw(run_table, HEALTH_SK)
    size = sum(len(name) + documented_size(value) for name, value in item.items())
    assert size <= 4096
