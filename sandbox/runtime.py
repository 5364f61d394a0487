"""The sandbox: template.yaml deployed into moto, the fleet simulated, time virtual.

    with Sandbox(FleetSpec(size=12)) as sb:
        result = sb.run("RollingRestartStateMachine", {"batchSize": 3})
        assert result.status == "SUCCEEDED"

:class:`Sandbox` is the facade tests use; the work is done by its parts:

- sandbox/environment.py: the process set up for moto (credentials, region, quiet loggers), put back on close;
- sandbox/deployer.py: template.yaml deployed as CloudFormation would, one entry per resource type;
- sandbox/executions.py: starting executions, running simulated time until they end, their histories;
- sandbox/triggers.py: EventBridge status-change events, schedules and function URLs invoking functions;
- sandbox/faults.py: failing API calls, alarms firing, an operator's StopExecution.

IAM is enforced as on AWS: every call a function or a state machine makes is evaluated against the
role SAM generates for it from the template (docs/sandbox.md, "IAM").

Simulated time moves only while the caller waits for the sandbox (:meth:`Sandbox.wait`,
:meth:`Sandbox.run_until`): between two calls everything stands still, so what a test reads and
does happens at one simulated instant, the same on every run (docs/sandbox.md, "Time").
"""

import datetime as dt
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from opsflow import clients, timeutil
from sandbox import latency as latencies
from sandbox import moto_patches, sam
from sandbox.authorization import UnmappedOperation
from sandbox.aws_fleet import AccountLookups, AwsBridge, FleetHttpAdapter, IamEnforcement, create_fleet_resources
from sandbox.clock import SimClock
from sandbox.commands import CommandService
from sandbox.deployer import StackDeployer
from sandbox.elb_throttling import ElbApiBuckets
from sandbox.environment import ACCOUNT, REGION, AwsEnvironment, client
from sandbox.executions import ExecutionResult, Executions
from sandbox.faults import Faults
from sandbox.fleet import Fleet, FleetSpec
from sandbox.lambdas import LambdaRuntime, PrivateEnviron
from sandbox.latency import LatencyModel
from sandbox.network import Network
from sandbox.patch_data import PatchService, PatchSpec, generate
from sandbox.scheduler import Scheduler
from sandbox.triggers import FunctionFailed, StatusEvent, Triggers, check_status_event_mode
from template_model import ROOT, TEMPLATE_PATH, Stack, load_template

