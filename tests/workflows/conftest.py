"""Given a simulated fleet, when the rolling restart runs, then these invariants hold."""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.fleet import FleetSpec, Spread
from sandbox.runtime import ExecutionResult, Sandbox
from template_model import TEMPLATE_PATH

SM = "RollingRestartStateMachine"
MUTATING = {
    ("elastic-load-balancing-v2", "DeregisterTargets"),
    ("elastic-load-balancing-v2", "RegisterTargets"),
    ("ec2", "RebootInstances"),
    ("cloudwatch", "DisableAlarmActions"),
    ("eventbridge", "DisableRule"),
}

# Subjects of the mails that name instances needing a person (not the run's summary, not approvals).
ALERT_SUBJECTS = ("failed to restart", "opsflow safety net", "opsflow reconciler")


def web_input(**fields: Any) -> dict[str, Any]:
    """The execution input for the simulated tier: mute its web-* alarms and rules, probe port 8080."""
    payload: dict[str, Any] = {
        "alarms": {"namePrefixes": ["web-"]},
        "rules": {"namePrefixes": ["web-"]},
        "health": {"port": 8080, "path": "/health"},
        "expectedBootSeconds": 45,
    }
    payload.update(fields)
    return payload


@dataclass
class Tier:
    """A sandbox with its fleet, and the monitoring state from before the run."""

    sb: Sandbox
    before: dict[str, str]

    @property
    def instances(self) -> list[str]:
        return sorted(self.sb.fleet.instances, key=lambda i: self.sb.fleet.names[i])

    @property
    def target_group_arn(self) -> str:
        return self.sb.fleet_resources["TargetGroupArn"]

    def run(self, payload: Any, timeout: float = 120) -> ExecutionResult:
        return self.sb.run(SM, payload, timeout=timeout)

    def mutating_calls(self) -> list[tuple[str, str]]:
        return [
            (c.service, c.operation)
            for c in self.sb.bridge.calls
            if (c.service, c.operation) in MUTATING and not c.params.get("DryRun")
        ]

    def reboot_calls(self) -> list[str]:
        """Instance ids of the reboot calls that acted (EC2 dry runs left out), in order."""
        return [i for c in self.sb.bridge.calls_to("ec2", "RebootInstances") for i in c.params["InstanceIds"]]

    def notifications(self) -> list[dict[str, Any]]:
        """What was published (calls answered with an error published nothing)."""
        return [c.params for c in self.sb.bridge.calls_to("sns", "Publish") if not c.failed]

    def lock_held(self) -> bool:
        table = self.sb.stack.physical["RunTable"]["Ref"]
        key = {"pk": {"S": f"lock#{self.target_group_arn}"}, "sk": {"S": "lock"}}
        return "Item" in self.sb.client("dynamodb").get_item(TableName=table, Key=key)

    def outcomes(self, result: ExecutionResult) -> dict[str, dict[str, Any]]:
        from opsflow.runs import RunTable

        table = RunTable(self.sb.stack.physical["RunTable"]["Ref"], self.sb.client("dynamodb"))
        return {o["instanceId"]: o for o in table.outcomes(result.arn)}

    def registrations(self, instance_id: str) -> dict[tuple[str, int], str]:
        """(group, port) -> state of every registration of the instance, as the load balancers see it now."""
        fleet, now = self.sb.fleet, self.sb.clock.now()
        return {
            (group.name, port): fleet.target_state(instance_id, now, group.name, port)
            for group in fleet.groups.values()
            for (target, port) in group.registrations
            if target == instance_id
        }

    def target_states(self) -> dict[str, str]:
        descriptions = self.sb.client("elbv2").describe_target_health(TargetGroupArn=self.target_group_arn)
        return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in descriptions["TargetHealthDescriptions"]}

    def sqs_message(self) -> dict[str, Any]:
        """The approval request, once the run has sent it (simulated time runs until then)."""
        sqs = self.sb.client("sqs")
        url = self.sb.stack.physical["ApprovalQueue"]["Ref"]
        messages: list[dict[str, Any]] = []

        def arrived() -> bool:
            messages.extend(sqs.receive_message(QueueUrl=url).get("Messages", []))
            return bool(messages)

        assert self.sb.run_until(arrived), "no approval request arrived"
        return dict(json.loads(messages[0]["Body"]))

    def approval_links(self) -> dict[str, str]:
        """The query strings of the approve and reject links in the approval email, once it is sent."""
        import re
        from urllib.parse import urlparse

        def mail() -> dict[str, Any] | None:
            return next((m for m in self.notifications() if m["Subject"].startswith("opsflow: approve ")), None)

        assert self.sb.run_until(lambda: mail() is not None), "no approval email was sent"
        sent = mail()
        assert sent is not None
        found = dict(re.findall(r"^(Approve|Reject): (\S+)$", sent["Message"], re.MULTILINE))
        return {k.lower(): urlparse(v).query for k, v in found.items()}

    def assert_invariants(self, result: ExecutionResult, floor: int | None = None) -> None:
        """What must hold after every run, whatever its outcome."""
        assert self.sb.monitoring_state() == self.before, "alarms and rules are as before the run"
        assert not self.lock_held(), "the target group lock is released"
        start, end = result.events[0]["timestamp"].timestamp(), result.events[-1]["timestamp"].timestamp()
        timeline = self.sb.fleet.timeline(start, end)
        if floor is not None:
            assert timeline.min_serving >= floor, f"serving capacity fell to {timeline.min_serving} < {floor}"
        assert math.ceil(timeline.dropped_requests) == 0, f"{timeline.dropped_requests:.1f} requests dropped"
        assert "unhealthy" not in self.target_states().values(), "no unhealthy instance in the target group"
        failed = [o for o in self.outcomes(result).values() if o["outcome"] == "failed"]
        alerts = [n for n in self.notifications() if "failed to restart" in n["Subject"] and result.arn in n["Message"]]
        assert len(alerts) == len(failed), "each failed instance of this run produced one alert"

    def alerts(self) -> list[dict[str, Any]]:
        """Mails about instances: an instance's failure, what a safety net or the reconciler left out."""
        return [n for n in self.notifications() if any(s in n["Subject"] for s in ALERT_SUBJECTS)]

    def assert_never_worse(self, since: float, floor: int) -> dict[str, str]:
        """Stricter than assert_invariants, once every run has ended and the follow-up is done: from
        ``since`` to now, at every simulated second, and for every instance. Returns each instance's fate."""
        fleet, now = self.sb.fleet, self.sb.clock.now()
        assert self.sb.monitoring_state() == self.before, "alarms and rules are as before the run"
        assert not self.lock_held(), "the target group lock is released"
        timeline = fleet.timeline(since, now)
        assert timeline.min_serving >= floor, f"serving capacity fell to {timeline.min_serving} < {floor}"
        assert math.ceil(timeline.dropped_requests) == 0, f"{timeline.dropped_requests:.1f} requests dropped"
        for t in timeline.times:
            unhealthy = [i for i in self.instances if fleet.target_state(i, t) == "unhealthy"]
            assert not unhealthy, f"{unhealthy} registered while unhealthy at +{t - since:.0f} s"
        for event in fleet.events:
            if event.what == "reboot-requested":
                state = fleet.target_state(event.instance_id, event.at)
                assert state == "unused", f"{event.instance_id} rebooted while {state} at +{event.at - since:.0f} s"
        in_service = {i for i, state in self.target_states().items() if state == "healthy"}
        alerts = self.alerts()
        fates: dict[str, str] = {}
        for i in self.instances:
            named = sum(1 for a in alerts if i in a["Subject"] + a["Message"])
            touched = any(
                e.instance_id == i and (e.what.startswith("deregistered") or e.what == "reboot-requested")
                for e in fleet.events
            )
            if fleet.health_endpoint(i, now) == 200:
                assert i in in_service, f"{i} answers but is out of service"
            if i in in_service:
                assert named <= 1, f"{i} is named in {named} alerts"
                fates[i] = "restarted" if fleet.instances[i].reboots else "put back" if touched else "untouched"
            else:
                assert named == 1, f"{i} is out of service and named in {named} alerts, not exactly one"
                fates[i] = "left out, alerted"
        return fates

    def assert_refused(self, result: ExecutionResult, error: str, cause_mentions: str) -> None:
        """A refused run fails with a specific error and a cause a person can act on, and changes nothing."""
        assert result.status == "FAILED"
        assert result.error == error, f"{result.error}: {result.cause}"
        assert cause_mentions in (result.cause or ""), result.cause
        assert self.mutating_calls() == []
        assert not self.lock_held()
        assert self.sb.monitoring_state() == self.before
        assert set(self.target_states().values()) == {"healthy"}


@pytest.fixture
def tier(open_sandbox: Callable[..., Sandbox]) -> Callable[..., Tier]:
    """Factory: a simulated tier of ``size`` instances (deterministic timings unless ``spread``)."""

    def make(
        size: int = 6,
        spread: float = 0.0,
        parameters: dict[str, str] | None = None,
        definitions: dict[str, dict[str, Any]] | None = None,
        template_path: Path = TEMPLATE_PATH,
        **spec: Any,
    ) -> Tier:
        fleet = FleetSpec(size=size, boot=Spread(45, spread), readiness=Spread(30, spread), seed=3, **spec)
        sb = open_sandbox(fleet, parameters=parameters, definitions=definitions, template_path=template_path)
        return Tier(sb, sb.monitoring_state())

    return make
