"""Errors whose class names the state machines match on.

A Python Lambda reports a raised exception as ``errorType`` = the class name, and Step Functions
exposes that as the state's ``Error``. So these names are part of the contract with the ASL files in
``statemachines/``: rename one and the Retry/Catch that matches it stops matching.
"""


class OpsflowError(Exception):
    """Base class: an outcome the workflow handles by name (never a bug)."""


class InvalidInputError(OpsflowError):
    """The workflow input or a parameter is malformed. Not retried; nothing was changed."""


class InstanceNotYetStartedException(OpsflowError):
    """The instance or its application is not up yet. Retried by the state machine."""


class InstanceCannotStartError(OpsflowError):
    """The instance cannot become ready (stopped, terminated, impaired). Not retried."""


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
