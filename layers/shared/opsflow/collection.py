"""The paginating collector's rules: which reads it may run, and where the items it collects go.

No AWS call here: the pages come from opsflow.paginated_reads, the bucket upload from the collector.
"""

import datetime as dt
import json
import tempfile
from typing import IO, Any

from opsflow.errors import OpsflowError
from opsflow.iam_names import action_name

READ_PREFIXES = ("Describe", "List", "Get")
# Error codes that mean "slow down": the whole call fails so that the caller retries it later, rather
# than reporting a value as unreadable for a transient reason.
THROTTLING = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}


class OperationNotAllowedError(OpsflowError):
    """Not a read operation, or not on the allowlist."""


def check_allowed(service: str, operation: str, allowlist: set[str]) -> str:
    """The IAM action of the read, if the collector may run it (a read on the allowlist, which speaks IAM)."""
    name = action_name(service, operation)
    if not operation.startswith(READ_PREFIXES):
        raise OperationNotAllowedError(f"{name} is not a read operation (Describe*, List*, Get*)")
    if name not in allowlist:
        raise OperationNotAllowedError(f"{name} is not on the allowlist ({', '.join(sorted(allowlist))})")
    return name


def json_default(value: Any) -> Any:
    """What AWS answers that JSON cannot hold as is: timestamps as ISO 8601, blobs as text."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


class Sink:
    """Items in memory while they fit inline; past that (or when asked), JSON Lines in a temporary file."""

    def __init__(self, inline_limit: int, spill: bool) -> None:
        self.inline_limit = inline_limit
        self.items: list[str] = []
        self.size = 2
        self.count = 0
        self.file: IO[bytes] | None = tempfile.TemporaryFile() if spill else None  # noqa: SIM115

    def add(self, item: Any) -> None:
        line = json.dumps(item, default=json_default, separators=(",", ":"))
        self.count += 1
        if self.file is None:
            self.size += len(line.encode()) + 1
            if self.size <= self.inline_limit:
                self.items.append(line)
                return
            self.file = tempfile.TemporaryFile()  # noqa: SIM115
            for kept in self.items:
                self.file.write(kept.encode() + b"\n")
            self.items = []
        self.file.write(line.encode() + b"\n")
