"""What JSON cannot share between states, a test keeps uniform, and what the ASL and the code share, a
test keeps in agreement.

- Every Lambda task retries the Lambda service's transient errors, and every DynamoDB task retries
  throttling, with the same retrier (Step Functions best practice "Handle transient Lambda service
  exceptions", bp-lambda-serviceexception). A state that retries ``States.ALL`` already covers them.
- The run table's keys the state machine writes (``States.Format('run#{}', ...)``) are the ones
  ``opsflow.runs`` reads, and the per-instance step names the reporter prints are the state
  machine's own states, recording their times where the reporter looks for them.
- The functions and the sandbox turn a boto3 client name into the same IAM action prefix.
"""

import re
from typing import Any

import pytest

from opsflow import runs
from tests.conftest import load_function
from tools.asl import definitions, states, tasks

LAMBDA_RETRY = {
    "ErrorEquals": [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ],
    "IntervalSeconds": 1,
    "MaxAttempts": 4,
    "BackoffRate": 2,
    "JitterStrategy": "FULL",
}
DYNAMODB_RETRY = {
    "ErrorEquals": [
        "DynamoDB.ProvisionedThroughputExceededException",
        "DynamoDB.ThrottlingException",
        "DynamoDB.RequestLimitExceededException",
        "DynamoDB.InternalServerErrorException",
    ],
    "IntervalSeconds": 1,
    "MaxAttempts": 5,
    "BackoffRate": 2,
    "JitterStrategy": "FULL",
}
STANDARD = {"lambda": LAMBDA_RETRY, "dynamodb": DYNAMODB_RETRY}
ALL_TASKS = [(name, task) for name, definition in definitions().items() for task in tasks(definition)]


@pytest.mark.parametrize(
    ("name", "task"),
    [(n, t) for n, t in ALL_TASKS if t.service in STANDARD and not t.state["Resource"].endswith(".waitForTaskToken")],
    ids=lambda v: v if isinstance(v, str) else v.path,
)
def test_each_lambda_and_dynamodb_task_retries_the_service_s_transient_errors(name: str, task: Any) -> None:
    retriers = task.state.get("Retry", [])
    standard = STANDARD[task.service]
    assert standard in retriers or any("States.ALL" in r["ErrorEquals"] for r in retriers), (
        f"{name}: '{task.path}' lacks the standard {task.service} retrier {standard}"
    )


def _key_prefixes(definition: dict[str, Any]) -> set[tuple[str, str]]:
    """(attribute, literal or 'prefix#{}') of every pk/sk the definition's DynamoDB tasks write or read."""
    found: set[tuple[str, str]] = set()
    for _, state in states(definition):
        parameters = state.get("Parameters") or state.get("Arguments") or {}
        for field in ("Key", "Item"):
            for attribute in ("pk", "sk"):
                value = parameters.get(field, {}).get(attribute, {})
                if "S" in value:
                    found.add((attribute, value["S"]))
                elif "S.$" in value:
                    formatted = re.fullmatch(r"States\.Format\('([^']*)', .+\)", value["S.$"])
                    assert formatted, f"{attribute} is built in a way this test cannot read: {value['S.$']}"
                    found.add((attribute, formatted.group(1)))
    return found


def test_the_run_table_keys_in_the_state_machine_are_the_ones_the_code_uses() -> None:
    written = _key_prefixes(definitions()["rolling_restart"])
    known = {
        ("pk", runs.run_pk("{}")),
        ("pk", runs.lock_pk("{}")),
        ("sk", runs.RUN_SK),
        ("sk", runs.LOCK_SK),
        ("sk", runs.instance_sk("{}")),
    }
    assert written, "the rolling restart reads and writes the run table"
    assert written <= known, f"keys the code does not know: {sorted(written - known)}"


def test_the_reporter_s_steps_are_states_that_record_their_time_where_it_looks() -> None:
    STEPS = load_function("restart_reporter").STEPS
    recorded = {
        name: state.get("ResultPath")
        for path, state in states(definitions()["rolling_restart"])
        for name in [path.rsplit(" > ", 1)[-1]]
    }
    for key, state_name in STEPS:
        assert state_name in recorded, f"the reporter names '{state_name}', which the state machine lacks"
        assert recorded[state_name] == f"$.times.{key}", f"'{state_name}' records its time elsewhere"


def test_the_functions_and_the_sandbox_give_each_service_the_same_iam_prefix() -> None:
    """The collector's allowlist and the sandbox's IAM both turn a boto3 client name into an IAM action; the
    sandbox cannot import the layer from tools/, so its copy of the map is kept in agreement here."""
    from opsflow.iam_names import IAM_PREFIXES
    from sandbox.authorization import IAM_PREFIXES as SANDBOX_PREFIXES

    services = set(IAM_PREFIXES) | set(SANDBOX_PREFIXES)
    assert {s: SANDBOX_PREFIXES.get(s, s) for s in services} == {s: IAM_PREFIXES.get(s, s) for s in services}
