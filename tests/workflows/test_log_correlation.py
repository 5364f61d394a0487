"""One run's log lines join across the functions it invokes: each carries the run's execution ARN."""

import json
from collections.abc import Callable

from sandbox.fleet import FleetSpec, Spread
from sandbox.runtime import Sandbox
from tests.workflows.conftest import SM, web_input


def test_every_log_line_of_a_rolling_restart_carries_its_execution_arn(open_sandbox: Callable[..., Sandbox]) -> None:
    sb = open_sandbox(FleetSpec(size=4, boot=Spread(45, 0.0), readiness=Spread(30, 0.0), seed=3), log_level="INFO")

    result = sb.run(SM, web_input(batchSize=2))

    assert result.status == "SUCCEEDED"
    lines = {
        function: [json.loads(line) for line in lines if line.startswith("{") and '"level"' in line]
        for function, lines in sb.lambdas.logs.items()
    }
    logged = {function for function, entries in lines.items() if entries}
    # Several of the run's steps (planner, muting, reboot, startup check...), not one function.
    assert len(logged) >= 3, logged
    for function, entries in lines.items():
        assert {entry.get("correlation_id") for entry in entries} <= {result.arn}, function
