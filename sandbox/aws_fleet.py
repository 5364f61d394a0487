"""Binds the fleet model to the AWS APIs: moto keeps the resources, the model answers for behaviour.

- The fleet's VPC, instances and target group are created in moto, so every API sees them.
- botocore event hooks on the default session (used by the interpreter's SDK tasks and by the
  handlers alike) tell the model about registrations, deregistrations and reboots, and rewrite what
  DescribeTargetHealth and DescribeInstanceStatus return to the model's answer at simulated time.
- Injected API errors short-circuit a call before moto sees it; so do the answers to calls moto
  lacks (SSM patch APIs, EventBridge rules in the Tagging API's GetResources: sandbox/tagging.py).
- The application's health URL is answered by an HTTP adapter mounted on the handlers' requests
  session: the real health check code runs, and no socket is opened.
"""

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import boto3
import requests
from requests.adapters import BaseAdapter

from sandbox import tagging
from sandbox.fleet import Fleet
from sandbox.lambdas import CURRENT
from sandbox.patches import PatchService, SimulatedApiError

TAG_KEY = "opsflow:tier"
TAG_VALUE = "web"
ELBV2 = "elastic-load-balancing-v2"


@dataclass
class ApiCall:
    service: str
    operation: str
    params: dict[str, Any]
    at: float
    caller: str | None = None  # the function (logical id) that made the call; None: the state machine


