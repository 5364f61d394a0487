"""Every adjustment the sandbox makes to moto, in one place, each with its reason.

moto's Step Functions interpreter really executes ASL, but it differs from AWS in a few places (see
docs/sandbox.md). Each patch below closes one gap and has a test in tests/sandbox/test_interpreter.py.
They are applied by :func:`patched` for the lifetime of a sandbox and undone afterwards.

moto is pinned to an exact version (requirements/dev.txt): these patches name its internals.
"""

import contextlib
import copy
import dataclasses
import datetime as _dt
import functools
import importlib
import json
import pkgutil
import random
import re
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, cast
from unittest import mock

import botocore.client
import botocore.endpoint
import botocore.exceptions
import botocore.retries.standard
import botocore.session
import botocore.waiter
import moto
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from jsonpath_ng.parser import parse as plain_jsonpath_parse
from moto.autoscaling.models import InstanceState, autoscaling_backends
from moto.awslambda.models import LambdaFunction
from moto.core.botocore_stubber import MockRawResponse
from moto.core.exceptions import AWSError
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.resource_tagging import make_tag_matcher
from moto.core.responses import EmptyResult
from moto.core.serialize import BaseJSONSerializer, JSONSerializer, XFormedAttributePicker
from moto.core.utils import get_service_model
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.ec2.models import ec2_backends
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.elbv2.responses import ELBV2Response
from moto.events.models import EventPattern, events_backends
from moto.moto_api._internal import mock_random
from moto.stepfunctions import models as sfn_models
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.parser import utils as parser_utils
from moto.stepfunctions.parser.api import (
    ExecutionFailedEventDetails,
    HistoryEventType,
    InvalidToken,
    TaskFailedEventDetails,
)
from moto.stepfunctions.parser.asl.component.common import parargs
from moto.stepfunctions.parser.asl.component.common.error_name import error_equals_decl
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.exec.state_map import item_selector
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader import item_reader_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
    resource_eval_s3 as item_reader_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
    distributed_item_processor_worker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service,
    state_task_service_aws_sdk,
    state_task_service_dynamodb,
    state_task_service_sfn,
    state_task_service_sqs,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
from moto.stepfunctions.parser.asl.eval import environment as environment_module
from moto.stepfunctions.parser.asl.eval.callback import callback as callback_module
from moto.stepfunctions.parser.asl.eval.event import event_manager as event_manager_module
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded, ProgramError
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.backend import execution as execution_module
from moto.stepfunctions.parser.backend import execution_worker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.parser.quotas import is_within_size_quota

from sandbox.authorization import SDK_ERROR_SERVICE_NAMES, SDK_SERVICE_NAMES
from sandbox.clock import SimClock
from sandbox.latency import LatencyModel
from sandbox.scheduler import Scheduler

MOTO_VERSION = "5.2.5"


class TaskTimedOut(AWSError):
    """What AWS answers when a task token is used after its task ended."""

    TYPE = "TaskTimedOut"
    STATUS = 400


LambdaInvoker = Callable[[str, bytes | str | None], tuple[str, bool, str]]
# Called as each state is about to be entered, with the execution ARN and the state name.
StateHook = Callable[[str, str], None]


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


# Parsing a JSONPath builds a lexer and a parser (ply): about 1.5 ms, for every path of every state
# evaluated. Parsed paths are immutable and reusable.
cached_jsonpath = functools.lru_cache(maxsize=4096)(jsonpath_parse)
cached_result_path = functools.lru_cache(maxsize=4096)(plain_jsonpath_parse)  # ResultPath's (not the ext parser)


def extract_json(path: str, data: Any) -> Any:
    """moto returns ``$.a[0].b`` as a one-element list; AWS returns the value."""
    if _INDEFINITE.search(path):
        return _original_extract_json(path, data)
    matches = cached_jsonpath(path).find(data)
    if not matches:
        raise json_path.NoSuchJsonPathError(json_path=path, data=data)
    return matches[0].value


_original_extract_json = json_path.extract_json


@functools.cache
def _package_modules(package: str) -> tuple[types.ModuleType, ...]:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
        with contextlib.suppress(ImportError):  # a few modules need LocalStack: moto never imports them either
            importlib.import_module(info.name)
    return tuple(module for module_name, module in list(sys.modules.items()) if module_name.startswith(package))


def _modules_using(name: str, original: Any, package: str = "moto.stepfunctions.parser.asl") -> list[types.ModuleType]:
    """Every module of ``package`` (moto's ASL interpreter by default) that imported ``original`` as ``name``."""
    return [module for module in _package_modules(package) if getattr(module, name, None) is original]


def _sim_datetime_module(clock: SimClock) -> types.ModuleType:
    """A stand-in for the ``datetime`` module whose ``datetime.now()`` reads the simulated clock."""

    class _Meta(type):
        # isinstance(x, datetime.datetime) in the patched modules must still hold for every datetime.
        def __instancecheck__(cls, instance: object) -> bool:
            return isinstance(instance, _dt.datetime)

        def __subclasscheck__(cls, subclass: type) -> bool:
            return issubclass(subclass, _dt.datetime)

    class SimDatetime(_dt.datetime, metaclass=_Meta):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> "SimDatetime":
            real = clock.now_datetime().astimezone(tz)  # exact to the microsecond (the clock counts nanoseconds)
            return cls.combine(real.date(), real.timetz()) if tz else cls.combine(real.date(), real.time())

        @classmethod
        def utcnow(cls) -> "SimDatetime":
            return cls.now(_dt.UTC).replace(tzinfo=None)

    module = types.ModuleType("datetime")
    module.__dict__.update(_dt.__dict__)
    module.datetime = SimDatetime  # type: ignore[attr-defined]
    return module


