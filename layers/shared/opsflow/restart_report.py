"""What the rolling restart's reporter says and records, decided over plain data (no AWS call, no clock).

The reporter (functions/restart_reporter) reads the run table, places instances (opsflow.placement)
and publishes; this module turns what it read into the outcome to record, the alert about a failed
instance, and the run's summary. Its events are one discriminated union on ``action``, the value the
state machine's two report states pass (tests/tools/test_asl_conventions.py checks they agree).
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsflow import arns, placement
from opsflow.health import HealthCheck

# The target gate deregisters the instance, then waits for the drain; and registers it again, then waits
# until it is healthy: one state each, two times each.
DEREGISTER_AND_WAIT = "Deregister the instance and wait until it has drained from every target group"
REGISTER_AND_WAIT = "Register the instance and wait until it is healthy in every target group"
# Per-instance steps in order, keyed as the state machine records their times, with state names.
STEPS = [
    ("deregistered", DEREGISTER_AND_WAIT),
    ("drained", DEREGISTER_AND_WAIT),
    ("rebooted", "Reboot the instance"),
    ("down", "Wait until the reboot has begun"),
    ("ready", "Check the application is up"),
    ("registered", REGISTER_AND_WAIT),
    ("healthy", REGISTER_AND_WAIT),
]
# Where a step's time is recorded when not at $.times.<key>: each change's beside its wait's.
RECORDED_IN = {"deregistered": "$.times.drained.deregisteredAt", "registered": "$.times.healthy.registeredAt"}
# With the command action, the action's two steps are the command's (the times are recorded under the same keys).
COMMAND_STEPS = [
    *STEPS[:2],
    ("commandSent", "Run the command on the instance"),
    ("commandFinished", "Wait until the command has finished"),
    *STEPS[4:],
]
COLUMNS = {"rebooted": "sent", "down": "finished"}  # the summary's column names for a command run
NOT_TAKEN_OUT = "left as it was: this run had not taken it out of service"


class RunRef(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    execution_arn: str = Field(alias="executionArn")
    target_group_arn: str = Field(alias="targetGroupArn")
    health: HealthCheck | None = None
    expected_boot_seconds: int = Field(default=0, alias="expectedBootSeconds", ge=0)
    action: str = "reboot"


class Failure(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Error: str = "Unknown"
    Cause: str = ""


class InstanceFailedEvent(BaseModel):
    """An instance's restart failed: alert, count it, and leave the instance in a safe place."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    action: Literal["instance_failed"]
    instance_id: str = Field(alias="instanceId")
    run: RunRef
    times: dict[str, Any] = Field(default_factory=dict)
    failure: Failure


class SummaryEvent(BaseModel):
    """The run ended (or stopped early): mail its summary."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    action: Literal["summary"]
    run: RunRef
    instance_count: int = Field(alias="instanceCount", ge=0)
    error: Failure | None = None


# The reporter's event: one of these, by its ``action`` (opsflow.validation.parse_tagged).
EVENTS: tuple[type[BaseModel], ...] = (InstanceFailedEvent, SummaryEvent)


def cause_text(failure: Failure) -> str:
    """Lambda errors carry a JSON Cause; show its message, not the stack trace."""
    try:
        cause = json.loads(failure.Cause)
    except ValueError:
        return failure.Cause
    return str(cause.get("errorMessage", failure.Cause)) if isinstance(cause, dict) else failure.Cause


def failed_step(times: dict[str, Any], action: str = "reboot") -> str:
    """The state the instance's restart failed at: the first step that recorded no time."""
    for key, state_name in COMMAND_STEPS if action == "command" else STEPS:
        if _time_of(times, key) is None:
            return state_name
    return "Record the instance as restarted"


def _time_of(times: dict[str, Any], key: str) -> str | None:
    """A step's time from the state machine's ``$.times``: its own ``{"at": ...}``, or a field of the result
    of the state that made it (RECORDED_IN)."""
    path = RECORDED_IN.get(key)
    if path is None:
        value = times.get(key)
        return value.get("at") if isinstance(value, dict) else value
    carrier, field = path.split(".")[2:]
    value = times.get(carrier)
    return value.get(field) if isinstance(value, dict) else None


def failure_outcome(event: InstanceFailedEvent, before: dict[str, Any] | None, placed: str) -> dict[str, Any]:
    """The failed instance's record: what the run saw of it (the follow-up decides from it), its step,
    error and placement, and the steps' times."""
    progress = {k: v for k, v in (before or {}).items() if k not in placement.KEYS and k != placement.FOLLOW_UP}
    return progress | {
        "outcome": "failed",
        "step": failed_step(event.times, event.run.action),
        "error": event.failure.Error,
        "cause": cause_text(event.failure)[:2000],
        "placement": placed,
        "times": {k: at for k, _ in STEPS + COMMAND_STEPS if (at := _time_of(event.times, k)) is not None},
    }


def follow_up_text(progress: dict[str, Any], boot_seconds: int) -> str:
    until = dt.datetime.fromtimestamp(placement.deadline(progress, boot_seconds), dt.UTC).strftime("%H:%M UTC")
    return (
        f"It is followed up: put back in service (every target group, its port) as soon as its application "
        f"answers, until {until}; if it does not, it stays out, and this is the only alert about it.\n"
    )


def alert(execution_arn: str, instance_id: str, outcome: dict[str, Any], extra: str = "") -> tuple[str, str]:
    """The subject and text of the one alert naming a failed instance: its step, its error, where it was left."""
    return (
        f"opsflow: {instance_id} failed to restart ({outcome['error']})",
        f"Instance {instance_id} failed at step '{outcome['step']}'.\n"
        f"Error: {outcome['error']}\nCause: {outcome.get('cause', '')}\nAfterwards it was {outcome['placement']}.\n"
        f"{extra}Execution: {execution_arn}\n",
    )


