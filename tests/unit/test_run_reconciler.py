"""The reconciler's handler: its input, a run table that is not ready, runs it cannot check."""

from typing import Any

import boto3
import pytest

from opsflow import reconciliation
from opsflow.errors import InvalidInputError
from opsflow.reconciliation import RunsNotReconciledError, RunTableNotReadyError
from opsflow.runs import RunTable
from tests.conftest import REGION, load_function

GONE = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-long-ago"
TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"


@pytest.fixture
def topic(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    arn = str(boto3.client("sns", region_name=REGION).create_topic(Name="opsflow")["TopicArn"])
    monkeypatch.setenv("TOPIC_ARN", arn)
    return arn


def record_open_run(table: str, execution_arn: str, lock: bool = True) -> None:
    """A run as "Record the run" and "Take the target group lock" leave it (nothing muted yet)."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.put_item(
        TableName=table,
        Item={
            "pk": {"S": f"run#{execution_arn}"},
            "sk": {"S": "run"},
            "targetGroupArn": {"S": TG},
            "openSince": {"S": "2026-08-01T03:00:00+00:00"},
        },
    )
    if lock:
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": f"lock#{TG}"}, "sk": {"S": "lock"}, "ownerExecutionArn": {"S": execution_arn}},
        )


def reconcile(lambda_context: Any, event: Any = None) -> dict[str, Any]:
    app = load_function("run_reconciler")
    return dict(app.lambda_handler({} if event is None else event, lambda_context))


def test_an_open_run_whose_execution_is_no_longer_listed_is_cleaned_up(run_table, topic, lambda_context) -> None:
    record_open_run(run_table, GONE)

    answer = reconcile(lambda_context, {"scheduledTime": "2026-11-22T03:05:00Z"})

    assert answer["cleanedUp"] == [GONE]
    assert RunTable(run_table).open_runs() == []
    lock = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=run_table, Key={"pk": {"S": f"lock#{TG}"}, "sk": {"S": "lock"}}
    )
    assert "Item" not in lock, "its lock is released"
    run = RunTable(run_table).get_run(GONE) or {}
    assert run["cleanedUpBy"] == "reconciler" and "closedAt" in run and "openSince" not in run


def test_a_run_it_cannot_check_does_not_stop_the_others(run_table, topic, lambda_context) -> None:
    record_open_run(run_table, "not-an-execution-arn", lock=False)
    record_open_run(run_table, GONE)

    with pytest.raises(RunsNotReconciledError, match="not-an-execution-arn"):
        reconcile(lambda_context)

    assert RunTable(run_table).open_runs() == ["not-an-execution-arn"], "the other run was cleaned up and closed"


@pytest.mark.parametrize(
    ("event", "named"),
    [({"scheduledTime": "yesterday"}, "scheduledTime"), ({"schedule": "rate(5 minutes)"}, "schedule")],
)
def test_a_malformed_event_is_refused_naming_the_field(run_table, topic, lambda_context, event, named) -> None:
    record_open_run(run_table, GONE)

    with pytest.raises(InvalidInputError, match=named):
        reconcile(lambda_context, event)

    assert RunTable(run_table).open_runs() == [GONE], "nothing changed"


def test_a_table_without_the_open_runs_index_is_named_and_nothing_changes(
    aws, topic, lambda_context, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="runs-v1",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("TABLE_NAME", "runs-v1")

    with pytest.raises(RunTableNotReadyError, match="runs-v1 or its index open-runs"):
        reconcile(lambda_context)


def test_a_missing_run_table_is_named(aws, topic, lambda_context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "no-such-table")

    with pytest.raises(RunTableNotReadyError, match="no-such-table"):
        reconcile(lambda_context)


# -- The pass, as data (no AWS) -----------------------------------------------------------------------
def test_each_run_is_reported_under_what_its_cleanup_did() -> None:
    report = reconciliation.Report(open_runs=4)
    for arn, action in [("a", "restored"), ("b", "closed"), ("c", "following up"), ("d", "claimed elsewhere")]:
        report.file(arn, action)

    assert report.model_dump() == {
        "openRuns": 4,
        "stillRunning": [],
        "cleanedUp": ["a"],
        "closed": ["b"],
        "skipped": ["d"],
        "followingUp": ["c"],
        "failed": [],
    }


@pytest.mark.parametrize(
    ("error", "not_ready"),
    [
        ({"Code": "ResourceNotFoundException", "Message": "Requested resource not found"}, True),
        ({"Code": "ValidationException", "Message": "The table does not have the specified index: open-runs"}, True),
        ({"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}, False),
    ],
)
def test_only_a_missing_table_or_index_is_a_deployment_to_fix(error: dict[str, str], not_ready: bool) -> None:
    refusal = reconciliation.table_not_ready("runs", error)

    assert (refusal is not None) == not_ready
    if refusal is not None:
        assert str(refusal).startswith("run table runs or its index open-runs does not exist")
        assert str(refusal).endswith("deploy template.yaml, which declares both")


def test_a_pass_with_failures_names_them_and_counts_them_against_the_open_runs() -> None:
    assert reconciliation.not_reconciled(reconciliation.Report(open_runs=3, cleaned_up=["a"])) is None
    failed = reconciliation.not_reconciled(reconciliation.Report(open_runs=3, failed=["b", "c"]))
    assert str(failed) == "2 of 3 open runs could not be reconciled (see the log): b, c"
