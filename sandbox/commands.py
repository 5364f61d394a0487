"""SSM Run Command on the simulated fleet: SendCommand, GetCommandInvocation, ListCommandInvocations.

moto 5.2.5 answers SendCommand with every invocation already "Success" (no duration, no failure, no
reboot, any document name accepted) and lacks ListCommandInvocations, so the sandbox answers these
itself, as it does the patch APIs (sandbox/patch_data.py):

- each invocation is Pending for a moment, then In Progress for a per-instance install time (seeded);
- AWS-RunPatchBaseline with Operation=Install moves the instance's Missing patches to Installed. With
  RebootOption=RebootIfNeeded, "Patch Manager tries to reboot the managed node if it installed any
  patches, or if any patches are detected with a status of InstalledPendingReboot" (SSM API reference,
  InstancePatchState.RebootOption): the fleet's instance then goes down and boots as after a reboot,
  and the invocation ends only once the agent is back ("SSM Agent reboots the managed node, then
  restarts the script after the reboot completes": Run Command user guide, "Handling reboots when
  running commands"). NoReboot leaves them InstalledPendingReboot;
- faults per instance: the command fails (exit code 1, one patch Failed), runs past its execution
  timeout (Status TimedOut, StatusDetails "Execution Timed Out"), cannot be delivered (Failed,
  "Undeliverable"), or SSM Agent is offline (ping ConnectionLost: SendCommand is accepted and the
  invocation times out as "Delivery Timed Out" after TimeoutSeconds);
- instances Systems Manager does not manage are refused by SendCommand with InvalidInstanceId.

Status and StatusDetails spellings are those of GetCommandInvocation (SSM API reference). Like the
fleet, the model keeps facts with timestamps and answers from them; the effects of a finished
invocation on the patch data are applied the first time anything is asked after it ends.
"""

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.fleet import INF, Fleet, Spread
from sandbox.patch_data import InstancePatches, SimulatedApiError, _page

INSTALL_TIME = Spread(90.0, 0.3)  # AWS-RunPatchBaseline Install, per instance, before any reboot
OTHER_TIME = Spread(5.0)  # any other document
CommandFault = Literal["command_fails", "command_times_out", "undeliverable", "agent_offline"]
# Documents the sandbox knows; any other name is refused as SSM refuses an unknown document.
DOCUMENTS = {"AWS-RunPatchBaseline", "AWS-RunShellScript", "AWS-RunPowerShellScript", "AWS-ConfigureAWSPackage"}
DELIVERY_SECONDS = 2.0  # Pending until the agent picks the command up
AGENT_START_SECONDS = 10.0  # after a reboot, until the agent reports the command's end
# The execution timeout the sandbox applies: the default executionTimeout of AWS-RunShellScript (3600 s);
# AWS-RunPatchBaseline does not publish one, so the sandbox assumes the same.
EXECUTION_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True)
class CommandSpec:
    install: Spread = INSTALL_TIME
    other: Spread = OTHER_TIME
    seed: int = 5


@dataclass
class Invocation:
    command_id: str
    instance_id: str
    document: str
    parameters: dict[str, list[str]]
    comment: str
    sent_at: float
    started_at: float
    end_at: float
    status: str  # the terminal Status: Success, Failed, TimedOut
    details: str  # the terminal StatusDetails
    response_code: int
    stdout: str = ""
    stderr: str = ""
    rebooted: bool = False
    applied: bool = False

    def at(self, t: float) -> tuple[str, str]:
        if t >= self.end_at:
            return self.status, self.details
        return ("Pending", "Pending") if t < self.started_at else ("InProgress", "In Progress")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


