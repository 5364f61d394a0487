"""Every adjustment the sandbox makes to moto, in one place, each with its reason.

moto's Step Functions interpreter really executes ASL, but it differs from AWS in a few places (see
docs/sandbox.md). Each patch below closes one gap and has a test in tests/sandbox/test_moto_patches.py.
They are applied by :func:`patched` for the lifetime of a sandbox and undone afterwards.

moto is pinned to an exact version (requirements/dev.txt): these patches name its internals.
"""

import contextlib
import datetime as _dt
import functools
import importlib
import json
import pkgutil
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import botocore.endpoint
import moto
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from moto.awslambda.models import LambdaFunction
from moto.core.exceptions import AWSError
from moto.core.responses import EmptyResult
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.exec import execute_state
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import distributed_iteration_component
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
    map_run_record,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service,
    state_task_service_aws_sdk,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp as wait_timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
from moto.stepfunctions.parser.asl.eval.callback import callback as callback_module
from moto.stepfunctions.parser.asl.eval.event import event_manager
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend import execution as backend_execution
from moto.stepfunctions.parser.backend import execution_worker

from sandbox.clock import SimClock

MOTO_VERSION = "5.2.5"

# Step Functions' SDK integration names that differ from boto3's service names.
SDK_SERVICE_NAMES = {"elasticloadbalancingv2": "elbv2", "eventbridge": "events"}

# How AWS spells the service in SDK integration error names (``Ec2.Ec2Exception``,
# ``ElasticLoadBalancingV2.TargetGroupNotFoundException``); moto lowercases them.
SDK_ERROR_SERVICE_NAMES = {
    "ec2": "Ec2",
    "elasticloadbalancingv2": "ElasticLoadBalancingV2",
    "ssm": "Ssm",
    "sns": "Sns",
    "sqs": "Sqs",
    "cloudwatch": "CloudWatch",
    "eventbridge": "EventBridge",
    "s3": "S3",
    "lambda": "Lambda",
}


class TaskTimedOut(AWSError):
    """What AWS answers when a task token is used after its task ended."""

    TYPE = "TaskTimedOut"
    STATUS = 400


LambdaInvoker = Callable[[str, bytes | str | None], tuple[str, bool, str]]


def _jsonable(value: Any) -> Any:
    """SDK results carry datetimes; AWS hands them to the state machine as ISO strings."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# A JSONPath is indefinite (its result is a list) when it has a wildcard, slice, filter, union or
# deep scan; otherwise AWS returns the one value, e.g. ``$.Reservations[0].Instances[0].LaunchTime``.
_INDEFINITE = re.compile(r"\[[^\]]*[*:?,][^\]]*\]|\.\.|\.\*")


def extract_json(path: str, data: Any) -> Any:
    """moto returns ``$.a[0].b`` as a one-element list; AWS returns the value."""
    if _INDEFINITE.search(path):
        return _original_extract_json(path, data)
    matches = jsonpath_parse(path).find(data)
    if not matches:
        raise json_path.NoSuchJsonPathError(json_path=path, data=data)
    return matches[0].value


_original_extract_json = json_path.extract_json


def _modules_using(name: str, original: Any) -> list[types.ModuleType]:
    """Every module of moto's ASL interpreter that imported ``original`` under ``name``."""
    package = importlib.import_module("moto.stepfunctions.parser.asl")
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        with contextlib.suppress(ImportError):
            importlib.import_module(info.name)
    return [
        module
        for module_name, module in list(sys.modules.items())
        if module_name.startswith("moto.stepfunctions.parser") and getattr(module, name, None) is original
    ]


def _sim_datetime_module(clock: SimClock) -> types.ModuleType:
    """A stand-in for the ``datetime`` module whose ``datetime.now()`` reads the simulated clock."""

    class SimDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> "SimDatetime":
            real = _dt.datetime.fromtimestamp(clock.now(), tz)
            return cls.combine(real.date(), real.timetz()) if tz else cls.combine(real.date(), real.time())

        @classmethod
        def utcnow(cls) -> "SimDatetime":
            return cls.now(_dt.UTC).replace(tzinfo=None)

    module = types.ModuleType("datetime")
    module.__dict__.update(_dt.__dict__)
    module.datetime = SimDatetime  # type: ignore[attr-defined]
    return module


