"""Faults a test injects into a run: failing API calls, an alarm firing, an operator's StopExecution.

(Faults of the instances themselves are the fleet's: sandbox/fleet.py; of SSM commands: sandbox/commands.py;
of EventBridge's delivery: sandbox/triggers.py.)
"""

from dataclasses import dataclass
from typing import Any

from sandbox import moto_patches
from sandbox.aws_fleet import AwsBridge, InjectedApiError
from sandbox.clock import SimClock
from sandbox.environment import client
from sandbox.scheduler import Scheduler, Timer


@dataclass
class _StopRule:
    state_name: str
    execution_arn: str | None
    cause: str


class Faults:
    def __init__(self, bridge: AwsBridge, scheduler: Scheduler, clock: SimClock) -> None:
        self.bridge = bridge
        self.scheduler = scheduler
        self.clock = clock
        self._stop_rules: list[_StopRule] = []
        self._alarm_timers: list[Timer] = []  # alarms set to change state later (set_alarm_state)

    def inject_api_error(
        self,
        service: str,
        operation: str,
        code: str,
        count: int = 1,
        *,
        match: dict[str, Any] | None = None,
        lost_response: bool = False,
        state: str | None = None,
        item: int | None = None,
    ) -> None:
        """The next ``count`` calls of ``service``.``operation`` (with ``match``ing parameters) fail with ``code``.

        ``lost_response``: the calls take effect first, then fail (a response lost on the way back).
        ``state``: only the calls a state of that name makes itself (a Task's Lambda Invoke, SDK or
        optimized integration call; a Map's ItemReader read), in any execution; not the calls of the
        function it invokes. ``item``: only the calls made in the Map item of that index (``$$.Map.Item.Index``;
        in a Distributed Map, one child execution).
        """
        self.bridge.errors.append(
            InjectedApiError(service, operation, code, f"injected {code}", count, match, lost_response, state, item)
        )

    def set_alarm_state(self, alarm_name: str, state: str = "ALARM", *, after: float = 0.0) -> None:
        """The alarm goes to ``state`` ``after`` simulated seconds from now (at once if 0), as when its
        metric crosses the threshold: a watched alarm firing mid-run. Its actions are not run."""

        def change() -> None:
            client("cloudwatch").set_alarm_state(
                AlarmName=alarm_name, StateValue=state, StateReason=f"sandbox: {state} at simulated {self.clock.now()}"
            )

        if after <= 0:
            change()
        else:
            self._alarm_timers.append(self.scheduler.call_later(after, change, f"alarm {alarm_name} -> {state}"))

    def stop_when_entering(
        self, state_name: str, execution_arn: str | None = None, cause: str = "stopped by an operator"
    ) -> None:
        """Stop the execution (any, or ``execution_arn``) at the simulated instant it is about to enter ``state_name``.

        As StopExecution then: the state is not entered (no StateEntered event, nothing of it runs),
        the execution ends ABORTED with error ``Sandbox.Stopped`` and ``cause``. Once: the first
        execution to get there.
        """
        self._stop_rules.append(_StopRule(state_name, execution_arn, cause))

    def on_state(self, execution_arn: str, state_name: str) -> None:
        """The interpreter's hook before a state is entered: where a stop rule takes effect."""
        for rule in self._stop_rules:
            if rule.state_name == state_name and rule.execution_arn in (None, execution_arn):
                self._stop_rules.remove(rule)
                moto_patches.stop_execution(execution_arn, self.clock.now_datetime(), "Sandbox.Stopped", rule.cause)
                return

    def cancel_pending(self) -> None:
        """An alarm change not due yet never happens."""
        for timer in self._alarm_timers:
            timer.cancel()
