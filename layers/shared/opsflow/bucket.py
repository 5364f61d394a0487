"""The stack's bucket: the texts and JSON documents the functions leave for people and for each other."""

import json
from typing import Any

from opsflow import clients


def read_text(bucket: str, key: str) -> str:
    """The object's text (UTF-8); S3's refusals surface as botocore ClientErrors (NoSuchKey, AccessDenied...)."""
    return str(clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def put_json(bucket: str, key: str, document: Any, indent: int | None = None) -> None:
    clients.client("s3").put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document, indent=indent).encode(), ContentType="application/json"
    )
