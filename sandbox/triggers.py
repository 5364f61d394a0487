"""Functions invoked outside state machines, as their triggers would invoke them.

EventBridge's "Step Functions Execution Status Change" events to the functions whose rules match
(with EventBridge's best-effort delivery as a fault: dropped, duplicated, delayed), EventBridge
Scheduler's schedules (ScheduleV2), and HTTP requests to function URLs.
"""

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from sandbox import moto_patches
from sandbox.aws_fleet import ApiCall, AwsBridge
from sandbox.clock import SimClock
from sandbox.deployer import event_rules
from sandbox.environment import ACCOUNT, REGION, client
from sandbox.lambdas import LambdaRuntime
from sandbox.scheduler import Scheduler, Timer
from template_model import Stack

# What happens to "Step Functions Execution Status Change" events, which EventBridge delivers on a
# best-effort basis: once (as usual), dropped, duplicated, or delayed by status_event_delay seconds.
STATUS_EVENT_MODES = ("once", "drop", "duplicate", "delay")


@dataclass
class StatusEvent:
    """One status-change event and its fate: delivered (each function's answer, the API calls made
    meanwhile) or dropped."""

    execution_arn: str
    status: str
    fate: str  # "delivered" or "dropped"
    at: float  # simulated time of delivery (or of the drop)
    answers: dict[str, Any] = field(default_factory=dict)  # function name -> what it returned
    calls: list[ApiCall] = field(default_factory=list)


class FunctionFailed(Exception):
    """A function invoked by the sandbox (not by a state machine) raised; its error type and message."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function} failed: {error_type}: {message}")
        self.error_type = error_type


def check_status_event_mode(status_events: str, status_event_delay: float) -> None:
    if status_events not in STATUS_EVENT_MODES:
        raise ValueError(f"status_events must be one of {', '.join(STATUS_EVENT_MODES)}, not {status_events!r}")
    if status_event_delay < 0:
        raise ValueError(f"status_event_delay must be 0 or more simulated seconds, not {status_event_delay}")


def random_uuid(names: random.Random) -> str:
    """A version 4 UUID from the sandbox's seeded randomness (the same on every run)."""
    return str(uuid.UUID(int=names.getrandbits(128), version=4))


