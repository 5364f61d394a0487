"""Shared fixtures: fake credentials and region, no network, moto-backed AWS, a Lambda context."""

import importlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

# Before anything imports Powertools: quiet logs in tests (levels are read when a Logger is created), and the
# service and namespace every test sets (a test module that imports the layer at collection builds its Metrics).
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "opsflow")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "opsflow-tests")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

from moto import mock_aws

from opsflow import clients, timeutil

if TYPE_CHECKING:
    from sandbox.runtime import Sandbox

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and a region for every test; nothing can reach a real account."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "opsflow-tests")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "opsflow")
    clients.reset()
    yield
    clients.reset()
    timeutil.set_source(None)


class NetworkBlocked(RuntimeError):
    """A test tried to open a network connection."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit and workflow tests never reach the network (Unix sockets stay allowed)."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family == getattr(socket, "AF_UNIX", None):
            return real_connect(self, address)
        raise NetworkBlocked(f"tests may not connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(NetworkBlocked(str(a))))


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for every AWS service, for unit tests of functions and the shared layer."""
    with mock_aws():
        yield


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    aws_request_id: str = "52fdfc07-2182-454f-963f-5f0f9a621d72"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def put_alarm(cloudwatch: Any, name: str, tags: dict[str, str] | None = None, **overrides: Any) -> None:
    """A CPU alarm paging a topic, as a team would have; ``overrides`` change any PutMetricAlarm field."""
    cloudwatch.put_metric_alarm(
        **{
            "AlarmName": name,
            "Namespace": "AWS/EC2",
            "MetricName": "CPUUtilization",
            "Statistic": "Average",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 90,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [f"arn:aws:sns:{REGION}:123456789012:pager"],
            "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            **overrides,
        }
    )


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py; its settings are read again on first use."""
    module = importlib.import_module(f"functions.{name}.app")
    settings = getattr(module, "settings", None)
    if settings is not None:
        settings.cache_clear()
    return module


def event(*parts: str) -> dict[str, Any]:
    """A sample event from events/ (the same files `sam local invoke -e` uses)."""
    import json

    return dict(json.loads(ROOT.joinpath("events", *parts).read_text(encoding="utf-8")))


@pytest.fixture
def run_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The run table as template.yaml declares it (keys and indexes), and TABLE_NAME pointing at it."""
    import boto3

    from sandbox.deployer import table_arguments
    from template_model import load_template

    declared = load_template()["Resources"]["RunTable"]["Properties"]
    boto3.client("dynamodb", region_name=REGION).create_table(TableName="runs", **table_arguments(declared))
    monkeypatch.setenv("TABLE_NAME", "runs")
    return "runs"


@pytest.fixture
def open_sandbox() -> Iterator[Callable[..., "Sandbox"]]:
    """Factory: ``open_sandbox(...)`` takes Sandbox's arguments and returns it started; each is closed at teardown."""
    from sandbox.runtime import Sandbox  # here: unit tests need no sandbox

    opened: list[Sandbox] = []

    def start(*args: Any, **kwargs: Any) -> Sandbox:
        sb = Sandbox(*args, **kwargs)
        opened.append(sb)
        sb.start()
        return sb

    yield start
    for sb in reversed(opened):
        sb.close()