def _sim_time_module(scheduler: Scheduler) -> types.ModuleType:
    """A stand-in for the ``time`` module: sleeps and reads are on the simulated clock."""
    module = types.ModuleType("time")
    module.__dict__.update(time.__dict__)
    module.__dict__.update(
        sleep=scheduler.sleep, time=scheduler.now, monotonic=scheduler.now, perf_counter=scheduler.now
    )
    return module


_original_eval_service_task = state_task_service_aws_sdk.StateTaskServiceAwsSdk._eval_service_task
_original_execution_data = execution_worker.ExecutionData  # type: ignore[attr-defined]
_original_notify = callback_module.CallbackPoolManager.notify


def _eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
    _original_eval_service_task(self, env, *args, **kwargs)
    env.stack.append(_jsonable(env.stack.pop()))


_original_sfn_eval_service_task = state_task_service_sfn.StateTaskServiceSfn._eval_service_task


def _pascal(response: dict[str, Any]) -> dict[str, Any]:
    return {k[0].upper() + k[1:]: _jsonable(v) for k, v in response.items()}


def _sfn_eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
    """The optimized Step Functions integration takes and answers PascalCase (StateMachineArn, Input;
    ExecutionArn, StartDate); moto hands its PascalCase parameters to boto3, which wants camelCase."""
    parameters = kwargs["normalised_parameters"] if "normalised_parameters" in kwargs else args[1]
    camel = {k[0].lower() + k[1:]: v for k, v in parameters.items()}
    if "stateMachineArn" in camel and not camel.get("name"):
        camel["name"] = _seeded_uid()  # AWS names an unnamed execution with a UUID; moto would name it "None"
    parameters.clear()
    parameters.update(camel)
    _original_sfn_eval_service_task(self, env, *args, **kwargs)
    response = _pascal(env.stack.pop())
    if "ExecutionArn" in response:
        NESTED_EXECUTIONS.add(response["ExecutionArn"])
    env.stack.append(response)


# Executions a workflow's Task started (states:startExecution), as opposed to a caller's.
NESTED_EXECUTIONS: set[str] = set()


def started_by_a_workflow(execution_arn: str) -> bool:
    return execution_arn in NESTED_EXECUTIONS


def _sfn_normalise_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
    """``.sync`` results are DescribeExecution's, with PascalCase keys and ISO dates, as on AWS."""
    if isinstance(response, dict):
        pascal = _pascal(response)
        response.clear()
        response.update(pascal)


_original_sfn_integration = state_task_service_sfn.StateTaskServiceSfn._eval_integration_pattern
_WAITED_FOR = {ResourceCondition.Sync, ResourceCondition.Sync2}


def _sfn_eval_integration_pattern(
    self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: Any, state_credentials: Any
) -> None:
    """A ``.sync``/``.sync:2`` Task whose execution is stopped stops the nested execution it waits for.

    moto stops waiting and leaves the child running. On AWS the parent's role needs
    ``states:StopExecution`` on the child executions for ``.sync`` ("IAM policies for AWS Step
    Functions", Step Functions developer guide): the service stops the child with the parent's
    credentials, best effort (a denied or failed call leaves the child running, as here).
    """
    submitted = env.stack[-1] if env.stack else None
    child = submitted.get("ExecutionArn") if isinstance(submitted, dict) else None
    try:
        _original_sfn_integration(self, env, resource_runtime_part, normalised_parameters, state_credentials)
    finally:
        if child and self.resource.condition in _WAITED_FOR and not env.is_running() and execution_running(child):
            sfn = boto_client.boto_client_for(
                region=resource_runtime_part.region, service="stepfunctions", state_credentials=state_credentials
            )
            with contextlib.suppress(botocore.exceptions.ClientError):
                sfn.stop_execution(executionArn=child)


def _execution_data(**fields: Any) -> Any:
    start = fields.get("StartTime")
    if isinstance(start, _dt.datetime):
        fields["StartTime"] = start.astimezone(_dt.UTC).isoformat()
    return _original_execution_data(**fields)


# Task tokens answered so far: once its execution has ended, moto forgets a token (InvalidToken), AWS
# still answers TaskTimedOut ("the task associated with the token has already been closed").
_ANSWERED_TOKENS: set[str] = set()
_TOKEN_CLOSED = "Task Timed Out: 'Provided task does not exist anymore'"


def _notify(self: Any, callback_id: str, outcome: Any) -> bool:
    endpoint = self.get(callback_id)
    if endpoint is not None and endpoint.get_outcome() is not None:
        raise TaskTimedOut(_TOKEN_CLOSED)
    notified = bool(_original_notify(self, callback_id, outcome))
    if notified:
        _ANSWERED_TOKENS.add(callback_id)
    return notified


def _answered_once(original: Callable[..., Any]) -> Callable[..., Any]:
    """SendTaskSuccess/Failure/Heartbeat with a token already answered: TaskTimedOut, whatever moto still knows."""

    def answer(self: Any, task_token: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, task_token, *args, **kwargs)
        except InvalidToken:
            if task_token in _ANSWERED_TOKENS:
                raise TaskTimedOut(_TOKEN_CLOSED) from None
            raise

    return answer


def _send_task_failure(self: Any) -> Any:
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


def _suffixed(code: str) -> str:
    return code if code.endswith("Exception") else f"{code}Exception"


_dynamodb_error_cause = state_task_service_dynamodb.StateTaskServiceDynamoDB._error_cause_from_client_error


