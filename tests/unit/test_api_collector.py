"""The paginating collector: every page, bounded payloads, reads only, the service's error names."""

import datetime as dt
import json
from typing import Any

import boto3
import pytest

from opsflow import clients, collection
from opsflow.errors import InvalidInputError
from tests.conftest import REGION, event, load_function

ALLOWED = "ec2:DescribeInstances,ec2:DescribeInstanceAttribute,ssm:DescribeInstancePatches,ec2:TerminateInstances"


@pytest.fixture
def collector(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="opsflow-data", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    monkeypatch.setenv("BUCKET_NAME", "opsflow-data")
    monkeypatch.setenv("COLLECTOR_ALLOWED_OPERATIONS", ALLOWED)
    return load_function("api_collector")


@pytest.fixture
def instances(aws: None) -> list[str]:
    ec2 = boto3.client("ec2", region_name=REGION)  # one reservation each: DescribeInstances pages by reservation
    return [
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        for _ in range(30)
    ]


def describe_calls() -> list[str]:
    calls: list[str] = []
    boto3.setup_default_session(region_name=REGION)
    boto3.DEFAULT_SESSION.events.register("before-call.ec2.DescribeInstances", lambda **_: calls.append("page"))
    return calls


def run(collector: Any, lambda_context: Any, **request: Any) -> dict[str, Any]:
    payload = {"service": "ec2", "operation": "DescribeInstances", "collect": "Reservations[].Instances[].InstanceId"}
    return dict(collector.lambda_handler({**payload, **request}, lambda_context))


def test_every_page_is_collected_in_one_call(collector, instances, lambda_context) -> None:
    pages = describe_calls()

    result = run(collector, lambda_context, parameters={"MaxResults": 5})

    assert result["count"] == 30
    assert sorted(result["items"]) == sorted(instances)
    assert len(pages) == 6


def test_a_limit_stops_early(collector, instances, lambda_context) -> None:
    pages = describe_calls()
    result = run(collector, lambda_context, parameters={"MaxResults": 5}, limit=7)
    assert result["count"] == 7
    assert len(result["items"]) == 7
    assert len(pages) == 2


def test_a_result_over_the_payload_limit_goes_to_the_bucket(collector, instances, lambda_context, monkeypatch) -> None:
    monkeypatch.setenv("INLINE_LIMIT_BYTES", "1000")
    collector.settings.cache_clear()

    result = run(collector, lambda_context, parameters={"MaxResults": 5}, collect="Reservations[].Instances[]")

    assert "items" not in result
    assert result["count"] == 30
    body = (
        boto3.client("s3", region_name=REGION)
        .get_object(**{"Bucket": result["location"]["bucket"], "Key": result["location"]["key"]})["Body"]
        .read()
    )
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted(line["InstanceId"] for line in lines) == sorted(instances)
    assert isinstance(lines[0]["LaunchTime"], str), "timestamps are ISO strings"


def test_the_bucket_can_be_asked_for_with_a_key_and_a_label(collector, instances, lambda_context) -> None:
    result = run(collector, lambda_context, destination="s3", key="runs/r1/instances.jsonl", label="r1")
    assert result == {
        "count": 30,
        "label": "r1",
        "location": {"bucket": "opsflow-data", "key": "runs/r1/instances.jsonl"},
    }


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"operation": "TerminateInstances"}, "not a read operation"),
        ({"service": "ssm", "operation": "GetParameter"}, "not on the allowlist"),
        ({"service": "nosuchservice", "operation": "DescribeThings"}, "not on the allowlist"),
    ],
)
def test_only_allowed_reads_are_collected(collector, lambda_context, request_fields, message) -> None:
    with pytest.raises(Exception, match=message) as caught:
        run(collector, lambda_context, **request_fields)
    assert type(caught.value).__name__ == "OperationNotAllowedError"


@pytest.mark.parametrize(
    ("request_fields", "named"),
    [
        ({"collect": "Reservations[?"}, "collect"),
        ({"parameters": {"NoSuchParameter": 1}}, "parameters"),
        ({"service": "EC2"}, "service"),
        ({"limit": 0}, "limit"),
        ({"destination": "ftp"}, "destination"),
    ],
)
def test_a_malformed_request_names_the_problem(collector, lambda_context, request_fields, named) -> None:
    with pytest.raises(InvalidInputError, match=named):
        run(collector, lambda_context, **request_fields)


def test_service_errors_surface_with_the_service_s_error_name(collector, lambda_context) -> None:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the class is made from the service's error code
        run(collector, lambda_context, parameters={"InstanceIds": ["i-00000000000000000"]})
    assert type(caught.value).__name__ == "InvalidInstanceID_NotFound"