@dataclass
class CommandService:
    """Run Command answered from the fleet and its patch data, at simulated time."""

    fleet: Fleet
    patches: dict[str, InstancePatches]
    now: Callable[[], float]
    spec: CommandSpec = field(default_factory=CommandSpec)
    invocations: dict[tuple[str, str], Invocation] = field(default_factory=dict)
    faults: dict[str, CommandFault] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.spec.seed)

    def inject(self, instance_id: str, fault: CommandFault) -> None:
        self.faults[instance_id] = fault
        if fault == "agent_offline":
            self.patches[instance_id].ping = "ConnectionLost"

    # -- the APIs ------------------------------------------------------------------------------
    def send_command(self, params: dict[str, Any]) -> dict[str, Any]:
        self.settle()
        document = str(params["DocumentName"])
        if document not in DOCUMENTS:
            raise SimulatedApiError("InvalidDocument", f"Document {document} does not exist in your account")
        ids = list(params.get("InstanceIds", []))
        if not 1 <= len(ids) <= 50 or params.get("Targets"):
            raise SimulatedApiError("ValidationException", "the sandbox takes 1 to 50 InstanceIds and no Targets")
        unmanaged = [i for i in ids if i not in self.patches or not self.patches[i].managed]
        if unmanaged:
            raise SimulatedApiError("InvalidInstanceId", f"Instances {unmanaged} not in a valid state for account")
        timeout = int(params.get("TimeoutSeconds", 3600))
        if not 30 <= timeout <= 2592000:
            raise SimulatedApiError("ValidationException", "TimeoutSeconds must be 30..2592000")
        parameters = {k: list(v) for k, v in params.get("Parameters", {}).items()}
        if document == "AWS-RunPatchBaseline" and parameters.get("Operation", ["Scan"])[0] not in ("Scan", "Install"):
            raise SimulatedApiError("InvalidParameters", "Operation must be Scan or Install")
        t, command_id = self.now(), str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        for instance_id in ids:
            invocation = self._plan(
                command_id, instance_id, document, parameters=parameters, comment=str(params.get("Comment", "")), t=t
            )
            if invocation.details == "Delivery Timed Out":  # never picked up: expires after TimeoutSeconds
                invocation.end_at = t + timeout
            if params.get("OutputS3BucketName"):
                prefix = "/".join(p for p in (params.get("OutputS3KeyPrefix", ""), command_id, instance_id) if p)
                invocation.stdout = f"https://s3.amazonaws.com/{params['OutputS3BucketName']}/{prefix}/stdout"
            self.invocations[(command_id, instance_id)] = invocation
        return {
            "Command": {
                "CommandId": command_id,
                "DocumentName": document,
                "InstanceIds": ids,
                "Parameters": parameters,
                "Status": "Pending",
                "StatusDetails": "Pending",
                "RequestedDateTime": dt.datetime.fromtimestamp(t, dt.UTC),
                "TimeoutSeconds": timeout,
                "TargetCount": len(ids),
                "CompletedCount": 0,
                "ErrorCount": 0,
                "DeliveryTimedOutCount": 0,
            }
        }

    def get_command_invocation(self, params: dict[str, Any]) -> dict[str, Any]:
        self.settle()
        invocation = self.invocations.get((str(params["CommandId"]), str(params["InstanceId"])))
        if invocation is None:
            raise SimulatedApiError("InvocationDoesNotExist", "An error occurred (InvocationDoesNotExist)")
        return self._describe(invocation, self.now())

    def list_command_invocations(self, params: dict[str, Any]) -> dict[str, Any]:
        self.settle()
        t = self.now()
        found = [
            inv
            for inv in self.invocations.values()
            if params.get("CommandId") in (None, inv.command_id) and params.get("InstanceId") in (None, inv.instance_id)
        ]
        if params.get("CommandId") and not found:
            raise SimulatedApiError("InvalidCommandId", "Invalid command id.")
        listed = [self._listed(inv, t, bool(params.get("Details"))) for inv in found]
        page, token = _page(listed, params, default=50, maximum=50)
        return {"CommandInvocations": page, **({"NextToken": token} if token else {})}

    # -- the model -----------------------------------------------------------------------------
    def _plan(
        self,
        command_id: str,
        instance_id: str,
        document: str,
        *,
        parameters: dict[str, list[str]],
        comment: str,
        t: float,
    ) -> Invocation:
        fault, started = self.faults.get(instance_id), t + DELIVERY_SECONDS

        def ends(at: float, status: str, details: str, code: int, *, stdout: str = "", stderr: str = "") -> Invocation:
            return Invocation(
                command_id,
                instance_id,
                document,
                parameters,
                comment,
                t,
                started,
                at,
                status,
                details,
                code,
                stdout,
                stderr,
            )

        if fault == "undeliverable":
            return ends(started, "Failed", "Undeliverable", -1)
        if fault == "agent_offline":
            never = ends(INF, "TimedOut", "Delivery Timed Out", -1)  # send_command sets its end from TimeoutSeconds
            never.started_at = INF
            return never
        if fault == "command_times_out":
            return ends(started + EXECUTION_TIMEOUT_SECONDS, "TimedOut", "Execution Timed Out", -1, stderr="timed out")
        install = document == "AWS-RunPatchBaseline" and parameters.get("Operation", ["Scan"])[0] == "Install"
        work = (self.spec.install if install else self.spec.other).sample(self.rng)
        if fault == "command_fails":
            failed = "Installation of 1 package failed: see the package manager's log"
            return ends(started + work, "Failed", "Failed", 1, stderr=failed)
        info = self.patches[instance_id]
        counts = info.state_counts()
        pending = counts["Missing"] + counts["Failed"]
        reboot = (
            install
            and parameters.get("RebootOption", ["RebootIfNeeded"])[0] == "RebootIfNeeded"
            and (pending > 0 or info.pending_reboot > 0)
        )
        end = started + work
        if reboot:
            # The agent reboots once the packages are installed; the reboot is the fleet's.
            self.fleet.reboot(instance_id, end)
            _, os_up, _ = self.fleet.instances[instance_id].reboots[-1]
            end = os_up + AGENT_START_SECONDS
        stdout = f"Installed {pending} patches" + ("; rebooted" if reboot else "") if install else ""
        done = ends(end, "Success", "Success", 0, stdout=stdout)
        done.rebooted = reboot
        return done

    def settle(self) -> None:
        """Apply what finished invocations did to the patch data (once each)."""
        t = self.now()
        for inv in self.invocations.values():
            if inv.applied or t < inv.end_at:
                continue
            inv.applied = True
            if inv.document != "AWS-RunPatchBaseline" or inv.details in ("Undeliverable", "Delivery Timed Out"):
                continue
            self._apply(inv)

    def _apply(self, inv: Invocation) -> None:
        info = self.patches[inv.instance_id]
        operation = inv.parameters.get("Operation", ["Scan"])[0]
        info.operation = operation
        info.operation_end = dt.datetime.fromtimestamp(inv.end_at, dt.UTC)
        if operation != "Install" or inv.status == "TimedOut":
            return
        no_reboot = inv.parameters.get("RebootOption", ["RebootIfNeeded"])[0] == "NoReboot"
        pending = [p for p in info.patches if p["State"] in ("Missing", "Failed")]
        for n, patch in enumerate(pending):
            if inv.status == "Failed" and n == 0:
                patch["State"] = "Failed"  # the package that broke the run
            elif inv.status == "Success":
                patch["State"] = "InstalledPendingReboot" if no_reboot else "Installed"
                patch["InstalledTime"] = _iso(inv.end_at)
        if inv.status == "Success":
            info.pending_reboot = len(pending) if no_reboot else 0

    def _describe(self, inv: Invocation, t: float) -> dict[str, Any]:
        status, details = inv.at(t)
        done = status not in ("Pending", "InProgress")
        return {
            "CommandId": inv.command_id,
            "InstanceId": inv.instance_id,
            "Comment": inv.comment,
            "DocumentName": inv.document,
            "DocumentVersion": "$DEFAULT",
            "PluginName": "PatchLinux" if inv.document == "AWS-RunPatchBaseline" else "aws:runShellScript",
            "ResponseCode": inv.response_code if done else -1,
            "ExecutionStartDateTime": _iso(inv.started_at) if inv.started_at <= t else "",
            "ExecutionElapsedTime": _duration(max(0.0, min(t, inv.end_at) - inv.started_at))
            if inv.started_at <= t
            else "",
            "ExecutionEndDateTime": _iso(inv.end_at) if done else "",
            "Status": status,
            "StatusDetails": details,
            "StandardOutputContent": inv.stdout if done and not inv.stdout.startswith("https://") else "",
            "StandardOutputUrl": inv.stdout if inv.stdout.startswith("https://") else "",
            "StandardErrorContent": inv.stderr if done else "",
            "StandardErrorUrl": "",
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
        }

    def _listed(self, inv: Invocation, t: float, details: bool) -> dict[str, Any]:
        status, status_details = inv.at(t)
        described = self._describe(inv, t)
        out: dict[str, Any] = {
            "CommandId": inv.command_id,
            "InstanceId": inv.instance_id,
            "Comment": inv.comment,
            "DocumentName": inv.document,
            "RequestedDateTime": dt.datetime.fromtimestamp(inv.sent_at, dt.UTC),
            "Status": status,
            "StatusDetails": status_details,
            "StandardOutputUrl": described["StandardOutputUrl"],
            "StandardErrorUrl": "",
        }
        if details:
            out["CommandPlugins"] = [
                {
                    "Name": described["PluginName"],
                    "Status": status,
                    "StatusDetails": status_details,
                    "ResponseCode": described["ResponseCode"],
                    "Output": (described["StandardOutputContent"] + described["StandardErrorContent"])[:2500],
                }
            ]
        return out


# SSM operations the sandbox answers itself, with the CommandService method that answers each.
COMMAND_OPERATIONS = {
    "SendCommand": "send_command",
    "GetCommandInvocation": "get_command_invocation",
    "ListCommandInvocations": "list_command_invocations",
}
