"""The startup check tells 'not yet' (retried) from 'cannot' (not retried)."""

from typing import Any

import boto3
import pytest
import requests
import responses

from opsflow import timeutil
from opsflow.errors import InstanceCannotStartError, InstanceNotYetStartedException, InvalidInputError
from tests.conftest import REGION, event, load_function


@pytest.fixture
def instance(aws: None) -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name=REGION)
    return dict(ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0])


@pytest.fixture
def http() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def check(instance_id: str, lambda_context: Any, **health: Any) -> dict[str, Any]:
    payload = {"instanceId": instance_id, "health": {"port": 8080, "path": "/health", **health}}
    return dict(load_function("startup_check").lambda_handler(payload, lambda_context))


def test_an_instance_whose_application_answers_is_up(instance, http, lambda_context) -> None:
    http.get(f"http://{instance['PrivateIpAddress']}:8080/health", status=200)
    result = check(instance["InstanceId"], lambda_context)
    assert result["instanceId"] == instance["InstanceId"] and result["statusCode"] == 200


def test_an_application_answering_another_status_is_not_yet_started(instance, http, lambda_context) -> None:
    http.get(f"http://{instance['PrivateIpAddress']}:8080/health", status=503)
    with pytest.raises(InstanceNotYetStartedException, match="answered 503, expected 200"):
        check(instance["InstanceId"], lambda_context)


def test_a_refused_connection_is_not_yet_started(instance, http, lambda_context) -> None:
    http.get(f"http://{instance['PrivateIpAddress']}:8080/health", body=requests.ConnectionError("refused"))
    with pytest.raises(InstanceNotYetStartedException, match="did not answer"):
        check(instance["InstanceId"], lambda_context)


def test_the_expected_status_is_configurable(instance, http, lambda_context) -> None:
    http.get(f"http://{instance['PrivateIpAddress']}:8080/health", status=204)
    assert check(instance["InstanceId"], lambda_context, expectedStatus=204)["statusCode"] == 204


def test_a_stopped_instance_cannot_start(instance, lambda_context) -> None:
    boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[instance["InstanceId"]])
    with pytest.raises(InstanceCannotStartError, match="stopped"):
        check(instance["InstanceId"], lambda_context)


def test_an_unknown_instance_cannot_start(aws, lambda_context) -> None:
    with pytest.raises(InstanceCannotStartError, match="no such instance"):
        check("i-0123456789abcdef0", lambda_context)


@pytest.mark.parametrize(
    "payload",
    [
        {"instanceId": "web-1", "health": {"port": 80, "path": "/"}},
        {"instanceId": "i-0123456789abcdef0", "health": {"port": 0, "path": "/"}},
        {"instanceId": "i-0123456789abcdef0", "health": {"port": 80, "path": "health"}},
        {"instanceId": "i-0123456789abcdef0"},
    ],
)
def test_a_malformed_event_is_refused(aws, lambda_context, payload) -> None:
    with pytest.raises(InvalidInputError):
        load_function("startup_check").lambda_handler(payload, lambda_context)


def test_the_sample_event_is_valid(instance, http, lambda_context) -> None:
    sample = event("startup_check", "instance.json")
    sample["instanceId"] = instance["InstanceId"]
    http.get(
        f"http://{instance['PrivateIpAddress']}:{sample['health']['port']}{sample['health']['path']}",
        status=200,
    )
    assert load_function("startup_check").lambda_handler(sample, lambda_context)["statusCode"] == 200


def test_with_wait_seconds_it_keeps_asking_until_the_application_answers(instance, http, lambda_context) -> None:
    """One invocation finds the application within a poll of it coming up, instead of one retry later."""
    url = f"http://{instance['PrivateIpAddress']}:8080/health"
    for status in (503, 503, 503, 200):  # answered in this order
        http.get(url, status=status)
    clock = [1_800_000_000.0]
    timeutil.set_source(lambda: clock[0], lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    try:
        payload = {
            "instanceId": instance["InstanceId"],
            "health": {"port": 8080, "path": "/health"},
            "waitSeconds": 20,
            "pollSeconds": 0.5,
        }
        result = load_function("startup_check").lambda_handler(payload, lambda_context)
    finally:
        timeutil.set_source(None)
    assert result["statusCode"] == 200
    assert clock[0] == 1_800_000_000.0 + 3 * 0.5  # three "not yet", half a second apart
    assert len([c for c in http.calls if c.request.url == url]) == 4 + 1  # then confirmed once with EC2 and the URL


def test_with_wait_seconds_it_still_answers_not_yet_within_its_time(instance, http, lambda_context) -> None:
    http.get(f"http://{instance['PrivateIpAddress']}:8080/health", status=503)
    clock = [1_800_000_000.0]
    timeutil.set_source(lambda: clock[0], lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    try:
        payload = {"instanceId": instance["InstanceId"], "health": {"port": 8080, "path": "/health"}, "waitSeconds": 10}
        with pytest.raises(InstanceNotYetStartedException, match="answered 503"):
            load_function("startup_check").lambda_handler(payload, lambda_context)
    finally:
        timeutil.set_source(None)
    assert clock[0] == 1_800_000_000.0 + 10
