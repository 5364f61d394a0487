"""Answering a state machine task that waits for a token (SendTaskSuccess / SendTaskFailure)."""

import json

from opsflow import clients, timeutil


def answer_approval(token: str, approve: bool) -> bool:
    """Approve or reject the waiting approval task; False when it was already answered, timed out, or is unknown."""
    sfn = clients.client("stepfunctions")
    try:
        if approve:
            sfn.send_task_success(
                taskToken=token, output=json.dumps({"approvedBy": "email link", "at": timeutil.iso_now()})
            )
        else:
            sfn.send_task_failure(taskToken=token, error="Rejected", cause="rejected with the email link")
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken):
        return False
    return True
