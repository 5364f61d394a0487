"""Reports of the rolling restart: an alert per failed instance, and the summary at the end.

``instance_failed``: names the instance, the step and the error in an SNS alert, counts the failure
against the run's error budget, and leaves the instance in a safe place: registered again only if its
application answers, kept out of the target group if it does not (followed up while it may still come
up: the reconciler puts it back once it answers, opsflow.placement).
``summary``: per-instance outcome and step times, published to the topic, and one alert for each failed
instance no report named (its report failed, or its restart ended without one); when a watched alarm
stopped the run, the alarm and how to resume it (``stoppedOnAlarm``, the cause of its Fail state).
What is said and recorded is decided in opsflow.restart_report; this file reads, places and publishes.
"""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from opsflow import notify, placement, shared_registration, timeutil
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, metrics, tracer
from opsflow.restart_report import (
    EVENTS,
    NOT_TAKEN_OUT,
    InstanceFailedEvent,
    RunRef,
    SummaryEvent,
    failure_alert,
    failure_outcome,
    interrupted_outcome,
    summarize,
    unreported_alert,
)
from opsflow.runs import OUT, RunTable
from opsflow.settings import NotificationSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_tagged


class Settings(RunTableSettings, NotificationSettings):
    """Only the shared variables."""


settings = cached_settings(Settings)


def publish(subject_and_message: tuple[str, str]) -> None:
    notify.publish(settings().topic_arn, *subject_and_message, rest_is_in="the run table")


def instance_failed(event: InstanceFailedEvent) -> dict[str, Any]:
    """Count, place, record and alert: each step is safe to repeat when the state machine retries the report."""
    table, run, instance_id = RunTable(settings().table_name), event.run, event.instance_id
    before = table.get_outcome(run.execution_arn, instance_id)  # None: this run never took it out
    failures = table.count_failure(run.execution_arn, instance_id)
    if before is not None:  # no later request of the run may move it once placed
        shared_registration.withdraw(table, instance_id, placement.registrations_of(before, run.target_group_arn))
    decided, placed = (
        (None, NOT_TAKEN_OUT)
        if before is None
        else placement.place_failure(
            before, target_group_arn=run.target_group_arn, health=run.health, boot_seconds=run.expected_boot_seconds
        )
    )
    followed_up = decided is placement.Verdict.WAIT
    outcome = failure_outcome(event, before, placed)
    table.put_outcome(run.execution_arn, instance_id, outcome | ({placement.FOLLOW_UP: True} if followed_up else {}))
    if not outcome.get("alertedAt"):
        publish(failure_alert(run, instance_id, outcome, followed_up, failures))
        table.note_alerted(run.execution_arn, instance_id, timeutil.iso_now())
        metrics.add_metric(name="InstanceRestartFailed", unit=MetricUnit.Count, value=1)
    return {"instanceId": instance_id, "outcome": "failed", "step": outcome["step"]}


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
    outcome = interrupted_outcome(item, decided, where)
    if decided is placement.Verdict.WAIT:  # settle leaves a waiting instance's item as it was: mark it followed up
        table.put_outcome(run.execution_arn, item["instanceId"], outcome)
    return {**item, **outcome}


def summary(event: SummaryEvent) -> dict[str, Any]:
    table, run = RunTable(settings().table_name), event.run
    outcomes = sorted(table.outcomes(run.execution_arn), key=lambda o: o["instanceId"])
    outcomes = [place_interrupted(table, run, o) if o["outcome"] == OUT else o for o in outcomes]
    for o in outcomes:  # one alert for each failed instance no alert has named yet
        if o["outcome"] == "failed" and not o.get("alertedAt"):
            publish(unreported_alert(run, o))
            table.note_alerted(run.execution_arn, o["instanceId"], timeutil.iso_now())
    if any(placement.unsettled(o) for o in table.outcomes(run.execution_arn)):  # some may still come up
        table.reopen_for_follow_up(run.execution_arn, timeutil.iso_now())
    commands = table.commands(run.execution_arn) if run.action == "command" else {}
    report = summarize(event, outcomes, table.get_run(run.execution_arn) or {}, commands)
    publish((report.subject, report.message))
    metrics.add_metric(name="InstancesRestarted", unit=MetricUnit.Count, value=report.result["restarted"])
    return report.result


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_tagged(event, tag="action", members=EVENTS)  # InstanceFailedEvent or SummaryEvent
    return instance_failed(request) if isinstance(request, InstanceFailedEvent) else summary(request)
