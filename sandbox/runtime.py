"""The sandbox: template.yaml deployed into moto, the fleet simulated, time virtual.

    with Sandbox(FleetSpec(size=12)) as sb:
        result = sb.run("RollingRestartStateMachine", {"batchSize": 3})
        assert result.status == "SUCCEEDED"

Everything is created from template.yaml (functions, state machines with their substitutions,
topics, queues, tables, buckets, keys, alarms, the functions' EventBridge rules), so adding a
resource there needs no change here.

IAM is enforced as on AWS: every call a function or a state machine makes is evaluated against the
role SAM generates for it from the template (docs/sandbox.md, "IAM").

Simulated time moves only while the caller waits for the sandbox (:meth:`Sandbox.wait`,
:meth:`Sandbox.run_until`): between two calls everything stands still, so what a test reads and
does happens at one simulated instant, the same on every run (docs/sandbox.md, "Time").
"""

import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.events.models import EventPattern, events_backends

from opsflow import clients, timeutil
from sandbox import latency as latencies
from sandbox import moto_patches, sam
from sandbox.authorization import UnmappedOperation
from sandbox.aws_fleet import (
    AccountLookups,
    ApiCall,
    AwsBridge,
    FleetHttpAdapter,
    IamEnforcement,
    InjectedApiError,
    create_fleet_resources,
)
from sandbox.clock import SimClock
from sandbox.commands import CommandService
from sandbox.elb_throttling import ElbApiBuckets
from sandbox.fleet import Fleet, FleetSpec
from sandbox.lambdas import FunctionSpec, LambdaRuntime, PrivateEnviron
from sandbox.latency import LatencyModel
from sandbox.network import Network, Placement
from sandbox.patches import PatchService, PatchSpec, generate
from sandbox.scheduler import Scheduler, Stalled, Timer
from sandbox.template import ROOT, TEMPLATE_PATH, Stack, TemplateError, load_template, table_arguments

REGION = "eu-west-1"
ACCOUNT = "123456789012"
QUIET_LOGGERS = ("moto.stepfunctions", "aws_lambda_powertools.tracing")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
# What happens to "Step Functions Execution Status Change" events, which EventBridge delivers on a
# best-effort basis: once (as usual), dropped, duplicated, or delayed by status_event_delay seconds.
STATUS_EVENT_MODES = ("once", "drop", "duplicate", "delay")


@dataclass
class ExecutionResult:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    events: list[dict[str, Any]]

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if "stateEnteredEventDetails" in e]

    def largest_payload(self) -> int:
        """UTF-8 bytes of the largest state input, state output or task input/result in the history
        (each limited to 256 KiB: Step Functions service quotas)."""
        sizes = [
            len(str(details[field]).encode())
            for event in self.events
            for key, details in event.items()
            if key.endswith("EventDetails") and isinstance(details, dict)
            for field in ("input", "output", "parameters")
            if field in details
        ]
        return max(sizes, default=0)

    @property
    def sim_seconds(self) -> float:
        """Simulated duration from the first to the last history event."""
        if not self.events:
            return 0.0
        return float((self.events[-1]["timestamp"] - self.events[0]["timestamp"]).total_seconds())


@dataclass
class StatusEvent:
    """One status-change event and its fate: delivered (each function's answer, the API calls made
    meanwhile) or dropped."""

    execution_arn: str
    status: str
    fate: str  # "delivered" or "dropped"
    at: float  # simulated time of delivery (or of the drop)
    answers: dict[str, Any] = field(default_factory=dict)  # function name -> what it returned
    calls: list[ApiCall] = field(default_factory=list)


class FunctionFailed(Exception):
    """A function invoked by the sandbox (not by a state machine) raised; its error type and message."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function} failed: {error_type}: {message}")
        self.error_type = error_type


def fill_definition(text: str, substitutions: dict[str, Any], source: str) -> str:
    """SAM's DefinitionSubstitutions: replace ``${Name}``; an unknown name is an error naming it."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in substitutions:
            raise TemplateError(f"{source}: placeholder ${{{name}}} has no DefinitionSubstitutions entry")
        return str(substitutions[name])

    return _PLACEHOLDER.sub(replace, text)


@dataclass
class _StopRule:
    state_name: str
    execution_arn: str | None
    cause: str


