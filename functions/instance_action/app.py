"""The per-instance action of the rolling restart (a reboot or an SSM command), and the preflight.

``{"action": "reboot", "instanceId": ...}`` reboots; EC2 throttling is retried by the SDK and then by
the state machine (RebootThrottledException); a denied reboot is RebootNotAllowedError (not retried).
``{"action": "command", "instanceId": ..., "command": {...}}`` sends an SSM document to the instance
(SendCommand); ``{"action": "command_status", ...}`` asks how it went (GetCommandInvocation): while it
is pending or running CommandNotYetFinishedException (the state machine retries), then its status and
output location, or CommandFailedError / CommandTimedOutError / CommandUndeliverableError.
``{"action": "preflight", "instances": [...], "health": {...}}`` changes nothing: for reboots a dry-run
reboot of every instance as this function's role (DryRunOperation = allowed, UnauthorizedOperation =
denied), for commands SSM's ping status of every instance, and one request to every health URL from
where the startup check runs. Any problem refuses the run with PreflightFailedError naming the
instance, the check and the fix.
"""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from opsflow import autoscaling, clients, timeutil
from opsflow.errors import (
    CommandFailedError,
    CommandNotYetFinishedException,
    CommandTimedOutError,
    CommandUndeliverableError,
    InstanceCannotStartError,
    PreflightFailedError,
    RebootNotAllowedError,
    RebootThrottledException,
    StandbyRefusedError,
    service_error,
)
from opsflow.health import HealthCheck, probe
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import RunTableSettings, cached_settings
from opsflow.validation import InstanceId, parse_event

DRY_RUN_CHUNK = 100  # one dry run per 100 instances; per instance only where one is denied
MAX_PROBLEMS = 10  # a refusal names this many; probing stops there (each unreachable URL costs a timeout)
INFORMATION_CHUNK = 50  # DescribeInstanceInformation takes at most 50 instance ids per filter
# GetCommandInvocation statuses (SSM API reference, GetCommandInvocation): these may still change.
RUNNING = {"Pending", "InProgress", "Delayed", "Cancelling"}
# StatusDetails of a command SSM could not hand to the agent, or that ran out of time (Run Command
# user guide, "Understanding command statuses").
UNDELIVERABLE = {"Undeliverable", "Terminated"}
TIMED_OUT = {"Delivery Timed Out", "Execution Timed Out"}
OUTPUT_EXCERPT = 2000


class Settings(RunTableSettings):
    restart_tag_key: str = Field(alias="RESTART_TAG_KEY", min_length=1)
    restart_tag_value: str = Field(alias="RESTART_TAG_VALUE")


settings = cached_settings(Settings)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RebootEvent(_Event):
    action: Literal["reboot"]
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)


