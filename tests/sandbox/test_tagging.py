"""The sandbox's answer to GetResources for EventBridge rules, which moto 5.2.5 leaves out."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sandbox import tagging
from tests.conftest import REGION, put_alarm


@pytest.fixture
def apis() -> Iterator[dict[str, Any]]:
    """moto with the sandbox's answer installed; rules on two buses, tagged in different ways."""
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        uninstall = tagging.install(session)
        events = session.client("events")
        events.create_event_bus(Name="apps")
        for i in range(7):
            tags = [{"Key": "tier", "Value": "web"}, {"Key": "team", "Value": "red" if i % 2 else "blue"}]
            events.put_rule(Name=f"web-{i}", ScheduleExpression="rate(1 hour)", Tags=tags)
        events.put_rule(Name="db-1", ScheduleExpression="rate(1 hour)", Tags=[{"Key": "tier", "Value": "db"}])
        events.put_rule(Name="untagged", ScheduleExpression="rate(1 hour)")
        events.put_rule(
            Name="on-apps",
            EventBusName="apps",
            EventPattern='{"source": ["x"]}',
            Tags=[{"Key": "tier", "Value": "web"}],
        )
        yield {"events": events, "tagging": session.client("resourcegroupstaggingapi"), "session": session}
        uninstall()


def rules(tagging_client: Any, **params: Any) -> list[list[str]]:
    """The rule names of each page."""
    pages = tagging_client.get_paginator("get_resources").paginate(ResourceTypeFilters=["events:rule"], **params)
    return [[m["ResourceARN"].rsplit("/", 1)[1] for m in page["ResourceTagMappingList"]] for page in pages]


def flat(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


def test_moto_alone_lists_no_rule() -> None:
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        events.put_rule(Name="web-1", ScheduleExpression="rate(1 hour)", Tags=[{"Key": "tier", "Value": "web"}])
        found = boto3.client("resourcegroupstaggingapi", region_name=REGION).get_resources(
            ResourceTypeFilters=["events:rule"]
        )
        assert found["ResourceTagMappingList"] == [], "moto closed the gap: sandbox/tagging.py can go"


def test_tagged_rules_of_every_bus_are_listed_with_their_tags(apis: dict[str, Any]) -> None:
    found = apis["tagging"].get_resources(ResourceTypeFilters=["events:rule"])

    arns = [m["ResourceARN"] for m in found["ResourceTagMappingList"]]
    assert len(arns) == 9 and not any(a.endswith("/untagged") for a in arns)
    assert f"arn:aws:events:{REGION}:123456789012:rule/apps/on-apps" in arns
    web0 = next(m for m in found["ResourceTagMappingList"] if m["ResourceARN"].endswith("rule/web-0"))
    assert web0["Tags"] == [{"Key": "team", "Value": "blue"}, {"Key": "tier", "Value": "web"}]
    assert found["PaginationToken"] == ""


def test_every_tag_filter_must_match_and_any_of_its_values(apis: dict[str, Any]) -> None:
    web_red = [{"Key": "tier", "Values": ["web"]}, {"Key": "team", "Values": ["red"]}]
    assert flat(rules(apis["tagging"], TagFilters=web_red)) == ["web-1", "web-3", "web-5"]
    web_or_db = [{"Key": "tier", "Values": ["db", "web"]}]
    assert len(flat(rules(apis["tagging"], TagFilters=web_or_db))) == 9


def test_pages_hold_resources_per_page_and_the_paginator_follows_the_tokens(apis: dict[str, Any]) -> None:
    pages = rules(apis["tagging"], TagFilters=[{"Key": "tier", "Values": ["web"]}], ResourcesPerPage=3)

    assert [len(p) for p in pages] == [3, 3, 2]
    assert len(set(flat(pages))) == 8


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ResourcesPerPage": 101}, "ResourcesPerPage"),
        ({"PaginationToken": "not-a-token"}, "PaginationToken"),
    ],
)
def test_bad_parameters_are_refused_naming_them(apis: dict[str, Any], params: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientError, match=message) as caught:
        apis["tagging"].get_resources(ResourceTypeFilters=["events:rule"], **params)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


def test_a_token_of_another_query_is_refused(apis: dict[str, Any]) -> None:
    first = apis["tagging"].get_resources(ResourceTypeFilters=["events:rule"], ResourcesPerPage=2)
    with pytest.raises(ClientError, match="PaginationToken"):
        apis["tagging"].get_resources(
            ResourceTypeFilters=["events:rule"],
            TagFilters=[{"Key": "tier", "Values": ["db"]}],
            PaginationToken=first["PaginationToken"],
        )


def test_other_resource_types_are_still_moto_s(apis: dict[str, Any]) -> None:
    cloudwatch = apis["session"].client("cloudwatch")
    put_alarm(cloudwatch, "web-cpu", {"tier": "web"})
    found = apis["tagging"].get_resources(ResourceTypeFilters=["cloudwatch:alarm"])
    assert [m["ResourceARN"].rsplit(":", 1)[1] for m in found["ResourceTagMappingList"]] == ["web-cpu"]
