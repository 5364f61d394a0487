"""Approval by email: the mailer mails each request once; the public verifier only verifies, never 5xx."""

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlparse

import boto3
import pytest

from opsflow import approval_mail, approval_pages, timeutil
from opsflow.approval_links import Link
from tests.conftest import REGION, load_function

URL = "https://abc.lambda-url.eu-west-1.on.aws/"
ASKED_AT = "2026-11-23T10:00:00+00:00"


@pytest.fixture
def stack(run_table: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    key = boto3.client("kms", region_name=REGION).create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="opsflow")["TopicArn"]
    queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName="mails")["QueueUrl"]
    boto3.client("sns", region_name=REGION).subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:123456789012:mails"
    )
    for name, value in {
        "APPROVAL_KEY_ID": key["KeyMetadata"]["KeyId"],
        "TOPIC_ARN": topic,
        "APPROVAL_URL": URL,
    }.items():
        monkeypatch.setenv(name, value)
    timeutil.set_source(lambda: 1_795_000_000.0)  # before the links expire
    load_function("approval_mailer").mail_once.cache_clear()
    return {"queue": queue}


def request(token: str = "token-1") -> dict[str, Any]:
    return {
        "taskToken": token,
        "executionArn": "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1",
        "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef",
        "plan": {"summary": "Restart 3 of 3 targets", "batches": [["i-1"], ["i-2"], ["i-3"]]},
        "askedAt": ASKED_AT,
        "timeoutSeconds": 86400 * 365,
    }


def sqs_event(*bodies: Any) -> dict[str, Any]:
    records = [
        {
            "messageId": f"m-{n}",
            "receiptHandle": f"r-{n}",
            "body": body if isinstance(body, str) else json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:approvals",
            "awsRegion": REGION,
        }
        for n, body in enumerate(bodies)
    ]
    return {"Records": records}


def mails(stack: dict[str, str]) -> list[dict[str, Any]]:
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=stack["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_a_request_delivered_twice_is_mailed_once(stack: dict[str, str], lambda_context: Any) -> None:
    mailer = load_function("approval_mailer")

    first = mailer.lambda_handler(sqs_event(request()), lambda_context)
    again = mailer.lambda_handler(sqs_event(request()), lambda_context)  # SQS redelivers after a lost delete

    assert first == again == {"batchItemFailures": []}
    assert len(mails(stack)) == 1


def test_a_bad_message_is_reported_alone_and_the_others_are_mailed(stack: dict[str, str], lambda_context: Any) -> None:
    result = load_function("approval_mailer").lambda_handler(
        sqs_event(request("token-a"), "not json", {"taskToken": "x"}, request("token-b")), lambda_context
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}
    assert len(mails(stack)) == 2


def patch_request(key: str) -> dict[str, Any]:
    preview = {"findings": "4 patches on 3 servers, 1 critical", "bucket": "opsflow-data", "key": key}
    return request() | {"plan": request()["plan"] | {"preview": preview}}


def test_a_patch_run_s_request_is_one_mail_the_preview_with_its_links_first(
    stack: dict[str, str], lambda_context: Any
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="opsflow-data", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="opsflow-data", Key="patch-preview/run/approval-preview.txt", Body=b"[Critical] curl\n")

    load_function("approval_mailer").lambda_handler(
        sqs_event(patch_request("patch-preview/run/approval-preview.txt")), lambda_context
    )

    [mail] = mails(stack)
    assert mail["Subject"] == "opsflow: approve patching web? 4 patches on 3 servers, 1 critical"
    text = mail["Message"]
    assert text.index("Approve: https://") < text.index("Reject: https://") < text.index("[Critical] curl")


def test_a_preview_that_cannot_be_read_still_mails_the_request_saying_so(
    stack: dict[str, str], lambda_context: Any
) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="opsflow-data", CreateBucketConfiguration={"LocationConstraint": REGION}
    )

    result = load_function("approval_mailer").lambda_handler(
        sqs_event(patch_request("patch-preview/run/gone.txt")), lambda_context
    )

    assert result == {"batchItemFailures": []}
    [mail] = mails(stack)
    assert "could not be read (s3://opsflow-data/patch-preview/run/gone.txt: NoSuchKey)" in mail["Message"]
    assert "Reject unless you know what this run installs" in mail["Message"] and "Reject: https://" in mail["Message"]


def links(stack: dict[str, str], lambda_context: Any) -> dict[str, dict[str, str]]:
    load_function("approval_mailer").lambda_handler(sqs_event(request()), lambda_context)
    [mail] = mails(stack)
    found = {}
    for line in mail["Message"].splitlines():
        if line.startswith(("Approve: ", "Reject: ")):
            label, url = line.split(": ", 1)
            found[label.lower()] = dict(parse_qsl(urlparse(url).query))
    return found


def url_request(method: str, fields: dict[str, str] | None = None, raw: str | None = None) -> dict[str, Any]:
    from urllib.parse import urlencode

    encoded = raw if raw is not None else urlencode(fields or {})
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": encoded if method == "GET" else "",
        "queryStringParameters": dict(parse_qsl(encoded)) if method == "GET" and encoded else None,
        "headers": {"content-type": "application/x-www-form-urlencoded"},
        "body": encoded if method == "POST" else None,
        "isBase64Encoded": False,
        "requestContext": {
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
            "requestId": "r",
            "stage": "$default",
        },
    }


