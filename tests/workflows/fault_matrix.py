"""The fault matrix: every Task state of a workflow (and every Map state's ItemReader), read from its ASL,
under every fault kind.

The cases are enumerated from statemachines/*.asl.json when the tests are collected, so a Task state
added later is covered without a new test. What each case must show is derived from the ASL (a retried
error leaves the run's end unchanged; a caught one goes where its Catch says) and from the invariants
in tests/workflows/conftest.py; what it did is written to docs/fault-matrix.md (`make docs`), and each
case fails when the table says otherwise.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session

from sandbox.runtime import ExecutionResult
from template_model import ROOT
from tools.asl import calls, definitions, states

DOC = ROOT / "docs" / "fault-matrix.md"
# Set by `python -m tools.fault_matrix`: each case writes what it observed here instead of comparing.
RECORD_ENV = "OPSFLOW_FAULT_MATRIX_RECORD"
MACHINES = {"RollingRestartStateMachine": "rolling_restart", "PatchPreviewStateMachine": "patch_preview"}
FAULTS = ("stop", "transient", "permanent", "lost response")
# How EventBridge may deliver the run's status-change event (best effort), and when a second run starts.
DELIVERIES = ("drop", "duplicate", "delay")
OFFSETS = ("same instant", "during the plan", "during the approval wait", "during the restart")
STATUS_EVENT, SECOND_RUN = "status-change event", "second run"

# The error each fault kind injects into a Task's own call, by service (botocore service id).
# transient: the service's throttling answer, once (Lambda Invoke: TooManyRequestsException, "Lambda API
#   reference, Invoke, Errors"; DynamoDB: ThrottlingException, "Error handling with DynamoDB"; ELB:
#   Throttling; SNS: Throttled; SQS: RequestThrottled; S3: SlowDown, "503 Slow Down", S3 API reference,
#   "Error responses").
# lost response: a server-side error after the call took effect (Lambda ServiceException, DynamoDB
#   InternalServerError, ELB InternalFailure, SNS/SQS/S3 InternalError: HTTP 500, the request may have
#   been carried out).
# permanent: what a missing permission answers, on every attempt (docs/sandbox.md, "A denial").
THROTTLED = {
    "lambda": "TooManyRequestsException",
    "dynamodb": "ThrottlingException",
    "elastic-load-balancing-v2": "Throttling",
    "auto-scaling": "Throttling",
    "sns": "Throttled",
    "sqs": "RequestThrottled",
    "s3": "SlowDown",
}
SERVER_ERROR = {
    "lambda": "ServiceException",
    "dynamodb": "InternalServerError",
    "elastic-load-balancing-v2": "InternalFailure",
    "auto-scaling": "InternalFailure",
    "sns": "InternalError",
    "sqs": "InternalError",
    "s3": "InternalError",
}
DENIED = {
    "lambda": "AccessDeniedException",
    "dynamodb": "AccessDeniedException",
    "elastic-load-balancing-v2": "AccessDenied",
    "auto-scaling": "AccessDenied",
    "sns": "AuthorizationError",
    "sqs": "AccessDenied",
    "s3": "AccessDenied",
}
EVERY_ATTEMPT = 99


@dataclass(frozen=True)
class TaskState:
    """A state's own call, as its ASL declares it: a Task state's, or a Map state's ItemReader read."""

    machine: str  # the template's logical id
    name: str
    path: str  # "Map state > Inner state" for states of a Map's ItemProcessor
    service: str  # botocore service id, as the sandbox's bridge names calls
    operation: str
    retry: tuple[tuple[str, ...], ...] = field(compare=False)
    catch: tuple[tuple[tuple[str, ...], str], ...] = field(compare=False)
    part: str = ""  # "ItemReader" for a Map state's read of its items

    @property
    def in_map(self) -> bool:
        return " > " in self.path

    @property
    def label(self) -> str:
        """The table's name for it: the state's, with the part of the state that calls."""
        return f"{self.name} ({self.part})" if self.part else self.name

    def retried(self, error: str) -> bool:
        """Whether a Retrier of this state takes ``error`` (States.ALL; States.TaskFailed: any task error)."""
        return any(_matches(names, error) for names in self.retry)

    def catcher(self, error: str) -> str | None:
        """The state a Catch of this state sends ``error`` to; None when nothing catches it."""
        return next((target for names, target in self.catch if _matches(names, error)), None)


def _matches(names: tuple[str, ...], error: str) -> bool:
    return error in names or "States.ALL" in names or ("States.TaskFailed" in names and error != "States.Timeout")


def _service_id(boto3_name: str) -> str:
    return str(botocore.session.get_session().get_service_model(boto3_name).service_id.hyphenize())


