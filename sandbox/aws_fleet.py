"""Binds the fleet model to the AWS APIs: moto keeps the resources, the model answers for behaviour.

- The fleet's VPC, instances and target group are created in moto, so every API sees them.
- botocore event hooks on the default session (used by the interpreter's SDK tasks and by the
  handlers alike) tell the model about registrations, deregistrations and reboots, and rewrite what
  DescribeTargetHealth and DescribeInstanceStatus return to the model's answer at simulated time.
- Injected API errors short-circuit a call before moto sees it; so do the answers to calls moto
  lacks (SSM patch APIs, EventBridge rules in the Tagging API's GetResources: sandbox/tagging.py).
- IAM, when enforced (the default): a call made by a function or a state machine's Task is evaluated
  against that principal's role as SAM generates it (sandbox/sam.py, sandbox/authorization.py,
  sandbox/iam.py); a denied call fails before moto sees it, with the service's own error code.
- CloudWatch alarm state changes (SetAlarmState) are kept in simulated time: DescribeAlarms reports
  when each alarm's state last changed (StateUpdatedTimestamp), and DescribeAlarmHistory, which moto
  lacks, lists the state updates.
- The application's health URL is answered by an HTTP adapter mounted on the handlers' requests
  session: the real health check code runs, and no socket is opened.
"""

import datetime as dt
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import boto3
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from requests.adapters import BaseAdapter

from sandbox import autoscaling, tagging
from sandbox.authorization import UnmappedOperation, iam_prefix, refusal, requests_for
from sandbox.autoscaling import AutoScalingGroupModel, Member
from sandbox.commands import COMMAND_OPERATIONS, CommandService
from sandbox.elb_throttling import THROTTLED_CODE, THROTTLED_MESSAGE, ElbApiBuckets
from sandbox.fleet import Fleet, TargetGroupModel
from sandbox.iam import evaluate
from sandbox.lambdas import CURRENT
from sandbox.moto_patches import (
    MotoGroup,
    ec2_backend,
    raw_response,
    run_instances,
    running_map_item,
    running_state_machine,
    running_task_state,
)
from sandbox.network import Network
from sandbox.patch_data import PatchService, SimulatedApiError
from sandbox.sam import Role

TAG_KEY = "opsflow:tier"
TAG_VALUE = "web"
ELBV2 = "elastic-load-balancing-v2"
ELBV2_XMLNS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"


@dataclass
class ApiCall:
    service: str
    operation: str
    params: dict[str, Any]
    at: float
    caller: str | None = None  # the function (logical id) that made the call; None: the state machine
    failed: bool = False  # answered with an error (nothing happened); a lost response took effect: not failed


@dataclass
class InjectedApiError:
    service: str  # botocore service id, hyphenated: "ec2", "elastic-load-balancing-v2", "ssm"
    operation: str
    code: str
    message: str
    count: int = 1
    match: dict[str, Any] | None = None  # only calls with these parameters, e.g. {"InstanceId": "i-1"}
    lost_response: bool = False  # the call takes effect, then its response fails (the caller cannot tell)
    state: str | None = None  # only the call this Task state makes itself (not the calls of a function it invokes)
    item: int | None = None  # with ``state``: only in the Map item of this index (a Distributed Map's child)

    def applies(self, service: str, operation: str, params: dict[str, Any]) -> bool:
        if self.count <= 0 or (self.service, self.operation) != (service, operation):
            return False
        if self.state is not None and (
            running_task_state() != self.state or getattr(CURRENT, "function", None) is not None
        ):
            return False
        if self.item is not None and running_map_item() != self.item:
            return False
        return all(params.get(k) == v for k, v in (self.match or {}).items())


@dataclass
class AlarmStateChange:
    alarm_name: str
    old: str
    new: str
    at: float
    reason: str


@dataclass
class Denial:
    """A call IAM refused: who, what, on which resource, and what the caller was answered."""

    principal: str  # logical id of the function or state machine
    action: str
    resource: str
    service: str
    operation: str
    code: str
    message: str
    at: float