def _dynamodb_error(client_error: Any) -> tuple[str, str]:
    error, cause = _dynamodb_error_cause(client_error)
    return _suffixed(error), cause


_original_sqs_from_error = state_task_service_sqs.StateTaskServiceSqs._from_error
_SQS_MODELED = {s.name for s in botocore.session.get_session().get_service_model("sqs").error_shapes}


def _sqs_from_error(self: Any, env: Any, ex: Exception) -> Any:
    if not isinstance(ex, botocore.exceptions.ClientError):
        return _original_sqs_from_error(self, env, ex)
    code = ex.response["Error"]["Code"]
    error = f"SQS.{_suffixed(code)}" if code in _SQS_MODELED else "SQS.SQSException"
    details = TaskFailedEventDetails(
        error=error,
        cause=ex.response["Error"]["Message"],
        resource=self._get_sfn_resource(),
        resourceType=self._get_sfn_resource_type(),
    )
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(error),
        event_type=HistoryEventType.TaskFailed,
        event_details=cast(EventDetails, {"taskFailedEventDetails": details}),  # moto's TypedDict is total
    )


_ATTRIBUTE_VALUE_MEMBERS = ("S", "N", "SS", "NS", "M", "L", "NULL", "BOOL")  # B and BS need base64: moto's way


_SCALAR_TYPE = {"S": str, "N": str, "NULL": bool, "BOOL": bool}


class _NotPlain(Exception):
    """An attribute value the direct path does not handle; moto's generic serializer does."""


def _plain_attribute_value(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value as its JSON, as moto's serializer writes it (strings, sets, maps, lists, flags)."""
    if type(value) is not dict or not value.keys() <= set(_ATTRIBUTE_VALUE_MEMBERS):
        raise _NotPlain
    plain: dict[str, Any] = {}
    for member in _ATTRIBUTE_VALUE_MEMBERS:
        if (item := value.get(member)) is None:
            continue  # moto's serializer leaves out a member that is None
        if type(item) is _SCALAR_TYPE.get(member):
            plain[member] = item
        elif member in ("SS", "NS") and type(item) is list and all(type(i) is str for i in item):
            plain[member] = list(item)
        elif member == "M" and type(item) is dict:
            plain[member] = {k: _plain_attribute_value(v) for k, v in item.items() if v is not None}
        elif member == "L" and type(item) is list:
            plain[member] = [None if v is None else _plain_attribute_value(v) for v in item]
        else:
            raise _NotPlain
    return plain


_generic_json_structure = BaseJSONSerializer._serialize_type_structure


def _serialize_json_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
    """moto picks each of the AttributeValue union's ten members through its alias providers for every value
    (~10 ms for a group's shared health item of 20 targets, growing with the fleet): write plain ones directly."""
    if key and shape.name == "AttributeValue" and self.operation_model.service_model.service_name == "dynamodb":
        with contextlib.suppress(_NotPlain):
            self._default_serialize(serialized, _plain_attribute_value(value), shape, key)
            return
    _generic_json_structure(self, serialized, value, shape, key)


def dynamodb_response_body(operation: str, result: dict[str, Any], *, direct: bool = True) -> str:
    """The JSON moto answers a DynamoDB ``operation`` with for ``result`` (its items as attribute values), with
    the sandbox's direct attribute-value writer or (``direct=False``) moto's generic serializer alone."""
    serializer = JSONSerializer(
        operation_model=get_service_model("dynamodb").operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(),
    )
    writer = _serialize_json_structure if direct else _generic_json_structure
    with mock.patch.object(BaseJSONSerializer, "_serialize_type_structure", writer):
        return str(serializer.serialize(result)["body"])


moto_project = Item.project  # moto's own projection, which project_item keeps for list paths


def dynamodb_item(attributes: dict[str, Any]) -> Item:
    """moto's record of an item (attribute values as the API writes them, keyed by ``pk`` and ``sk``)."""
    return Item(DynamoType(attributes["pk"]), DynamoType(attributes["sk"]), attributes)


def _picked(value: DynamoType, rest: list[str]) -> DynamoType | None:
    """``value`` narrowed to the map members ``rest`` names; None when one is missing (nothing projected)."""
    if not rest:
        return copy.deepcopy(value)
    if not value.is_map() or rest[0] not in value.value:
        return None
    inner = _picked(value.value[rest[0]], rest[1:])
    return None if inner is None else DynamoType({"M": {rest[0]: inner}})


def _merged(known: DynamoType | None, more: DynamoType) -> DynamoType:
    if known is not None and known.is_map() and more.is_map():
        for name, value in more.value.items():
            known.value[name] = _merged(known.value.get(name), value)
        return known
    return more


def project_item(self: Item, projection_expressions: list[list[str]]) -> Item:
    """moto projects an item by turning all of it into plain JSON first (every target of a group's shared health
    answer, for each waiter's read of its own entry): take the named attributes and map members directly (the
    same item); a path through a list element goes moto's way."""
    if any("[" in name for path in projection_expressions for name in path):
        return moto_project(self, projection_expressions)
    attrs: dict[str, DynamoType] = {}
    for first, *rest in projection_expressions:
        if first in self.attrs and (found := _picked(self.attrs[first], rest)) is not None:
            attrs[first] = _merged(attrs.get(first), found)
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)


