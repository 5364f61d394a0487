"""What a handler's cold start loads: no X-Ray SDK unless SDK tracing is asked for (stack parameter
SdkTracing), and no HTTP client until a call needs one.

Each case imports a handler in a fresh interpreter, with the Powertools variables the template gives
every function, so no module cached by another test can hide (or fake) an import.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from template_model import ROOT, load_template
from tests.conftest import REGION
from tools.check_build import lambda_environment

FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
# A sampled trace as Lambda passes it to a function with active tracing (X-Ray developer guide,
# "Tracing header": Root, Parent, Sampled).
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def in_lambda(function: str, sdk_tracing: str, code: str, **extra_env: str) -> dict[str, Any]:
    """Run ``code`` as Lambda would start ``function`` (its folder and the layer on the path); its JSON."""
    function_dir = ROOT / "functions" / function
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(function_dir), str(ROOT / "layers" / "shared")]),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **lambda_environment(function_dir, {"SdkTracing": sdk_tracing}),
        **extra_env,
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_stack_turns_sdk_tracing_off_by_default_and_keeps_lambda_active_tracing() -> None:
    template = load_template()
    assert template["Parameters"]["SdkTracing"]["Default"] == "false"
    function_dir = ROOT / "functions" / "target_gate"
    assert lambda_environment(function_dir)["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert lambda_environment(function_dir, {"SdkTracing": "true"})["POWERTOOLS_TRACE_DISABLED"] == "false"
    # Invocations are recorded by Lambda itself either way.
    assert template["Globals"]["Function"]["Tracing"] == "Active"


INSPECT = """
    import json, sys
    import botocore.client
    import app
    from opsflow.observability import tracer
    print(json.dumps({
        "xray_modules": sorted(m for m in sys.modules if m.split(".")[0] == "aws_xray_sdk"),
        "requests_loaded": "requests" in sys.modules,
        "tracer_disabled": tracer.disabled,
        # The X-Ray SDK patches by replacing the method with a wrapt proxy, not a function.
        "botocore_patched": type(vars(botocore.client.BaseClient)["_make_api_call"]).__name__ != "function",
        "parser_event_models": "aws_lambda_powertools.utilities.parser.models" in sys.modules,
    }))
"""


@pytest.mark.parametrize("function", FUNCTIONS)
def test_with_sdk_tracing_off_no_handler_loads_the_x_ray_sdk_or_an_http_client(function: str) -> None:
    seen = in_lambda(function, "false", INSPECT)

    # Only the SDK's on/off switch, which Powertools turns off; no recorder, sampler or patcher.
    assert set(seen["xray_modules"]) <= {"aws_xray_sdk", "aws_xray_sdk.sdk_config"}
    assert seen["tracer_disabled"] is True
    assert seen["botocore_patched"] is False
    # requests comes with the first health probe (opsflow.health.probe), not with the import.
    assert seen["requests_loaded"] is False
    # Powertools' event models only where one is parsed. Powertools batch imports its record models if
    # pydantic is loaded before it (about 45 ms more), so the approval mailer imports batch first.
    assert seen["parser_event_models"] is (function == "restore_safety_net")


def test_with_sdk_tracing_on_the_handler_and_its_aws_calls_are_recorded() -> None:
    seen = in_lambda(
        "api_collector",
        "true",
        """
        import json
        import boto3
        from moto import mock_aws
        from aws_xray_sdk.core import xray_recorder
        import app
        from opsflow.observability import tracer

        sent = []

        class Recording:  # the X-Ray SDK's emitter interface: what would go to the daemon
            def send_entity(self, entity):
                sent.append(json.loads(entity.serialize()))

            def set_daemon_address(self, address):
                pass

        xray_recorder.configure(emitter=Recording())

        class Context:
            function_name = "opsflow-api_collector"
            memory_limit_in_mb = 256
            invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:opsflow-api_collector"
            aws_request_id = "52fdfc07-2182-454f-963f-5f0f9a621d72"

        with mock_aws():
            boto3.client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2)
            request = {"service": "ec2", "operation": "DescribeInstances", "collect": "Reservations[].Instances[]"}
            result = app.lambda_handler(request, Context())
        print(json.dumps({"tracer_disabled": tracer.disabled, "count": result["count"], "sent": sent}))
        """,
        _X_AMZN_TRACE_ID=TRACE_HEADER,
        BUCKET_NAME="opsflow-data",
        COLLECTOR_ALLOWED_OPERATIONS="ec2:DescribeInstances",
    )

    assert seen["tracer_disabled"] is False
    assert seen["count"] == 2
    [handler] = [s for s in seen["sent"] if s["name"] == "## lambda_handler"]
    assert handler["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert handler["annotations"] == {"ColdStart": True, "Service": "opsflow"}
    # The AWS call the handler made is a subsegment of it (the X-Ray SDK patched botocore).
    [describe] = [s for s in seen["sent"] if s.get("aws", {}).get("operation") == "DescribeInstances"]
    assert (describe["name"], describe["namespace"]) == ("ec2", "aws")
    assert describe["parent_id"] == handler["id"]


def test_an_invalid_tracing_switch_fails_the_cold_start_naming_the_value() -> None:
    function_dir = ROOT / "functions" / "target_gate"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(function_dir), str(ROOT / "layers" / "shared")]),
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "maybe",
    }
    done = subprocess.run([sys.executable, "-c", "import app"], check=False, capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "POWERTOOLS_TRACE_DISABLED='maybe', expected true or false" in done.stderr


def test_the_untraced_provider_keeps_decorated_handlers_working() -> None:
    seen = in_lambda(
        "target_gate",
        "false",
        """
        import json
        from opsflow.observability import tracer

        @tracer.capture_lambda_handler
        def handler(event, context):
            return {"echo": event}

        @tracer.capture_method
        def step(x):
            return x + 1

        print(json.dumps({"result": handler({"a": 1}, None), "step": step(1)}))
        """,
    )
    assert seen == {"result": {"echo": {"a": 1}}, "step": 2}


def test_function_folders_are_what_the_template_deploys() -> None:
    code_uris = {
        Path(str(res["Properties"]["CodeUri"])).name
        for res in load_template()["Resources"].values()
        if res["Type"] == "AWS::Serverless::Function"
    }
    assert set(FUNCTIONS) == code_uris


def test_settings_are_built_when_the_function_loads_them_and_the_shared_bases_never() -> None:
    seen = in_lambda(
        "patch_report",
        "false",
        """
        import json
        import app
        from opsflow import settings

        shared = [settings.RunTableSettings, settings.NotificationSettings, settings.BucketSettings,
                  settings.NeverMuteSettings]
        at_import = {model.__name__: model.__pydantic_complete__ for model in [*shared, app.Settings]}
        loaded = app.settings()
        print(json.dumps({
            "at_import": at_import,
            "bucket": loaded.bucket_name,
            "built": {model.__name__: model.__pydantic_complete__ for model in [*shared, app.Settings]},
        }))
        """,
        BUCKET_NAME="opsflow-data",
    )

    assert not any(seen["at_import"].values()), seen["at_import"]
    assert seen["bucket"] == "opsflow-data"
    # Only the model the function validated was built.
    assert {name for name, built in seen["built"].items() if built} == {"Settings"}
