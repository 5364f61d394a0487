"""The capacity gate renews the run's lock for one more instance, and stops a run that lost it."""

from typing import Any

import boto3
import pytest

from opsflow import timeutil
from opsflow.errors import LockLostError
from opsflow.runs import RunTable, lock_pk
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
    monkeypatch.setattr(gate, "target_states", lambda arn, ids=None: {f"i-{n:017x}": "healthy" for n in range(12)})
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
