"""The project's Lambda handlers, run in-process as the Lambda service would run them.

Each function is imported from its CodeUri (``functions/<name>/app.py``) as its own module, with the
shared layer importable and the function's environment variables (resolved from template.yaml)
applied, so settings read at cold start see what they would see on AWS. An unhandled exception
becomes the Lambda error payload (``errorType`` = class name), which is what Step Functions matches
in Retry/Catch.

Handlers run one at a time because the sandbox runs one thread at a time (sandbox/scheduler.py).
Environment variables are process-wide: a handler that waits in the middle (a botocore retry
back-off) keeps its own while the others run (:class:`PrivateEnviron`, the scheduler's switch hooks).
"""

import contextlib
import importlib.util
import io
import json
import logging
import math
import os
import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from sandbox.moto_patches import lambda_error_payload


@dataclass
class FunctionSpec:
    logical_id: str
    function_name: str
    arn: str
    code_dir: Path
    handler: str  # "app.lambda_handler"
    environment: dict[str, str]
    timeout: int = 30
    memory: int = 256


@dataclass
class Invocation:
    logical_id: str
    event: Any
    error_type: str | None
    at: float  # when it returned
    started: float = 0.0
    memory: int = 256  # MB, what Lambda bills duration by

    @property
    def gb_seconds(self) -> float:
        """Billed compute: duration (rounded up to the millisecond, as Lambda bills) x memory."""
        return math.ceil(max(0.0, self.at - self.started) * 1000) / 1000 * self.memory / 1024