def _sim_event_class(clock: SimClock) -> type[threading.Event]:
    class SimEvent(threading.Event):
        """threading.Event whose wait timeout is in simulated seconds."""

        def wait(self, timeout: float | None = None) -> bool:
            return clock.wait(super(), timeout)  # type: ignore[arg-type]

    return SimEvent


_original_eval_service_task = state_task_service_aws_sdk.StateTaskServiceAwsSdk._eval_service_task
_original_execution_data = execution_worker.ExecutionData  # type: ignore[attr-defined]
_original_notify = callback_module.CallbackPoolManager.notify


def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
    _original_eval_service_task(self, env, *args, **kwargs)
    env.stack.append(_jsonable(env.stack.pop()))


def _execution_data(**fields: Any) -> Any:
    start = fields.get("StartTime")
    if isinstance(start, _dt.datetime):
        fields["StartTime"] = start.astimezone(_dt.UTC).isoformat()
    return _original_execution_data(**fields)


def _notify(self: Any, callback_id: str, outcome: Any) -> bool:
    endpoint = self.get(callback_id)
    if endpoint is not None and endpoint.get_outcome() is not None:
        raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")
    return bool(_original_notify(self, callback_id, outcome))


def _send_task_failure(self: Any) -> Any:
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


def _api_patches() -> list[Any]:
    """Where moto's interpreter or API answers differently from AWS."""
    service_names = {
        **state_task_service.StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES,
        **SDK_SERVICE_NAMES,
    }
    error_names = {**state_task_service_aws_sdk._SERVICE_ERROR_NAMES, **SDK_ERROR_SERVICE_NAMES}
    return [
        # SDK integration service names moto does not map to boto3 names.
        mock.patch.object(state_task_service.StateTaskService, "_SERVICE_NAME_SFN_TO_BOTO_OVERRIDES", service_names),
        # AWS-style error names for SDK integrations.
        mock.patch.object(state_task_service_aws_sdk, "_SERVICE_ERROR_NAMES", error_names),
        # Datetimes in SDK results become ISO strings, as on AWS (else describe_execution fails).
        mock.patch.object(state_task_service_aws_sdk.StateTaskServiceAwsSdk, "_eval_service_task", _eval_service_task),
        # $$.Execution.StartTime is an ISO string on AWS; moto hands over a datetime.
        mock.patch.object(execution_worker, "ExecutionData", _execution_data),
        # SendTaskFailure passes its cause on (moto's API layer drops it).
        mock.patch.object(sfn_responses.StepFunctionResponse, "send_task_failure", _send_task_failure),
        # A task token answers once: a second SendTaskSuccess/Failure is TaskTimedOut.
        mock.patch.object(callback_module.CallbackPoolManager, "notify", _notify),
        # Definite JSONPaths with an array index yield the value, not a one-element list.
        *(
            mock.patch.object(module, "extract_json", extract_json)
            for module in _modules_using("extract_json", _original_extract_json)
        ),
    ]


# Which state machine's Task is calling AWS in this thread: the calls run with its role.
TASK = threading.local()


def running_state_machine() -> str | None:
    """The ARN of the state machine whose Task runs in this thread (Distributed Map children: the parent's)."""
    return getattr(TASK, "state_machine", None)