def test_the_sample_event_is_accepted(collector, lambda_context) -> None:
    request = collector.parse_event(collector.CollectRequest, event("api_collector", "instance-patches.json"))
    assert request.operation == "DescribeInstancePatches"


def read_jsonl(location: dict[str, str]) -> list[dict[str, Any]]:
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=location["bucket"], Key=location["key"])["Body"]
    return [json.loads(line) for line in body.read().decode().splitlines()]


def test_each_reads_every_value_into_one_object_and_notes_the_unreadable(collector, instances, lambda_context) -> None:
    missing = "i-00000000000000000"
    chosen = [*instances[:3], missing]

    result = run(
        collector,
        lambda_context,
        operation="DescribeInstanceAttribute",  # takes one InstanceId
        parameters={"Attribute": "instanceType"},
        collect="InstanceType.Value",
        destination="s3",
        key="runs/r1/batch-0.jsonl",
        each={"parameter": "InstanceId", "values": chosen},
    )

    assert (result["count"], result["values"], result["failed"]) == (3, 4, 1)
    lines = read_jsonl(result["location"])
    assert [line for line in lines if "item" in line] == [{"value": i, "item": "m1.small"} for i in instances[:3]]
    assert [line for line in lines if "error" in line] == [{"value": missing, "error": "InvalidInstanceID.NotFound"}]


def test_throttling_left_after_retries_fails_the_whole_call(collector, instances, lambda_context) -> None:
    boto3.setup_default_session(region_name=REGION)
    throttled = {"Error": {"Code": "RequestLimitExceeded", "Message": "slow down"}}

    def throttle(**_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        return AWSResponse("https://ec2", 503, {}, None), throttled

    boto3.DEFAULT_SESSION.events.register("before-call.ec2.DescribeInstanceAttribute", throttle)
    clients.reset()

    with pytest.raises(Exception) as caught:  # noqa: PT011 - the class is made from the service's error code
        run(
            collector,
            lambda_context,
            operation="DescribeInstanceAttribute",
            parameters={"Attribute": "instanceType"},
            collect="InstanceType.Value",
            destination="s3",
            each={"parameter": "InstanceId", "values": instances[:2]},
        )

    assert type(caught.value).__name__ == "RequestLimitExceeded"


@pytest.mark.parametrize(
    ("request_fields", "named"),
    [
        ({"destination": "auto"}, "destination s3"),
        ({"destination": "s3", "limit": 5}, "no limit"),
        ({"destination": "s3", "parameters": {"InstanceId": "i-1"}}, "only in each.values"),
    ],
)
def test_each_refuses_what_it_cannot_honour(collector, lambda_context, request_fields, named) -> None:
    with pytest.raises(InvalidInputError, match=named):
        run(collector, lambda_context, each={"parameter": "InstanceId", "values": ["i-1"]}, **request_fields)


# -- The rules, over plain data (no AWS) ------------------------------------------------------------
def test_the_allowlist_speaks_iam_so_a_client_name_is_checked_under_its_iam_prefix() -> None:
    allowlist = {"elasticloadbalancing:DescribeTargetHealth", "ssm:DescribeInstancePatches"}

    assert collection.check_allowed("elbv2", "DescribeTargetHealth", allowlist) == (
        "elasticloadbalancing:DescribeTargetHealth"
    )
    with pytest.raises(collection.OperationNotAllowedError) as refused:
        collection.check_allowed("elbv2", "DescribeLoadBalancers", allowlist)
    assert str(refused.value) == (
        "elasticloadbalancing:DescribeLoadBalancers is not on the allowlist "
        "(elasticloadbalancing:DescribeTargetHealth, ssm:DescribeInstancePatches)"
    )


def test_a_write_is_refused_as_such_even_when_the_allowlist_names_it() -> None:
    with pytest.raises(collection.OperationNotAllowedError, match=r"^ec2:TerminateInstances is not a read operation"):
        collection.check_allowed("ec2", "TerminateInstances", {"ec2:TerminateInstances"})


def test_items_stay_inline_until_they_would_pass_the_limit_then_all_go_to_one_file() -> None:
    sink = collection.Sink(inline_limit=20, spill=False)
    sink.add({"a": 1})  # 7 bytes + newline, within 20 with the brackets
    assert sink.file is None and sink.items == ['{"a":1}']

    sink.add({"b": dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)})
    sink.add(b"raw\xff")

    assert sink.file is not None and sink.items == [] and sink.count == 3
    sink.file.seek(0)
    assert sink.file.read().decode().splitlines() == ['{"a":1}', '{"b":"2026-11-24T02:00:00+00:00"}', '"raw\\ufffd"']


def test_what_json_cannot_hold_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="cannot serialise set"):
        collection.json_default({1})
