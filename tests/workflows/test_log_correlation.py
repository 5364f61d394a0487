"""One run's log lines join across the functions it invokes: each carries the run's execution ARN
(Powertools' correlation id, from the ``executionArn`` every Lambda task passes), and no other run's."""

import json
from collections.abc import Callable
from typing import Any

from sandbox.fleet import FleetSpec, Spread
from sandbox.runtime import Sandbox
from tests.workflows.conftest import SM, web_input

FLEET = FleetSpec(size=4, boot=Spread(45, 0.0), readiness=Spread(30, 0.0), seed=3)
# The functions a plain rolling restart has log at INFO (the others only emit metrics, or nothing).
LOGGING_AT_INFO = {"RestartPlannerFunction", "InstanceActionFunction", "AlarmTogglerFunction", "StartupCheckFunction"}


def entries(lines: list[str]) -> list[dict[str, Any]]:
    """The Logger's lines (JSON with a level; metrics lines have none)."""
    return [entry for line in lines if line.startswith("{") and "level" in (entry := json.loads(line))]


def test_each_function_s_log_lines_carry_the_execution_arn_of_the_run_that_invoked_it(
    open_sandbox: Callable[..., Sandbox],
) -> None:
    with Sandbox(FLEET):  # an earlier sandbox at the default level (ERROR) configures the layer's Logger first
        pass
    sb = open_sandbox(FLEET, log_level="INFO")

    first = sb.run(SM, web_input(batchSize=2))
    logged_by_first = {function: len(lines) for function, lines in sb.lambdas.logs.items()}
    second = sb.run(SM, web_input(batchSize=2))

    assert first.status == second.status == "SUCCEEDED", (first.cause, second.cause)
    for run, of_second in ((first, False), (second, True)):
        logged = {
            f: entries(lines[logged_by_first.get(f, 0) :] if of_second else lines[: logged_by_first.get(f, 0)])
            for f, lines in sb.lambdas.logs.items()
        }
        assert {f for f, found in logged.items() if found} >= LOGGING_AT_INFO, "this sandbox's level applies"
        for function, found in logged.items():
            ids = {entry.get("correlation_id") for entry in found}
            assert ids <= {run.arn}, f"{function}: lines of {run.arn} carry {ids - {run.arn}}"