@dataclass
class InjectedApiError:
    service: str  # botocore service id, hyphenated: "ec2", "elastic-load-balancing-v2", "ssm"
    operation: str
    code: str
    message: str
    count: int = 1
    match: dict[str, Any] | None = None  # only calls with these parameters, e.g. {"InstanceId": "i-1"}

    def applies(self, service: str, operation: str, params: dict[str, Any]) -> bool:
        if self.count <= 0 or (self.service, self.operation) != (service, operation):
            return False
        return all(params.get(k) == v for k, v in (self.match or {}).items())


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
    calls: list[ApiCall] = field(default_factory=list)
    errors: list[InjectedApiError] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, session: Any) -> None:
        events = session.events
        events.register("before-parameter-build.*.*", self._record)
        events.register("before-call.*.*", self._before_call)
        events.register(f"after-call.{ELBV2}.RegisterTargets", self._registered)
        events.register(f"after-call.{ELBV2}.DeregisterTargets", self._deregistered)
        events.register(f"after-call.{ELBV2}.DescribeTargetHealth", self._target_health)
        events.register("after-call.ec2.RebootInstances", self._rebooted)
        events.register("after-call.ssm.GetMaintenanceWindow", self._next_window)
        events.register("after-call.ec2.DescribeInstanceStatus", self._instance_status)

    # -- recording -------------------------------------------------------------------------
    def _record(self, params: dict[str, Any], model: Any, event_name: str, **_: Any) -> None:
        service, operation = _service_and_operation(event_name)
        self._local.params = params
        with self._lock:
            self.calls.append(ApiCall(service, operation, dict(params), self.now(), getattr(CURRENT, "function", None)))

    def calls_to(self, service: str, operation: str) -> list[ApiCall]:
        return [c for c in self.calls if c.service == service and c.operation == operation]

    # -- answers before moto: injected faults, then the operations moto does not implement -----
    def _before_call(
        self, event_name: str, context: dict[str, Any], **_: Any
    ) -> tuple[_Response, dict[str, Any]] | None:
        service, operation = _service_and_operation(event_name)
        params = getattr(self._local, "params", {})
        with self._lock:
            for err in self.errors:
                if err.applies(service, operation, params):
                    err.count -= 1
                    return _error(err.code, err.message)
        if (service, operation) == ("ec2", "RebootInstances"):
            if any(self.fleet.reboot_is_throttled(i, self.now()) for i in params.get("InstanceIds", [])):
                return _error("RequestLimitExceeded", "Request limit exceeded.")
            return None
        if (service, operation) == (tagging.SERVICE, "GetResources") and tagging.answers(params):
            try:  # EventBridge rules, which moto's GetResources leaves out
                return _Response(200), {
                    **tagging.get_resources(params, context["client_region"]),
                    "ResponseMetadata": _OK,
                }
            except SimulatedApiError as exc:
                return _error(exc.code, str(exc))
        simulated = SSM_OPERATIONS.get(operation) if service == "ssm" and self.patches else None
        if simulated is None:
            return None
        try:
            return _Response(200), {**getattr(self.patches, simulated)(params), "ResponseMetadata": _OK}
        except SimulatedApiError as exc:
            return _error(exc.code, str(exc))

    def _next_window(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        """moto leaves out NextExecutionTime; the sandbox knows when its windows run."""
        next_run = self.patches.window_next.get(parsed.get("WindowId", "")) if self.patches else None
        if http_response.status_code < 300 and next_run is not None:
            parsed["NextExecutionTime"] = next_run.strftime("%Y-%m-%dT%H:%MZ")

    # -- the model learns --------------------------------------------------------------------
    def _targets(self) -> list[str]:
        return [t["Id"] for t in self._local.params.get("Targets", [])]

    def _registered(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            for instance_id in self._targets():
                self.fleet.register(instance_id, self.now())

    def _deregistered(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            for instance_id in self._targets():
                self.fleet.deregister(instance_id, self.now())

    def _rebooted(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300:
            for instance_id in self._local.params.get("InstanceIds", []):
                self.fleet.reboot(instance_id, self.now())

    # -- the model answers -------------------------------------------------------------------
    def _target_health(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code >= 300:
            return
        t = self.now()
        asked = self._targets() or self.fleet.registered_targets(t)
        port = self.fleet.spec.health_port
        descriptions = []
        for instance_id in asked:
            state = self.fleet.target_state(instance_id, t)
            health: dict[str, str] = {"State": state}
            if state == "unused":
                health.update(Reason="Target.NotRegistered", Description="Target is not registered")
            elif state == "draining":
                health.update(Reason="Target.DeregistrationInProgress", Description="Deregistration in progress")
            elif state == "initial":
                health.update(Reason="Elb.RegistrationInProgress", Description="Registration in progress")
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


def _service_and_operation(event_name: str) -> tuple[str, str]:
    """``before-call.ec2.RebootInstances`` -> ("ec2", "RebootInstances")."""
    _, service, operation = event_name.split(".", 2)
    return service, operation


def _error(code: str, message: str) -> tuple[_Response, dict[str, Any]]:
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "sandbox-injected"},
    }
    return _Response(400), parsed


class FleetHttpAdapter(BaseAdapter):
    """Answers HTTP requests to the fleet's private IPs from the model; refuses everything else."""

    def __init__(self, fleet: Fleet, now: Callable[[], float]) -> None:
        super().__init__()
        self.fleet = fleet
        self.now = now

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlparse(request.url or "")
        inst = self.fleet.instance_by_ip(url.hostname or "")
        if inst is None:
            raise requests.ConnectionError(f"sandbox: no simulated host at {url.hostname}", request=request)
        status = self.fleet.health_endpoint(inst.instance_id, self.now())
        if url.port != self.fleet.spec.health_port or status is None:
            raise requests.ConnectionError(f"connection refused by {url.hostname}:{url.port}", request=request)
        response = requests.Response()
        response.status_code = status
        response._content = b"OK" if status == 200 else b"starting"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """Nothing pooled."""


def create_fleet_resources(fleet: Fleet, region: str) -> dict[str, str]:
    """Create the VPC, instances, target group and maintenance window in moto; tell the model."""
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
    launched: list[dict[str, Any]] = []
    for batch, start in enumerate(range(0, spec.size, 100)):  # one call per 100 instances
        count = min(100, spec.size - start)
        launched += ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=count,
            MaxCount=count,
            InstanceType="t4g.small",
            SubnetId=subnets[batch % 2],
            SecurityGroupIds=[sg],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"]
    instance_ids = []
    for n, inst in enumerate(launched):
        name = f"web-{n + 1:03d}"
        ec2.create_tags(Resources=[inst["InstanceId"]], Tags=[{"Key": "Name", "Value": name}])
        fleet.add_instance(inst["InstanceId"], inst["PrivateIpAddress"], name=name)
        instance_ids.append(inst["InstanceId"])
    tg = elbv2.create_target_group(
        Name="web",
        Protocol="HTTP",
        Port=spec.health_port,
        VpcId=vpc,
        TargetType="instance",
        HealthCheckPath=spec.health_path,
        HealthCheckIntervalSeconds=spec.health_check_interval,
        HealthyThresholdCount=spec.healthy_threshold,
        UnhealthyThresholdCount=spec.unhealthy_threshold,
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(spec.deregistration_delay)}],
    )
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": i, "Port": spec.health_port} for i in instance_ids])
    create_monitoring(region, tg)
    window = boto3.client("ssm", region_name=region).create_maintenance_window(
        Name="web-patching",
        Schedule="cron(0 3 ? * SUN *)",
        Duration=3,
        Cutoff=1,
        AllowUnassociatedTargets=False,
    )["WindowId"]
    return {
        "TargetGroupArn": tg,
        "VpcId": vpc,
        "SubnetIds": ",".join(subnets),
        "SecurityGroupId": sg,
        "MaintenanceWindowId": window,
    }


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
