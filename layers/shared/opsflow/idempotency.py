"""Powertools idempotency records in the run table: a side effect done once per request, however often it comes.

The records live beside runs and locks under a partition key of their own (``idempotency#<function>``,
Powertools' default with a sort key) and expire by the table's TTL attribute. A request whose first
invocation is still running is refused with IdempotencyAlreadyInProgressError until it ends (or until
that invocation's remaining time has run out, once the handler registered its Lambda context).
"""

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function

from opsflow import clients


def run_table_store(table_name: str) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expiresAt",  # the table's TTL attribute: the records expire by themselves
        boto3_client=clients.client("dynamodb"),
    )


def once[R](function: Callable[..., R], table_name: str, config: IdempotencyConfig) -> Callable[..., R]:
    """``function``, done once per value of its keyword argument ``request`` (the key: ``config``'s JMESPath
    of it, else all of it); a repeat gets the first answer. An exception is not remembered: it runs again."""
    wrapped: Callable[..., R] = idempotent_function(
        data_keyword_argument="request", persistence_store=run_table_store(table_name), config=config
    )(function)
    return wrapped


def config(expires_after_seconds: int, key_path: str | None = None) -> IdempotencyConfig:
    """Records that count as "done" for ``expires_after_seconds``; ``key_path``: JMESPath of the key in the request."""
    arguments: dict[str, Any] = {"expires_after_seconds": expires_after_seconds}
    if key_path:
        arguments["event_key_jmespath"] = key_path
    return IdempotencyConfig(**arguments)
