"""AWS clients and the HTTP session, created lazily in one place and injectable.

Handlers ask this module for clients instead of calling ``boto3.client`` themselves, so that:
- cold starts stay short (nothing is created until a code path needs it),
- every client gets the same retry policy (botocore "standard" mode: backoff with jitter on
  throttling and transient errors), and
- tests and the local sandbox can hand in their own (moto-backed) clients or HTTP transport.
"""

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    import requests

# Throttling and 5xx are retried with exponential backoff and jitter by botocore itself.
RETRY_CONFIG = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=5, read_timeout=30)

_lock = threading.Lock()
_overrides: dict[str, Any] = {}


def client(service: str) -> Any:
    """The client for ``service`` (an injected one if set, else a cached boto3 client)."""
    with _lock:
        injected = _overrides.get(service)
    return injected if injected is not None else _boto3_client(service)


@cache
def _boto3_client(service: str) -> Any:
    return boto3.client(service, config=RETRY_CONFIG)


def inject(service: str, instance: Any) -> None:
    """Use ``instance`` for ``service`` from now on (tests, the sandbox)."""
    with _lock:
        _overrides[service] = instance


def reset() -> None:
    """Forget injected and cached clients and the HTTP session (between tests)."""
    with _lock:
        _overrides.clear()
    _boto3_client.cache_clear()
    http_session.cache_clear()


@cache
def http_session() -> "requests.Session":
    """One pooled HTTP session per process; the sandbox mounts its simulated fleet on it.

    requests is imported here, not at module level: most functions never make an HTTP call, and
    importing it costs their cold start about 70 ms.
    """
    import requests

    return requests.Session()
