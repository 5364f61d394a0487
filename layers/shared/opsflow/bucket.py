"""The stack's bucket: JSON and text objects a workflow's steps hand each other (what a state carries
stays small: 256 KiB at most, docs/workflows.md)."""

import json
from collections.abc import Iterator
from typing import Any

from opsflow import clients


def put_json(bucket: str, key: str, value: Any) -> None:
    clients.client("s3").put_object(
        Bucket=bucket, Key=key, Body=json.dumps(value).encode(), ContentType="application/json"
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