def _as_the_state_machine(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """moto evaluates each Task in a thread of its own: mark it with the state machine it belongs to."""

    def run(self: Any, env: Any) -> None:
        previous = running_state_machine()
        TASK.state_machine = env.states.context_object.context_object_data["StateMachine"]["Id"]
        try:
            original(self, env)
        finally:
            TASK.state_machine = previous

    return run


def _principal_patches() -> list[Any]:
    """Service integrations (aws-sdk, optimized DynamoDB/SQS/SNS/Lambda) and Lambda-ARN tasks call AWS as
    the state machine: IAM evaluates those calls against its role (sandbox/runtime.py)."""
    return [
        mock.patch.object(cls, "_eval_execution", _as_the_state_machine(cls._eval_execution))
        for cls in (state_task_service.StateTaskService, state_task_lambda.StateTaskLambda)
    ]


@functools.cache
def _aws_managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return dict(json.loads(aws_managed_policies_data))


def aws_managed_policy(arn: str) -> dict[str, Any] | None:
    """The policy document of an AWS managed policy (moto bundles a copy of AWS's), None if unknown."""
    prefix = "arn:aws:iam::aws:policy/"
    name = arn.rsplit("/", 1)[-1]
    entry = _aws_managed_policies().get(name) if arn.startswith(prefix) else None
    if entry is None or arn != f"{prefix}{entry['Path'].lstrip('/')}{name}":
        return None
    return dict(entry["Document"])


def _lambda_patch(invoke_lambda: LambdaInvoker) -> Any:
    """Lambda tasks run the project's handlers in-process instead of in Docker."""

    def invoke(self: LambdaFunction, event: bytes | str | None = None) -> tuple[str, bool, str]:
        return invoke_lambda(self.function_name, event)

    return mock.patch.object(LambdaFunction, "_invoke_lambda", invoke)


def _time_patches(clock: SimClock) -> list[Any]:
    """Wait, Retry, timeouts, callbacks and timestamps run on the simulated clock."""
    sim_datetime = _sim_datetime_module(clock)
    sim_event = _sim_event_class(clock)
    sim_threading = types.ModuleType("threading")
    sim_threading.__dict__.update(threading.__dict__)
    sim_threading.Event = sim_event  # type: ignore[attr-defined]

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        # One interruptible wait in simulated time (StopExecution sets the event).
        if wait_seconds > 0:
            clock.wait(env.program_state_event, wait_seconds)

    parse = execution_worker.ExecutionWorker._get_evaluation_entrypoint

    def parse_in_no_time(self: Any) -> Any:
        with clock.paused():  # each execution parses its definition (ANTLR: tenths of a second); AWS does not
            return parse(self)

    return [
        mock.patch.object(execution_worker.ExecutionWorker, "_get_evaluation_entrypoint", parse_in_no_time),
        # botocore's own retries (throttling in a handler) back off in simulated time too.
        mock.patch.object(botocore.endpoint, "time", types.SimpleNamespace(sleep=clock.sleep)),
        mock.patch.object(retrier_decl, "time", types.SimpleNamespace(sleep=clock.sleep, time=clock.now)),
        mock.patch.object(wait_function.WaitFunction, "_wait_interval", wait_interval),
        mock.patch.object(wait_timestamp, "datetime", sim_datetime),
        mock.patch.object(execute_state, "threading", sim_threading),
        mock.patch.object(callback_module, "Event", sim_event),
        *(
            mock.patch.object(module, "datetime", sim_datetime)
            for module in (event_manager, state_module, map_run_record, backend_execution)
        ),
        mock.patch.object(sfn_models, "utcnow", side_effect=lambda: clock.now_datetime().replace(tzinfo=None)),
    ]


def _map_run_recorder(registry: list[Any]) -> Any:
    """Keep the event managers of Distributed Map runs: their child executions' histories.

    moto records child iterations in a separate EventManager that nothing exposes; on AWS they are
    child executions with histories of their own, which is what the quota and billing count.
    """
    original = distributed_iteration_component.EventManager  # type: ignore[attr-defined]

    class RecordedEventManager(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            registry.append(self)

    return mock.patch.object(distributed_iteration_component, "EventManager", RecordedEventManager)


@contextlib.contextmanager
def patched(clock: SimClock, invoke_lambda: LambdaInvoker, map_runs: list[Any] | None = None) -> Iterator[None]:
    """Apply every patch; undo them on exit. Distributed Map histories are collected in ``map_runs``."""
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"sandbox patches are written for moto {MOTO_VERSION}, found {moto.__version__}")
    recorder = [_map_run_recorder(map_runs)] if map_runs is not None else []
    with contextlib.ExitStack() as stack:
        patches = [*_api_patches(), *_principal_patches(), _lambda_patch(invoke_lambda), *_time_patches(clock)]
        for patch in [*patches, *recorder]:
            stack.enter_context(patch)
        yield


def lambda_error_payload(exc: BaseException, request_id: str, trace: list[str]) -> str:
    """The payload the Lambda service returns for an unhandled exception."""
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": request_id,
            "stackTrace": trace,
        }
    )