def _modelled_target_health(modelled: Callable[[str], bool]) -> Any:
    """DescribeTargetHealth of a target group the fleet models: moto checks the request (its errors stand) but
    lists no targets, since the sandbox's answer replaces its list (sandbox/aws_fleet.py); serializing every
    target of a large group per poll, then parsing it, was most of a 200-instance run's time."""
    original = ELBV2Response.describe_target_health

    def describe_target_health(self: Any) -> Any:
        result = original(self)
        if modelled(self._get_param("TargetGroupArn")):
            return type(result)({"TargetHealthDescriptions": []})
        return result

    return mock.patch.object(ELBV2Response, "describe_target_health", describe_target_health)


# Syntax trees of the definitions parsed in this process, by definition text (see _parse_once).
_SYNTAX_TREES: dict[str, Any] = {}
_SYNTAX_TREES_LOCK = threading.Lock()


def _parse_once() -> Any:
    """moto parses a definition with ANTLR at CreateStateMachine and again at every StartExecution: most of
    a sandbox's start-up and of a short run. The syntax tree of a definition is kept (it is only read), and
    each parse still builds fresh components from it, so no two executions share the evaluation state."""
    original = AmazonStateLanguageParser.parse

    def parse(definition: str) -> tuple[Any, Any]:
        tree = _SYNTAX_TREES.get(definition)
        if tree is None:
            program, tree = original(definition)  # raises on a bad definition, which is never kept
            with _SYNTAX_TREES_LOCK:
                _SYNTAX_TREES[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    return mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(parse))


def syntax_trees_kept() -> list[str]:
    """The definitions whose syntax tree this process keeps."""
    return list(_SYNTAX_TREES)


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
        # Optimized DynamoDB and SQS tasks: "always add the Exception suffix" (Step Functions developer
        # guide, connect-ddb and supported-services-awssdk); moto says DynamoDB.InternalServerError and
        # SQS.SdkClientException for every SQS error. An unmodeled SQS code is the generic SQS.SQSException.
        mock.patch.object(
            state_task_service_dynamodb.StateTaskServiceDynamoDB,
            "_error_cause_from_client_error",
            staticmethod(_dynamodb_error),
        ),
        mock.patch.object(state_task_service_sqs.StateTaskServiceSqs, "_from_error", _sqs_from_error),
        # Datetimes in SDK results become ISO strings, as on AWS (else describe_execution fails).
        mock.patch.object(state_task_service_aws_sdk.StateTaskServiceAwsSdk, "_eval_service_task", _eval_service_task),
        # Nested executions (states:startExecution, .sync, .sync:2): PascalCase in and out, as on AWS.
        mock.patch.object(state_task_service_sfn.StateTaskServiceSfn, "_eval_service_task", _sfn_eval_service_task),
        mock.patch.object(state_task_service_sfn.StateTaskServiceSfn, "_normalise_response", _sfn_normalise_response),
        # Stopping the parent of a .sync nested execution stops the child too.
        mock.patch.object(
            state_task_service_sfn.StateTaskServiceSfn, "_eval_integration_pattern", _sfn_eval_integration_pattern
        ),
        # $$.Execution.StartTime is an ISO string on AWS; moto hands over a datetime.
        mock.patch.object(execution_worker, "ExecutionData", _execution_data),
        # SendTaskFailure passes its cause on (moto's API layer drops it).
        mock.patch.object(sfn_responses.StepFunctionResponse, "send_task_failure", _send_task_failure),
        # A task token answers once: a second SendTaskSuccess/Failure is TaskTimedOut.
        mock.patch.object(callback_module.CallbackPoolManager, "notify", _notify),
        *(
            mock.patch.object(
                StepFunctionsParserBackend, name, _answered_once(getattr(StepFunctionsParserBackend, name))
            )
            for name in ("send_task_success", "send_task_failure", "send_task_heartbeat")
        ),
        # An EC2 resource's tags looked up, not scanned for (only the wall time changes).
        mock.patch.object(TaggedEC2Resource, "get_tags", _tags_of),
        # DynamoDB attribute values written as JSON directly (the same bytes; only the wall time changes).
        mock.patch.object(BaseJSONSerializer, "_serialize_type_structure", _serialize_json_structure),
        # A projection picks its attributes without turning the whole item into JSON (the same item, sooner).
        mock.patch.object(Item, "project", project_item),
        # Each JSONPath is parsed once (moto parses it on every use; only the wall time changes).
        mock.patch.object(json_path, "parse", cached_jsonpath),
        mock.patch.object(result_path, "parse", cached_result_path),
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


def running_task_state() -> str | None:
    """The name of the Task state (or of the Map state whose ItemReader) calling in this thread, so a fault
    can target one state's own call."""
    return getattr(TASK, "state_name", None)


def running_map_item() -> int | None:
    """The index of the Map item whose Task calls in this thread ($$.Map.Item.Index); None outside a Map."""
    return getattr(TASK, "map_item", None)