def failure_alert(
    run: RunRef, instance_id: str, outcome: dict[str, Any], followed_up: bool, failures: int
) -> tuple[str, str]:
    """The alert sent when the failure is reported: followed up or not, and the run's failures so far."""
    extra = follow_up_text(outcome, run.expected_boot_seconds) if followed_up else ""
    return alert(run.execution_arn, instance_id, outcome, f"{extra}Failures in this run so far: {failures}.\n")


def unreported_alert(run: RunRef, outcome: dict[str, Any]) -> tuple[str, str]:
    """The alert the summary sends for a failed instance no alert named (its report failed, or never ran)."""
    extra = follow_up_text(outcome, run.expected_boot_seconds) if outcome.get(placement.FOLLOW_UP) else ""
    return alert(
        run.execution_arn, outcome["instanceId"], outcome, extra + "Its failure was not reported when it happened.\n"
    )


def interrupted_outcome(item: dict[str, Any], decided: placement.Verdict, where: str) -> dict[str, Any]:
    """The record of an instance whose restart ended without a report, once placed: a failure either
    way; while it may still come up, out of its groups and followed up."""
    outcome = {k: v for k, v in item.items() if k not in placement.KEYS} | placement.INTERRUPTED
    if decided is not placement.Verdict.WAIT:
        return outcome | {"placement": where}
    return outcome | {"placement": f"out of its target groups, {where}", placement.FOLLOW_UP: True}


def stopped_on_alarm(run: dict[str, Any], counts: dict[str, int], not_started: int, execution_arn: str) -> str | None:
    """What to tell when watched alarms stopped the run (the capacity gate recorded them); None if they did not."""
    stop = run.get("stoppedOnAlarm")
    if not stop:
        return None
    left = counts["skipped"] + counts["failed"] + not_started
    return (
        f"Stopped on alarm {', '.join(stop.get('alarms', []))} (in ALARM at {stop.get('at', '?')}): no instance "
        f"was taken out after it, those in flight finished; {counts['restarted']} restarted, {left} not. "
        f'Once the alarm is OK, continue with {{"resumeFrom": "{execution_arn}"}}.'
    )


def _clock(iso: str | None) -> str:
    return dt.datetime.fromisoformat(iso).strftime("%H:%M:%S") if iso else "-"


def _out_of_service(times: dict[str, Any]) -> str:
    start, end = times.get("deregistered"), times.get("healthy")
    if not start or not end:
        return "-"
    seconds = (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
    return f"{seconds:.0f} s"


@dataclass(frozen=True)
class Summary:
    """The summary mail and the state's result."""

    subject: str
    message: str
    result: dict[str, Any]


def summarize(
    event: SummaryEvent,
    outcomes: list[dict[str, Any]],
    run_record: dict[str, Any],
    commands: dict[str, dict[str, Any]],
) -> Summary:
    """Per-instance outcome and step times of the run; ``outcomes`` sorted by instance, each placed."""
    counts = {"restarted": 0, "failed": 0, "skipped": 0}
    for outcome in outcomes:
        counts[outcome["outcome"]] = counts.get(outcome["outcome"], 0) + 1
    not_started = max(0, event.instance_count - len(outcomes))
    stopped = stopped_on_alarm(run_record, counts, not_started, event.run.execution_arn)
    ok = counts["failed"] == 0 and not_started == 0 and event.error is None and stopped is None
    group = event.run.target_group_arn.split(":")[-1]
    verdict = "succeeded" if ok else ("STOPPED on alarm" if stopped else "FAILED")
    subject = (
        f"opsflow rolling restart {verdict}: {counts['restarted']} restarted, "
        f"{counts['failed']} failed ({arns.group_name(event.run.target_group_arn)})"
    )
    lines = [
        f"Rolling restart of {group}: {verdict}",
        f"Execution: {event.run.execution_arn}",
        f"Instances: {counts['restarted']} restarted, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {not_started} not started",
    ]
    if stopped is not None:
        lines.append(stopped)
    if event.error is not None:
        lines.append(f"The run stopped early: {event.error.Error}: {cause_text(event.error)}")
    command = event.run.action == "command"
    columns = [COLUMNS.get(k, k) if command else k for k, _ in STEPS]
    lines += [
        "",
        f"{'instance':<21} {'outcome':<10} " + " ".join(f"{c:<12}" for c in columns) + " out of service",
    ]
    for o in outcomes:
        times = o.get("times", {})
        row = f"{o['instanceId']:<21} {o['outcome']:<10} " + " ".join(f"{_clock(times.get(k)):<12}" for k, _ in STEPS)
        lines.append(f"{row} {_out_of_service(times)}")
        sent = commands.get(o["instanceId"])
        if sent:
            lines.append(
                f"    command {sent.get('commandId', '')} ({sent.get('documentName', '')}): "
                f"{sent.get('statusDetails', sent.get('status', ''))}"
                + (f", output {sent['outputUrl']}" if sent.get("outputUrl") else "")
            )
        if o["outcome"] != "restarted":
            lines.append(f"    {o.get('step', '')}: {o.get('error', '')}: {o.get('cause', o.get('reason', ''))}")
            if o.get("placement"):
                lines.append(f"    afterwards it was {o['placement']}")
    result = {**counts, "notStarted": not_started, "succeeded": ok, "subject": subject, "stoppedOnAlarm": stopped}
    return Summary(subject, "\n".join(lines) + "\n", result)
