"""Collect every item of a paginated AWS read API in one task, with bounded memory.

Looping over pages in ASL bills a state transition per page and is clumsy; this function uses
botocore's own paginators (they know each API's token names) and streams the items:
- small results come back inline;
- results that would not fit the Step Functions payload limit (or ``destination: s3``) are written to
  the stack's bucket as JSON Lines, and the function returns where and how many;
- ``each`` runs the same read for each of a batch of values of one parameter (e.g. the patches of 50
  servers, ``DescribeInstancePatches`` taking one ``InstanceId``) into one JSON Lines object: one line
  ``{"value", "item"}`` per item, or ``{"value", "error"}`` for a value whose read failed, so one bad
  server never fails its batch. Throttling left after botocore's retries fails the call (retry it).
Only read operations (Describe*, List*, Get*) on the configured allowlist are allowed; the IAM role
allows exactly those. Throttling is retried by botocore (standard mode); other service errors surface
with the service's error name as the error type, so the state machine can match them. The request is
modelled in opsflow.collect_request, what may be read and how items are kept in opsflow.collection.
"""

import json
import uuid
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError, ParamValidationError
from pydantic import Field

from opsflow.collect_request import CollectRequest, EachValue
from opsflow.collection import THROTTLING, Sink, check_allowed
from opsflow.errors import InvalidInputError, error_code, service_error
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, metrics, tracer
from opsflow.paginated_reads import pages_of, read_client, upload_lines
from opsflow.settings import BucketSettings, cached_settings
from opsflow.validation import parse_event


class Settings(BucketSettings):
    allowed_operations: str = Field(alias="COLLECTOR_ALLOWED_OPERATIONS", min_length=1)
    inline_limit_bytes: int = Field(default=200_000, alias="INLINE_LIMIT_BYTES", ge=1_000, le=250_000)

    @property
    def allowlist(self) -> set[str]:
        return {op.strip() for op in self.allowed_operations.split(",") if op.strip()}


settings = cached_settings(Settings)


def collect_each(request: CollectRequest, each: EachValue, client: Any, method: str, sink: Sink) -> dict[str, int]:
    """One line per item of each value, or one error line for a value whose read failed."""
    items = failed = 0
    for value in each.values:
        parameters = {**request.parameters, each.parameter: value}
        try:
            # One value's items in memory (one server's patches): a read failing midway leaves no partial list.
            found = list(pages_of(client, method, parameters, request.collect))
        except ParamValidationError as exc:
            raise InvalidInputError(f"parameters: {exc}") from exc
        except ClientError as exc:
            code = error_code(exc) or "ClientError"
            if code in THROTTLING:
                raise service_error(exc) from exc
            logger.warning("value unreadable", extra={"value": value, "error": code})
            sink.add({"value": value, "error": code})
            failed += 1
            continue
        for item in found:
            sink.add({"value": value, "item": item})
        items += len(found)
    return {"count": items, "values": len(each.values), "failed": failed}


def collect(request: CollectRequest, cfg: Settings) -> dict[str, Any]:
    check_allowed(request.service, request.operation, cfg.allowlist)
    client, method = read_client(request.service, request.operation)
    sink = Sink(cfg.inline_limit_bytes, spill=request.destination == "s3")
    result: dict[str, Any] = {**({"label": request.label} if request.label else {})}
    if request.each is not None:
        result.update(collect_each(request, request.each, client, method, sink))
    else:
        try:
            for item in pages_of(client, method, request.parameters, request.collect):
                sink.add(item)
                if request.limit is not None and sink.count >= request.limit:
                    break
        except ParamValidationError as exc:
            raise InvalidInputError(f"parameters: {exc}") from exc
        except ClientError as exc:
            raise service_error(exc) from exc
        result["count"] = sink.count
    if sink.file is None:
        result["items"] = [json.loads(line) for line in sink.items]
        return result
    key = request.key or f"collected/{uuid.uuid4()}.jsonl"
    upload_lines(sink.file, cfg.bucket_name, key)
    result["location"] = {"bucket": cfg.bucket_name, "key": key}
    return result


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(CollectRequest, event)
    result = collect(request, settings())
    metrics.add_metric(name="ItemsCollected", unit=MetricUnit.Count, value=result["count"])
    logger.info("collected", extra={"operation": f"{request.service}:{request.operation}", "count": result["count"]})
    return result