class Triggers:
    """``bridge``'s log of API calls tells which calls a status-change delivery made."""

    def __init__(
        self,
        stack: Stack,
        lambdas: LambdaRuntime,
        scheduler: Scheduler,
        clock: SimClock,
        *,
        names: random.Random,
        bridge: AwsBridge,
        status_events: str,
        status_event_delay: float,
    ) -> None:
        self.stack = stack
        self.lambdas = lambdas
        self.scheduler = scheduler
        self.clock = clock
        self._names = names
        self.bridge = bridge
        self.status_events = status_events
        self.status_event_delay = status_event_delay
        self.status_event_log: list[StatusEvent] = []
        self._timers: list[Timer] = []
        self._delivered: set[str] = set()

    # -- EventBridge: execution status changes ---------------------------------------------
    def deliver_status_change(self, described: dict[str, Any]) -> None:
        """EventBridge: "Step Functions Execution Status Change" to the functions whose rules match.

        Once per execution, when the sandbox sees it end (as EventBridge would, seconds later), unless
        ``status_events`` says to drop, duplicate or delay it: EventBridge documents these events as
        best-effort delivery, and its targets may see an event twice.
        """
        arn = described["executionArn"]
        if arn in self._delivered:
            return
        self._delivered.add(arn)
        event = {
            "version": "0",
            "id": random_uuid(self._names),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": ACCOUNT,
            "time": self.clock.now_datetime().isoformat(),
            "region": REGION,
            "resources": [arn],
            "detail": {
                "executionArn": arn,
                "stateMachineArn": described["stateMachineArn"],
                "name": described.get("name"),
                "status": described["status"],
                "input": described.get("input"),
                "output": described.get("output"),
                "error": described.get("error"),
                "cause": described.get("cause"),
            },
        }
        if self.status_events == "drop":
            self.status_event_log.append(StatusEvent(arn, described["status"], "dropped", self.clock.now()))
        elif self.status_events == "delay":
            self._timers.append(
                self.scheduler.call_later(self.status_event_delay, lambda: self._deliver(event), "status-event")
            )
        else:
            for _ in range(2 if self.status_events == "duplicate" else 1):
                self._deliver(event)

    def execution_ended(self, execution_arn: str) -> None:
        """A nested execution (started by a workflow's Task, not by the caller) has ended: EventBridge
        reports it like any other, when it ends. The caller's own executions are reported when the
        sandbox sees them end (:meth:`sandbox.executions.Executions.result`)."""
        if not moto_patches.started_by_a_workflow(execution_arn):
            return

        def report() -> None:
            described = client("stepfunctions").describe_execution(executionArn=execution_arn)
            self.deliver_status_change(described)

        self._timers.append(self.scheduler.call_later(0, report, "status-event"))

    def _deliver(self, event: dict[str, Any]) -> None:
        first_call = len(self.bridge.calls)
        answers = {}
        for function_name, rule_name, pattern in event_rules(self.stack):
            # A disabled rule delivers nothing (read from moto's backend: no API call the run would count).
            enabled = moto_patches.event_rule_enabled(ACCOUNT, REGION, rule_name)
            if enabled and moto_patches.event_pattern_matches(pattern, event):
                payload, _, _ = self.lambdas.invoke(function_name, json.dumps(event))
                answers[function_name] = json.loads(payload)
        detail = event["detail"]
        delivered = StatusEvent(detail["executionArn"], detail["status"], "delivered", self.clock.now(), answers)
        delivered.calls = self.bridge.calls[first_call:]
        self.status_event_log.append(delivered)

    def status_events_pending(self) -> bool:
        return not all(timer.done for timer in self._timers)

    def cancel_pending(self) -> None:
        """A delayed event not delivered yet never will be."""
        for timer in self._timers:
            timer.cancel()

    # -- EventBridge Scheduler -------------------------------------------------------------
    def fire_schedule(self, logical_id: str, template_name: str) -> Any:
        """Invoke a function as its EventBridge Scheduler schedule (ScheduleV2) would, now.

        The schedule's Input is sent with the scheduler's context attributes filled in at the current
        simulated time. Returns what the function returned; FunctionFailed if it raised.
        """
        function = self.stack.resources("AWS::Serverless::Function").get(logical_id)
        if function is None:
            raise KeyError(f"no function {logical_id!r} in {template_name}")
        schedules = {
            event_id: self.stack.resolve(source["Properties"])
            for event_id, source in function["Properties"].get("Events", {}).items()
            if source.get("Type") == "ScheduleV2"
        }
        if len(schedules) != 1:
            raise ValueError(f"{logical_id} has {len(schedules)} ScheduleV2 events; fire_schedule needs exactly one")
        ((event_id, schedule),) = schedules.items()
        if schedule.get("State", "ENABLED") != "ENABLED":
            raise ValueError(f"{logical_id}'s schedule {event_id} is {schedule['State']}: it would not fire")
        if "Input" not in schedule:
            raise ValueError(
                f"{logical_id}'s schedule {event_id} has no Input (the scheduler's default is not simulated)"
            )
        attributes = {
            "schedule-arn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{logical_id}{event_id}",
            "scheduled-time": self.clock.now_datetime().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "execution-id": random_uuid(self._names).replace("-", "")[:16],
            "attempt-number": "1",
        }
        text = str(schedule["Input"])
        for name, value in attributes.items():
            text = text.replace(f"<aws.scheduler.{name}>", value)
        payload, errored, _ = self.lambdas.invoke(self.stack.physical[logical_id]["Ref"], text)
        answer = json.loads(payload)
        if errored:
            raise FunctionFailed(logical_id, answer["errorType"], answer["errorMessage"])
        return answer

    # -- function URLs ---------------------------------------------------------------------
    def invoke_url(
        self, logical_id: str, method: str, query: str, body: str, check: Callable[[], None]
    ) -> dict[str, Any]:
        """An HTTP request to the function's URL (payload format 2.0), as a browser would send it."""
        spec = self.lambdas.by_logical_id(logical_id)
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/",
            "rawQueryString": query,
            # As Lambda sends it: parsed query parameters, absent when there are none.
            **({"queryStringParameters": dict(parse_qsl(query, keep_blank_values=True))} if query else {}),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
            "body": body,
            "isBase64Encoded": False,
            "requestContext": {
                "http": {
                    "method": method,
                    "path": "/",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "sandbox",
                },
                "requestId": random_uuid(self._names),
                "stage": "$default",
            },
        }
        payload, _, _ = self.lambdas.invoke(spec.function_name, json.dumps(event))
        check()
        return dict(json.loads(payload))
