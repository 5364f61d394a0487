"""Reports of the rolling restart: an alert per failed instance, and the summary at the end.

``instance_failed``: names the instance, the step and the error in an SNS alert, counts the failure
against the run's error budget, and leaves the instance in a safe place: registered again only if its
application answers, kept out of the target group if it does not (followed up while it may still come
up: the reconciler puts it back once it answers, opsflow.placement).
``summary``: per-instance outcome and step times, published to the topic, and one alert for each failed
instance no report named (its report failed, or its restart ended without one); when a watched alarm
stopped the run, the alarm and how to resume it (``stoppedOnAlarm``, the cause of its Fail state).
"""

import datetime as dt
import json
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import notify, placement, targets, timeutil
from opsflow.health import HealthCheck
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, metrics, tracer
from opsflow.runs import OUT, RunTable
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_event

# Per-instance steps in order, keyed as the state machine records their times, with state names.
STEPS = [
    ("deregistered", "Deregister the instance from every target group"),
    ("drained", "Wait until the instance has drained"),
    ("rebooted", "Reboot the instance"),
    ("down", "Wait until the reboot has begun"),
    ("ready", "Check the application is up"),
    ("registered", "Register the instance with every target group"),
    ("healthy", "Wait until the instance is healthy in every target group"),
]
# With the command action, the action's two steps are the command's (the times are recorded under the same keys).
COMMAND_STEPS = [
    ("deregistered", "Deregister the instance from every target group"),
    ("drained", "Wait until the instance has drained"),
    ("commandSent", "Run the command on the instance"),
    ("commandFinished", "Wait until the command has finished"),
    ("ready", "Check the application is up"),
    ("registered", "Register the instance with every target group"),
    ("healthy", "Wait until the instance is healthy in every target group"),
]
COLUMNS = {"rebooted": "sent", "down": "finished"}  # the summary's column names for a command run


