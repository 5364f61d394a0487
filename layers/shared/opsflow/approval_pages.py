"""What the approval URL answers (the approval verifier's decisions): pages, and links refused before KMS is asked."""

import base64
import html

from aws_lambda_powertools.event_handler import Response, content_types

from opsflow.approval_links import Link
from opsflow.arns import execution_name


def page(status: int, title: str, text: str, form: Link | None = None) -> Response[str]:
    """An HTML page; with ``form``, the button that POSTs the link back (opening a link decides nothing)."""
    button = ""
    if form is not None:
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(str(v), quote=True)}">'
            for k, v in form.model_dump().items()
        )
        label = "Approve the restart" if form.decision == "approve" else "Reject the restart"
        button = f'<form method="post">{hidden}<button type="submit">{label}</button></form>'
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>opsflow</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>"
    )
    return Response(status_code=status, content_type=f"{content_types.TEXT_HTML}; charset=utf-8", body=body)


def signature(link: Link, now: float) -> tuple[bytes, str | None]:
    """The link's MAC to check with KMS, or why the link is refused without asking (expired, no signature)."""
    if link.expires < now:
        return b"", "This link has expired: the approval timed out and the restart was not started."
    try:
        mac = base64.urlsafe_b64decode(link.mac.encode())
    except ValueError:
        mac = b""
    if not mac:
        return b"", "This link is not valid (its signature is missing or damaged)."
    return mac, None


def confirmation(link: Link) -> tuple[str, str]:
    """The title and text of the page that asks to confirm."""
    verb = "approve" if link.decision == "approve" else "reject"
    return f"Confirm: {verb} rolling restart {execution_name(link.execution)}?", "Nothing happens until you confirm."


def answered(link: Link) -> str:
    """The title of the page once the task is answered."""
    done = "approved: the restart starts now" if link.decision == "approve" else "rejected: nothing was changed"
    return f"Rolling restart {execution_name(link.execution)} {done}."