def task_states(machine: str) -> list[TaskState]:
    """Every Task state of ``machine`` (parent and Map item processors) and every Map state's ItemReader,
    in the ASL's order."""
    definition = definitions()[MACHINES[machine]]
    return [
        TaskState(
            machine,
            task.path.rsplit(" > ", 1)[-1],
            task.path,
            _service_id(task.service),
            task.operation,
            tuple(tuple(r["ErrorEquals"]) for r in task.state.get("Retry", []) if r.get("MaxAttempts", 3) > 0),
            tuple((tuple(c["ErrorEquals"]), c["Next"]) for c in task.state.get("Catch", [])),
            task.part,
        )
        for task in calls(definition)
    ]


def state_names(machine: str) -> set[str]:
    return {path.rsplit(" > ", 1)[-1] for path, _ in states(definitions()[MACHINES[machine]])}


def inject(sb: Any, task: TaskState, fault: str, item: int | None = None) -> None:
    """Arm ``fault`` at ``task`` in the sandbox (the first execution to get there). ``item``: at a state of a
    Map's item processor, only in the item of that index (one child execution of a Distributed Map); a stop
    stops the execution all the same."""
    if fault == "stop":
        sb.stop_when_entering(task.name, cause="fault matrix: stopped on entering the state")
    elif fault == "transient":
        sb.inject_api_error(task.service, task.operation, THROTTLED[task.service], state=task.name, item=item)
    elif fault == "permanent":
        code = DENIED[task.service]
        sb.inject_api_error(task.service, task.operation, code, EVERY_ATTEMPT, state=task.name, item=item)
    elif fault == "lost response":
        code = SERVER_ERROR[task.service]
        sb.inject_api_error(task.service, task.operation, code, state=task.name, lost_response=True, item=item)
    else:
        raise ValueError(f"unknown fault {fault!r}: one of {', '.join(FAULTS)}")


# -- what happened: the histories, read the way the ASL routes errors ------------------------------
def histories(sb: Any, result: ExecutionResult) -> list[list[dict[str, Any]]]:
    """The run's history and each Distributed Map child's (on AWS: child executions of their own)."""
    return [result.events, *sb.child_histories()]


def failures_at(history: list[dict[str, Any]], state: str) -> list[tuple[str, str | None]]:
    """Each failed attempt of ``state`` in one history: (its error, the state entered next, if any). A Task's
    call fails its task; a Map's ItemReader read fails its Map Run (MapRunFailed, with the error)."""
    found: list[tuple[str, str | None]] = []
    current, pending = None, None
    for event in history:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            if pending is not None:
                found.append((pending, entered["name"]))
                pending = None
            current = entered["name"]
        failed = (
            event.get("taskFailedEventDetails")
            or event.get("lambdaFunctionFailedEventDetails")
            or event.get("mapRunFailedEventDetails")
        )
        if failed and failed.get("error") and current == state:
            if pending is not None:
                found.append((pending, None))  # retried: the same state again, no state entered between
            pending = failed["error"]
    if pending is not None:
        found.append((pending, None))
    return found


def succeeded(sb: Any, result: ExecutionResult, state: str) -> bool:
    """Whether a call of ``state`` succeeded in the run or a child of it (so it had an effect to lose)."""
    for history in histories(sb, result):
        current = None
        for event in history:
            current = event.get("stateEnteredEventDetails", {}).get("name", current)
            if current == state and event["type"] in ("TaskSucceeded", "LambdaFunctionSucceeded"):
                return True
    return False


def entered(sb: Any, result: ExecutionResult, state: str) -> bool:
    return any(e.get("stateEnteredEventDetails", {}).get("name") == state for h in histories(sb, result) for e in h)


# -- the table in docs/fault-matrix.md --------------------------------------------------------
def case_id(machine: str, state: str, fault: str) -> str:
    return f"{MACHINES[machine]} | {state} | {fault}"


def documented() -> dict[str, str]:
    """case id -> the outcome docs/fault-matrix.md records for it."""
    rows: dict[str, str] = {}
    if not DOC.exists():
        return rows
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in MACHINES.values():
            rows[" | ".join(cells[:3]).replace("`", "")] = cells[3]
    return rows


def check_documented(case: str, outcome: str) -> None:
    """Record the outcome (when the tool runs the matrix), else fail if the table says otherwise."""
    record_dir = os.environ.get(RECORD_ENV)
    if record_dir:
        path = Path(record_dir) / f"{os.getpid()}.jsonl"  # one file per pytest worker
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"case": case, "outcome": outcome}) + "\n")
        return
    table = documented()
    assert table.get(case) == outcome, (
        f"docs/fault-matrix.md says {table.get(case)!r} for {case!r}, the run did {outcome!r}: "
        "if the new behaviour is right, run `make docs`"
    )


def all_cases() -> list[str]:
    """Every case id of the matrix, in the table's order."""
    restart = "RollingRestartStateMachine"
    return [
        *(case_id(restart, t.label, f) for t in task_states(restart) for f in FAULTS),
        *(case_id(restart, STATUS_EVENT, d) for d in DELIVERIES),
        *(case_id(restart, SECOND_RUN, o) for o in OFFSETS),
        *(
            case_id("PatchPreviewStateMachine", t.label, f)
            for t in task_states("PatchPreviewStateMachine")
            for f in FAULTS
        ),
    ]
