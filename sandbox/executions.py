"""Execution control: start executions, run simulated time until they end, read their histories.

Simulated time moves only inside :meth:`Executions.wait` and :meth:`Executions.run_until`: between two
calls everything stands still (docs/sandbox.md, "Time").
"""

import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox import moto_patches
from sandbox.environment import client
from sandbox.scheduler import Scheduler, Stalled


@dataclass
class ExecutionResult:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]

    def largest_payload(self) -> int:
        """UTF-8 bytes of the largest state input, state output or task input/result in the history
        (each limited to 256 KiB: Step Functions service quotas)."""
        sizes = [
            len(str(details[field]).encode())
            for event in self.events
            for key, details in event.items()
            if key.endswith("EventDetails") and isinstance(details, dict)
            for field in ("input", "output", "parameters")
            if field in details
        ]
        return max(sizes, default=0)

    @property
    def sim_seconds(self) -> float:
        """Simulated duration from the first to the last history event."""
        if not self.events:
            return 0.0
        return float((self.events[-1]["timestamp"] - self.events[0]["timestamp"]).total_seconds())


class Executions:
    """Every execution the sandbox started, and the simulation loop that runs them.

    ``on_ended``: told each DescribeExecution answer of an execution that ended, when a caller reads
    its result (EventBridge's status-change event). ``check``: raises when a run did something the
    sandbox cannot vouch for (a call IAM could not be asked about).
    """

    def __init__(
        self,
        scheduler: Scheduler,
        names: random.Random,
        on_ended: Callable[[dict[str, Any]], None],
        check: Callable[[], None],
    ) -> None:
        self.scheduler = scheduler
        self._names = names
        self._on_ended = on_ended
        self._check = check
        self.started: list[str] = []
        self.child_managers: list[Any] = []  # moto's event managers of Distributed Map children

    def start(self, state_machine_arn: str, payload: Any, name: str | None = None) -> str:
        """Start an execution; it runs up to its first wait (no simulated time passes) before this returns."""
        arn = client("stepfunctions").start_execution(
            stateMachineArn=state_machine_arn,
            name=name or f"run-{self._names.getrandbits(48):012x}",
            input=json.dumps(payload),
        )["executionArn"]
        self.started.append(arn)
        return str(arn)

    def running(self, execution_arn: str) -> bool:
        return moto_patches.execution_running(execution_arn)

    def wait(self, execution_arn: str, timeout: float = 120.0) -> ExecutionResult:
        """Run the simulation until the execution ends.

        ``timeout`` is wall seconds, a safety net (TimeoutError). When the execution waits for
        something only the caller can do (a task token) and nothing else can happen, raises
        :class:`sandbox.scheduler.Stalled` (a TimeoutError) at once.
        """
        try:
            self.scheduler.run(until=lambda: not self.running(execution_arn), timeout=timeout)
        except Stalled as exc:
            raise Stalled(f"{execution_arn} is still RUNNING: {exc}") from None
        return self.result(execution_arn)

    def run_until(
        self, condition: Callable[[], bool] | None = None, *, at: float | None = None, timeout: float = 120.0
    ) -> bool:
        """Run the simulation until ``condition()`` holds or simulated time reaches ``at`` (epoch seconds).

        ``condition`` is checked whenever every sandbox thread waits, before the clock moves: it may
        read anything and call AWS (nothing runs meanwhile). With ``at``, the clock stops exactly
        there, everything due by then having run. Returns whether ``condition`` held (True if none).
        Raises :class:`sandbox.scheduler.Stalled` when neither can happen any more.
        """
        held = [condition is None]

        def check() -> bool:
            held[0] = condition is None or bool(condition())
            return condition is not None and held[0]

        self.scheduler.run(until=check, at=at, timeout=timeout)
        return held[0]

    def result(self, execution_arn: str, described: dict[str, Any] | None = None) -> ExecutionResult:
        described = described or client("stepfunctions").describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            self._on_ended(described)
        self._check()
        output = json.loads(described["output"]) if described.get("output") else None
        return ExecutionResult(
            execution_arn,
            described["status"],
            output,
            described.get("error"),
            described.get("cause"),
            self.history(execution_arn),
        )

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        pages = client("stepfunctions").get_paginator("get_execution_history")
        return [e for page in pages.paginate(executionArn=execution_arn) for e in page["events"]]

    def stop(self, execution_arn: str, cause: str = "stopped by an operator") -> None:
        """StopExecution now (at the current simulated instant)."""
        client("stepfunctions").stop_execution(executionArn=execution_arn, error="Sandbox.Stopped", cause=cause)

    def child_histories(self) -> list[list[dict[str, Any]]]:
        """The history of each Distributed Map child execution so far, in the order they started."""
        return [[dict(e) for e in manager.get_event_history()] for manager in self.child_managers]

    def child_events(self) -> list[dict[str, Any]]:
        """Events of every Distributed Map child execution so far (on AWS: their own histories)."""
        return [event for history in self.child_histories() for event in history]

    def stop_all(self) -> None:
        """Stop every execution still running and let them unwind (a task waiting for its token ends at
        its timeout: at once in simulated time)."""
        sfn = client("stepfunctions")
        running = [arn for arn in self.started if self.running(arn)]
        for arn in running:
            sfn.stop_execution(executionArn=arn, error="Sandbox.Closed", cause="sandbox closed")
        with contextlib.suppress(TimeoutError):
            self.scheduler.run(until=lambda: not any(self.running(arn) for arn in running), timeout=30)