def _as_the_state_machine(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """moto evaluates each Task in a thread of its own: mark it with the state machine it belongs to."""

    def run(self: Any, env: Any) -> None:
        previous = running_state_machine(), running_task_state(), running_map_item()
        context = env.states.context_object.context_object_data
        TASK.state_machine = context["StateMachine"]["Id"]
        # A Task names itself; an ItemReader's call is its Map state's own (a fault can target either).
        TASK.state_name = getattr(self, "name", None) or context.get("State", {}).get("Name")
        TASK.map_item = getattr(env, "map_item", None)
        try:
            original(self, env)
        finally:
            TASK.state_machine, TASK.state_name, TASK.map_item = previous

    return run


def _map_item_patches() -> list[Any]:
    """A frame (each Task runs in one) keeps the index of the Map item it belongs to: moto gives a frame the
    context's Execution, StateMachine and State only, and a fault may target one item's calls."""
    original = environment_module.Environment.as_inner_frame_of.__func__  # type: ignore[attr-defined]

    def as_inner_frame_of(cls: Any, env: Any, *args: Any, **kwargs: Any) -> Any:
        frame = original(cls, env, *args, **kwargs)
        item = env.states.context_object.context_object_data.get("Map", {}).get("Item", {}).get("Index")
        frame.map_item = item if item is not None else getattr(env, "map_item", None)
        return frame

    return [mock.patch.object(environment_module.Environment, "as_inner_frame_of", classmethod(as_inner_frame_of))]


def _principal_patches() -> list[Any]:
    """Service integrations (aws-sdk, optimized DynamoDB/SQS/SNS/Lambda), Lambda-ARN tasks and a Distributed
    Map's ItemReader call AWS as the state machine: IAM evaluates those calls against its role."""
    reader = item_reader_s3.ResourceEvalS3
    return [
        *(
            mock.patch.object(cls, "_eval_execution", _as_the_state_machine(cls._eval_execution))
            for cls in (state_task_service.StateTaskService, state_task_lambda.StateTaskLambda)
        ),
        mock.patch.object(reader, "eval_resource", _as_the_state_machine(reader.eval_resource)),
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


def _seeded_uid() -> str:
    return str(mock_random.uuid4())


def _seeded_patches(seed: int) -> list[Any]:
    """The interpreter's randomness, seeded: ``JitterStrategy: FULL``, the ids it makes (task tokens...) and
    botocore's retry back-off.

    moto's own ids (instances, target groups, request ids) come from ``mock_random``, seeded here too:
    the plan orders instances by id, so a run is the same run only if its ids are.
    """
    mock_random.seed(seed)
    original = parser_utils.long_uid
    backoff = botocore.retries.standard.ExponentialBackoff.__init__
    return [
        mock.patch.object(jitter_strategy_decl, "random", random.Random(seed)),
        # botocore's retry jitter (a throttled ELB call in a handler): clients made meanwhile draw from a seeded source.
        mock.patch.object(backoff, "__defaults__", (20, random.Random(seed).random, None, None)),
        *(
            mock.patch.object(module, "long_uid", _seeded_uid)
            for module in _modules_using("long_uid", original, "moto.stepfunctions.parser")
        ),
    ]


def _time_patches(scheduler: Scheduler, latency: LatencyModel, on_state: StateHook | None) -> list[Any]:
    """Every place moto's interpreter sleeps, waits, starts a thread or reads the time, on the scheduler.

    The interpreter's threads become the scheduler's participants, its Events, Locks and joins the
    scheduler's (so a Wait, a Retry interval, a task timeout, a callback and StopExecution all wait
    in simulated time, one thread running at a time) and its clock reads the simulated clock. AWS's
    own latency is added where AWS takes it: each state transition, each API call made from the
    sandbox's threads.
    """
    package = "moto.stepfunctions.parser"
    sim_threading = scheduler.threading_module()
    sim_time = _sim_time_module(scheduler)
    sim_datetime = _sim_datetime_module(scheduler.clock)
    swaps: list[tuple[str, Any, Any]] = [
        ("threading", threading, sim_threading),
        ("Thread", threading.Thread, scheduler.Thread),
        ("Event", threading.Event, scheduler.Event),
        ("Lock", threading.Lock, scheduler.Lock),
        ("RLock", threading.RLock, scheduler.RLock),
        ("Condition", threading.Condition, scheduler.Condition),
        ("time", time, sim_time),
        ("datetime", _dt, sim_datetime),
    ]

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        # One interruptible wait (StopExecution sets the event); moto's re-wait loop rounds to whole seconds.
        if wait_seconds > 0:
            env.program_state_event.wait(wait_seconds)

    original_state_body = state_module.CommonStateField._eval_body

    def state_body(self: Any, env: Any) -> None:
        scheduler.sleep(latency.state_transition)
        if on_state is not None and env.is_running():
            on_state(env.states.context_object.context_object_data["Execution"]["Id"], self.name)
        if not env.is_running():  # stopped meanwhile: the state is not entered
            return
        try:
            original_state_body(self, env)
        except Exception:
            # StopExecution during an inline Map: moto hands the abort to the Map's Catch, which fails on it
            # (States.Runtime). On AWS a stopped execution ends ABORTED; nothing catches the stop.
            if env.is_running():
                raise

    original_api_call = botocore.client.BaseClient._make_api_call

    def make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if scheduler.is_participant():
            if not getattr(self, "sandbox_costs_no_time", False):  # the sandbox's own look-ups (IAM's tags)
                scheduler.sleep(latency.api(self.meta.service_model.service_id.hyphenize(), operation_name))
            return original_api_call(self, operation_name, api_params)
        with scheduler.external():  # a test or the command line acts: with every sandbox thread waiting
            return original_api_call(self, operation_name, api_params)

    return [
        *(
            mock.patch.object(module, name, replacement)
            for name, original, replacement in swaps
            for module in _modules_using(name, original, package)
        ),
        mock.patch.object(wait_function.WaitFunction, "_wait_interval", wait_interval),
        mock.patch.object(state_module.CommonStateField, "_eval_body", state_body),
        mock.patch.object(
            sfn_models, "utcnow", side_effect=lambda: scheduler.clock.now_datetime().replace(tzinfo=None)
        ),
        # botocore's own retries (throttling in a handler) and waiters back off in simulated time too.
        mock.patch.object(botocore.endpoint, "time", types.SimpleNamespace(sleep=scheduler.sleep)),
        mock.patch.object(botocore.waiter, "time", types.SimpleNamespace(sleep=scheduler.sleep)),
        mock.patch.object(botocore.client.BaseClient, "_make_api_call", make_api_call),
    ]


# "States.ItemReaderFailed: A Map state failed because it couldn't read from the item source specified in
# the ItemReader field" (Handling errors in Step Functions workflows, Step Functions developer guide).
# moto lets the S3 error escape, and the state fails with States.Runtime, which "a retry or catch on
# States.ALL won't catch" on AWS: a Map could neither retry a throttled read nor catch a denied one.
ITEM_READER_FAILED = "States.ItemReaderFailed"


def item_reader_failed(env: Any, cause: str) -> FailureEventException:
    """The error a Distributed Map reports when its ItemReader cannot read the items (catchable, retriable)."""
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesItemReaderFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=_details(mapRunFailedEventDetails={"error": ITEM_READER_FAILED, "cause": cause}),
        )
    )


