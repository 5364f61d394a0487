"""What JSON cannot share between states, a test keeps uniform, and what the ASL and the code share, a
test keeps in agreement.

- Every Lambda task retries the Lambda service's transient errors, and every DynamoDB task retries
  throttling, with the same retrier (Step Functions best practice "Handle transient Lambda service
  exceptions", bp-lambda-serviceexception). A state that retries ``States.ALL`` already covers them.
- The run table's keys the state machine writes (``States.Format('run#{}', ...)``) are the ones
  ``opsflow.runs`` reads, and the per-instance step names the reporter prints are the state
  machine's own states, recording their times where the reporter looks for them, and the actions the
  state machine sends the reporter are the ones its event union takes; the patch preview's listing
  writes each batch under the key its report reads.
- The functions and the sandbox turn a boto3 client name into the same IAM action prefix.
- No Choice is reached only from another Choice: every state entered is a billed transition (Step
  Functions pricing, Standard workflows), and one Choice can ask both questions in order.
"""

import re
from collections.abc import Iterator
from typing import Any

import pytest

from opsflow import preview_report, restart_report, runs
from opsflow.validation import tags_of
from tests.conftest import ROOT
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


@pytest.mark.parametrize("machine", sorted(definitions()))
def test_the_run_table_keys_in_a_state_machine_are_the_ones_the_code_uses(machine: str) -> None:
    written = _key_prefixes(definitions()[machine])
    known = {
        ("pk", runs.run_pk("{}")),
        ("pk", runs.lock_pk("{}")),
        ("pk", runs.health_pk("{}")),
        ("sk", runs.RUN_SK),
        ("sk", runs.LOCK_SK),
        ("sk", runs.HEALTH_SK),
        ("sk", runs.instance_sk("{}")),
        ("sk", runs.command_sk("{}")),
    }
    assert written <= known, f"keys the code does not know: {sorted(written - known)}"
    if machine == "rolling_restart":
        assert {("pk", runs.run_pk("{}")), ("sk", runs.RUN_SK), ("pk", runs.lock_pk("{}"))} <= written


@pytest.mark.parametrize("steps", ["STEPS", "COMMAND_STEPS"])
def test_the_reporter_s_steps_are_states_that_record_their_time_where_it_looks(steps: str) -> None:
    recorded = {
        name: state.get("ResultPath")
        for path, state in states(definitions()["rolling_restart"])
        for name in [path.rsplit(" > ", 1)[-1]]
    }
    for key, state_name in getattr(restart_report, steps):
        assert state_name in recorded, f"the reporter names '{state_name}', which the state machine lacks"
        where = restart_report.RECORDED_IN.get(key, f"$.times.{key}")
        assert where.startswith(str(recorded[state_name])), f"'{state_name}' records its time elsewhere"
    every_step_done: dict[str, dict[str, str]] = {key: {"at": "t"} for key, _ in getattr(restart_report, steps)}
    for where in restart_report.RECORDED_IN.values():  # a time kept in another step's result
        carrier, field = where.split(".")[2:]
        every_step_done.setdefault(carrier, {"at": "t"})[field] = "t"
    last = restart_report.failed_step(every_step_done, "command" if steps == "COMMAND_STEPS" else "reboot")
    assert last == "Record the instance as restarted" and last in recorded, (
        f"after every step the reporter names '{last}'"
    )


def test_the_reporter_takes_each_action_the_state_machine_sends_it() -> None:
    sent = {
        parameters["action"]
        for _, state in states(definitions()["rolling_restart"])
        for parameters in [(state.get("Parameters") or {}).get("Payload") or {}]
        if "RestartReporter" in str((state.get("Parameters") or {}).get("FunctionName", ""))
    }
    assert sent == set(tags_of("action", restart_report.EVENTS)), "the reporter's actions and the ASL's differ"


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_preview_s_listing_writes_each_batch_where_the_report_reads_it() -> None:
    written = {
        match
        for text in _strings(definitions()["patch_preview"])
        for match in re.findall(r"States\.Format\('([^']*patches/batch-[^']*)'", text)
    }
    assert written == {preview_report.batch_key("{}", "{}")}  # type: ignore[arg-type]


def test_the_functions_and_the_sandbox_give_each_service_the_same_iam_prefix() -> None:
    """The collector's allowlist (opsflow.iam_names) and the sandbox's IAM (botocore's service id) both turn a
    boto3 client name into an IAM action prefix; tools/ cannot import the layer, so the two are kept in
    agreement here, for every client the functions and the layer ask for and every one the layer's map names."""
    from opsflow.iam_names import IAM_PREFIXES, action_name
    from sandbox.authorization import client_iam_prefix

    sources = [*ROOT.joinpath("functions").glob("*/app.py"), *ROOT.joinpath("layers", "shared", "opsflow").glob("*.py")]
    used = {name for path in sources for name in re.findall(r'client\("([a-z0-9-]+)"\)', path.read_text("utf-8"))}
    assert "elbv2" in used and "ssm" in used
    for service in sorted(used | set(IAM_PREFIXES)):
        assert action_name(service, "Describe") == f"{client_iam_prefix(service)}:Describe", service


def _scopes(definition: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Each list of states a Next can reach: the machine's own, and each Map's and Parallel branch's."""
    yield prefix or "top level", definition["States"]
    for name, state in definition["States"].items():
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from _scopes(inner, f"{prefix}{name} > ")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from _scopes(branch, f"{prefix}{name} [{i}] > ")


def _successors(state: dict[str, Any]) -> list[str]:
    rules = state.get("Choices", []) + state.get("Catch", [])
    return [t for t in [state.get("Next"), state.get("Default"), *(r.get("Next") for r in rules)] if t]


@pytest.mark.parametrize("machine", sorted(definitions()))
def test_no_choice_is_reached_only_from_another_choice(machine: str) -> None:
    """Such a pair is one question asked in two billed transitions; a Choice that other states reach
    too stays on its own, since merging it would copy its rules."""
    chained = []
    for where, scope in _scopes(definitions()[machine]):
        reached_from: dict[str, set[str]] = {}
        for name, state in scope.items():
            for target in _successors(state):
                reached_from.setdefault(target, set()).add(name)
        chained += [
            f"{where}: {source!r} -> {name!r}"
            for name, state in scope.items()
            if state["Type"] == "Choice" and len(reached_from.get(name, set())) == 1
            for source in reached_from[name]
            if scope[source]["Type"] == "Choice"
        ]
    assert not chained, f"merge each pair into one Choice (a transition fewer per pass): {chained}"