class CommandSpec(BaseModel):
    """What to run: an SSM Command document, its parameters, and how long SSM may take to deliver it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    document_name: str = Field(alias="documentName", min_length=3, max_length=128)
    parameters: dict[str, list[str]] = Field(default_factory=dict)
    timeout_seconds: int = Field(default=600, alias="timeoutSeconds", ge=30, le=2592000)
    output_s3_bucket_name: str = Field(default="", alias="outputS3BucketName", max_length=63)
    output_s3_key_prefix: str = Field(default="", alias="outputS3KeyPrefix", max_length=500)


class CommandEvent(_Event):
    action: Literal["command"]
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)
    command: CommandSpec


class CommandStatusEvent(_Event):
    action: Literal["command_status"]
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)
    command_id: str = Field(alias="commandId", min_length=36, max_length=36)


class StandbyEvent(_Event):
    action: Literal["standby", "in_service"]  # on Standby in its Auto Scaling group / back in service
    instance_id: InstanceId = Field(alias="instanceId")
    execution_arn: str = Field(alias="executionArn", min_length=1)
    auto_scaling_group: str = Field(alias="autoScalingGroup", min_length=1, max_length=255)


class PlannedInstance(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    instance_id: InstanceId = Field(alias="instanceId")
    private_ip: str = Field(alias="privateIp")


class PreflightEvent(_Event):
    action: Literal["preflight"]
    instances: list[PlannedInstance] = Field(min_length=1, max_length=1000)
    health: HealthCheck
    instance_action: Literal["reboot", "command"] = Field(default="reboot", alias="instanceAction")
    # The run that asks (its logs' correlation id); the check does not depend on it.
    execution_arn: str = Field(default="", alias="executionArn")


class ActionEvent(BaseModel):
    event: Annotated[
        RebootEvent | CommandEvent | CommandStatusEvent | PreflightEvent | StandbyEvent, Field(discriminator="action")
    ]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def reboot(instance_id: str, execution_arn: str) -> dict[str, Any]:
    ec2 = clients.client("ec2")
    requested_at = timeutil.iso_now()
    try:
        ec2.reboot_instances(InstanceIds=[instance_id])
    except ec2.exceptions.ClientError as exc:
        code = _error_code(exc)
        if code == "UnauthorizedOperation":
            cfg = settings()
            raise RebootNotAllowedError(
                f"{instance_id} may not be rebooted: opsflow reboots only instances tagged "
                f"{cfg.restart_tag_key}={cfg.restart_tag_value}"
            ) from exc
        if code == "RequestLimitExceeded":
            raise RebootThrottledException(f"{instance_id}: EC2 throttled the reboot call") from exc
        if code.startswith("InvalidInstanceID") or code == "IncorrectState":
            raise InstanceCannotStartError(f"{instance_id} cannot be rebooted: {code}") from exc
        raise
    # From now on the old process may still answer: cleanups must not take that for "up" (opsflow.placement).
    RunTable(settings().table_name).note_progress(execution_arn, instance_id, rebootRequestedAt=requested_at)
    logger.info("reboot requested", extra={"instance_id": instance_id})
    return {"instanceId": instance_id, "at": requested_at}


def send_command(event: CommandEvent) -> dict[str, Any]:
    ssm, spec = clients.client("ssm"), event.command
    sent_at = timeutil.iso_now()
    extra = {
        k: v
        for k, v in {
            "OutputS3BucketName": spec.output_s3_bucket_name,
            "OutputS3KeyPrefix": spec.output_s3_key_prefix,
        }.items()
        if v
    }
    try:
        command = ssm.send_command(
            InstanceIds=[event.instance_id],
            DocumentName=spec.document_name,
            Parameters=spec.parameters,
            TimeoutSeconds=spec.timeout_seconds,
            Comment=f"opsflow {event.execution_arn.rsplit(':', 1)[-1]}"[:100],
            **extra,
        )["Command"]
    except ssm.exceptions.ClientError as exc:
        code = _error_code(exc)
        if code in ("InvalidInstanceId", "UnsupportedPlatformType"):
            # "The managed node isn't running, or SSM Agent isn't registered with the SSM endpoint" (SendCommand).
            raise CommandUndeliverableError(f"{event.instance_id}: SSM cannot run a command on it ({code})") from exc
        if code == "AccessDeniedException":
            cfg = settings()
            raise CommandFailedError(
                f"{event.instance_id}: may not run {spec.document_name}: opsflow sends only its allowed documents, "
                f"to instances tagged {cfg.restart_tag_key}={cfg.restart_tag_value}"
            ) from exc
        if code in ("InvalidDocument", "InvalidParameters", "InvalidDocumentVersion"):
            raise CommandFailedError(f"{spec.document_name}: {code}: {exc}") from exc
        raise service_error(exc) from exc
    # The command may reboot the instance: cleanups must wait for it to end before putting it back.
    table = RunTable(settings().table_name)
    table.note_progress(event.execution_arn, event.instance_id, commandId=command["CommandId"], commandSentAt=sent_at)
    table.note_command(
        event.execution_arn,
        event.instance_id,
        commandId=command["CommandId"],
        documentName=spec.document_name,
        sentAt=sent_at,
        status="Pending",
    )
    logger.info("command sent", extra={"instance_id": event.instance_id, "command_id": command["CommandId"]})
    return {"instanceId": event.instance_id, "at": sent_at, "commandId": command["CommandId"]}


def command_status(event: CommandStatusEvent) -> dict[str, Any]:
    ssm = clients.client("ssm")
    try:
        invocation = ssm.get_command_invocation(CommandId=event.command_id, InstanceId=event.instance_id)
    except ssm.exceptions.ClientError as exc:
        if _error_code(exc) == "InvocationDoesNotExist":  # just sent: not visible yet
            raise CommandNotYetFinishedException(
                f"{event.instance_id}: command {event.command_id} not listed yet"
            ) from exc
        raise service_error(exc) from exc
    status, details = invocation["Status"], invocation.get("StatusDetails", "")
    if status in RUNNING:
        raise CommandNotYetFinishedException(f"{event.instance_id}: command {event.command_id} is {details or status}")
    finished_at = timeutil.iso_now()
    output = invocation.get("StandardOutputUrl") or ""
    table = RunTable(settings().table_name)
    table.note_progress(event.execution_arn, event.instance_id, commandFinishedAt=finished_at)
    table.note_command(
        event.execution_arn,
        event.instance_id,
        status=status,
        statusDetails=details,
        responseCode=int(invocation.get("ResponseCode", -1)),
        outputUrl=output,
        finishedAt=finished_at,
    )
    if status == "Success":
        logger.info("command succeeded", extra={"instance_id": event.instance_id, "command_id": event.command_id})
        return {
            "instanceId": event.instance_id,
            "at": finished_at,
            "commandId": event.command_id,
            "status": status,
            "responseCode": invocation.get("ResponseCode", 0),
            "outputUrl": output,
            "output": (invocation.get("StandardOutputContent") or "")[-OUTPUT_EXCERPT:],
        }
    where = f" Output: {output}." if output else ""
    stderr = (invocation.get("StandardErrorContent") or "").strip()[-OUTPUT_EXCERPT:]
    message = (
        f"{event.instance_id}: command {event.command_id} ({invocation.get('DocumentName', '')}) ended {status}"
        f" ({details}, exit code {invocation.get('ResponseCode', -1)}).{where}" + (f" {stderr}" if stderr else "")
    )
    if details in UNDELIVERABLE:
        raise CommandUndeliverableError(message)
    if status == "TimedOut" or details in TIMED_OUT:
        raise CommandTimedOutError(message)
    raise CommandFailedError(message)


def denied_reboots(instance_ids: list[str]) -> list[str]:
    """Instances this role may not reboot, by EC2's dry run (nothing is rebooted)."""
    ec2 = clients.client("ec2")

    def allowed(ids: list[str]) -> bool:
        try:
            ec2.reboot_instances(InstanceIds=ids, DryRun=True)
        except ec2.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code == "DryRunOperation":
                return True
            if code == "UnauthorizedOperation":
                return False
            raise
        raise RuntimeError("EC2 answered a dry run without DryRunOperation")  # would have rebooted: a bug

    denied: list[str] = []
    for start in range(0, len(instance_ids), DRY_RUN_CHUNK):
        chunk = instance_ids[start : start + DRY_RUN_CHUNK]
        if not allowed(chunk):
            denied += [i for i in chunk if len(chunk) == 1 or not allowed([i])]
    return denied