def _item_reader_patches() -> list[Any]:
    """An ItemReader whose S3 call fails, or whose object is not the JSON it expects, fails with
    States.ItemReaderFailed, the cause naming the S3 error (the wording is the sandbox's)."""
    original = item_reader_decl.ItemReader._eval_body

    def eval_body(self: Any, env: Any) -> None:
        try:
            original(self, env)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ValueError) as error:
            raise item_reader_failed(env, f"The ItemReader could not read its items: {error}") from error

    return [mock.patch.object(item_reader_decl.ItemReader, "_eval_body", eval_body)]


def _tags_of(resource: Any) -> list[dict[str, str]]:
    """An EC2 resource's tags, as moto's ``get_tags`` answers, read from its own entry.

    moto scans every tag of every resource for each one (``describe_tags`` with a resource-id filter):
    DescribeInstances of 5,000 instances took minutes. Same answer, same order; only the wall time changes.
    """
    if not resource.id:
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource.id), "")
    tags = resource.ec2_backend.tags.get(resource.id, {})
    return [{"resource_id": resource.id, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()]


def _client_cache() -> list[Any]:
    """One boto3 client per service for the interpreter's tasks, instead of a new one per task.

    moto builds a client (and a TLS context) for every Lambda invoke and SDK task: about half of the
    CPU time of a run. Time in the sandbox is virtual, so this changes no result, only the wall time.
    Clients are kept per region, service and task credentials (the role a Task names, if any).
    """
    original = boto_client.boto_client_for
    clients: dict[tuple[str, str, str], Any] = {}

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, repr(state_credentials))
        if key not in clients:
            clients[key] = original(region=region, service=service, state_credentials=state_credentials)
        return clients[key]

    return [
        mock.patch.object(module, "boto_client_for", client_for)
        for module in _modules_using("boto_client_for", original, "moto.stepfunctions.parser")
    ]


# Step Functions service quotas, "Quotas related to state machine executions": a Standard execution's
# history holds at most 25,000 events. AWS then fails the execution: its 25,000th event is an
# ExecutionFailed, States.Runtime, "The execution reached the maximum number of history events (25000)."
# A Distributed Map child is an execution with a history of its own ("Each child workflow execution has
# its own execution history, separate from the parent's": Distributed Map state, Step Functions guide);
# Inline Map iterations are recorded in the parent's.
HISTORY_LIMIT = 25_000
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({HISTORY_LIMIT})."
# "States.ALL ... can't catch the States.DataLimitExceeded terminal error" (Handling errors in Step
# Functions workflows). moto's States.ALL matches it, so a workflow would mail its own failure where
# AWS ends the execution with nothing more run.
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
# Neither can it catch a runtime error ("States.ALL ... can't catch the States.DataLimitExceeded terminal
# error or Runtime error types", same page): a JSONPath that matches nothing, a result over the quota, a
# history full. Only a catcher that names them (and a retrier) takes them.
UNCATCHABLE_BY_STATES_ALL = frozenset({DATA_LIMIT_EXCEEDED, "States.Runtime"})
_EXECUTION_ENDS = {
    HistoryEventType.ExecutionFailed,
    HistoryEventType.ExecutionSucceeded,
    HistoryEventType.ExecutionAborted,
    HistoryEventType.ExecutionTimedOut,
}


def _details(**details: Any) -> Any:
    """History event details (moto's EventDetails TypedDict lists every kind of event as required)."""
    return dict(details)


def _states_error(env: Any, typ: Any, cause: str) -> FailureEventException:
    """A States.* error the interpreter raises itself, failing the state (and, uncaught, the execution)."""
    error = StatesErrorName(typ=typ)
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=error,
            event_type=HistoryEventType.TaskFailed,
            event_details=_details(executionFailedEventDetails={"error": error.error_name, "cause": cause}),
        )
    )


def data_limit_exceeded(env: Any, what: str) -> FailureEventException:
    """The terminal error AWS raises when a state's input (after Parameters) or output exceeds 256 KiB."""
    return _states_error(env, StatesErrorNameType.StatesStatesDataLimitExceeded, what)


def runtime_error(env: Any, cause: str) -> FailureEventException:
    """States.Runtime: what AWS fails the execution with when a path of the definition matches nothing."""
    return _states_error(env, StatesErrorNameType.StatesRuntime, cause)


