"""The safety net takes Step Functions' "Execution Status Change" event as EventBridge delivers it, and
refuses anything else, naming what is wrong, before it touches a run."""

import copy
from typing import Any

import boto3
import pytest

from opsflow.errors import InvalidInputError
from opsflow.runs import RunTable
from tests.conftest import REGION, event, load_function
from tests.unit.test_run_reconciler import record_open_run

SAMPLE = event("restore_safety_net", "execution-aborted.json")
RUN = SAMPLE["detail"]["executionArn"]


@pytest.fixture
def open_run(run_table: str, monkeypatch: pytest.MonkeyPatch) -> RunTable:
    """The sample's run, ended without cleaning up: its lock still held."""
    monkeypatch.setenv("TOPIC_ARN", boto3.client("sns", region_name=REGION).create_topic(Name="opsflow")["TopicArn"])
    record_open_run(run_table, RUN)
    return RunTable(run_table)


def changed(path: str, value: Any) -> dict[str, Any]:
    """The sample event with one field replaced (``None``: removed); ``path`` like ``detail.status``."""
    edited = copy.deepcopy(SAMPLE)
    *parents, last = path.split(".")
    node = edited
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return edited


def test_the_documented_event_parses_to_the_execution_and_its_status() -> None:
    parsed = load_function("restore_safety_net").ExecutionStatusChangeEvent.model_validate(SAMPLE)

    assert parsed.detail.execution_arn == SAMPLE["detail"]["executionArn"]
    assert parsed.detail.status == "ABORTED"
    assert parsed.detail.stop_date == 1795317000000
    assert parsed.resources == [SAMPLE["detail"]["executionArn"]]


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("detail.executionArn", None, "detail.executionArn: Field required"),
        ("detail.executionArn", "run-1", "detail.executionArn: String should match pattern"),
        ("detail.status", None, "detail.status: Field required"),
        ("detail.status", "STOPPED", "detail.status: Input should be 'RUNNING', 'SUCCEEDED', 'FAILED'"),
        ("detail-type", "Scheduled Event", "detail-type: Input should be 'Step Functions Execution Status Change'"),
        ("source", "aws.events", "source: Input should be 'aws.states'"),
        ("detail", None, "detail: Field required"),
    ],
)
def test_any_other_event_is_refused_naming_the_field_and_the_run_is_left_alone(
    open_run: RunTable, path: str, value: Any, named: str, lambda_context: Any
) -> None:
    before = open_run.get_run(RUN)

    with pytest.raises(InvalidInputError) as refused:
        load_function("restore_safety_net").lambda_handler(changed(path, value), lambda_context)

    assert named in str(refused.value)
    assert open_run.get_run(RUN) == before


def test_the_event_of_a_run_that_ended_without_cleaning_up_cleans_it_up(
    open_run: RunTable, lambda_context: Any
) -> None:
    result = load_function("restore_safety_net").lambda_handler(SAMPLE, lambda_context)

    assert result["action"] == "restored" and result["lockReleased"] is True
    assert (open_run.get_run(RUN) or {}).get("cleanedUpBy") == "safety net"
