"""Continue a rolling restart that failed or was stopped: which run it was, and what is left to do.

``resumeFrom: <executionArn>`` starts a run of the instances that run did not finish, with its
settings unless the new input overrides them. What it finished is read from the run table
(opsflow.runs): an instance is finished when it was restarted, or when its reboot was queued and a
cleanup put it back in service once it answered as rebooted (opsflow.placement). Every other
instance it selected is left to do: skipped ones (error budget, a watched alarm), failed ones (tried
again, once the cause is fixed), ones it never reached, ones taken out and put back before their
reboot was queued.

The pure decisions live here; the planner (functions/restart_planner) reads the execution and the
run table and applies them.
"""

import re
from typing import Any

from opsflow import placement

# Step Functions keeps an execution FAILED, TIMED_OUT or ABORTED as it ended: these may be continued.
RESUMABLE = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
EXECUTION_ARN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[A-Za-z0-9_-]{1,80}:[A-Za-z0-9_-]{1,80}$"
# Settings a resumed run inherits; the selection, the target group and dryRun are not settings.
NOT_INHERITED = frozenset(
    {"resumeFrom", "instanceIds", "targetGroupArn", "targetGroupArns", "loadBalancerArn", "dryRun"}
)


def state_machine_of(execution_arn: str) -> str:
    """``arn:aws:states:r:a:execution:<machine>:<name>`` -> ``arn:aws:states:r:a:stateMachine:<machine>``."""
    match = re.fullmatch(r"(arn:[^:]+:states:[^:]+:\d{12}):execution:([^:]+):[^:]+", execution_arn)
    if match is None:
        raise ValueError(f"not a standard execution ARN: {execution_arn}")
    return f"{match.group(1)}:stateMachine:{match.group(2)}"


def status_refusal(status: str) -> str | None:
    """Why an execution with this status cannot be resumed; None when it can."""
    if status in RESUMABLE:
        return None
    if status == "SUCCEEDED":
        return "it SUCCEEDED: every instance it selected was restarted, there is nothing to resume"
    if status == "PENDING_REDRIVE":
        return "it is PENDING_REDRIVE: it is being redriven, which continues it already"
    return f"it is still {status}: wait until it ends (or stop it), then resume it"


def finished(item: dict[str, Any]) -> bool:
    """Whether the run finished this instance (its item in the run table)."""
    if item.get("outcome") == "restarted":
        return True
    # Interrupted after its reboot was queued, and put back once it answered as rebooted: done.
    return bool(item.get("rebootRequestedAt")) and placement.put_back(item.get("placement"))


def remaining(selected: list[str], items: list[dict[str, Any]]) -> list[str]:
    """The instances of ``selected`` (in its order) the run did not finish."""
    done = {item["instanceId"] for item in items if finished(item)}
    return [instance_id for instance_id in selected if instance_id not in done]


def merged_settings(previous: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The earlier run's settings with the fields the new input gives instead (``health`` field by field)."""
    overrides = {k: v for k, v in given.items() if k not in NOT_INHERITED}
    merged = {**previous, **overrides}
    if isinstance(previous.get("health"), dict) and isinstance(overrides.get("health"), dict):
        merged["health"] = {**previous["health"], **overrides["health"]}
    return merged