def offline_for_ssm(instance_ids: list[str]) -> dict[str, str]:
    """Instances SSM cannot run a command on now, with why (not managed, agent not Online)."""
    ssm, pings = clients.client("ssm"), dict[str, str]()
    for start in range(0, len(instance_ids), INFORMATION_CHUNK):
        chunk = instance_ids[start : start + INFORMATION_CHUNK]
        pages = ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "InstanceIds", "Values": chunk}]
        )
        for page in pages:
            pings |= {i["InstanceId"]: i.get("PingStatus", "") for i in page["InstanceInformationList"]}
    return {
        i: (f"SSM Agent is {pings[i]}" if i in pings else "not a managed node of Systems Manager")
        for i in instance_ids
        if pings.get(i) != "Online"
    }


def preflight(event: PreflightEvent) -> dict[str, Any]:
    cfg = settings()
    ids = [inst.instance_id for inst in event.instances]
    if event.instance_action == "command":
        problems = [
            f"{i}: SSM cannot run a command on it ({why}); check that SSM Agent runs, the instance profile "
            "allows Systems Manager (AmazonSSMManagedInstanceCore) and it reaches the SSM endpoints, "
            "or leave it out with instanceIds"
            for i, why in offline_for_ssm(ids).items()
        ][:MAX_PROBLEMS]
        first_check = "SSM can run a command on every instance (ping status Online)"
    else:
        problems = [
            f"{i}: may not be rebooted (EC2 dry run: UnauthorizedOperation); tag it "
            f"{cfg.restart_tag_key}={cfg.restart_tag_value} or leave it out with instanceIds"
            for i in denied_reboots(ids)
        ][:MAX_PROBLEMS]
        first_check = "every instance may be rebooted (EC2 dry run)"
    for inst in event.instances:
        if len(problems) >= MAX_PROBLEMS:
            break
        result = probe(inst.private_ip, event.health)
        if not result.ok(event.health):
            problems.append(
                f"{inst.instance_id}: health URL {result.describe(event.health)}; the restart could never see "
                f"it ready. Check that opsflow's functions run in the instances' VPC (parameters VpcId, "
                f"HealthCheckSubnetIds, InstanceSecurityGroupId), that the instance's security group lets them "
                f"in on port {event.health.port} (the stack's HealthPort), and that the application answers there"
            )
    if problems:
        raise PreflightFailedError(
            f"Preflight failed, nothing was changed: {'; '.join(problems)}"
            + (" (further instances not checked)" if len(problems) >= MAX_PROBLEMS else "")
        )
    return {
        "verdict": "ok",
        "checked": len(event.instances),
        "checks": [first_check, "every health URL answers from the probe's network"],
    }


