"""What the answers of EC2, SSM and Auto Scaling mean for one instance of a run (the instance action's decisions).

Pure functions over plain data: an AWS error code, a command invocation, a membership in, an error to raise
or a result out. The calls themselves are in opsflow.reboots, opsflow.run_command and opsflow.autoscaling.
"""

from dataclasses import dataclass
from typing import Any, Literal

from opsflow.autoscaling import Membership
from opsflow.errors import (
    CommandFailedError,
    CommandNotYetFinishedException,
    CommandTimedOutError,
    CommandUndeliverableError,
    InstanceCannotStartError,
    OpsflowError,
    PreflightFailedError,
    RebootNotAllowedError,
    RebootThrottledException,
    StandbyRefusedError,
)

MAX_PROBLEMS = 10  # a refusal names this many; probing stops there (each unreachable URL costs a timeout)
# GetCommandInvocation statuses (SSM API reference, GetCommandInvocation): these may still change.
RUNNING = {"Pending", "InProgress", "Delayed", "Cancelling"}
# StatusDetails of a command SSM could not hand to the agent, or that ran out of time (Run Command
# user guide, "Understanding command statuses").
UNDELIVERABLE = {"Undeliverable", "Terminated"}
TIMED_OUT = {"Delivery Timed Out", "Execution Timed Out"}
OUTPUT_EXCERPT = 2000
PREFLIGHT_FIRST_CHECK = {
    "command": "SSM can run a command on every instance (ping status Online)",
    "reboot": "every instance may be rebooted (EC2 dry run)",
}
PREFLIGHT_HEALTH_CHECK = "every health URL answers from the probe's network"


def reboot_refusal(code: str, instance_id: str, restart_tag: str) -> OpsflowError | None:
    """The error a refused RebootInstances becomes (by EC2's error ``code``); None: not one of ours to name."""
    if code == "UnauthorizedOperation":
        return RebootNotAllowedError(
            f"{instance_id} may not be rebooted: opsflow reboots only instances tagged {restart_tag}"
        )
    if code == "RequestLimitExceeded":
        return RebootThrottledException(f"{instance_id}: EC2 throttled the reboot call")
    if code.startswith("InvalidInstanceID") or code == "IncorrectState":
        return InstanceCannotStartError(f"{instance_id} cannot be rebooted: {code}")
    return None


def send_refusal(code: str, instance_id: str, document_name: str, restart_tag: str, detail: str) -> OpsflowError | None:
    """The error a refused SendCommand becomes; None: a service error (raised under its own code)."""
    if code in ("InvalidInstanceId", "UnsupportedPlatformType"):
        # "The managed node isn't running, or SSM Agent isn't registered with the SSM endpoint" (SendCommand).
        return CommandUndeliverableError(f"{instance_id}: SSM cannot run a command on it ({code})")
    if code == "AccessDeniedException":
        return CommandFailedError(
            f"{instance_id}: may not run {document_name}: opsflow sends only its allowed documents, "
            f"to instances tagged {restart_tag}"
        )
    if code in ("InvalidDocument", "InvalidParameters", "InvalidDocumentVersion"):
        return CommandFailedError(f"{document_name}: {code}: {detail}")
    return None


@dataclass(frozen=True)
class Invocation:
    """One command on one instance, as GetCommandInvocation answers."""

    status: str
    details: str = ""
    response_code: int | None = None  # absent while nothing ran
    document_name: str = ""
    output_url: str = ""
    stdout: str = ""
    stderr: str = ""

    @classmethod
    def from_api(cls, answer: dict[str, Any]) -> "Invocation":
        code = answer.get("ResponseCode")
        return cls(
            status=answer["Status"],
            details=answer.get("StatusDetails", ""),
            response_code=None if code is None else int(code),
            document_name=answer.get("DocumentName", ""),
            output_url=answer.get("StandardOutputUrl") or "",
            stdout=answer.get("StandardOutputContent") or "",
            stderr=answer.get("StandardErrorContent") or "",
        )


def wait_while_running(instance_id: str, command_id: str, invocation: Invocation | None) -> Invocation:
    """The finished invocation; CommandNotYetFinishedException while SSM does not list it yet or it may change."""
    if invocation is None:  # just sent: not visible yet
        raise CommandNotYetFinishedException(f"{instance_id}: command {command_id} not listed yet")
    if invocation.status in RUNNING:
        raise CommandNotYetFinishedException(
            f"{instance_id}: command {command_id} is {invocation.details or invocation.status}"
        )
    return invocation


def command_record(invocation: Invocation, finished_at: str) -> dict[str, Any]:
    """What the run table keeps of a finished command (the safety net and the reporter read it)."""
    return {
        "status": invocation.status,
        "statusDetails": invocation.details,
        "responseCode": -1 if invocation.response_code is None else invocation.response_code,
        "outputUrl": invocation.output_url,
        "finishedAt": finished_at,
    }