class Settings(RunTableSettings, NotificationSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


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
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    action: Literal["instance_failed"]
    instance_id: str = Field(alias="instanceId")
    run: RunRef
    times: dict[str, Any] = Field(default_factory=dict)
    failure: Failure


class SummaryEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    action: Literal["summary"]
    run: RunRef
    instance_count: int = Field(alias="instanceCount", ge=0)
    error: Failure | None = None


def _cause_text(failure: Failure) -> str:
    """Lambda errors carry a JSON Cause; show its message, not the stack trace."""
    try:
        cause = json.loads(failure.Cause)
    except ValueError:
        return failure.Cause
    return str(cause.get("errorMessage", failure.Cause)) if isinstance(cause, dict) else failure.Cause


def failed_step(times: dict[str, Any], action: str = "reboot") -> str:
    for key, state_name in COMMAND_STEPS if action == "command" else STEPS:
        if key not in times:
            return state_name
    return "Record the instance as restarted"


def _at(times: dict[str, Any], key: str) -> str | None:
    value = times.get(key)
    return value.get("at") if isinstance(value, dict) else value


def put_back_safely(run: RunRef, instance_id: str, progress: dict[str, Any]) -> tuple[placement.Verdict, str]:
    """In service only if its application answers (and is not the old process before a reboot); what was
    decided, and what was done. "wait": left out while it may still come up (the follow-up takes it on).

    Either way in every target group the run took it out of, on the port it was registered on there.
    """
    registrations = placement.registrations_of(progress, run.target_group_arn)
    up = run.health is not None and placement.answers(instance_id, run.health)
    running = placement.command_running(progress)
    decided = placement.verdict(progress, up, timeutil.epoch(), run.expected_boot_seconds, running)
    if decided is placement.Verdict.PUT_BACK:
        return decided, placement.register(registrations, instance_id, placement.restore_standby(progress))
    if targets.deregister(instance_id, registrations):
        return decided, "taken out of its target groups: its application does not answer"
    if running:
        return decided, "left out of its target groups: its SSM command still runs (it may reboot it)"
    return decided, "left out of its target groups: its application does not answer"


def publish(subject: str, message: str) -> None:
    notify.publish(settings().topic_arn, subject, message, rest_is_in="the run table")


def _follow_up_text(progress: dict[str, Any], boot_seconds: int) -> str:
    until = dt.datetime.fromtimestamp(placement.deadline(progress, boot_seconds), dt.UTC).strftime("%H:%M UTC")
    return (
        f"It is followed up: put back in service (every target group, its port) as soon as its application "
        f"answers, until {until}; if it does not, it stays out, and this is the only alert about it.\n"
    )


def alert(execution_arn: str, instance_id: str, outcome: dict[str, Any], extra: str = "") -> None:
    """The one alert naming a failed instance: its step, its error, where it was left."""
    publish(
        f"opsflow: {instance_id} failed to restart ({outcome['error']})",
        f"Instance {instance_id} failed at step '{outcome['step']}'.\n"
        f"Error: {outcome['error']}\nCause: {outcome.get('cause', '')}\nAfterwards it was {outcome['placement']}.\n"
        f"{extra}Execution: {execution_arn}\n",
    )


def instance_failed(event: InstanceFailedEvent) -> dict[str, Any]:
    """Count, place, record and alert: each step is safe to repeat when the state machine retries the report."""
    table, run, instance_id = RunTable(settings().table_name), event.run, event.instance_id
    step, cause = failed_step(event.times, run.action), _cause_text(event.failure)
    before = table.get_outcome(run.execution_arn, instance_id)  # None: this run never took it out
    failures = table.count_failure(run.execution_arn, instance_id)
    followed_up = False
    if before is None:
        placed = "left as it was: this run had not taken it out of service"
    else:
        decided, placed = put_back_safely(run, instance_id, before)
        followed_up = decided is placement.Verdict.WAIT
    # What the run saw of the instance stays on its item: the follow-up decides from it.
    progress = {k: v for k, v in (before or {}).items() if k not in placement.KEYS and k != placement.FOLLOW_UP}
    outcome = progress | {
        "outcome": "failed",
        "step": step,
        "error": event.failure.Error,
        "cause": cause[:2000],
        "placement": placed,
        "times": {k: _at(event.times, k) for k, _ in STEPS + COMMAND_STEPS if k in event.times},
    }
    table.put_outcome(run.execution_arn, instance_id, outcome | ({placement.FOLLOW_UP: True} if followed_up else {}))
    if not outcome.get("alertedAt"):
        extra = _follow_up_text(outcome, run.expected_boot_seconds) if followed_up else ""
        alert(run.execution_arn, instance_id, outcome, f"{extra}Failures in this run so far: {failures}.\n")
        table.note_alerted(run.execution_arn, instance_id, timeutil.iso_now())
        metrics.add_metric(name="InstanceRestartFailed", unit=MetricUnit.Count, value=1)
    return {"instanceId": instance_id, "outcome": "failed", "step": step}


def _clock(iso: str | None) -> str:
    return dt.datetime.fromisoformat(iso).strftime("%H:%M:%S") if iso else "-"


def _out_of_service(times: dict[str, Any]) -> str:
    start, end = times.get("deregistered"), times.get("healthy")
    if not start or not end:
        return "-"
    seconds = (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
    return f"{seconds:.0f} s"


def place_interrupted(table: RunTable, run: RunRef, item: dict[str, Any]) -> dict[str, Any]:
    """An instance the run took out whose restart ended without a report (its child execution failed or
    was aborted, or the report itself failed): put back if its application answers, followed up while it
    may still come up, left out otherwise; a failure either way, which the summary alerts."""
    if run.health is None:
        return item
    decided, where = placement.settle(
        table,
        run.execution_arn,
        item,
        target_group_arn=run.target_group_arn,
        health=run.health,
        boot_seconds=run.expected_boot_seconds,
    )
    outcome = {k: v for k, v in item.items() if k not in placement.KEYS} | placement.INTERRUPTED
    if decided is not placement.Verdict.WAIT:
        return {**item, **outcome, "placement": where}
    outcome |= {"placement": f"out of its target groups, {where}", placement.FOLLOW_UP: True}
    table.put_outcome(run.execution_arn, item["instanceId"], outcome)
    return {**item, **outcome}


def alert_unreported(table: RunTable, run: RunRef, outcomes: list[dict[str, Any]]) -> None:
    """One alert for each failed instance no alert has named yet (its report failed, or never ran)."""
    for o in outcomes:
        if o["outcome"] != "failed" or o.get("alertedAt"):
            continue
        extra = _follow_up_text(o, run.expected_boot_seconds) if o.get(placement.FOLLOW_UP) else ""
        alert(run.execution_arn, o["instanceId"], o, extra + "Its failure was not reported when it happened.\n")
        table.note_alerted(run.execution_arn, o["instanceId"], timeutil.iso_now())


def summary(event: SummaryEvent) -> dict[str, Any]:
    table = RunTable(settings().table_name)
    outcomes = sorted(table.outcomes(event.run.execution_arn), key=lambda o: o["instanceId"])
    outcomes = [place_interrupted(table, event.run, o) if o["outcome"] == OUT else o for o in outcomes]
    alert_unreported(table, event.run, outcomes)
    if any(placement.unsettled(o) for o in table.outcomes(event.run.execution_arn)):  # some may still come up
        table.reopen_for_follow_up(event.run.execution_arn, timeutil.iso_now())
    counts = {"restarted": 0, "failed": 0, "skipped": 0}
    for outcome in outcomes:
        counts[outcome["outcome"]] = counts.get(outcome["outcome"], 0) + 1
    not_started = max(0, event.instance_count - len(outcomes))
    stopped = stopped_on_alarm(table.get_run(event.run.execution_arn) or {}, counts, not_started, event.run)
    ok = counts["failed"] == 0 and not_started == 0 and event.error is None and stopped is None
    group = event.run.target_group_arn.split(":")[-1]
    verdict = "succeeded" if ok else ("STOPPED on alarm" if stopped else "FAILED")
    subject = (
        f"opsflow rolling restart {verdict}: {counts['restarted']} restarted, "
        f"{counts['failed']} failed ({group.split('/')[1] if '/' in group else group})"
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
        lines.append(f"The run stopped early: {event.error.Error}: {_cause_text(event.error)}")
    command = event.run.action == "command"
    commands = table.commands(event.run.execution_arn) if command else {}
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
    publish(subject, "\n".join(lines) + "\n")
    metrics.add_metric(name="InstancesRestarted", unit=MetricUnit.Count, value=counts["restarted"])
    return {**counts, "notStarted": not_started, "succeeded": ok, "subject": subject, "stoppedOnAlarm": stopped}


def stopped_on_alarm(run: dict[str, Any], counts: dict[str, int], not_started: int, ref: RunRef) -> str | None:
    """What to tell when watched alarms stopped the run (the capacity gate recorded them); None if they did not."""
    stop = run.get("stoppedOnAlarm")
    if not stop:
        return None
    left = counts["skipped"] + counts["failed"] + not_started
    return (
        f"Stopped on alarm {', '.join(stop.get('alarms', []))} (in ALARM at {stop.get('at', '?')}): no instance "
        f"was taken out after it, those in flight finished; {counts['restarted']} restarted, {left} not. "
        f'Once the alarm is OK, continue with {{"resumeFrom": "{ref.execution_arn}"}}.'
    )


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("action") == "instance_failed":
        return instance_failed(parse_event(InstanceFailedEvent, event))
    return summary(parse_event(SummaryEvent, event))
