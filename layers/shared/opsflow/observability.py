"""The one place that sets up Powertools Logger, Tracer and Metrics for every function.

Configuration comes from the POWERTOOLS_* environment variables set in template.yaml Globals
(service name, metrics namespace, log level, whether SDK tracing is on), not from constructor
arguments, so the template is the single source of truth.

Tracing has two levels. Lambda's active tracing (template ``Tracing: Active``) records every sampled
invocation, its initialization and duration, with no SDK in the function ("Visualize Lambda function
invocations using AWS X-Ray", Lambda developer guide). SDK tracing adds subsegments for the handler and
for every AWS and HTTP call; it is opt-in (stack parameter ``SdkTracing``, which sets Powertools' own
``POWERTOOLS_TRACE_DISABLED``) because Powertools' Tracer imports the X-Ray SDK when it is constructed,
even disabled (``Tracer.__build_config`` asks for ``aws_xray_sdk.core.xray_recorder`` unless given a
provider), and that import, its sampler and its patching are most of a handler's cold start. With SDK
tracing off, the Tracer gets :class:`UntracedProvider` and the X-Ray SDK is never loaded.
"""

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.shared.constants import TRACER_DISABLED_ENV
from aws_lambda_powertools.shared.functions import strtobool
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from opsflow.settings import SettingsError


class UntracedSegment(BaseSegment):
    """What the handler decorator annotates when nothing is recorded: every call is a no-op."""

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class UntracedProvider(BaseProvider):
    """A Powertools tracing provider that records nothing, so the X-Ray SDK is never imported."""

    @contextlib.contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield UntracedSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield UntracedSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


def sdk_tracing_enabled() -> bool:
    """Whether the function records X-Ray subsegments itself (Powertools' variable, default on)."""
    value = os.getenv(TRACER_DISABLED_ENV, "false")
    try:
        return not strtobool(value)
    except ValueError:
        raise SettingsError(
            f"invalid function configuration: {TRACER_DISABLED_ENV}={value!r}, expected true or false "
            "(the stack sets it from its SdkTracing parameter)"
        ) from None


def make_tracer() -> Tracer:
    """Powertools' Tracer on the X-Ray SDK when SDK tracing is on, else one that loads no SDK."""
    if sdk_tracing_enabled():
        return Tracer()
    return Tracer(disabled=True, auto_patch=False, provider=UntracedProvider())


# Where a state machine's Lambda task puts its execution ARN (every Payload carries it, tests/tools checks):
# the correlation id that joins one run's log lines across the functions it invokes.
RUN_CORRELATION_ID_PATH = "executionArn"

logger = Logger()
tracer = make_tracer()
metrics = Metrics()
