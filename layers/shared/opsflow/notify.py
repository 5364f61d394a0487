"""Mail through the stack's SNS topic: one home for what SNS accepts in an email's subject and body.

SNS Publish (API reference): the subject must be "UTF-8 text with no line breaks or control characters,
and less than 100 characters long"; the message at most 256 KiB (262,144 bytes) of UTF-8.
"""

import re

from opsflow import clients

SUBJECT_MAX = 99  # "less than 100 characters"
MESSAGE_MAX_BYTES = 262_144
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_TRUNCATED = "\n... (truncated: {where})\n"


def subject_line(text: str) -> str:
    """``text`` as a subject SNS accepts: control characters become spaces, and it is cut to fit."""
    flat = _CONTROL.sub(" ", text).strip()
    return flat if len(flat) <= SUBJECT_MAX else flat[: SUBJECT_MAX - 3].rstrip() + "..."


def message_body(text: str, rest_is_in: str) -> str:
    """``text`` cut to SNS's size limit, saying where the rest can be read (``rest_is_in``)."""
    data = text.encode()
    if len(data) <= MESSAGE_MAX_BYTES:
        return text
    note = _TRUNCATED.format(where=f"the full text is in {rest_is_in}")
    keep = MESSAGE_MAX_BYTES - len(note.encode())
    return data[:keep].decode(errors="ignore") + note


def publish(topic_arn: str, subject: str, message: str, rest_is_in: str = "the run's records") -> None:
    clients.client("sns").publish(
        TopicArn=topic_arn, Subject=subject_line(subject), Message=message_body(message, rest_is_in)
    )