def command_result(instance_id: str, command_id: str, invocation: Invocation, finished_at: str) -> dict[str, Any]:
    """A successful command's result for the state machine; a failed one as the error the workflow tells apart."""
    if invocation.status == "Success":
        return {
            "instanceId": instance_id,
            "at": finished_at,
            "commandId": command_id,
            "status": invocation.status,
            "responseCode": 0 if invocation.response_code is None else invocation.response_code,
            "outputUrl": invocation.output_url,
            "output": invocation.stdout[-OUTPUT_EXCERPT:],
        }
    where = f" Output: {invocation.output_url}." if invocation.output_url else ""
    stderr = invocation.stderr.strip()[-OUTPUT_EXCERPT:]
    exit_code = -1 if invocation.response_code is None else invocation.response_code
    message = (
        f"{instance_id}: command {command_id} ({invocation.document_name}) ended {invocation.status}"
        f" ({invocation.details}, exit code {exit_code}).{where}" + (f" {stderr}" if stderr else "")
    )
    if invocation.details in UNDELIVERABLE:
        raise CommandUndeliverableError(message)
    if invocation.status == "TimedOut" or invocation.details in TIMED_OUT:
        raise CommandTimedOutError(message)
    raise CommandFailedError(message)


def reboot_problems(denied: list[str], restart_tag: str) -> list[str]:
    return [
        f"{i}: may not be rebooted (EC2 dry run: UnauthorizedOperation); tag it {restart_tag} "
        "or leave it out with instanceIds"
        for i in denied
    ][:MAX_PROBLEMS]


def command_problems(offline: dict[str, str]) -> list[str]:
    return [
        f"{i}: SSM cannot run a command on it ({why}); check that SSM Agent runs, the instance profile "
        "allows Systems Manager (AmazonSSMManagedInstanceCore) and it reaches the SSM endpoints, "
        "or leave it out with instanceIds"
        for i, why in offline.items()
    ][:MAX_PROBLEMS]


def health_problem(instance_id: str, answer: str, port: int) -> str:
    """``answer``: what the health URL did (opsflow.health.ProbeResult.describe)."""
    return (
        f"{instance_id}: health URL {answer}; the restart could never see it ready. Check that opsflow's "
        "functions run in the instances' VPC (parameters VpcId, HealthCheckSubnetIds, InstanceSecurityGroupId), "
        f"that the instance's security group lets them in on port {port} (the stack's HealthPort), and that "
        "the application answers there"
    )


def preflight_verdict(problems: list[str], checked: int, action: Literal["reboot", "command"]) -> dict[str, Any]:
    """The preflight's answer; PreflightFailedError naming every problem found (nothing was changed)."""
    if problems:
        raise PreflightFailedError(
            f"Preflight failed, nothing was changed: {'; '.join(problems)}"
            + (" (further instances not checked)" if len(problems) >= MAX_PROBLEMS else "")
        )
    return {"verdict": "ok", "checked": checked, "checks": [PREFLIGHT_FIRST_CHECK[action], PREFLIGHT_HEALTH_CHECK]}


Lifecycle = Literal["Standby", "InService"]


def standby_move(
    instance_id: str, group: str, action: Literal["standby", "in_service"], found: Membership | None
) -> tuple[Lifecycle, bool]:
    """Where the member should end up, and whether it must move there (False: a retry finds it there already).

    StandbyRefusedError when it left the group, or is in a state it cannot move from (Pending, Terminating...).
    """
    wanted: Lifecycle = "Standby" if action == "standby" else "InService"
    source = "InService" if wanted == "Standby" else "Standby"
    if found is None or found.group != group:
        raise StandbyRefusedError(
            f"{instance_id} is no longer in Auto Scaling group {group} (terminated or detached): nothing to do"
        )
    if found.lifecycle == wanted:
        return wanted, False
    if found.lifecycle != source:
        raise StandbyRefusedError(
            f"{instance_id} is {found.lifecycle} in Auto Scaling group {group}, not {source}: "
            f"it cannot go {'on Standby' if wanted == 'Standby' else 'back in service'} now"
        )
    return wanted, True


def standby_refused(instance_id: str, group: str, wanted: Lifecycle, message: str) -> StandbyRefusedError:
    """Auto Scaling's ValidationError (``message``) for the move: the group's size bounds changed during the run."""
    return StandbyRefusedError(
        f"Auto Scaling group {group} refused to move {instance_id} "
        f"{'to Standby' if wanted == 'Standby' else 'out of Standby'}: {message} (its size changed "
        "during the run: see its MinSize, MaxSize and DesiredCapacity)"
    )