@dataclass
class LambdaContext:
    """What the Lambda runtime hands a handler as ``context`` (the attributes Powertools reads)."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the runtime passes a seeded one
    deadline: float = math.inf  # when Lambda would stop the invocation (simulated epoch seconds)
    clock: Callable[[], float] = time.time
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "sandbox"

    def get_remaining_time_in_millis(self) -> int:
        """Counts down on the simulated clock, as on Lambda (a handler that waits sees its time run out)."""
        if self.deadline == math.inf:
            return self.timeout_seconds * 1000
        return max(0, int((self.deadline - self.clock()) * 1000))


class RoutedStdout(io.TextIOBase):
    """sys.stdout that sends what a handler prints to that function's log, and the rest on.

    Per thread: the command line keeps printing progress while handlers run in the interpreter's threads.
    """

    def __init__(self, real: TextIO) -> None:
        self.real = real
        self._local = threading.local()

    def route(self, log: list[str] | None) -> None:
        self._local.log = log

    def write(self, text: str) -> int:
        log = getattr(self._local, "log", None)
        if log is None:
            return self.real.write(text)
        log.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        # Also called when the router is collected, possibly after the real stream (a test's capture) closed.
        if not self.real.closed:
            self.real.flush()


# Which function the current thread is running (API calls are attributed to it).
CURRENT = threading.local()
_IN_HANDLER = threading.local()  # depth: the thread runs with a function's environment variables


class PrivateEnviron:
    """Scheduler switch hooks: a sandbox thread that waits keeps its environment variables to itself.

    While it waits, ``os.environ`` is the sandbox's own (``base``); when it runs again, it gets its own back.
    """

    def __init__(self) -> None:
        self.base = dict(os.environ)

    def suspend(self) -> object:
        if not getattr(_IN_HANDLER, "depth", 0):  # only handlers change the environment (most switches: no copy)
            return None
        current = dict(os.environ)
        if current == self.base:
            return None
        os.environ.clear()
        os.environ.update(self.base)
        return current

    def resume(self, token: object) -> None:
        if isinstance(token, dict):
            os.environ.clear()
            os.environ.update(token)


class LogKeysPerFunction(MutableMapping[str, Any]):
    """A Powertools formatter's keys (correlation id, Lambda context...), each function's its own.

    On Lambda each function runs in a process of its own, with its own Logger; here the functions share the
    layer's, so one function's correlation id would show in the next one's lines. Per thread: the thread
    running an invocation (a waiting one keeps its function's keys while others run).
    """

    def __init__(self, base: MutableMapping[str, Any]) -> None:
        self.base = base  # outside any invocation: the keys the Logger was configured with
        self._local = threading.local()

    def use(self, keys: MutableMapping[str, Any] | None) -> MutableMapping[str, Any] | None:
        """The keys this thread logs with from now on (None: the base); returns the ones it had."""
        previous: MutableMapping[str, Any] | None = getattr(self._local, "keys", None)
        self._local.keys = keys
        return previous

    def _keys(self) -> MutableMapping[str, Any]:
        keys: MutableMapping[str, Any] | None = getattr(self._local, "keys", None)
        return self.base if keys is None else keys

    def __getitem__(self, key: str) -> Any:
        return self._keys()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._keys()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._keys()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


class SimulatedFunctionError(Exception):
    """Base of the errors raised by injected Lambda faults (subclassed per error name)."""


class FunctionTimedOut(BaseException):
    """Lambda stopped the invocation at its timeout. A BaseException: a handler's ``except Exception``
    cannot swallow it, as no handler code can outlive the timeout on Lambda."""


# Step Functions reports a function timeout as Lambda.Unknown, like an out-of-memory error ("Unhandled errors
# in Lambda are reported as Lambda.Unknown ... These include out-of-memory errors and function timeouts":
# Step Functions Developer Guide, "Handle Lambda service exceptions").
TIMED_OUT_ERROR = "Lambda.Unknown"


class LambdaRuntime:
    def __init__(
        self,
        now: Callable[[], float],
        forced_env: dict[str, str],
        layer_dirs: list[Path],
        *,
        outside: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        seed: int = 1,
        deadline: Callable[[float, Callable[[], BaseException]], AbstractContextManager[None]] | None = None,
    ) -> None:
        self._now = now
        self._deadline = deadline  # stops a handler's waits at its timeout (the scheduler's); None: never
        self._ids = random.Random(seed)  # request ids: the same on every run of a seed
        self._forced_env = forced_env  # applied over each function's own (log level, tracing off...)
        self._layer_dirs = layer_dirs
        self._outside = outside  # how a test invoking a handler acts on the sandbox (with its threads waiting)
        self.functions: dict[str, FunctionSpec] = {}  # by physical function name
        self._modules: dict[str, ModuleType] = {}
        self._faults: dict[str, list[str]] = {}
        self.invocations: list[Invocation] = []
        self.logs: dict[str, list[str]] = {}  # logical id -> lines the function printed (its log stream)
        self._stdout = RoutedStdout(sys.stdout)
        sys.stdout = self._stdout
        self._log_keys: dict[str, dict[str, Any]] = {}  # logical id -> its Logger's keys
        self._loggers: dict[str, tuple[logging.Logger, int, Any]] = {}  # service -> (logger, level, stream) before

    def close(self) -> None:
        if sys.stdout is self._stdout:
            sys.stdout = self._stdout.real
        for logger, level, stream in self._loggers.values():  # as before this sandbox, for the next one
            logger.setLevel(level)
            logger.powertools_handler.setStream(stream.real if isinstance(stream, RoutedStdout) else stream)  # type: ignore[attr-defined]

    def metrics(self, name: str) -> list[float]:
        """Values of a metric the functions emitted (Powertools' embedded metric format)."""
        values: list[float] = []
        for lines in self.logs.values():
            for line in lines:
                if '"_aws"' in line and f'"{name}"' in line:
                    value = json.loads(line)[name]
                    values += value if isinstance(value, list) else [value]
        return values

    def add(self, spec: FunctionSpec) -> None:
        """Register the function and import it now (its cold start, at deployment like on AWS's first
        invoke; it costs no simulated time, as no Python does)."""
        self.functions[spec.function_name] = spec
        with self._environment(spec):
            self._module(spec)

    def by_logical_id(self, logical_id: str) -> FunctionSpec:
        for spec in self.functions.values():
            if spec.logical_id == logical_id:
                return spec
        raise KeyError(f"no function {logical_id!r} in template.yaml")

    def inject_error(self, logical_id: str, error_type: str, count: int = 1) -> None:
        """The next ``count`` invocations of the function raise ``error_type``."""
        self.by_logical_id(logical_id)
        self._faults.setdefault(logical_id, []).extend([error_type] * count)

    @contextmanager
    def _environment(self, spec: FunctionSpec) -> Iterator[None]:
        saved = dict(os.environ)
        _IN_HANDLER.depth = getattr(_IN_HANDLER, "depth", 0) + 1
        os.environ.update(spec.environment)
        os.environ.update(self._forced_env)
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = spec.function_name
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)
            _IN_HANDLER.depth -= 1

    @contextmanager
    def _function_logger(self, spec: FunctionSpec) -> Iterator[None]:
        """The function's Powertools Logger as on Lambda (inside its environment): its own keys, the level
        its environment sets (this sandbox's), lines into its log. The layer's Logger is configured once per
        process, at the first import, so a later sandbox's level and log would not apply otherwise."""
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
        logger = logging.getLogger(service)
        handler = getattr(logger, "powertools_handler", None)
        if handler is None:  # the function has no Powertools Logger
            yield
            return
        if service not in self._loggers:
            self._loggers[service] = (logger, logger.level, handler.stream)
        logger.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO").upper())
        handler.setStream(self._stdout)
        formatter = handler.formatter
        if not isinstance(formatter.log_format, LogKeysPerFunction):
            formatter.log_format = LogKeysPerFunction(formatter.log_format)
        keys = self._log_keys.setdefault(spec.logical_id, dict(formatter.log_format.base))
        previous = formatter.log_format.use(keys)
        try:
            yield
        finally:
            formatter.log_format.use(previous)

    def _module(self, spec: FunctionSpec) -> ModuleType:
        module = self._modules.get(spec.logical_id)
        if module is None:
            for layer in self._layer_dirs:
                if str(layer) not in sys.path:
                    sys.path.insert(0, str(layer))
            file_name = spec.handler.rsplit(".", 1)[0].replace(".", "/") + ".py"
            path = spec.code_dir / file_name
            loader_spec = importlib.util.spec_from_file_location(f"sandbox_fn_{spec.logical_id}", path)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)  # cold start: module-level code runs here
            self._modules[spec.logical_id] = module
        return module

    def invoke(self, function_name: str, event: bytes | str | dict[str, Any] | None) -> tuple[str, bool, str]:
        """Run the handler; return (payload JSON, errored, logs) as moto's Lambda backend expects."""
        spec = self.functions[function_name]
        payload = json.loads(event) if isinstance(event, (bytes, str)) and event else (event or {})
        with self._outside():
            return self._invoke(spec, payload)

    def _invoke(self, spec: FunctionSpec, payload: Any) -> tuple[str, bool, str]:
        request_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        started = self._now()
        context = LambdaContext(
            spec.function_name,
            spec.arn,
            spec.memory,
            spec.timeout,
            request_id,
            deadline=started + spec.timeout,
            clock=self._now,
        )
        self._stdout.route(self.logs.setdefault(spec.logical_id, []))
        CURRENT.function = spec.logical_id
        timeout = (
            self._deadline(context.deadline, lambda: FunctionTimedOut(spec.timeout))
            if self._deadline is not None
            else contextlib.nullcontext()
        )
        with self._environment(spec), self._function_logger(spec):
            try:
                faults = self._faults.get(spec.logical_id)
                if faults:
                    raise type(faults.pop(0), (SimulatedFunctionError,), {})("injected by the sandbox")
                handler = getattr(self._module(spec), spec.handler.rsplit(".", 1)[1])
                with timeout:
                    result = handler(payload, context)
            except FunctionTimedOut:
                self.invocations.append(
                    Invocation(spec.logical_id, payload, TIMED_OUT_ERROR, self._now(), started, spec.memory)
                )
                message = f"{context.aws_request_id} Task timed out after {spec.timeout:.2f} seconds"
                # errorType: the interpreter names the task's error after it, so it is what Step Functions reports
                return json.dumps({"errorMessage": message, "errorType": TIMED_OUT_ERROR}), True, message
            except Exception as exc:  # noqa: BLE001 - every handler error becomes the Lambda error payload
                self.invocations.append(
                    Invocation(spec.logical_id, payload, type(exc).__name__, self._now(), started, spec.memory)
                )
                trace = traceback.format_exception(exc)
                return lambda_error_payload(exc, context.aws_request_id, trace), True, "".join(trace)
            finally:
                self._stdout.route(None)
                CURRENT.function = None
        self.invocations.append(Invocation(spec.logical_id, payload, None, self._now(), started, spec.memory))
        return json.dumps(result), False, ""
