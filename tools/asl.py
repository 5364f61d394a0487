"""Reading state machine definitions: every state (Map and Parallel included) and what its Task calls."""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.authorization import SDK_SERVICE_NAMES, client_iam_prefix, iam_action
from template_model import ROOT

# Step Functions' SDK integration service names -> boto3 service names, where they differ (the
# sandbox maps the same names for moto; "sfn" moto already knows).
BOTO3_NAMES = {**SDK_SERVICE_NAMES, "sfn": "stepfunctions"}
# Optimized integrations: the API each one calls.
OPTIMIZED = {
    "lambda:invoke": ("lambda", "Invoke"),
    "dynamodb:putItem": ("dynamodb", "PutItem"),
    "dynamodb:deleteItem": ("dynamodb", "DeleteItem"),
    "dynamodb:getItem": ("dynamodb", "GetItem"),
    "dynamodb:updateItem": ("dynamodb", "UpdateItem"),
    "sns:publish": ("sns", "Publish"),
    "sqs:sendMessage": ("sqs", "SendMessage"),
    "states:startExecution": ("stepfunctions", "StartExecution"),
}
# What a ``.sync`` Task needs beyond its call: following the execution it started ("IAM policies for
# integrated services", Step Functions developer guide: DescribeExecution, StopExecution, and the
# managed EventBridge rule that reports the end).
SYNC_NEEDS = {
    "states:startExecution": {
        "states:DescribeExecution",
        "states:StopExecution",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    }
}


@dataclass(frozen=True)
class Task:
    path: str  # "State > Map state > Inner state", for messages
    state: dict[str, Any]
    service: str  # boto3 name
    operation: str  # PascalCase API operation
    part: str = ""  # "ItemReader": the call is a Map state's own read of its items, not a Task's

    @property
    def iam_action(self) -> str:
        return iam_action(client_iam_prefix(self.service), self.operation)


def definitions(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    return {
        p.name.removesuffix(".asl.json"): json.loads(p.read_text())
        for p in sorted((root / "statemachines").glob("*.asl.json"))
    }


def states(definition: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, depth first, with a readable path."""
    for name, state in definition["States"].items():
        path = f"{prefix}{name}"
        yield path, state
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from states(inner, f"{path} > ")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from states(branch, f"{path} [{i}] > ")


def _task(path: str, state: dict[str, Any]) -> Task:
    resource = re.sub(r"\.(waitForTaskToken|sync(:2)?)$", "", state["Resource"])
    if resource.startswith("arn:aws:states:::aws-sdk:"):
        service, action = resource.removeprefix("arn:aws:states:::aws-sdk:").split(":", 1)
        return Task(path, state, BOTO3_NAMES.get(service, service), action[0].upper() + action[1:])
    if resource.removeprefix("arn:aws:states:::") in OPTIMIZED:
        return Task(path, state, *OPTIMIZED[resource.removeprefix("arn:aws:states:::")])
    raise ValueError(f"{path}: unknown Task resource {state['Resource']}")


def tasks(definition: dict[str, Any]) -> Iterator[Task]:
    for path, state in states(definition):
        if state.get("Type") == "Task":
            yield _task(path, state)


def calls(definition: dict[str, Any]) -> Iterator[Task]:
    """Every AWS call a state makes itself, in the ASL's order: each Task's, and each Map's ItemReader read
    (a Task of the Map state, ``part`` "ItemReader": its Retry and Catch are the Map's). A ResultWriter is
    left out: the sandbox's moto writes no results, so no fault could reach its call."""
    for path, state in states(definition):
        if state.get("Type") == "Task":
            yield _task(path, state)
        reader = state.get("ItemReader", {}).get("Resource")
        if reader is not None:
            if reader not in S3_ITEM_OPERATIONS:
                raise ValueError(f"{path}: unknown ItemReader resource {reader}")
            yield Task(path, state, "s3", S3_ITEM_OPERATIONS[reader], part="ItemReader")


def distributed_maps(definition: dict[str, Any]) -> list[str]:
    return [
        path
        for path, state in states(definition)
        if state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
    ]


# A Distributed Map's ItemReader/ResultWriter resource -> the IAM action Step Functions calls with the
# state machine's role ("IAM policies for ItemReader", Distributed Map permissions in the developer guide).
S3_ITEM_ACTIONS = {
    "arn:aws:states:::s3:getObject": "s3:GetObject",
    "arn:aws:states:::s3:listObjectsV2": "s3:ListBucket",
    "arn:aws:states:::s3:putObject": "s3:PutObject",
}


# The S3 API each of those resources calls.
S3_ITEM_OPERATIONS = {
    "arn:aws:states:::s3:getObject": "GetObject",
    "arn:aws:states:::s3:listObjectsV2": "ListObjectsV2",
    "arn:aws:states:::s3:putObject": "PutObject",
}


def map_data_actions(definition: dict[str, Any]) -> set[str]:
    """IAM actions the Map states' ItemReader and ResultWriter call."""
    actions = set()
    for path, state in states(definition):
        for field in ("ItemReader", "ResultWriter"):
            resource = state.get(field, {}).get("Resource")
            if resource is None:
                continue
            if resource not in S3_ITEM_ACTIONS:
                raise ValueError(f"{path}: unknown {field} resource {resource}")
            actions.add(S3_ITEM_ACTIONS[resource])
    return actions
