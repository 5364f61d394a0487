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
instance, the check and the fix. A reboot and a command are done once per request: a retry after a
lost answer gets the first answer. The requests are modelled in opsflow.instance_requests, what the
answers mean is decided in opsflow.instance_actions.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import Field

from opsflow import autoscaling, reboots, run_command, timeutil
from opsflow import instance_actions as decide
from opsflow.arns import execution_name
from opsflow.errors import StandbyRefusedError, error_code, service_error
from opsflow.health import probe
from opsflow.instance_requests import (
    CommandEvent,
    CommandStatusEvent,
    PreflightEvent,
    RebootEvent,
    StandbyEvent,
    parse_action,
)
from opsflow.observability import RUN_CORRELATION_ID_PATH, logger, tracer
from opsflow.runs import RunTable
from opsflow.settings import RunTableSettings, cached_settings


class Settings(RunTableSettings):
    restart_tag_key: str = Field(alias="RESTART_TAG_KEY", min_length=1)
    restart_tag_value: str = Field(alias="RESTART_TAG_VALUE")

    @property
    def restart_tag(self) -> str:
        return f"{self.restart_tag_key}={self.restart_tag_value}"


settings = cached_settings(Settings)


def reboot(request: RebootEvent) -> dict[str, Any]:
    requested_at = timeutil.iso_now()
    try:
        reboots.reboot(request.instance_id)
    except ClientError as exc:
        refusal = decide.reboot_refusal(error_code(exc), request.instance_id, settings().restart_tag)
        if refusal is None:
            raise
        raise refusal from exc
    # From now on the old process may still answer: cleanups must not take that for "up" (opsflow.placement).
    RunTable(settings().table_name).note_progress(
        request.execution_arn, request.instance_id, rebootRequestedAt=requested_at
    )
    logger.info("reboot requested", extra={"instance_id": request.instance_id})
    return {"instanceId": request.instance_id, "at": requested_at}


def send_command(request: CommandEvent) -> dict[str, Any]:
    spec = request.command
    sent_at = timeutil.iso_now()
    try:
        command_id = run_command.send(
            request.instance_id,
            document_name=spec.document_name,
            parameters=spec.parameters,
            timeout_seconds=spec.timeout_seconds,
            comment=f"opsflow {execution_name(request.execution_arn)}",
            output=spec.output_location(),
        )
    except ClientError as exc:
        refusal = decide.send_refusal(
            error_code(exc), request.instance_id, spec.document_name, settings().restart_tag, str(exc)
        )
        raise (refusal or service_error(exc)) from exc
    # The command may reboot the instance: cleanups must wait for it to end before putting it back.
    table = RunTable(settings().table_name)
    table.note_progress(request.execution_arn, request.instance_id, commandId=command_id, commandSentAt=sent_at)
    table.note_command(
        request.execution_arn,
        request.instance_id,
        commandId=command_id,
        documentName=spec.document_name,
        sentAt=sent_at,
        status="Pending",
    )
    logger.info("command sent", extra={"instance_id": request.instance_id, "command_id": command_id})
    return {"instanceId": request.instance_id, "at": sent_at, "commandId": command_id}


def command_status(request: CommandStatusEvent) -> dict[str, Any]:
    instance_id, command_id = request.instance_id, request.command_id
    invocation = decide.wait_while_running(instance_id, command_id, run_command.invocation(command_id, instance_id))
    finished_at = timeutil.iso_now()
    table = RunTable(settings().table_name)
    table.note_progress(request.execution_arn, instance_id, commandFinishedAt=finished_at)
    table.note_command(request.execution_arn, instance_id, **decide.command_record(invocation, finished_at))
    result = decide.command_result(instance_id, command_id, invocation, finished_at)
    logger.info("command succeeded", extra={"instance_id": instance_id, "command_id": command_id})
    return result


def preflight(request: PreflightEvent) -> dict[str, Any]:
    ids = [inst.instance_id for inst in request.instances]
    if request.instance_action == "command":
        problems = decide.command_problems(run_command.offline_for_ssm(ids))
    else:
        problems = decide.reboot_problems(reboots.denied_reboots(ids), settings().restart_tag)
    for inst in request.instances:
        if len(problems) >= decide.MAX_PROBLEMS:
            break
        result = probe(inst.private_ip, request.health)
        if not result.ok(request.health):
            problems.append(
                decide.health_problem(inst.instance_id, result.describe(request.health), request.health.port)
            )
    return decide.preflight_verdict(problems, len(request.instances), request.instance_action)


def standby(request: StandbyEvent) -> dict[str, Any]:
    """Idempotent: an instance already where it should be (a retry after a lost answer) is left there."""
    group, instance_id = request.auto_scaling_group, request.instance_id
    found = autoscaling.memberships([instance_id]).get(instance_id)
    wanted, must_move = decide.standby_move(instance_id, group, request.action, found)
    if must_move:
        try:
            if wanted == "Standby":
                autoscaling.enter_standby(group, instance_id)
            elif not autoscaling.exit_standby(group, instance_id):
                raise StandbyRefusedError(f"{instance_id} left Standby in {group} meanwhile")
        except ClientError as exc:
            if error_code(exc) != "ValidationError":
                raise
            raise decide.standby_refused(instance_id, group, wanted, exc.response["Error"].get("Message", "")) from exc
    return {"at": timeutil.iso_now(), "lifecycle": wanted}


# Step Functions retries Lambda's service errors, which may come after the invocation did its work ("Handle
# Lambda service exceptions", Step Functions best practices): a reboot and a command are done once per request.
ACTED_RECORDS_SECONDS = 900  # outlives the state's retries (seconds apart) and any invocation still running


def act(request: RebootEvent | CommandEvent) -> dict[str, Any]:
    return reboot(request) if isinstance(request, RebootEvent) else send_command(request)


def act_once(request: RebootEvent | CommandEvent, context: LambdaContext) -> dict[str, Any]:
    from opsflow import idempotency  # here: only the actions with a side effect pay for importing it

    config = idempotency.config(ACTED_RECORDS_SECONDS)
    config.register_lambda_context(context)  # a record left in progress by a timed-out invocation expires with it
    return dict(idempotency.once(act, settings().table_name, config)(request=request))


@logger.inject_lambda_context(correlation_id_path=RUN_CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_action(event)
    if isinstance(request, RebootEvent | CommandEvent):
        return act_once(request, context)
    if isinstance(request, CommandStatusEvent):
        return command_status(request)
    if isinstance(request, StandbyEvent):
        return standby(request)
    return preflight(request)
