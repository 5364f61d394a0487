"""Errors whose class names the state machines match on.

A Python Lambda reports a raised exception as ``errorType`` = the class name, and Step Functions
exposes that as the state's ``Error``. So these names are part of the contract with the ASL files in
``statemachines/``: rename one and the Retry/Catch that matches it stops matching.
"""

import re
from typing import Any


class OpsflowError(Exception):
    """Base class: an outcome the workflow handles by name (never a bug)."""


class InvalidInputError(OpsflowError):
    """The workflow input or a parameter is malformed. Not retried; nothing was changed."""


class InstanceNotYetStartedException(OpsflowError):
    """The instance or its application is not up yet. Retried by the state machine."""


class InstanceNotYetDownException(OpsflowError):
    """The rebooted instance's application still answers: the queued reboot has not begun. Retried."""


class RebootThrottledException(OpsflowError):
    """EC2 kept throttling the reboot call after the SDK's own retries. Retried by the state machine."""


class RebootNotAllowedError(OpsflowError):
    """IAM denies rebooting the instance (it lacks the restart tag). Not retried."""


class CommandNotYetFinishedException(OpsflowError):
    """The SSM command on the instance is still pending or running. Retried by the state machine."""


class CommandFailedError(OpsflowError):
    """The SSM command ended without success on the instance (failed, cancelled). Not retried."""


class CommandTimedOutError(OpsflowError):
    """The SSM command was not delivered or did not finish within its timeout. Not retried."""


class CommandUndeliverableError(OpsflowError):
    """SSM cannot reach the instance (agent offline, not managed, no instance profile). Not retried."""


class InstanceCannotStartError(OpsflowError):
    """The instance cannot become ready (stopped, terminated, impaired). Not retried."""


class StandbyRefusedError(OpsflowError):
    """Its Auto Scaling group cannot put the instance on Standby or back in service now. Not retried."""


class TargetNotYetInStateException(OpsflowError):
    """A load balancer target has not reached the wanted state yet. Retried by the state machine."""


# Refusals of the rolling-restart planner: each is a Fail state with this name; nothing was changed.
class TargetGroupNotFoundError(OpsflowError):
    """The target group does not exist (or is not visible to this stack)."""


class TargetGroupNotAllowedError(OpsflowError):
    """The target group is not the one this stack is configured (and permitted) to restart."""


class NoTargetsError(OpsflowError):
    """The target group has no registered targets, or the selection matches none."""


class TargetsNotHealthyError(OpsflowError):
    """Some targets are not healthy: restarting now would dig deeper into lost capacity."""


class UnsafeBatchSizeError(OpsflowError):
    """The batch size would leave no healthy target serving."""


class InstanceNotRestartableError(OpsflowError):
    """An instance is not running or lacks the tag that allows opsflow to reboot it."""


class HealthUrlUnreachableError(OpsflowError):
    """opsflow's functions cannot reach the instances' health URL (network placement, port)."""


class WatchedAlarmFiringError(OpsflowError):
    """An alarm the run watches (stopOnAlarms) is in ALARM already: restarting now would dig deeper."""


class CannotResumeError(OpsflowError):
    """resumeFrom names a run that cannot be continued (unknown, another workflow or target group,
    still running, succeeded, or with nothing left to restart)."""


class PreflightFailedError(OpsflowError):
    """A check before the run shows it cannot succeed (reboot denied, health URL not answering)."""


class LockLostError(OpsflowError):
    """The run no longer holds its target group lock: it must not take another instance out."""


class ServiceError(OpsflowError):
    """Base of the errors raised under an AWS service's own error code (``ThrottlingException``...).

    An unhandled botocore ClientError would reach the state machine as ``ClientError`` whatever the
    service said; re-raised with :func:`service_error`, its code is the error name Retry/Catch match.
    """


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError (``UnauthorizedOperation``...); "" for anything else."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def service_error(exc: Any) -> ServiceError:
    """``exc`` (a botocore ClientError) as an error whose class name is the service's error code."""
    error = exc.response.get("Error", {})
    code = re.sub(r"\W", "_", error.get("Code") or "ServiceError")
    error_class: type[ServiceError] = type(code, (ServiceError,), {})
    return error_class(error.get("Message", str(exc)))