def answer(method: str, lambda_context: Any, **kwargs: Any) -> dict[str, Any]:
    return dict(load_function("approval_verifier").lambda_handler(url_request(method, **kwargs), lambda_context))


def test_a_genuine_link_shows_a_confirmation_page(stack: dict[str, str], lambda_context: Any) -> None:
    approve = links(stack, lambda_context)["approve"]

    shown = answer("GET", lambda_context, fields=approve)

    assert shown["statusCode"] == 200 and '<form method="post">' in shown["body"]


@pytest.mark.parametrize(
    "damage",
    [
        {"mac": ""},
        {"mac": "!!not base64!!"},
        {"mac": base64.urlsafe_b64encode(b"short").decode()},
        {"mac": base64.urlsafe_b64encode(b"x" * 32).decode()},
        {"decision": "reject"},
    ],
    ids=["empty", "not-base64", "wrong-length", "wrong-mac", "tampered"],
)
def test_a_damaged_link_is_refused_with_403_never_a_server_error(
    stack: dict[str, str], lambda_context: Any, damage: dict[str, str]
) -> None:
    approve = {**links(stack, lambda_context)["approve"], **damage}

    for method in ("GET", "POST"):
        assert answer(method, lambda_context, fields=approve)["statusCode"] == 403


def test_an_incomplete_link_is_a_400(stack: dict[str, str], lambda_context: Any) -> None:
    assert answer("GET", lambda_context, raw="decision=approve")["statusCode"] == 400
    assert answer("POST", lambda_context, raw="%%%")["statusCode"] == 400


# -- The mail and the pages, over plain data (no AWS) ----------------------------------------------
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1"
LINKS = {"approve": "https://approve.example/?a", "reject": "https://approve.example/?r"}


def test_links_expire_with_the_approval_s_timeout_counted_from_when_it_was_asked() -> None:
    assert approval_mail.expires_at("2026-11-24T02:00:00+00:00", 3600) == 1_795_485_600 + 3600


def test_a_restart_request_shows_the_plan_its_note_the_links_and_the_deadline() -> None:
    plan = {"summary": "12 instances, 3 at a time", "note": "kernel update", "batches": [["i-1"]]}

    subject, body = approval_mail.restart_email("web", plan, EXECUTION, LINKS, 1_795_485_600 + 3600)

    assert subject == "opsflow: approve the rolling restart of web?"
    assert '12 instances, 3 at a time\n\nkernel update\n\nBatches: [["i-1"]]' in body
    assert body.endswith(
        "Reject: https://approve.example/?r\n\n"
        "Without an answer by 2026-11-24 03:00 UTC, the restart is refused and nothing is changed.\n"
    )
    assert "kernel" not in approval_mail.restart_email("web", {}, EXECUTION, LINKS, 0)[1]


def test_a_patch_request_puts_the_links_before_the_preview_so_a_cut_never_takes_them() -> None:
    plan = {"preview": {"findings": "28 patches, 4 critical", "bucket": "b", "key": "k"}}

    subject, body = approval_mail.patch_email("web", plan, EXECUTION, LINKS, 0, preview_text="[Critical] curl\n")

    assert subject == "opsflow: approve patching web? 28 patches, 4 critical"
    assert body.index("Reject: ") < body.index("Patch preview\n=============\n[Critical] curl\n")
    assert approval_mail.rest_is_in(plan) == "s3://b/k" and approval_mail.rest_is_in({}) == "the run's records"


def link(**fields: Any) -> Link:
    return Link.model_validate({"decision": "approve", "execution": EXECUTION, "expires": 100, "token": "t"} | fields)


@pytest.mark.parametrize(
    ("fields", "now", "problem"),
    [
        ({"mac": "AAAA"}, 101, "This link has expired: the approval timed out and the restart was not started."),
        ({}, 100, "This link is not valid (its signature is missing or damaged)."),
        ({"mac": "not base64!"}, 100, "This link is not valid (its signature is missing or damaged)."),
    ],
)
def test_a_link_expired_or_without_a_signature_is_refused_without_asking_kms(
    fields: dict[str, str], now: float, problem: str
) -> None:
    assert approval_pages.signature(link(**fields), now) == (b"", problem)


def test_a_signed_current_link_goes_to_kms_with_its_mac() -> None:
    assert approval_pages.signature(link(mac="AAEC"), 100) == (b"\x00\x01\x02", None)


def test_the_confirmation_page_carries_the_link_escaped_in_a_form_that_posts_it_back() -> None:
    response = approval_pages.page(
        200, *approval_pages.confirmation(link(token='"><script>')), link(token='"><script>')
    )

    assert response.status_code == 200 and "<script>" not in str(response.body)
    assert 'value="&quot;&gt;&lt;script&gt;"' in str(response.body)
    assert "Confirm: approve rolling restart run-1?" in str(response.body)
    assert approval_pages.answered(link(decision="reject")) == "Rolling restart run-1 rejected: nothing was changed."