class AccountLookups:
    """What the IAM request context reads from the account (tags, key ARNs), outside the recorded calls."""

    def __init__(self, region: str, account: str) -> None:
        self.region = region
        self.account = account
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                # A session of its own: no sandbox hooks, so a lookup is neither recorded nor authorized;
                # and no latency: IAM reads a resource's tags as part of the caller's request, not as a call.
                client = boto3.session.Session(region_name=self.region).client(service)
                client.sandbox_costs_no_time = True
                self._clients[service] = client
            return self._clients[service]

    def tags(self, arn: str) -> dict[str, str]:
        try:
            if ":instance/" in arn:
                found = self._client("ec2").describe_tags(
                    Filters=[{"Name": "resource-id", "Values": [arn.rsplit("/", 1)[-1]]}]
                )["Tags"]
                return {t["Key"]: t["Value"] for t in found}
            if ":targetgroup/" in arn:
                [described] = self._client("elbv2").describe_tags(ResourceArns=[arn])["TagDescriptions"]
                return {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        except ClientError:  # no such resource: the service says so after IAM allows the call
            return {}
        return {}

    def auto_scaling_group(self, name: str) -> tuple[str, dict[str, str]]:
        found = self._client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        for group in found["AutoScalingGroups"]:
            return str(group["AutoScalingGroupARN"]), {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        # No such group: the request names it, and the service says so after IAM allows the call.
        return f"arn:aws:autoscaling:{self.region}:{self.account}:autoScalingGroup:*:autoScalingGroupName/{name}", {}

    def key_arn(self, key_id: str) -> str:
        if key_id.startswith("arn:") and ":key/" in key_id:
            return key_id
        try:
            return str(self._client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])
        except ClientError:
            return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"


@dataclass
class IamEnforcement:
    """The roles the calls are evaluated against, and who runs with which."""

    roles: dict[str, Role]  # logical id of a function or state machine -> its role
    state_machines: dict[str, str]  # state machine ARN -> logical id of the one whose role it runs with
    lookups: AccountLookups
    logs: dict[str, list[str]]  # the functions' logs (logical id -> lines)


class _Response:
    """The bit of an HTTP response botocore reads when a before-call hook answers a call."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


@dataclass
class AwsBridge:
    fleet: Fleet
    now: Callable[[], float]
    patches: PatchService | None = None
    commands: CommandService | None = None
    calls: list[ApiCall] = field(default_factory=list)
    errors: list[InjectedApiError] = field(default_factory=list)
    iam: IamEnforcement | None = None
    denied: list[Denial] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # operations called that IAM could not be asked about
    alarm_changes: list[AlarmStateChange] = field(default_factory=list)  # SetAlarmState, in simulated time
    elb_buckets: ElbApiBuckets | None = None  # the ELB API's throttling (None: unthrottled)
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, session: Any) -> None:
        events = session.events
        events.register("before-parameter-build.*.*", self._record)
        events.register("before-call.*.*", self._before_call)
        # Per attempt (botocore's retries included), and before moto answers it.
        events.register_first(f"before-send.{ELBV2}", self._elb_send)
        events.register("after-call.*.*", self._lose_response)
        for (service, operation), learn in self._learners().items():
            events.register(f"after-call.{service}.{operation}", learn)
        events.register(f"after-call.{ELBV2}.DescribeTargetHealth", self._target_health)
        events.register("after-call.ssm.GetMaintenanceWindow", self._next_window)
        events.register("after-call.ec2.DescribeInstanceStatus", self._instance_status)
        events.register("after-call.cloudwatch.SetAlarmState", self._alarm_state_set)
        events.register("after-call.cloudwatch.DescribeAlarms", self._alarm_timestamps)

    def _learners(self) -> dict[tuple[str, str], Callable[..., None]]:
        """What the fleet model learns from each call that changes the tier (after it took effect)."""
        return {
            (ELBV2, "RegisterTargets"): self._registered,
            (ELBV2, "DeregisterTargets"): self._deregistered,
            ("ec2", "RebootInstances"): self._rebooted,
        }

    # -- recording -------------------------------------------------------------------------
    def _record(self, params: dict[str, Any], model: Any, event_name: str, **_: Any) -> None:
        service, operation = _service_and_operation(event_name)
        self._local.params = params
        call = ApiCall(service, operation, dict(params), self.now(), getattr(CURRENT, "function", None))
        self._local.call = call
        with self._lock:
            self.calls.append(call)

    def calls_to(self, service: str, operation: str, dry_runs: bool = False) -> list[ApiCall]:
        """Calls of ``service``.``operation``; EC2 dry runs (which change nothing) only if asked."""
        return [
            c
            for c in self.calls
            if c.service == service and c.operation == operation and (dry_runs or not c.params.get("DryRun"))
        ]

    # -- answers before moto: IAM, injected faults, then the operations moto does not implement -----
    def _before_call(
        self, event_name: str, context: dict[str, Any], **_: Any
    ) -> tuple[_Response, dict[str, Any]] | None:
        service, operation = _service_and_operation(event_name)
        params = getattr(self._local, "params", {})
        self.fleet.settle(self.now())  # the Auto Scaling groups act on what happened until now
        refused = self._authorize(service, operation, params)
        if refused is not None:
            return refused
        with self._lock:
            for err in self.errors:
                if not err.lost_response and err.applies(service, operation, params):
                    err.count -= 1
                    self._local.call.failed = True
                    return _error(err.code, err.message)
        if (service, operation) == ("ec2", "RebootInstances") and not params.get("DryRun"):
            if any(self.fleet.reboot_is_throttled(i, self.now()) for i in params.get("InstanceIds", [])):
                return _error("RequestLimitExceeded", "Request limit exceeded.")
            return None
        group = self.fleet.auto_scaling.get(params.get("AutoScalingGroupName", ""))
        if service == "auto-scaling" and operation in autoscaling.ANSWERED and group is not None:
            try:  # moto's group does none of this over time: the model does, and keeps moto's records
                return _Response(200), {
                    **autoscaling.answer(group, operation, params, self.now()),
                    "ResponseMetadata": _OK,
                }
            except autoscaling.AutoScalingError as exc:
                return _error(exc.code, str(exc))
        if (service, operation) == (tagging.SERVICE, "GetResources") and tagging.answers(params):
            try:  # EventBridge rules, which moto's GetResources leaves out
                return _Response(200), {
                    **tagging.get_resources(params, context["client_region"]),
                    "ResponseMetadata": _OK,
                }
            except SimulatedApiError as exc:
                return _error(exc.code, str(exc))
        if (service, operation) == ("cloudwatch", "DescribeAlarmHistory"):
            return _Response(200), {**self._alarm_history(params), "ResponseMetadata": _OK}
        command = COMMAND_OPERATIONS.get(operation) if service == "ssm" and self.commands else None
        if command is not None:
            try:
                return _Response(200), {**getattr(self.commands, command)(params), "ResponseMetadata": _OK}
            except SimulatedApiError as exc:
                return _error(exc.code, str(exc))
        simulated = SSM_OPERATIONS.get(operation) if service == "ssm" and self.patches else None
        if simulated is None:
            return None
        if self.commands is not None:
            self.commands.settle()  # patch data as the commands finished by now left it
        try:
            return _Response(200), {**getattr(self.patches, simulated)(params), "ResponseMetadata": _OK}
        except SimulatedApiError as exc:
            return _error(exc.code, str(exc))

    def _elb_send(self, event_name: str, request: Any, **_: Any) -> AWSResponse | None:
        """ELB's answer to an attempt: throttled when its account's bucket has no token for it, then the
        model's own DeregisterTargets; None lets moto answer. Per attempt, so botocore's retries count."""
        operation = _service_and_operation(event_name)[1]
        caller = getattr(CURRENT, "function", None) or running_state_machine()
        # The harness and the sandbox's set-up are not the stack's calls: they take no tokens.
        if self.elb_buckets is None or caller is None or self.elb_buckets.admit(operation, str(caller)):
            return self._deregistration(operation)
        body = (
            f'<ErrorResponse xmlns="{ELBV2_XMLNS}"><Error><Type>Sender</Type><Code>{THROTTLED_CODE}</Code>'
            f"<Message>{THROTTLED_MESSAGE}</Message></Error><RequestId>sandbox-throttled</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": "sandbox-throttled"}
        return AWSResponse(request.url, 400, headers, raw_response(body))

    def _deregistration(self, operation: str) -> AWSResponse | None:
        """moto drops a port-override target deregistered without its port, and refuses a target that is not
        registered; ELB does neither, so the model answers (its after-call hook does what ELB does)."""
        params = getattr(self._local, "params", {})
        if operation != "DeregisterTargets" or not self.fleet.group_by_arn(params.get("TargetGroupArn", "")):
            return None
        body = (
            f'<DeregisterTargetsResponse xmlns="{ELBV2_XMLNS}"><DeregisterTargetsResult/><ResponseMetadata>'
            "<RequestId>sandbox</RequestId></ResponseMetadata></DeregisterTargetsResponse>"
        ).encode()
        return AWSResponse("", 200, {"Content-Type": "text/xml", "x-amzn-RequestId": "sandbox"}, raw_response(body))

    def _lose_response(self, event_name: str, http_response: Any, **_: Any) -> None:
        """After a call took effect, fail it as a broken connection would: the caller sees an error."""
        service, operation = _service_and_operation(event_name)
        params = getattr(self._local, "params", {})
        if http_response.status_code >= 300 and getattr(self._local, "call", None) is not None:
            self._local.call.failed = True
        with self._lock:
            err = next((e for e in self.errors if e.lost_response and e.applies(service, operation, params)), None)
            if err is None or http_response.status_code >= 300:
                return
            err.count -= 1
        # The change happened: the model learns it before the error (wildcard handlers run first).
        learn = self._learners().get((service, operation))
        if learn is not None:
            learn(http_response=http_response)
        # A server error's shape (Step Functions' integrations read the status code and request id).
        metadata = {"HTTPStatusCode": 500, "RequestId": "lost-response"}
        raise ClientError(
            {"Error": {"Code": err.code, "Message": err.message}, "ResponseMetadata": metadata}, operation
        )

    def _principal(self) -> str | None:
        """Who makes the call in this thread: a function, else a state machine's Task; None: the harness."""
        function = getattr(CURRENT, "function", None)
        if function is not None:
            return str(function)
        state_machine = running_state_machine()
        if state_machine is None or self.iam is None:
            return None
        return self.iam.state_machines.get(state_machine)  # not from the template (a benchmark baseline): None

    def _authorize(
        self, service: str, operation: str, params: dict[str, Any]
    ) -> tuple[_Response, dict[str, Any]] | None:
        """None when IAM allows the call (or nobody's role applies); else the service's access-denied answer."""
        principal = self._principal() if self.iam is not None else None
        if self.iam is None or principal is None:
            return None
        role = self.iam.roles[principal]
        session = role.session_arn(self.iam.lookups.account, principal)
        try:
            requests = requests_for(service, operation, params, self.iam.lookups, session)
        except UnmappedOperation as exc:
            with self._lock:
                self.unmapped.append(f"{principal}: {exc}")
            raise
        for request in requests:
            decision = evaluate(role.policies, request)
            if decision.allowed:
                continue
            answer, message = refusal(iam_prefix(service), decision.denial(session, request))
            denial = Denial(
                principal, request.action, request.resource, service, operation, answer.code, message, self.now()
            )
            with self._lock:
                self.denied.append(denial)
            if getattr(CURRENT, "function", None) == principal:  # a function: in its log, as its SDK error would be
                self.iam.logs.setdefault(principal, []).append(
                    json.dumps({"level": "ERROR", "location": "sandbox IAM", "message": f"{answer.code}: {message}"})
                )
            return _error(answer.code, message, answer.status)
        return None

    def _next_window(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        """moto leaves out NextExecutionTime; the sandbox knows when its windows run."""
        next_run = self.patches.window_next.get(parsed.get("WindowId", "")) if self.patches else None
        if http_response.status_code < 300 and next_run is not None:
            parsed["NextExecutionTime"] = next_run.strftime("%Y-%m-%dT%H:%MZ")

    # -- the model learns --------------------------------------------------------------------
    def _targets(self) -> list[str]:
        return [t["Id"] for t in self._local.params.get("Targets", [])]

    def _group_and_targets(self) -> tuple[str, list[tuple[str, int | None]]] | None:
        """The fleet's target group a call names, and its (id, port) targets (port None: not given)."""
        params = self._local.params
        model = self.fleet.group_by_arn(params.get("TargetGroupArn", ""))
        if model is None:
            return None
        return model.name, [(t["Id"], t.get("Port")) for t in params.get("Targets", [])]

    def _registered(self, http_response: Any, **_: Any) -> None:
        named = self._group_and_targets()
        if http_response.status_code < 300 and named is not None:
            group, targets = named
            for instance_id, port in targets:
                self.fleet.register(instance_id, self.now(), group, port)

    def _deregistered(self, http_response: Any, **_: Any) -> None:
        # Without a port, ELB deregisters the target on the group's port only: "If you specified a port
        # override when you registered a target, you must specify both the target ID and the port when you
        # deregister it"; and "If the specified target does not exist, the action returns successfully"
        # (AWS CLI reference, elbv2 deregister-targets). The model does the same.
        named = self._group_and_targets()
        if http_response.status_code < 300 and named is not None:
            group, targets = named
            for instance_id, port in targets:
                self.fleet.deregister(instance_id, self.now(), group, port)

    def _rebooted(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            for instance_id in self._local.params.get("InstanceIds", []):
                self.fleet.reboot(instance_id, self.now())

    # -- alarms in simulated time ------------------------------------------------------------
    def _alarm_state_set(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        params = self._local.params
        earlier = [c.new for c in self.alarm_changes if c.alarm_name == params["AlarmName"]]
        change = AlarmStateChange(
            params["AlarmName"],
            earlier[-1] if earlier else "OK",  # moto creates alarms in OK
            params["StateValue"],
            self.now(),
            params.get("StateReason", ""),
        )
        with self._lock:
            self.alarm_changes.append(change)

    def _alarm_timestamps(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        """When each alarm's state last changed, in simulated time (moto stamps the wall clock)."""
        if http_response.status_code >= 300:
            return
        last = {c.alarm_name: c.at for c in self.alarm_changes}
        for alarm in parsed.get("MetricAlarms", []) + parsed.get("CompositeAlarms", []):
            # Unchanged in the sandbox: in its state since long before the run, as the fleet's targets are.
            at = last.get(alarm["AlarmName"], self.fleet.start - 3600)
            alarm["StateUpdatedTimestamp"] = dt.datetime.fromtimestamp(at, dt.UTC)

    def _alarm_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeAlarmHistory's state updates, newest first (its default order), from the recorded changes."""
        if params.get("HistoryItemType", "StateUpdate") != "StateUpdate":
            return {"AlarmHistoryItems": []}
        start = params.get("StartDate")
        end = params.get("EndDate")
        items = []
        for change in reversed(self.alarm_changes):
            at = dt.datetime.fromtimestamp(change.at, dt.UTC)
            if params.get("AlarmName") not in (None, change.alarm_name):
                continue
            if (start is not None and at < _aware(start)) or (end is not None and at > _aware(end)):
                continue
            items.append(
                {
                    "AlarmName": change.alarm_name,
                    "AlarmType": "MetricAlarm",
                    "Timestamp": at,
                    "HistoryItemType": "StateUpdate",
                    "HistorySummary": f"Alarm updated from {change.old} to {change.new}",
                    "HistoryData": json.dumps(
                        {
                            "version": "1.0",
                            "oldState": {"stateValue": change.old},
                            "newState": {"stateValue": change.new, "stateReason": change.reason},
                        }
                    ),
                }
            )
        return {"AlarmHistoryItems": items}

    # -- the model answers -------------------------------------------------------------------
    def _target_health(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        named = self._group_and_targets()
        if http_response.status_code >= 300 or named is None:
            return
        group, asked = named
        t = self.now()
        model = self.fleet.groups[group]
        # Asked without a port: the target on the group's port (a port-override target is not it).
        targets = [(i, model.port if p is None else p) for i, p in asked] or self.fleet.targets(t, group)
        descriptions = []
        for instance_id, port in targets:
            state = self.fleet.target_state(instance_id, t, group, port)
            health: dict[str, str] = {"State": state}
            if state == "unused":
                health.update(Reason="Target.NotRegistered", Description="Target is not registered")
            elif state == "draining":
                health.update(Reason="Target.DeregistrationInProgress", Description="Deregistration in progress")
            elif state == "initial" and not self.fleet.health_checks_done(instance_id, t, group, port):
                health.update(Reason="Elb.RegistrationInProgress", Description="Target registration is in progress")
            elif state == "initial":
                health.update(Reason="Elb.InitialHealthChecking", Description="Initial health checks in progress")
            elif state == "unhealthy":
                health.update(Reason="Target.FailedHealthChecks", Description="Health checks failed")
            descriptions.append(
                {
                    "Target": {"Id": instance_id, "Port": port},
                    "HealthCheckPort": str(port),
                    "TargetHealth": health,
                }
            )
        parsed["TargetHealthDescriptions"] = descriptions

    def _instance_status(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        t = self.now()
        for status in parsed.get("InstanceStatuses", []):
            instance_id = status["InstanceId"]
            if instance_id in self.fleet.instances and not self.fleet.status_checks_ok(instance_id, t):
                for key in ("SystemStatus", "InstanceStatus"):
                    status[key] = {
                        "Status": "initializing",
                        "Details": [{"Name": "reachability", "Status": "initializing"}],
                    }


# SSM operations the sandbox answers itself (moto 5.2.5 does not implement them).
SSM_OPERATIONS = {
    "DescribeInstancePatches": "describe_instance_patches",
    "DescribeInstancePatchStates": "describe_instance_patch_states",
    "DescribeInstanceInformation": "describe_instance_information",
}
_OK = {"HTTPStatusCode": 200, "RequestId": "sandbox"}


def _aware(value: Any) -> dt.datetime:
    """A request's date parameter as an aware datetime (botocore leaves it as the caller gave it)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _service_and_operation(event_name: str) -> tuple[str, str]:
    """``before-call.ec2.RebootInstances`` -> ("ec2", "RebootInstances")."""
    _, service, operation = event_name.split(".", 2)
    return service, operation


def _error(code: str, message: str, status: int = 400) -> tuple[_Response, dict[str, Any]]:
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "sandbox-injected"},
    }
    return _Response(status), parsed


class FleetHttpAdapter(BaseAdapter):
    """Answers HTTP requests to the fleet's private IPs from the model; refuses everything else.

    With a network model, a request the VPC would not carry (the calling function outside the VPC,
    or no security group rule for the port) times out, as it would on AWS.
    """

    def __init__(self, fleet: Fleet, now: Callable[[], float], network: "Network | None" = None) -> None:
        super().__init__()
        self.fleet = fleet
        self.now = now
        self.network = network

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlparse(request.url or "")
        port = url.port or 80
        blocked = (
            self.network.blocked(getattr(CURRENT, "function", None), url.hostname or "", port) if self.network else None
        )
        if blocked:
            raise requests.ConnectTimeout(
                f"Connection to {url.hostname} timed out. (connect timeout={kwargs.get('timeout')}) [{blocked}]",
                request=request,
            )
        inst = self.fleet.instance_by_ip(url.hostname or "")
        if inst is None:
            raise requests.ConnectionError(f"sandbox: no simulated host at {url.hostname}", request=request)
        self.fleet.settle(self.now())
        status = self.fleet.health_endpoint(inst.instance_id, self.now())
        if port != self.fleet.spec.health_port or status is None:
            raise requests.ConnectionError(f"connection refused by {url.hostname}:{url.port}", request=request)
        if url.path != self.fleet.spec.health_path:
            status = 404
        response = requests.Response()
        response.status_code = status
        response._content = b"OK" if status == 200 else b"starting"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """Nothing pooled."""


def create_fleet_resources(fleet: Fleet, region: str) -> dict[str, str]:
    """Create the VPC, instances, load balancers, target groups and maintenance window in moto; tell the model."""
    ec2 = boto3.client("ec2", region_name=region)
    elbv2 = boto3.client("elbv2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i * 32}.0/19", AvailabilityZone=f"{region}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate("ab")
    ]
    sg = ec2.create_security_group(GroupName="web", Description="web tier", VpcId=vpc)["GroupId"]
    spec = fleet.spec
    tags = [{"Key": TAG_KEY, "Value": TAG_VALUE}, {"Key": "Patch Group", "Value": "web"}]
    backend = ec2_backend(region)
    instance_ids: list[str] = []
    # One reservation per 100 instances; with two zones, the first half of the fleet in the first zone.
    per_zone = [spec.size] if spec.zones == 1 else [spec.size - spec.size // 2, spec.size // 2]
    reservations = 0
    for zone, in_zone in enumerate(per_zone):
        for start in range(0, in_zone, 100):
            count = min(100, in_zone - start)
            subnet = subnets[zone if spec.zones > 1 else reservations % 2]
            launched = run_instances(region, count, subnet, sg, {t["Key"]: t["Value"] for t in tags})
            reservations += 1
            for inst in launched:
                name = f"web-{len(instance_ids) + 1:03d}"
                backend.create_tags([inst.id], {"Name": name})
                fleet.add_instance(inst.id, str(inst.private_ip), name=name)
                instance_ids.append(inst.id)
    primary = fleet.groups[fleet.PRIMARY]
    primary.arn = _target_group(elbv2, vpc, primary, spec.health_path)
    elbv2.register_targets(
        TargetGroupArn=primary.arn, Targets=[{"Id": i, "Port": spec.health_port} for i in instance_ids]
    )
    load_balancers = {"web": _load_balancer(elbv2, "web", subnets, sg)}
    _forward(elbv2, load_balancers["web"], 80, primary.arn)
    listener_ports = {"web": 80}
    resources = {"TargetGroupArn": primary.arn, "LoadBalancerArn": load_balancers["web"]}
    for more in spec.more_groups:
        model = fleet.add_group(
            TargetGroupModel(
                more.name,
                more.port,
                more.health_check_interval,
                more.healthy_threshold,
                more.unhealthy_threshold,
                more.deregistration_delay,
                share=more.share,
            )
        )
        model.arn = _target_group(elbv2, vpc, model, spec.health_path)
        members = range(len(instance_ids)) if more.members is None else more.members
        ports = [(instance_ids[n], more.port_of(n)) for n in members]
        elbv2.register_targets(TargetGroupArn=model.arn, Targets=[{"Id": i, "Port": port} for i, port in ports])
        for instance_id, port in ports:
            fleet.enrol(instance_id, model.name, port)
        if more.load_balancer not in load_balancers:
            load_balancers[more.load_balancer] = _load_balancer(elbv2, more.load_balancer, subnets, sg)
            listener_ports[more.load_balancer] = 80
        else:
            listener_ports[more.load_balancer] += 1  # a second listener on the same load balancer
        _forward(elbv2, load_balancers[more.load_balancer], listener_ports[more.load_balancer], model.arn)
        resources[f"TargetGroupArn:{more.name}"] = model.arn
        resources[f"LoadBalancerArn:{more.load_balancer}"] = load_balancers[more.load_balancer]
    if spec.auto_scaling is not None:
        resources["AutoScalingGroupName"] = _auto_scaling_group(fleet, region, instance_ids, subnets, sg=sg, tags=tags)
    create_monitoring(region, primary.arn)
    window = boto3.client("ssm", region_name=region).create_maintenance_window(
        Name="web-patching",
        Schedule="cron(0 3 ? * SUN *)",
        Duration=3,
        Cutoff=1,
        AllowUnassociatedTargets=False,
    )["WindowId"]
    # Named as the template's parameters, so the sandbox deploys the stack into the fleet's VPC.
    return {
        **resources,
        "VpcId": vpc,
        "HealthCheckSubnetIds": ",".join(subnets),
        "InstanceSecurityGroupId": sg,
        "HealthPort": str(spec.health_port),
        "MaintenanceWindowId": window,
    }


def _auto_scaling_group(
    fleet: Fleet, region: str, instance_ids: list[str], subnets: list[str], *, sg: str, tags: list[dict[str, str]]
) -> str:
    """The group in moto (its members attached, its target groups attached) and its model in the fleet."""
    spec = fleet.spec.auto_scaling
    assert spec is not None
    client = boto3.client("autoscaling", region_name=region)
    members = instance_ids if spec.members is None else [instance_ids[n] for n in spec.members]
    client.create_launch_configuration(
        LaunchConfigurationName=spec.name, ImageId="ami-12c6146b", InstanceType="t4g.small"
    )
    client.create_auto_scaling_group(
        AutoScalingGroupName=spec.name,
        LaunchConfigurationName=spec.name,
        MinSize=0,
        MaxSize=spec.max_size,
        DesiredCapacity=0,
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=[fleet.groups[name].arn for name in spec.target_groups],
        HealthCheckType=spec.health_check_type,
        HealthCheckGracePeriod=spec.grace_period,
        Tags=[{**t, "PropagateAtLaunch": True} for t in tags],
    )
    client.attach_instances(AutoScalingGroupName=spec.name, InstanceIds=members)
    client.update_auto_scaling_group(AutoScalingGroupName=spec.name, MinSize=spec.min_size)
    backend = ec2_backend(region)
    zone_of_subnet = {subnet: f"{region}{az}" for subnet, az in zip(subnets, "ab", strict=True)}
    moto_group = MotoGroup(
        spec.name,
        region,
        {zone: subnet for subnet, zone in zone_of_subnet.items()},
        sg,
        {t["Key"]: t["Value"] for t in tags},
    )
    model = AutoScalingGroupModel(
        spec,
        fleet,
        list(spec.target_groups),
        moto_group,
        desired=len(members),
        rng=random.Random(fleet.spec.seed),
    )
    for instance_id in members:
        zone = zone_of_subnet[str(backend.get_instance(instance_id).subnet_id)]
        long_ago = fleet.start - 3600
        model.members[instance_id] = Member(instance_id, zone, "InService", long_ago, long_ago, long_ago)
    fleet.auto_scaling[spec.name] = model
    return spec.name


def _target_group(elbv2: Any, vpc: str, model: TargetGroupModel, health_path: str) -> str:
    arn = str(
        elbv2.create_target_group(
            Name=model.name,
            Protocol="HTTP",
            Port=model.port,
            VpcId=vpc,
            TargetType="instance",
            HealthCheckPath=health_path,
            HealthCheckIntervalSeconds=model.health_check_interval,
            HealthyThresholdCount=model.healthy_threshold,
            UnhealthyThresholdCount=model.unhealthy_threshold,
        )["TargetGroups"][0]["TargetGroupArn"]
    )
    elbv2.modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(model.deregistration_delay)}],
    )
    return arn


def _load_balancer(elbv2: Any, name: str, subnets: list[str], sg: str) -> str:
    created = elbv2.create_load_balancer(Name=name, Subnets=subnets, SecurityGroups=[sg], Type="application")
    return str(created["LoadBalancers"][0]["LoadBalancerArn"])


def _forward(elbv2: Any, load_balancer_arn: str, port: int, target_group_arn: str) -> None:
    elbv2.create_listener(
        LoadBalancerArn=load_balancer_arn,
        Protocol="HTTP",
        Port=port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group_arn}],
    )


# The tier's monitoring, as a team would have it: what a restart must mute, and what it must not touch.
MONITORING_ALARMS = {
    "web-5xx-errors": True,  # actions enabled: muted during a restart
    "web-unhealthy-hosts": True,
    "web-target-latency-p99": True,
    "web-disk-almost-full": False,  # already disabled by someone: must stay disabled
    "db-cpu-high": True,  # another tier: must not be touched
}
MONITORING_RULES = {"web-instance-state-change-pager": True, "web-nightly-report": False, "db-backup": True}


def create_monitoring(region: str, target_group_arn: str) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    events = boto3.client("events", region_name=region)
    pager = f"arn:aws:sns:{region}:123456789012:pager"
    for name, enabled in MONITORING_ALARMS.items():
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_Target_5XX_Count",
            Dimensions=[{"Name": "TargetGroup", "Value": target_group_arn.rsplit(":", maxsplit=1)[-1]}],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5,
            ComparisonOperator="GreaterThanThreshold",
            AlarmActions=[pager],
            ActionsEnabled=enabled,
            Tags=[{"Key": "tier", "Value": name.split("-")[0]}],
        )
    for name, enabled in MONITORING_RULES.items():
        events.put_rule(
            Name=name,
            EventPattern=json.dumps({"source": ["aws.ec2"]}),
            State="ENABLED" if enabled else "DISABLED",
            Tags=[{"Key": "tier", "Value": name.split("-")[0]}],
        )
