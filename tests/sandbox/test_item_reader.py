"""A Distributed Map whose ItemReader cannot read its items fails as on AWS: States.ItemReaderFailed, "A
Map state failed because it couldn't read from the item source specified in the ItemReader field"
(Handling errors in Step Functions workflows, Step Functions developer guide). moto fails it with
States.Runtime, which on AWS "a retry or catch on States.ALL won't catch".
"""

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.fleet import FleetSpec
from sandbox.moto_patches import ITEM_READER_FAILED
from sandbox.runtime import Sandbox
from tests.sandbox.conftest import FIXTURE_TEMPLATE

SM = "FeaturesStateMachine"
READ_ITEMS = "Read the items from the bucket"


def reading_map(retries: int) -> dict[str, Any]:
    """A Distributed Map over a JSON array in S3; the fixture's role may not read S3, so every read is denied."""
    retry = [{"ErrorEquals": [ITEM_READER_FAILED], "IntervalSeconds": 2, "MaxAttempts": retries}] if retries else []
    return {
        "StartAt": READ_ITEMS,
        "States": {
            READ_ITEMS: {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": "items", "Key": "items.json"},
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Echo",
                    "States": {"Echo": {"Type": "Pass", "End": True}},
                },
                "Retry": retry,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


@pytest.fixture
def reader() -> Iterator[Any]:
    opened: list[Sandbox] = []

    def deploy(retries: int = 0) -> Sandbox:
        sb = Sandbox(FleetSpec(size=1), template_path=FIXTURE_TEMPLATE, definitions={SM: reading_map(retries)})
        sb.start()
        opened.append(sb)
        s3 = sb.client("s3")
        s3.create_bucket(Bucket="items", CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
        s3.put_object(Bucket="items", Key="items.json", Body=b"[1, 2, 3]")
        return sb

    yield deploy
    for sb in opened:
        sb.close()


def test_an_item_reader_that_cannot_read_fails_the_map_with_item_reader_failed_which_a_catch_takes(
    reader: Any,
) -> None:
    sb = reader()

    result = sb.run(SM, {})

    assert result.status == "SUCCEEDED", "States.ALL catches States.ItemReaderFailed"
    assert result.states_entered() == [READ_ITEMS, "Caught"]
    assert result.output["error"]["Error"] == ITEM_READER_FAILED
    assert "AccessDenied" in result.output["error"]["Cause"] and "GetObject" in result.output["error"]["Cause"]
    [map_run_failed] = [e for e in result.events if e["type"] == "MapRunFailed"]
    assert map_run_failed["mapRunFailedEventDetails"]["error"] == ITEM_READER_FAILED
    assert sb.child_histories() == [], "no item was processed"


def test_a_map_retries_an_item_reader_failure_as_its_retrier_says(reader: Any) -> None:
    sb = reader(retries=2)

    result = sb.run(SM, {})

    assert result.output["error"]["Error"] == ITEM_READER_FAILED
    reads = [d for d in sb.bridge.denied if d.action == "s3:GetObject"]
    assert len(reads) == 1 + 2, "the first read and two retries"