class Sandbox:
    def __init__(
        self,
        fleet: FleetSpec | None = None,
        *,
        parameters: dict[str, str] | None = None,
        template_path: Path = TEMPLATE_PATH,
        log_level: str = "ERROR",
        patches: PatchSpec | None = None,
        window_in_hours: float = 6.0,
        definitions: dict[str, dict[str, Any]] | None = None,
        enforce_iam: bool = True,
        status_events: str = "once",
        status_event_delay: float = 300.0,
        start: dt.datetime | None = None,
        latency: LatencyModel = latencies.AWS,
        seed: int | None = None,
        elb_throttling: bool = True,
    ) -> None:
        """``enforce_iam``: evaluate the calls of functions and state machines against their roles, as
        AWS does. Turn it off only where a test is about something IAM would hide. ``start``: the
        simulated instant the sandbox starts at (default: now). ``latency``: what AWS takes per state
        transition, invoke and API call (sandbox/latency.py). ``seed``: of the interpreter's and the
        sandbox's own randomness (default: the fleet's seed, else 1). ``elb_throttling``: the ELB API's
        token buckets, shared by every caller of the account (``elb_buckets``, sandbox/elb_throttling.py)."""
        if status_events not in STATUS_EVENT_MODES:
            raise ValueError(f"status_events must be one of {', '.join(STATUS_EVENT_MODES)}, not {status_events!r}")
        if status_event_delay < 0:
            raise ValueError(f"status_event_delay must be 0 or more simulated seconds, not {status_event_delay}")
        self.status_events = status_events  # tests may change it between runs
        self.status_event_delay = status_event_delay
        self.status_event_log: list[StatusEvent] = []
        self._timers: list[Timer] = []
        self._alarm_timers: list[Timer] = []  # alarms set to change state later (set_alarm_state)
        self.fleet_spec = fleet
        self.enforce_iam = enforce_iam
        self.patch_spec = patches or PatchSpec()
        self.window_in_hours = window_in_hours
        # State machine logical id -> an ASL to deploy instead of its file (a test of "what if the workflow did X").
        self._definitions = dict(definitions or {})
        self._start = start
        self.latency = latency
        self.elb_throttling = elb_throttling
        self.elb_buckets: ElbApiBuckets | None = None
        self.seed = seed if seed is not None else (fleet.seed if fleet else 1)
        self._names = random.Random(self.seed)
        self._stop_rules: list[_StopRule] = []
        self._parameters = dict(parameters or {})
        self.template_path = template_path
        self.log_level = log_level
        self._executions: list[str] = []
        self._delivered: set[str] = set()
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._saved_env = dict(os.environ)
        os.environ.update(
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
        )
        os.environ.pop("AWS_PROFILE", None)
        # Caught errors are part of the workflows; moto and the tracer would log each with a traceback.
        self._quieted = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.clock = SimClock(self._start)
        self.scheduler = Scheduler(self.clock, PrivateEnviron())
        self._helpers = self.scheduler.adopting_helpers()
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._started = True
        self._helpers.__enter__()  # threads a handler starts (an S3 transfer's pool) are its helpers
        try:
            boto3.setup_default_session(region_name=REGION)
            clients.reset()
            timeutil.set_source(self.clock.now, self.scheduler.sleep)  # a handler's waits too
            self.lambdas = LambdaRuntime(
                self.clock.now,
                self._lambda_env(),
                [ROOT / "layers" / "shared"],
                outside=self.scheduler.external,
                seed=self.seed,
                deadline=self.scheduler.deadline,
            )
            self._child_histories: list[Any] = []
            self._patches = moto_patches.patched(
                self.scheduler,
                self.lambdas.invoke,
                self._child_histories,
                latency=self.latency,
                seed=self.seed,
                on_state=self._on_state,
                on_end=self._on_execution_end,
            )
            self._patches.__enter__()
            self.fleet = Fleet(self.fleet_spec or FleetSpec(size=1), self.clock.now())
            self.bridge = AwsBridge(self.fleet, self.clock.now)
            self.bridge.install(boto3.DEFAULT_SESSION)
            if self.elb_throttling:
                self.elb_buckets = ElbApiBuckets(self.clock.now)
                self.bridge.elb_buckets = self.elb_buckets
            self.fleet_resources = create_fleet_resources(self.fleet, REGION) if self.fleet_spec else {}
            template = load_template(self.template_path)
            self.stack = Stack(template, self._stack_parameters(template), REGION, ACCOUNT)
            self._placements: dict[str, Placement | None] = {}
            self._deploy()
            self.network = Network.snapshot(self.client("ec2"), self._placements)
            adapter = FleetHttpAdapter(self.fleet, self.clock.now, self.network)
            clients.http_session().mount("http://", adapter)
            clients.http_session().mount("https://", adapter)
            if self.fleet_spec:
                self.bridge.patches = self._patch_service()
                self.commands = CommandService(self.fleet, self.bridge.patches.data, self.clock.now)
                self.bridge.commands = self.commands
            if self.enforce_iam:
                self._enforce_iam(template)
            self.bridge.calls.clear()  # count what runs do, not the set-up
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._started:
            return
        for timer in self._timers + self._alarm_timers:  # a delayed event not delivered yet never will be
            timer.cancel()
        sfn = self.client("stepfunctions")
        running = [arn for arn in self._executions if self.running(arn)]
        for arn in running:
            sfn.stop_execution(executionArn=arn, error="Sandbox.Closed", cause="sandbox closed")
        # Let them unwind (a task waiting for its token ends at its timeout: at once in simulated time).
        with contextlib.suppress(TimeoutError):
            self.scheduler.run(until=lambda: not any(self.running(arn) for arn in running), timeout=30)
        timeutil.set_source(None)
        if hasattr(self, "lambdas"):
            self.lambdas.close()
        if hasattr(self, "_patches"):
            self._patches.__exit__(None, None, None)
        self._mock.stop()
        self._helpers.__exit__(None, None, None)
        clients.reset()
        os.environ.clear()
        os.environ.update(self._saved_env)
        for name, level in self._quieted.items():
            logging.getLogger(name).setLevel(level)
        self._started = False

    def _enforce_iam(self, template: dict[str, Any]) -> None:
        """From now on, calls by functions and state machines need their role's permission."""
        roles = sam.roles(sam.transform(template, self.stack), self.stack, moto_patches.aws_managed_policy)
        machines = {
            self.stack.get_att(logical_id, "Arn"): logical_id
            for logical_id in self.stack.resources("AWS::Serverless::StateMachine")
        }
        self.bridge.iam = IamEnforcement(roles, machines, AccountLookups(REGION, ACCOUNT), self.lambdas.logs)

    def _check_unmapped(self) -> None:
        """A call IAM could not be asked about fails the run loudly, even if the workflow caught the error."""
        if self.bridge.unmapped:
            raise UnmappedOperation("; ".join(dict.fromkeys(self.bridge.unmapped)))

    def _patch_service(self) -> PatchService:
        now = self.clock.now_datetime()
        data = generate(sorted(self.fleet.instances), self.patch_spec, now)
        ips = {i: inst.private_ip for i, inst in self.fleet.instances.items()}
        window = self.fleet_resources["MaintenanceWindowId"]
        return PatchService(data, ips, {window: now + dt.timedelta(hours=self.window_in_hours)})

    def _lambda_env(self) -> dict[str, str]:
        return {
            "AWS_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.log_level,
        }

    def _stack_parameters(self, template: dict[str, Any]) -> dict[str, str]:
        """Template parameters: the caller's, plus the simulated fleet's ids where the template asks.

        A caller's value may name the fleet's resources, created only at start: ``{TargetGroupArn:api}``.
        """
        declared = template.get("Parameters", {})
        values = {k: v for k, v in self.fleet_resources.items() if k in declared}
        named = re.compile(r"\{((?:TargetGroupArn|LoadBalancerArn)(?::[\w-]+)?)\}")
        values.update({k: named.sub(lambda m: self.fleet_resources[m[1]], v) for k, v in self._parameters.items()})
        return values

    # -- deployment ------------------------------------------------------------------------
    def _deploy(self) -> None:
        stack = self.stack
        # Physical ids first, so any resource can refer to any other whatever the order.
        for logical_id, res in stack.resources().items():
            stack.physical[logical_id] = self._physical_ids(logical_id, res)
            if "FunctionUrlConfig" in res.get("Properties", {}):  # SAM's generated <Function>Url resource
                url = f"https://{stack.physical[logical_id]['Ref']}.lambda-url.{REGION}.on.aws/"
                stack.physical[f"{logical_id}Url"] = {"Ref": url, "FunctionUrl": url}
        for logical_id, res in stack.resources().items():
            self._create(logical_id, res)
        for logical_id, res in stack.resources("AWS::Serverless::Function").items():
            self._wire_function(logical_id, res["Properties"])

    def _name(self, logical_id: str, props: dict[str, Any], key: str) -> str:
        explicit = props.get(key)
        return str(self.stack.resolve(explicit)) if explicit else f"{self.stack.name}-{logical_id}"

    def _physical_ids(self, logical_id: str, res: dict[str, Any]) -> dict[str, str]:
        props, kind = res.get("Properties", {}), res["Type"]
        arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:{{}}"
        if kind == "AWS::Serverless::Function":
            name = self._name(logical_id, props, "FunctionName")
            return {"Ref": name, "Arn": arn.format("lambda", f"function:{name}")}
        if kind == "AWS::Serverless::StateMachine":
            name = self._name(logical_id, props, "Name")
            sm_arn = arn.format("states", f"stateMachine:{name}")
            return {"Ref": sm_arn, "Arn": sm_arn, "Name": name}
        if kind == "AWS::SNS::Topic":
            name = self._name(logical_id, props, "TopicName")
            return {"Ref": arn.format("sns", name), "TopicArn": arn.format("sns", name), "TopicName": name}
        if kind == "AWS::SQS::Queue":
            name = self._name(logical_id, props, "QueueName")
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            return {"Ref": url, "QueueUrl": url, "Arn": arn.format("sqs", name), "QueueName": name}
        if kind == "AWS::DynamoDB::Table":
            name = self._name(logical_id, props, "TableName")
            return {"Ref": name, "Arn": arn.format("dynamodb", f"table/{name}")}
        if kind == "AWS::S3::Bucket":
            name = self._name(logical_id, props, "BucketName").lower()
            return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        if kind == "AWS::KMS::Key":
            key_id = self.client("kms").create_key(
                Description=logical_id,
                KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
                KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            )["KeyMetadata"]["KeyId"]
            return {"Ref": key_id, "KeyId": key_id, "Arn": arn.format("kms", f"key/{key_id}")}
        if kind == "AWS::Serverless::LayerVersion":
            return {"Ref": arn.format("lambda", f"layer:{logical_id}:1")}
        if kind == "AWS::EC2::SecurityGroup":
            group_id = self.client("ec2").create_security_group(
                GroupName=f"{self.stack.name}-{logical_id}",
                Description=str(self.stack.resolve(props.get("GroupDescription", logical_id))),
                VpcId=str(self.stack.resolve(props["VpcId"])),
            )["GroupId"]
            return {"Ref": group_id, "GroupId": group_id}
        if kind == "AWS::CloudWatch::Alarm":
            name = self._name(logical_id, props, "AlarmName")
            return {"Ref": name, "Arn": arn.format("cloudwatch", f"alarm:{name}")}
        # Not simulated (roles, log groups, alarms, dashboards...): names that resolve, nothing created.
        generic = f"{self.stack.name}-{logical_id}"
        return {"Ref": generic, "Arn": arn.format("sandbox", generic)}

    def _create(self, logical_id: str, res: dict[str, Any]) -> None:
        props, ids = res.get("Properties", {}), self.stack.physical[logical_id]
        kind = res["Type"]
        if kind == "AWS::SNS::Topic":
            self.client("sns").create_topic(Name=ids["TopicName"])
        elif kind == "AWS::SQS::Queue":
            self.client("sqs").create_queue(QueueName=ids["QueueName"])
        elif kind == "AWS::DynamoDB::Table":
            self.client("dynamodb").create_table(TableName=ids["Ref"], **table_arguments(self.stack.resolve(props)))
        elif kind == "AWS::S3::Bucket":
            self.client("s3").create_bucket(Bucket=ids["Ref"], CreateBucketConfiguration={"LocationConstraint": REGION})
        elif kind == "AWS::CloudWatch::Alarm":  # its properties are PutMetricAlarm's parameters
            self.client("cloudwatch").put_metric_alarm(**{**self.stack.resolve(props), "AlarmName": ids["Ref"]})
        elif kind == "AWS::Serverless::Function":
            self._create_function(logical_id, props, ids)
        elif kind == "AWS::Serverless::StateMachine":
            self._create_state_machine(logical_id, props, ids)
        elif kind == "AWS::EC2::SecurityGroup":
            self._set_egress(ids["GroupId"], self.stack.resolve(props.get("SecurityGroupEgress")))
        elif kind == "AWS::EC2::SecurityGroupIngress":
            rule = self.stack.resolve(props)
            self.client("ec2").authorize_security_group_ingress(
                GroupId=rule["GroupId"], IpPermissions=[_ip_permission(rule, "SourceSecurityGroupId")]
            )

    def _set_egress(self, group_id: str, rules: list[dict[str, Any]] | None) -> None:
        """As CloudFormation does: declared egress rules replace the default allow-all rule."""
        if not rules:
            return
        ec2 = self.client("ec2")
        ec2.revoke_security_group_egress(
            GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        )
        ec2.authorize_security_group_egress(
            GroupId=group_id, IpPermissions=[_ip_permission(r, "DestinationSecurityGroupId") for r in rules]
        )

    def _role_arn(self) -> str:
        if not hasattr(self, "_role"):
            iam = self.client("iam")
            self._role = iam.create_role(RoleName="sandbox-execution-role", AssumeRolePolicyDocument="{}")["Role"][
                "Arn"
            ]
        return str(self._role)

    def _create_function(self, logical_id: str, props: dict[str, Any], ids: dict[str, str]) -> None:
        env = self.stack.resolve(props.get("Environment", {}).get("Variables", {}))
        self._placements[logical_id] = Placement.from_vpc_config(self.stack.resolve(props.get("VpcConfig")))
        spec = FunctionSpec(
            logical_id=logical_id,
            function_name=ids["Ref"],
            arn=ids["Arn"],
            code_dir=(self.template_path.parent / str(props["CodeUri"])).resolve(),
            handler=str(props["Handler"]),
            environment={k: str(v) for k, v in env.items()},
            timeout=int(props.get("Timeout", 3)),
            memory=int(props.get("MemorySize", 128)),
        )
        self.lambdas.add(spec)
        self.client("lambda").create_function(
            FunctionName=spec.function_name,
            Runtime=str(props.get("Runtime", "python3.13")),
            Role=self._role_arn(),
            Handler=spec.handler,
            Code={"ZipFile": _EMPTY_ZIP},
            Timeout=spec.timeout,
            MemorySize=spec.memory,
        )

    def _wire_function(self, logical_id: str, props: dict[str, Any]) -> None:
        """Function URLs and SQS event sources, as the template declares them.

        moto invokes a function synchronously when a message reaches a queue it is mapped to.
        """
        name = self.stack.physical[logical_id]["Ref"]
        lam = self.client("lambda")
        if "FunctionUrlConfig" in props:
            lam.create_function_url_config(
                FunctionName=name, AuthType=props["FunctionUrlConfig"].get("AuthType", "NONE")
            )
        for source in props.get("Events", {}).values():
            if source.get("Type") == "SQS":
                spec = self.stack.resolve(source["Properties"])
                lam.create_event_source_mapping(
                    EventSourceArn=spec["Queue"], FunctionName=name, BatchSize=int(spec.get("BatchSize", 10))
                )
        for rule_name, pattern, state in self._function_rules(logical_id, props):
            self.client("events").put_rule(Name=rule_name, EventPattern=json.dumps(pattern), State=state)

    def _function_rules(self, logical_id: str, props: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """The function's EventBridge rules: (name, pattern, state). Unnamed ones get a name as CloudFormation would."""
        rules = []
        for event_id, source in props.get("Events", {}).items():
            if source.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                spec = self.stack.resolve(source["Properties"])
                name = spec.get("RuleName") or f"{self.stack.name}-{logical_id}{event_id}"[:64]
                rules.append((str(name), spec["Pattern"], str(spec.get("State", "ENABLED"))))
        return rules

    def invoke_url(self, logical_id: str, method: str = "GET", query: str = "", body: str = "") -> dict[str, Any]:
        """An HTTP request to the function's URL (payload format 2.0), as a browser would send it."""
        spec = self.lambdas.by_logical_id(logical_id)
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/",
            "rawQueryString": query,
            # As Lambda sends it: parsed query parameters, absent when there are none.
            **({"queryStringParameters": dict(parse_qsl(query, keep_blank_values=True))} if query else {}),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
            "body": body,
            "isBase64Encoded": False,
            "requestContext": {
                "http": {
                    "method": method,
                    "path": "/",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "sandbox",
                },
                "requestId": self._uuid(),
                "stage": "$default",
            },
        }
        payload, _, _ = self.lambdas.invoke(spec.function_name, json.dumps(event))
        self._check_unmapped()
        return dict(json.loads(payload))

    def definition(self, logical_id: str) -> str:
        """The state machine's ASL with its DefinitionSubstitutions filled in."""
        res = self.stack.resources("AWS::Serverless::StateMachine")[logical_id]
        props = res["Properties"]
        path = self.template_path.parent / str(props["DefinitionUri"])
        substitutions = self.stack.resolve(props.get("DefinitionSubstitutions", {}))
        override = self._definitions.get(logical_id)
        text = json.dumps(override) if override is not None else path.read_text(encoding="utf-8")
        return fill_definition(text, substitutions, str(props["DefinitionUri"]))

    def _create_state_machine(self, logical_id: str, props: dict[str, Any], ids: dict[str, str]) -> None:
        source = str(props["DefinitionUri"])
        try:
            self.client("stepfunctions").create_state_machine(
                name=ids["Name"], definition=self.definition(logical_id), roleArn=self._role_arn()
            )
        except ClientError as exc:  # moto answers InvalidDefinition, or a bare error naming the parser's
            message = exc.response["Error"].get("Message", str(exc)).split(" in definition '", 1)[0]
            raise TemplateError(f"{source}: rejected by the ASL parser: {message}") from exc

    # -- using it --------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def state_machine_arn(self, logical_id: str) -> str:
        return self.stack.get_att(logical_id, "Arn")

    def start_execution(self, logical_id: str, payload: Any, name: str | None = None) -> str:
        """Start an execution; it runs up to its first wait (no simulated time passes) before this returns."""
        arn = self.client("stepfunctions").start_execution(
            stateMachineArn=self.state_machine_arn(logical_id),
            name=name or f"run-{self._names.getrandbits(48):012x}",
            input=json.dumps(payload),
        )["executionArn"]
        self._executions.append(arn)
        return str(arn)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._names.getrandbits(128), version=4))

    def running(self, execution_arn: str) -> bool:
        return moto_patches.execution_running(execution_arn)

    def wait(self, execution_arn: str, timeout: float = 120.0) -> ExecutionResult:
        """Run the simulation until the execution ends.

        ``timeout`` is wall seconds, a safety net (TimeoutError). When the execution waits for
        something only the caller can do (a task token) and nothing else can happen, raises
        :class:`sandbox.scheduler.Stalled` (a TimeoutError) at once.
        """
        try:
            self.scheduler.run(until=lambda: not self.running(execution_arn), timeout=timeout)
        except Stalled as exc:
            raise Stalled(f"{execution_arn} is still RUNNING: {exc}") from None
        return self.result(execution_arn)

    def run_until(
        self, condition: Callable[[], bool] | None = None, *, at: float | None = None, timeout: float = 120.0
    ) -> bool:
        """Run the simulation until ``condition()`` holds or simulated time reaches ``at`` (epoch seconds).

        ``condition`` is checked whenever every sandbox thread waits, before the clock moves: it may
        read anything and call AWS (nothing runs meanwhile). With ``at``, the clock stops exactly
        there, everything due by then having run. Returns whether ``condition`` held (True if none).
        Raises :class:`sandbox.scheduler.Stalled` when neither can happen any more.
        """
        held = [condition is None]

        def check() -> bool:
            held[0] = condition is None or bool(condition())
            return condition is not None and held[0]

        self.scheduler.run(until=check, at=at, timeout=timeout)
        return held[0]

    def stop_when_entering(
        self, state_name: str, execution_arn: str | None = None, cause: str = "stopped by an operator"
    ) -> None:
        """Stop the execution (any, or ``execution_arn``) at the simulated instant it is about to enter ``state_name``.

        As StopExecution then: the state is not entered (no StateEntered event, nothing of it runs),
        the execution ends ABORTED with error ``Sandbox.Stopped`` and ``cause``. Once: the first
        execution to get there.
        """
        self._stop_rules.append(_StopRule(state_name, execution_arn, cause))

    def _on_state(self, execution_arn: str, state_name: str) -> None:
        for rule in self._stop_rules:
            if rule.state_name == state_name and rule.execution_arn in (None, execution_arn):
                self._stop_rules.remove(rule)
                moto_patches.stop_execution(execution_arn, self.clock.now_datetime(), "Sandbox.Stopped", rule.cause)
                return

    def result(self, execution_arn: str, described: dict[str, Any] | None = None) -> ExecutionResult:
        sfn = self.client("stepfunctions")
        described = described or sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            self._deliver_status_change(described)
        self._check_unmapped()
        output = json.loads(described["output"]) if described.get("output") else None
        return ExecutionResult(
            execution_arn,
            described["status"],
            output,
            described.get("error"),
            described.get("cause"),
            self.history(execution_arn),
        )

    def run(self, logical_id: str, payload: Any, timeout: float = 120.0) -> ExecutionResult:
        return self.wait(self.start_execution(logical_id, payload), timeout)

    def _on_execution_end(self, execution_arn: str) -> None:
        """A nested execution (started by a workflow's Task, not by the caller) has ended: EventBridge
        reports it like any other, when it ends. The caller's own executions are reported when the
        sandbox sees them end (:meth:`result`), as before."""
        if not moto_patches.started_by_a_workflow(execution_arn):
            return

        def report() -> None:
            described = self.client("stepfunctions").describe_execution(executionArn=execution_arn)
            self._deliver_status_change(described)

        self._timers.append(self.scheduler.call_later(0, report, "status-event"))

    def _deliver_status_change(self, described: dict[str, Any]) -> None:
        """EventBridge: "Step Functions Execution Status Change" to the functions whose rules match.

        Once per execution, when the sandbox sees it end (as EventBridge would, seconds later), unless
        ``status_events`` says to drop, duplicate or delay it: EventBridge documents these events as
        best-effort delivery, and its targets may see an event twice.
        """
        arn = described["executionArn"]
        if arn in self._delivered:
            return
        self._delivered.add(arn)
        event = {
            "version": "0",
            "id": self._uuid(),
            "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states",
            "account": ACCOUNT,
            "time": self.clock.now_datetime().isoformat(),
            "region": REGION,
            "resources": [arn],
            "detail": {
                "executionArn": arn,
                "stateMachineArn": described["stateMachineArn"],
                "name": described.get("name"),
                "status": described["status"],
                "input": described.get("input"),
                "output": described.get("output"),
                "error": described.get("error"),
                "cause": described.get("cause"),
            },
        }
        if self.status_events == "drop":
            self.status_event_log.append(StatusEvent(arn, described["status"], "dropped", self.clock.now()))
        elif self.status_events == "delay":
            self._timers.append(
                self.scheduler.call_later(self.status_event_delay, lambda: self._deliver(event), "status-event")
            )
        else:
            for _ in range(2 if self.status_events == "duplicate" else 1):
                self._deliver(event)

    def _deliver(self, event: dict[str, Any]) -> None:
        first_call = len(self.bridge.calls)
        answers = {}
        for function_name, rule_name, pattern in self._event_rules():
            if self._rule_enabled(rule_name) and EventPattern.load(json.dumps(pattern)).matches_event(event):  # type: ignore[arg-type]
                payload, _, _ = self.lambdas.invoke(function_name, json.dumps(event))
                answers[function_name] = json.loads(payload)
        detail = event["detail"]
        delivered = StatusEvent(detail["executionArn"], detail["status"], "delivered", self.clock.now(), answers)
        delivered.calls = self.bridge.calls[first_call:]
        self.status_event_log.append(delivered)

    def wait_for_status_events(self, timeout: float = 30.0) -> None:
        """Run the simulation until every delayed status-change event has been delivered (``timeout``: wall seconds)."""
        self.run_until(lambda: all(timer.done for timer in self._timers), timeout=timeout)

    def fire_schedule(self, logical_id: str) -> Any:
        """Invoke a function as its EventBridge Scheduler schedule (ScheduleV2) would, now.

        The schedule's Input is sent with the scheduler's context attributes filled in at the current
        simulated time. Returns what the function returned; FunctionFailed if it raised.
        """
        function = self.stack.resources("AWS::Serverless::Function").get(logical_id)
        if function is None:
            raise KeyError(f"no function {logical_id!r} in {self.template_path.name}")
        schedules = {
            event_id: self.stack.resolve(source["Properties"])
            for event_id, source in function["Properties"].get("Events", {}).items()
            if source.get("Type") == "ScheduleV2"
        }
        if len(schedules) != 1:
            raise ValueError(f"{logical_id} has {len(schedules)} ScheduleV2 events; fire_schedule needs exactly one")
        ((event_id, schedule),) = schedules.items()
        if schedule.get("State", "ENABLED") != "ENABLED":
            raise ValueError(f"{logical_id}'s schedule {event_id} is {schedule['State']}: it would not fire")
        if "Input" not in schedule:
            raise ValueError(
                f"{logical_id}'s schedule {event_id} has no Input (the scheduler's default is not simulated)"
            )
        attributes = {
            "schedule-arn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{logical_id}{event_id}",
            "scheduled-time": self.clock.now_datetime().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "execution-id": self._uuid().replace("-", "")[:16],
            "attempt-number": "1",
        }
        text = str(schedule["Input"])
        for name, value in attributes.items():
            text = text.replace(f"<aws.scheduler.{name}>", value)
        payload, errored, _ = self.lambdas.invoke(self.stack.physical[logical_id]["Ref"], text)
        answer = json.loads(payload)
        if errored:
            raise FunctionFailed(logical_id, answer["errorType"], answer["errorMessage"])
        return answer

    def _event_rules(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(function name, rule name, pattern) of every function's EventBridge rule."""
        return [
            (self.stack.physical[logical_id]["Ref"], rule_name, pattern)
            for logical_id, res in self.stack.resources("AWS::Serverless::Function").items()
            for rule_name, pattern, _ in self._function_rules(logical_id, res["Properties"])
        ]

    def _rule_enabled(self, name: str) -> bool:
        """A disabled rule delivers nothing (read from moto's backend: no API call the run would count)."""
        rule = events_backends[ACCOUNT][REGION].event_buses["default"].rules.get(name)
        return rule is not None and rule.state == "ENABLED"

    def child_histories(self) -> list[list[dict[str, Any]]]:
        """The history of each Distributed Map child execution so far, in the order they started."""
        return [[dict(e) for e in manager.get_event_history()] for manager in self._child_histories]

    def child_events(self) -> list[dict[str, Any]]:
        """Events of every Distributed Map child execution so far (on AWS: their own histories)."""
        return [event for history in self.child_histories() for event in history]

    def deploy_definition(
        self, name: str, path: Path, substitutions: dict[str, Any], role_of: str | None = None
    ) -> str:
        """Create a state machine that is not in the template (e.g. a benchmark baseline).

        ``substitutions`` are CloudFormation values resolved against the stack, like DefinitionSubstitutions.
        ``role_of``: the template state machine whose role it runs with; None: it has no role in the
        template, and its own calls are not checked by IAM (the functions it invokes still are).
        """
        text = fill_definition(path.read_text(encoding="utf-8"), self.stack.resolve(substitutions), str(path))
        arn = self.client("stepfunctions").create_state_machine(name=name, definition=text, roleArn=self._role_arn())[
            "stateMachineArn"
        ]
        self.stack.physical[name] = {"Ref": arn, "Arn": arn, "Name": name}
        if role_of is not None and self.bridge.iam is not None:
            self.bridge.iam.roles.setdefault(name, self.bridge.iam.roles[role_of])
            self.bridge.iam.state_machines[str(arn)] = name
        return str(arn)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        pages = self.client("stepfunctions").get_paginator("get_execution_history")
        return [e for page in pages.paginate(executionArn=execution_arn) for e in page["events"]]

    def stop(self, execution_arn: str, cause: str = "stopped by an operator") -> None:
        """StopExecution now (at the current simulated instant)."""
        self.client("stepfunctions").stop_execution(executionArn=execution_arn, error="Sandbox.Stopped", cause=cause)

    def set_alarm_state(self, alarm_name: str, state: str = "ALARM", *, after: float = 0.0) -> None:
        """The alarm goes to ``state`` ``after`` simulated seconds from now (at once if 0), as when its
        metric crosses the threshold: a watched alarm firing mid-run. Its actions are not run."""

        def change() -> None:
            self.client("cloudwatch").set_alarm_state(
                AlarmName=alarm_name, StateValue=state, StateReason=f"sandbox: {state} at simulated {self.clock.now()}"
            )

        if after <= 0:
            change()
        else:
            self._alarm_timers.append(self.scheduler.call_later(after, change, f"alarm {alarm_name} -> {state}"))

    def monitoring_state(self) -> dict[str, str]:
        """Every alarm's actions and every rule's state: compare before and after a run."""
        state: dict[str, str] = {}
        for page in self.client("cloudwatch").get_paginator("describe_alarms").paginate():
            for alarm in page["MetricAlarms"] + page.get("CompositeAlarms", []):
                state[f"alarm:{alarm['AlarmName']}"] = (
                    "actions enabled" if alarm["ActionsEnabled"] else "actions disabled"
                )
        for page in self.client("events").get_paginator("list_rules").paginate():
            for rule in page["Rules"]:
                state[f"rule:{rule['Name']}"] = rule["State"]
        return state

    def inject_api_error(
        self,
        service: str,
        operation: str,
        code: str,
        count: int = 1,
        *,
        match: dict[str, Any] | None = None,
        lost_response: bool = False,
        state: str | None = None,
        item: int | None = None,
    ) -> None:
        """The next ``count`` calls of ``service``.``operation`` (with ``match``ing parameters) fail with ``code``.

        ``lost_response``: the calls take effect first, then fail (a response lost on the way back).
        ``state``: only the calls a state of that name makes itself (a Task's Lambda Invoke, SDK or
        optimized integration call; a Map's ItemReader read), in any execution; not the calls of the
        function it invokes. ``item``: only the calls made in the Map item of that index (``$$.Map.Item.Index``;
        in a Distributed Map, one child execution).
        """
        self.bridge.errors.append(
            InjectedApiError(service, operation, code, f"injected {code}", count, match, lost_response, state, item)
        )


def _ip_permission(rule: dict[str, Any], group_key: str) -> dict[str, Any]:
    """A template security group rule (resolved) as an EC2 IpPermission."""
    permission: dict[str, Any] = {"IpProtocol": str(rule["IpProtocol"])}
    if "FromPort" in rule:
        permission.update(FromPort=int(rule["FromPort"]), ToPort=int(rule["ToPort"]))
    if rule.get(group_key):
        permission["UserIdGroupPairs"] = [{"GroupId": rule[group_key]}]
    if rule.get("CidrIp"):
        permission["IpRanges"] = [{"CidrIp": rule["CidrIp"]}]
    return permission


def _empty_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README", "code runs in-process in the sandbox")
    return buf.getvalue()


_EMPTY_ZIP = _empty_zip()
