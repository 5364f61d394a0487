"""The approval request's email: its links, its deadline and its text (the approval mailer's decisions).

A rolling restart's request is the plan with its links; a patch run's is the patch preview itself, the
links first, so that a preview too long for SNS is what gets cut, never a link.
"""

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from opsflow.approval_links import Link


def expires_at(asked_at: str, timeout_seconds: int) -> int:
    """When the links stop working (epoch seconds): the approval's own timeout, from when it was asked."""
    return int(dt.datetime.fromisoformat(asked_at).timestamp()) + timeout_seconds


def link_url(base_url: str, link: Link) -> str:
    return base_url + "?" + urlencode(link.model_dump())


def _deadline(expires: int) -> str:
    return f"{dt.datetime.fromtimestamp(expires, dt.UTC):%Y-%m-%d %H:%M} UTC"


def restart_email(
    group: str, plan: dict[str, Any], execution_arn: str, links: dict[str, str], expires: int
) -> tuple[str, str]:
    subject = f"opsflow: approve the rolling restart of {group}?"
    body = (
        f"A rolling restart is waiting for your approval.\n\n{plan.get('summary', '')}\n\n"
        + (f"{plan['note']}\n\n" if plan.get("note") else "")
        + f"Batches: {json.dumps(plan.get('batches', []))}\n"
        f"Execution: {execution_arn}\n\n"
        f"Approve: {links['approve']}\n\nReject: {links['reject']}\n\n"
        f"Without an answer by {_deadline(expires)}, the restart is refused and nothing is changed.\n"
    )
    return subject, body


def patch_email(
    group: str, plan: dict[str, Any], execution_arn: str, links: dict[str, str], expires: int, *, preview_text: str
) -> tuple[str, str]:
    """One mail for the patch workflow: the patch preview with the approve/reject links."""
    subject = f"opsflow: approve patching {group}? {plan['preview']['findings']}"
    body = (
        f"Patching {group} is waiting for your approval: once approved, the patches below are installed "
        "a batch at a time behind the load balancer, each instance back in service only when healthy.\n\n"
        f"Approve: {links['approve']}\n\nReject: {links['reject']}\n\n"
        f"Without an answer by {_deadline(expires)}, nothing is installed and nothing is changed.\n\n"
        f"{plan.get('summary', '')}\n"
        f"Batches: {json.dumps(plan.get('batches', []))}\n"
        f"Execution: {execution_arn}\n\n"
        "Patch preview\n=============\n" + preview_text
    )
    return subject, body


def preview_unreadable(bucket: str, key: str, code: str) -> str:
    """What the mail says in place of a preview that could not be read, so that the request still goes."""
    return (
        f"The patch preview could not be read (s3://{bucket}/{key}: {code}). "
        "Reject unless you know what this run installs.\n"
    )


def rest_is_in(plan: dict[str, Any]) -> str:
    """Where the reader finds what a mail too long for SNS leaves out."""
    preview = plan.get("preview")
    return f"s3://{preview['bucket']}/{preview['key']}" if preview else "the run's records"