def _quota_patches(child_histories: list[Any]) -> list[Any]:
    """The payload and history quotas, enforced as AWS does; each Distributed Map child's history kept.

    moto already fails a state whose output or task result exceeds 256 KiB; here: the input after
    Parameters/ItemSelector is checked too ("when, after Parameters processing, the input of a state is
    larger than the payload size quota"), States.ALL does not catch the error, and every execution (each
    Distributed Map child too) fails at its 25,000th history event.
    """
    original_add_event = event_manager_module.EventManager.add_event
    original_env_init = environment_module.Environment.__init__
    original_error_equals = error_equals_decl.ErrorEqualsDecl._eval_body
    original_eval_job = distributed_item_processor_worker.DistributedItemProcessorWorker._eval_job

    def add_event(self: Any, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> Any:
        execution = getattr(self, "execution", None)  # the Environment whose history this is
        if execution is None:
            return original_add_event(self, context, event_type, *args, **kwargs)
        full = getattr(self, "history_full", False)
        if full and event_type not in _EXECUTION_ENDS:
            return None  # past the 24,999th event only the execution's failure is recorded
        event_id = original_add_event(self, context, event_type, *args, **kwargs)
        if not full and event_type not in _EXECUTION_ENDS and len(self._history_event_list) >= HISTORY_LIMIT - 1:
            self.history_full = True
            execution.set_error(ExecutionFailedEventDetails(error="States.Runtime", cause=HISTORY_LIMIT_CAUSE))
        return event_id

    def env_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_env_init(self, *args, **kwargs)
        self.event_manager.execution = self  # a frame gets its parent's manager (and execution) right after

    def error_equals(self: Any, env: Any) -> None:
        error = env.stack[-1]
        named = {getattr(name, "error_name", None) for name in self.error_names}
        name = getattr(error, "error_name", None)
        if name in UNCATCHABLE_BY_STATES_ALL and name not in named:
            env.stack.pop()
            env.stack.append(False)  # not even by States.ALL: the execution fails
            return
        original_error_equals(self, env)

    def checked_input(original: Callable[[Any, Any], None], field: str) -> Callable[[Any, Any], None]:
        def eval_body(self: Any, env: Any) -> None:
            try:
                original(self, env)
            except json_path.NoSuchJsonPathError as missing:  # moto: a plain exception, "Exception" to a Task
                raise runtime_error(env, f"{missing} (in the {field} of state '{env.next_state_name}')") from None
            if not is_within_size_quota(env.stack[-1]):
                raise data_limit_exceeded(
                    env, f"The input of state '{env.next_state_name}' after {field} exceeds the 256 KiB payload quota."
                )

        return eval_body

    def eval_job(self: Any, env: Any, job: Any) -> None:
        history = event_manager_module.EventManager()
        history.execution = env  # type: ignore[attr-defined]
        child_histories.append(history)
        env.event_manager = history
        history.add_event(
            context=env.event_history_context,
            event_type=HistoryEventType.ExecutionStarted,
            update_source_event_id=False,
        )
        original_eval_job(self, env, job)
        state = env.program_state()
        if isinstance(state, ProgramError):
            error = {k: v for k, v in (state.error or {}).items() if k in ("error", "cause")}
            history.add_event(
                context=env.event_history_context,
                event_type=HistoryEventType.ExecutionFailed,
                event_details=_details(executionFailedEventDetails=error),
            )
        elif isinstance(state, ProgramEnded):
            history.add_event(context=env.event_history_context, event_type=HistoryEventType.ExecutionSucceeded)

    return [
        mock.patch.object(event_manager_module.EventManager, "add_event", add_event),
        mock.patch.object(environment_module.Environment, "__init__", env_init),
        mock.patch.object(error_equals_decl.ErrorEqualsDecl, "_eval_body", error_equals),
        mock.patch.object(parargs.Parameters, "_eval_body", checked_input(parargs.Parameters._eval_body, "Parameters")),
        mock.patch.object(
            item_selector.ItemSelector,
            "_eval_body",
            checked_input(item_selector.ItemSelector._eval_body, "ItemSelector"),
        ),
        mock.patch.object(distributed_item_processor_worker.DistributedItemProcessorWorker, "_eval_job", eval_job),
    ]


def _end_patch(on_end: Callable[[str], None]) -> Any:
    """``on_end(execution_arn)`` once an execution has ended (its status set), in the thread that ran it."""
    original = execution_module.BaseExecutionWorkerCommunication.terminated

    def terminated(self: Any) -> None:
        original(self)
        on_end(self.execution.exec_arn)

    return mock.patch.object(execution_module.BaseExecutionWorkerCommunication, "terminated", terminated)


@contextlib.contextmanager
def patched(
    scheduler: Scheduler,
    invoke_lambda: LambdaInvoker,
    child_histories: list[Any] | None = None,
    *,
    latency: LatencyModel,
    seed: int = 1,
    on_state: StateHook | None = None,
    on_end: Callable[[str], None] | None = None,
    modelled_target_group: Callable[[str], bool] | None = None,
) -> Iterator[None]:
    """Apply every patch; undo them on exit. Distributed Map children's histories are kept in ``child_histories``."""
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"sandbox patches are written for moto {MOTO_VERSION}, found {moto.__version__}")
    _ANSWERED_TOKENS.clear()
    quotas = _quota_patches(child_histories if child_histories is not None else [])
    time_patches = [*_time_patches(scheduler, latency, on_state), *_seeded_patches(seed), *_client_cache()]
    with contextlib.ExitStack() as stack:
        patches = [
            _parse_once(),
            *_api_patches(),
            *_principal_patches(),
            *_item_reader_patches(),
            *_map_item_patches(),
            _lambda_patch(invoke_lambda),
            *time_patches,
        ]
        if on_end is not None:
            patches.append(_end_patch(on_end))
        if modelled_target_group is not None:
            patches.append(_modelled_target_health(modelled_target_group))
        for patch in [*patches, *quotas]:
            stack.enter_context(patch)
        yield


