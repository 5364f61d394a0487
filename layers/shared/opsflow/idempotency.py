"""Powertools idempotency records in the run table: a side effect done once per request, however often it comes.

The records live beside runs and locks under a partition key of their own (``idempotency#<function>``,
Powertools' default with a sort key) and expire by the table's TTL attribute.
"""

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from opsflow import clients


def run_table_store(table_name: str) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expiresAt",  # the table's TTL attribute: the records expire by themselves
        boto3_client=clients.client("dynamodb"),
    )
