"""Any paginated AWS read, through botocore's own paginators (they know each API's token names)."""

from collections.abc import Iterator
from typing import IO, Any

import jmespath
from botocore import xform_name
from botocore.exceptions import UnknownServiceError

from opsflow import clients
from opsflow.errors import InvalidInputError


def read_client(service: str, operation: str) -> tuple[Any, str]:
    """The client of ``service`` and the method name of ``operation``; InvalidInputError if either does not exist."""
    try:
        client = clients.client(service)
    except UnknownServiceError as exc:
        raise InvalidInputError(f"service: {service} is not an AWS service") from exc
    method = xform_name(operation)
    if not hasattr(client, method):
        raise InvalidInputError(f"operation: {service} has no {operation}")
    return client, method


def pages_of(client: Any, method: str, parameters: dict[str, Any], expression: str) -> Iterator[Any]:
    """Every item ``expression`` (JMESPath) finds in every page; one call for an operation without pages."""
    if client.can_paginate(method):
        yield from (
            item for item in client.get_paginator(method).paginate(**parameters).search(expression) if item is not None
        )
        return
    found = jmespath.search(expression, getattr(client, method)(**parameters))
    yield from (found if isinstance(found, list) else [] if found is None else [found])


def upload_lines(file: IO[bytes], bucket: str, key: str) -> None:
    """JSON Lines to the bucket; upload_fileobj streams (multipart for large files): memory stays bounded."""
    file.seek(0)
    with file:
        clients.client("s3").upload_fileobj(file, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