def _execution(execution_arn: str) -> Any:
    """moto's record of an execution (``arn:aws:states:REGION:ACCOUNT:execution:...``)."""
    _, _, _, region, account, _ = execution_arn.split(":", 5)
    return sfn_responses.get_backend(account, region).describe_execution(execution_arn)


def execution_running(execution_arn: str) -> bool:
    """Whether the execution still runs (read from moto's record: no API call, no simulated time)."""
    return bool(_execution(execution_arn).status == "RUNNING")


def stop_execution(execution_arn: str, when: _dt.datetime, error: str, cause: str) -> None:
    """StopExecution from inside the sandbox, keeping ``error`` and ``cause`` (moto's API drops them)."""
    _execution(execution_arn).stop(stop_date=when, error=error, cause=cause)


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


# -- moto's backends read directly: no API call a run would count, no XML round trip ------------
def seed_ids(seed: int, region: str) -> None:
    """Seed moto's ids for the fleet about to be created. moto makes a region's default EC2 resources (a
    default VPC, AMIs, volumes...) lazily, on the first call that needs them, drawing thousands of numbers
    from the same source: make them first, so the fleet's ids depend on the seed alone, whatever ran before
    (moto's reset at the end of an earlier sandbox makes them at once). us-east-1: where moto keeps the
    global services, whose first call makes that region's EC2 backend too."""
    for name in dict.fromkeys((region, "us-east-1")):
        ec2_backend(name)
    mock_random.seed(seed)


def raw_response(body: bytes) -> Any:
    """An HTTP body botocore can parse, for a response the sandbox answers itself (a throttled call)."""
    return MockRawResponse(body)


def ec2_backend(region: str) -> Any:
    """moto's EC2 backend, where the fleet is created and snapshotted without the API's XML round trip."""
    return ec2_backends[DEFAULT_ACCOUNT_ID][region]


def run_instances(region: str, count: int, subnet_id: str, security_group_id: str, tags: dict[str, str]) -> list[Any]:
    """Instances straight into moto's EC2 backend, as its RunInstances handler would (same ids, tags, addresses):
    the API round trip serialises every instance to XML and back, minutes for a 5,000-server fleet."""
    reservation = ec2_backend(region).run_instances(
        "ami-12c6146b",
        count,
        None,
        [],
        instance_type="t4g.small",
        is_instance_type_default=False,
        placement=None,
        region_name=region,
        subnet_id=subnet_id,
        security_group_ids=[security_group_id],
        nics=[],
        tags={"instance": tags},
        launch_template={},
    )
    return list(reservation.instances)


@dataclasses.dataclass
class MotoGroup:
    """moto's side of an Auto Scaling group (sandbox/autoscaling.py models what it does over time): its
    records kept in step, instances launched and terminated in EC2."""

    name: str
    region: str
    subnets: dict[str, str]  # zone -> subnet id
    security_group: str
    tags: dict[str, str]

    def _group(self) -> Any:
        return autoscaling_backends[DEFAULT_ACCOUNT_ID][self.region].autoscaling_groups[self.name]

    def launch(self, zone: str) -> tuple[str, str]:
        """A new Pending member (id, private IP), tagged as the group tags its instances."""
        group = self._group()
        tags = {**self.tags, "aws:autoscaling:groupName": self.name}
        [inst] = run_instances(self.region, 1, self.subnets[zone], self.security_group, tags)
        inst.autoscaling_group = group
        group.instance_states.append(InstanceState(inst, lifecycle_state="Pending", autoscaling_group=group))
        return str(inst.id), str(inst.private_ip)

    def terminate(self, instance_id: str) -> None:
        group = self._group()
        group.instance_states = [s for s in group.instance_states if s.instance.id != instance_id]
        ec2_backend(self.region).terminate_instances([instance_id])

    def sync(self, desired: int, lifecycles: dict[str, str]) -> None:
        """The group's desired capacity and each member's lifecycle state (instance id -> state) as modelled."""
        group = self._group()
        group.desired_capacity = desired
        for state in group.instance_states:
            lifecycle = lifecycles.get(state.instance.id)
            if lifecycle is not None:
                state.lifecycle_state = lifecycle
                state.health_status = "Unhealthy" if lifecycle == "Terminating" else "Healthy"


def event_rule_enabled(account: str, region: str, name: str) -> bool:
    """Whether the default bus's rule ``name`` exists and is ENABLED."""
    rule = events_backends[account][region].event_buses["default"].rules.get(name)
    return rule is not None and rule.state == "ENABLED"


def event_pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's pattern matching, as moto implements it for PutEvents."""
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))  # type: ignore[arg-type]


def tagged_event_rules(account: str, region: str) -> list[tuple[str, dict[str, str]]]:
    """(ARN, tags) of every tagged rule on every event bus, ordered by ARN."""
    backend = events_backends[account][region]
    found = []
    for bus in backend.event_buses.values():
        for rule in bus.rules.values():
            tags = backend.tagger.get_tag_dict_for_resource(rule.arn)
            if tags:  # GetResources lists tagged resources
                found.append((rule.arn, tags))
    return sorted(found)


def tag_filter(filters: list[dict[str, Any]] | None) -> Callable[[dict[str, str]], bool]:
    """The Resource Groups Tagging API's TagFilters (every filter must match; any of a filter's values)."""
    return make_tag_matcher(filters)


DEFAULT_ACCOUNT = DEFAULT_ACCOUNT_ID
