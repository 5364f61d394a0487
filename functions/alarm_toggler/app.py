"""Mute the alarms and rules a rolling restart must not trigger, and restore exactly those.

``{"action": "mute", "executionArn": ..., "alarms": {...}, "rules": {...}}`` records and disables;
``{"action": "restore", "executionArn": ...}`` re-enables what was recorded. Both are idempotent.
The stack's own alarm and safety-net rule (NEVER_MUTE_ALARM_NAMES, NEVER_MUTE_RULE_NAMES) are never muted.
"""

from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import muting
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, metrics, tracer
from opsflow.runs import RunTable
from opsflow.settings import NeverMuteSettings, RunTableSettings, cached_settings
from opsflow.validation import parse_event


class Settings(RunTableSettings, NeverMuteSettings):
    """The run table, and the stack's own alarm and rule (never muted)."""


settings = cached_settings(Settings)


class ToggleEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Literal["mute", "restore"]
    execution_arn: str = Field(alias="executionArn", min_length=1)
    alarms: muting.Selector = Field(default_factory=muting.Selector)
    rules: muting.Selector = Field(default_factory=muting.Selector)


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(ToggleEvent, event)
    table = RunTable(settings().table_name)
    if request.action == "mute":
        cfg = settings()
        never_mute = muting.NeverMute(alarms=cfg.never_mute_alarm_names, rules=cfg.never_mute_rule_names)
        record = muting.mute(table, request.execution_arn, request.alarms, request.rules, never_mute=never_mute)
        metrics.add_metric(name="AlarmsMuted", unit=MetricUnit.Count, value=len(record.alarms))
        return {"action": "mute", **record.model_dump()}
    restored = muting.restore(table, request.execution_arn) or muting.MuteRecord()
    # Beside AlarmsMuted: a run whose restore never came shows as muted minus restored above zero.
    metrics.add_metric(name="AlarmsRestored", unit=MetricUnit.Count, value=len(restored.alarms))
    return {"action": "restore", **restored.model_dump()}
