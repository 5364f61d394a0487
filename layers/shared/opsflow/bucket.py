"""The stack's bucket: the texts and JSON documents the functions leave for people and for each other
(what a state carries stays small: 256 KiB at most, docs/workflows.md)."""

import json
from collections.abc import Iterator
from typing import Any

from opsflow import clients


def read_text(bucket: str, key: str) -> str:
    """The object's text (UTF-8); S3's refusals surface as botocore ClientErrors (NoSuchKey, AccessDenied...)."""
    return str(clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def put_json(bucket: str, key: str, document: Any, indent: int | None = None) -> None:
    clients.client("s3").put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document, indent=indent).encode(), ContentType="application/json"
    )


def put_text(bucket: str, key: str, text: str) -> None:
    clients.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/plain; charset=utf-8")


def get_json(bucket: str, key: str) -> Any:
    return json.loads(clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def json_lines(bucket: str, key: str) -> Iterator[dict[str, Any]]:
    """Each line of a JSON Lines object, read as it streams (a large object is never whole in memory)."""
    body = clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    for line in body.iter_lines():
        if line:
            yield json.loads(line)