__all__ = ["ACCOUNT", "REGION", "ExecutionResult", "FunctionFailed", "Sandbox", "StatusEvent"]


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
        sandbox's own randomness (default: the fleet's seed, else 1). ``definitions``: state machine
        logical id -> an ASL to deploy instead of its file. ``elb_throttling``: the ELB API's token
        buckets, shared by every caller of the account (``elb_buckets``, sandbox/elb_throttling.py)."""
        check_status_event_mode(status_events, status_event_delay)
        self._status_events = status_events
        self._status_event_delay = status_event_delay
        self.fleet_spec = fleet
        self.enforce_iam = enforce_iam
        self.patch_spec = patches or PatchSpec()
        self.window_in_hours = window_in_hours
        self._definitions = dict(definitions or {})
        self._start = start
        self.latency = latency
        self.elb_throttling = elb_throttling
        self.elb_buckets: ElbApiBuckets | None = None
        self.seed = seed if seed is not None else (fleet.seed if fleet else 1)
        self._names = random.Random(self.seed)  # execution names and event ids: the same on every run
        self._parameters = dict(parameters or {})
        self.template_path = template_path
        self.log_level = log_level
        self._environment = AwsEnvironment()
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._environment.start()
        self._started = True
        self.clock = SimClock(self._start)
        self.scheduler = Scheduler(self.clock, PrivateEnviron())
        self._helpers = self.scheduler.adopting_helpers()
        self._helpers.__enter__()  # threads a handler starts (an S3 transfer's pool) are its helpers
        try:
            timeutil.set_source(self.clock.now, self.scheduler.sleep)  # a handler's waits too
            self.lambdas = LambdaRuntime(
                self.clock.now,
                {"AWS_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": self.log_level},
                [ROOT / "layers" / "shared"],
                outside=self.scheduler.external,
                seed=self.seed,
                deadline=self.scheduler.deadline,
            )
            self.executions = Executions(self.scheduler, self._names, self._on_ended, self._check_unmapped)
            self._patches = moto_patches.patched(
                self.scheduler,
                self.lambdas.invoke,
                self.executions.child_managers,
                latency=self.latency,
                seed=self.seed,
                on_state=self._on_state,
                on_end=self._on_execution_end,
                # the fleet is made below, before any call
                modelled_target_group=lambda arn: self.fleet.group_by_arn(arn) is not None,
            )
            self._patches.__enter__()
            self.fleet = Fleet(self.fleet_spec or FleetSpec(size=1), self.clock.now())
            self.bridge = AwsBridge(self.fleet, self.clock.now)
            self.bridge.install(boto3.DEFAULT_SESSION)
            if self.elb_throttling:
                self.elb_buckets = ElbApiBuckets(self.clock.now)
                self.bridge.elb_buckets = self.elb_buckets
            self.faults = Faults(self.bridge, self.scheduler, self.clock)
            # What a test injects, on the sandbox itself (each documented in sandbox/faults.py).
            self.inject_api_error = self.faults.inject_api_error
            self.set_alarm_state = self.faults.set_alarm_state
            self.stop_when_entering = self.faults.stop_when_entering
            moto_patches.seed_ids(self.seed, REGION)
            self.fleet_resources = create_fleet_resources(self.fleet, REGION) if self.fleet_spec else {}
            template = load_template(self.template_path)
            self.stack = Stack(template, self._stack_parameters(template), REGION, ACCOUNT)
            self.deployer = StackDeployer(self.stack, self.lambdas, self.template_path, self._definitions)
            self.deployer.deploy()
            self.triggers = Triggers(
                self.stack,
                self.lambdas,
                self.scheduler,
                self.clock,
                names=self._names,
                bridge=self.bridge,
                status_events=self._status_events,
                status_event_delay=self._status_event_delay,
            )
            self.network = Network.snapshot(self.client("ec2"), self.deployer.placements)
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
        for pending in ("triggers", "faults"):  # a delayed event or alarm change not due yet never happens
            if hasattr(self, pending):
                getattr(self, pending).cancel_pending()
        if hasattr(self, "executions"):
            self.executions.stop_all()
        timeutil.set_source(None)
        if hasattr(self, "lambdas"):
            self.lambdas.close()
        if hasattr(self, "_patches"):
            self._patches.__exit__(None, None, None)
        self._environment.stop_mock()
        self._helpers.__exit__(None, None, None)
        self._environment.close()
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

    def _on_state(self, execution_arn: str, state_name: str) -> None:
        self.faults.on_state(execution_arn, state_name)  # faults exist from before the first execution

    def _on_ended(self, described: dict[str, Any]) -> None:
        self.triggers.deliver_status_change(described)

    def _on_execution_end(self, execution_arn: str) -> None:
        self.triggers.execution_ended(execution_arn)  # triggers exist from before the first execution

    def _patch_service(self) -> PatchService:
        now = self.clock.now_datetime()
        data = generate(sorted(self.fleet.instances), self.patch_spec, now)
        ips = {i: inst.private_ip for i, inst in self.fleet.instances.items()}
        window = self.fleet_resources["MaintenanceWindowId"]
        return PatchService(data, ips, {window: now + dt.timedelta(hours=self.window_in_hours)})

    def _stack_parameters(self, template: dict[str, Any]) -> dict[str, str]:
        """Template parameters: the caller's, plus the simulated fleet's ids where the template asks.

        A caller's value may name the fleet's resources, created only at start: ``{TargetGroupArn:api}``.
        """
        declared = template.get("Parameters", {})
        values = {k: v for k, v in self.fleet_resources.items() if k in declared}
        named = re.compile(r"\{((?:TargetGroupArn|LoadBalancerArn)(?::[\w-]+)?)\}")
        values.update({k: named.sub(lambda m: self.fleet_resources[m[1]], v) for k, v in self._parameters.items()})
        return values

    # -- the stack -------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        return client(service)

    def state_machine_arn(self, logical_id: str) -> str:
        return self.stack.get_att(logical_id, "Arn")

    def definition(self, logical_id: str) -> str:
        """The state machine's ASL with its DefinitionSubstitutions filled in."""
        return self.deployer.definition(logical_id)

    def deploy_definition(
        self, name: str, path: Path, substitutions: dict[str, Any], role_of: str | None = None
    ) -> str:
        """Create a state machine that is not in the template (e.g. a benchmark baseline).

        ``substitutions`` are CloudFormation values resolved against the stack, like DefinitionSubstitutions.
        ``role_of``: the template state machine whose role it runs with; None: it has no role in the
        template, and its own calls are not checked by IAM (the functions it invokes still are).
        """
        arn = self.deployer.deploy_definition(name, path, substitutions)
        if role_of is not None and self.bridge.iam is not None:
            self.bridge.iam.roles.setdefault(name, self.bridge.iam.roles[role_of])
            self.bridge.iam.state_machines[arn] = name
        return arn

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

    # -- executions (sandbox/executions.py) ------------------------------------------------
    def start_execution(self, logical_id: str, payload: Any, name: str | None = None) -> str:
        """Start an execution; it runs up to its first wait (no simulated time passes) before this returns."""
        return self.executions.start(self.state_machine_arn(logical_id), payload, name)

    def run(self, logical_id: str, payload: Any, timeout: float = 120.0) -> ExecutionResult:
        return self.wait(self.start_execution(logical_id, payload), timeout)

    def running(self, execution_arn: str) -> bool:
        return self.executions.running(execution_arn)

    def wait(self, execution_arn: str, timeout: float = 120.0) -> ExecutionResult:
        """Run the simulation until the execution ends (:meth:`sandbox.executions.Executions.wait`)."""
        return self.executions.wait(execution_arn, timeout)

    def run_until(
        self, condition: Callable[[], bool] | None = None, *, at: float | None = None, timeout: float = 120.0
    ) -> bool:
        """Run the simulation until ``condition()`` holds or simulated time reaches ``at``
        (:meth:`sandbox.executions.Executions.run_until`)."""
        return self.executions.run_until(condition, at=at, timeout=timeout)

    def result(self, execution_arn: str, described: dict[str, Any] | None = None) -> ExecutionResult:
        return self.executions.result(execution_arn, described)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return self.executions.history(execution_arn)

    def stop(self, execution_arn: str, cause: str = "stopped by an operator") -> None:
        """StopExecution now (at the current simulated instant)."""
        self.executions.stop(execution_arn, cause)

    def child_histories(self) -> list[list[dict[str, Any]]]:
        """The history of each Distributed Map child execution so far, in the order they started."""
        return self.executions.child_histories()

    def child_events(self) -> list[dict[str, Any]]:
        """Events of every Distributed Map child execution so far (on AWS: their own histories)."""
        return self.executions.child_events()

    # -- triggers (sandbox/triggers.py) ----------------------------------------------------
    @property
    def status_events(self) -> str:
        """What happens to status-change events: once, drop, duplicate or delay (tests may change it between runs)."""
        return self.triggers.status_events if hasattr(self, "triggers") else self._status_events

    @status_events.setter
    def status_events(self, mode: str) -> None:
        check_status_event_mode(mode, self.status_event_delay)
        self._status_events = mode
        if hasattr(self, "triggers"):
            self.triggers.status_events = mode

    @property
    def status_event_delay(self) -> float:
        return self.triggers.status_event_delay if hasattr(self, "triggers") else self._status_event_delay

    @status_event_delay.setter
    def status_event_delay(self, seconds: float) -> None:
        check_status_event_mode(self.status_events, seconds)
        self._status_event_delay = seconds
        if hasattr(self, "triggers"):
            self.triggers.status_event_delay = seconds

    @property
    def status_event_log(self) -> list[StatusEvent]:
        return self.triggers.status_event_log

    def wait_for_status_events(self, timeout: float = 30.0) -> None:
        """Run the simulation until every delayed status-change event has been delivered (``timeout``: wall seconds)."""
        self.run_until(lambda: not self.triggers.status_events_pending(), timeout=timeout)

    def fire_schedule(self, logical_id: str) -> Any:
        """Invoke a function as its EventBridge Scheduler schedule would, now (:meth:`Triggers.fire_schedule`)."""
        return self.triggers.fire_schedule(logical_id, self.template_path.name)

    def invoke_url(self, logical_id: str, method: str = "GET", query: str = "", body: str = "") -> dict[str, Any]:
        """An HTTP request to the function's URL (payload format 2.0), as a browser would send it."""
        return self.triggers.invoke_url(logical_id, method, query, body, self._check_unmapped)