def standby(event: StandbyEvent) -> dict[str, Any]:
    """Idempotent: an instance already where it should be (a retry after a lost answer) is left there."""
    group, instance_id = event.auto_scaling_group, event.instance_id
    wanted, source = ("Standby", "InService") if event.action == "standby" else ("InService", "Standby")
    found = autoscaling.memberships([instance_id]).get(instance_id)
    if found is None or found.group != group:
        raise StandbyRefusedError(
            f"{instance_id} is no longer in Auto Scaling group {group} (terminated or detached): nothing to do"
        )
    if found.lifecycle != wanted:
        if found.lifecycle != source:
            raise StandbyRefusedError(
                f"{instance_id} is {found.lifecycle} in Auto Scaling group {group}, not {source}: "
                f"it cannot go {'on Standby' if wanted == 'Standby' else 'back in service'} now"
            )
        autoscaling_client = clients.client("autoscaling")
        try:
            if wanted == "Standby":
                autoscaling.enter_standby(group, instance_id)
            elif not autoscaling.exit_standby(group, instance_id):
                raise StandbyRefusedError(f"{instance_id} left Standby in {group} meanwhile")
        except autoscaling_client.exceptions.ClientError as exc:
            if _error_code(exc) != "ValidationError":
                raise
            message = exc.response["Error"].get("Message", "")
            raise StandbyRefusedError(
                f"Auto Scaling group {group} refused to move {instance_id} "
                f"{'to Standby' if wanted == 'Standby' else 'out of Standby'}: {message} (its size changed "
                "during the run: see its MinSize, MaxSize and DesiredCapacity)"
            ) from exc
    return {"at": timeutil.iso_now(), "lifecycle": wanted}


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(ActionEvent, {"event": event}).event
    if isinstance(request, RebootEvent):
        return reboot(request.instance_id, request.execution_arn)
    if isinstance(request, CommandEvent):
        return send_command(request)
    if isinstance(request, CommandStatusEvent):
        return command_status(request)
    if isinstance(request, StandbyEvent):
        return standby(request)
    return preflight(request)
