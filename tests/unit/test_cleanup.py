"""opsflow.cleanup: one cleaner per run, whoever calls it (the safety net, the reconciler), and only once."""

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from opsflow import timeutil
from opsflow.runs import RunTable
from tests.conftest import REGION
from tests.unit.test_run_reconciler import GONE, TG, record_open_run

CLAIM_SECONDS = 900  # opsflow.cleanup.CLAIM_SECONDS (imported in the tests: Powertools reads its settings on import)


def clean_up(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from opsflow import cleanup

    assert cleanup.CLAIM_SECONDS == CLAIM_SECONDS
    return cleanup.clean_up(*args, **kwargs)


@pytest.fixture
def topic(aws: None) -> str:
    return str(boto3.client("sns", region_name=REGION).create_topic(Name="opsflow")["TopicArn"])


def lock_held(table: str) -> bool:
    key = {"pk": {"S": f"lock#{TG}"}, "sk": {"S": "lock"}}
    return "Item" in boto3.client("dynamodb", region_name=REGION).get_item(TableName=table, Key=key)


def run(table: str) -> dict[str, Any]:
    return RunTable(table).get_run(GONE) or {}


def test_a_run_another_cleaner_holds_is_left_to_it(run_table: str, topic: str) -> None:
    record_open_run(run_table, GONE)
    assert RunTable(run_table).claim_cleanup(GONE, timeutil.epoch(), CLAIM_SECONDS)

    result = clean_up(RunTable(run_table), topic, GONE, "ABORTED", by="reconciler")

    assert result["action"] == "none" and "another cleanup" in result["reason"]
    assert lock_held(run_table) and "closedAt" not in run(run_table)


def test_a_claim_older_than_its_time_is_taken_over(run_table: str, topic: str) -> None:
    record_open_run(run_table, GONE)
    RunTable(run_table).claim_cleanup(GONE, timeutil.epoch() - CLAIM_SECONDS - 1, CLAIM_SECONDS)

    result = clean_up(RunTable(run_table), topic, GONE, "ABORTED", by="reconciler")

    assert result["action"] == "restored" and result["lockReleased"] is True
    assert not lock_held(run_table)
    assert run(run_table)["cleanedUpBy"] == "reconciler" and "cleanupClaimedUntil" not in run(run_table)


def test_a_cleanup_that_fails_releases_its_claim_and_leaves_the_run_open(run_table: str, topic: str) -> None:
    record_open_run(run_table, GONE)
    missing_topic = topic + "-deleted"

    with pytest.raises(ClientError, match="NotFound"):
        clean_up(RunTable(run_table), missing_topic, GONE, "ABORTED")

    assert "cleanupClaimedUntil" not in run(run_table), "the next attempt need not wait"
    assert "closedAt" not in run(run_table) and RunTable(run_table).open_runs() == [GONE]


def test_a_closed_run_is_left_alone(run_table: str, topic: str) -> None:
    record_open_run(run_table, GONE)
    RunTable(run_table).close_run(GONE, timeutil.iso_now())

    result = clean_up(RunTable(run_table), topic, GONE, "FAILED")

    assert result["action"] == "none" and lock_held(run_table)
