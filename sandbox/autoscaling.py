"""An EC2 Auto Scaling group of the simulated tier: what moto keeps, and what the group does over time.

moto 5.2.5 keeps the group (DescribeAutoScalingGroups, DescribeAutoScalingInstances answer from it) but
its group does nothing over time, launches and terminates at once, leaves a Standby instance in its
target groups, and scales in whichever instance comes first. This model answers the calls that change
the group (EnterStandby, ExitStandby, SetDesiredCapacity), keeps moto's records in step, and acts in
simulated time, as the Amazon EC2 Auto Scaling User Guide documents:

- health checks: "When Amazon EC2 Auto Scaling determines that an InService instance is unhealthy, it
  replaces it with a new instance" ("Health checks for instances in an Auto Scaling group"); the ELB
  health check "checks whether the load balancer reports the instance as healthy, confirming whether the
  instance is available to handle requests" ("About the health checks for your Auto Scaling group"), so
  a member that is ``unhealthy``, ``draining`` or not registered in one of the group's target groups is
  unhealthy (``initial`` is not a verdict yet); the grace period is "the minimum amount of time (in
  seconds) to keep a new instance in service before terminating it if it's found to be unhealthy"
  ("Set the health check grace period"). The group acts on the first failing report (a real group
  polls: never later than this model). Replacing is "a TerminateInstance scaling activity followed by
  a LaunchInstance activity" (AWS News Blog, "Elastic Load Balancer Health Checks"): the member is
  deregistered from the group's target groups, terminated once drained, and a new instance launched,
  registered when it has booted (InService), with the grace period from then;
- Standby: "Instances that are on standby are still part of the Auto Scaling group, but they do not
  actively handle load balancer traffic", so the group deregisters them from its target groups; they
  are not health-checked or terminated "as part of its health checks or during scale-in events"
  ("Temporarily remove instances from your Auto Scaling group"). EnterStandby without decrementing the
  desired capacity launches a replacement; with it, desired capacity is lowered (never below the
  minimum size). ExitStandby: "After you put the instances back in service, the desired capacity is
  incremented" (ExitStandby, API reference), never above the maximum size, and the group registers the
  instance in its target groups again;
- scale-in: a lower desired capacity terminates InService members per the default termination policy
  (the Availability Zone with the most instances first; among equals the sandbox picks with its seeded
  generator, as AWS picks at random); a higher one launches.
"""

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.fleet import INF, AutoScalingSpec, Fleet
from sandbox.moto_patches import MotoGroup

NOT_HEALTHY = {"unhealthy", "draining", "unused"}  # what the load balancer reports, besides healthy/initial


class AutoScalingError(Exception):
    """An error the Auto Scaling API answers with (code, message): nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Member:
    instance_id: str
    zone: str
    lifecycle: str  # Pending, InService, Standby, Terminating, Terminated
    in_service_at: float  # since when it is InService (or will be, while Pending)
    launched_at: float
    checked_from: float  # health checks count from here (the grace period for a new instance)


@dataclass
class Activity:
    at: float
    instance_id: str
    description: str
    cause: str


@dataclass
class AutoScalingGroupModel:
    spec: AutoScalingSpec
    fleet: Fleet
    target_groups: list[str]  # fleet group names attached to the group
    moto: MotoGroup | None
    desired: int
    members: dict[str, Member] = field(default_factory=dict)
    activities: list[Activity] = field(default_factory=list)
    settled_to: float = -INF
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    on_change: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def lifecycle(self, instance_id: str) -> str | None:
        member = self.members.get(instance_id)
        return None if member is None else member.lifecycle

    def counted(self) -> list[Member]:
        """The members the desired capacity counts: InService and Pending (not Standby, not leaving)."""
        return [m for m in self.members.values() if m.lifecycle in ("InService", "Pending")]

    def _require(self, instance_ids: list[str], lifecycle: str) -> None:
        """Refuse the whole call (nothing changed) if one of the instances is not in ``lifecycle``."""
        for i in instance_ids:
            if self.lifecycle(i) != lifecycle:
                raise AutoScalingError(
                    "ValidationError",
                    f"The instance {i} is not in {lifecycle} (it is {self.lifecycle(i) or 'not'} in Auto Scaling "
                    f"group {self.name}).",
                )

    # -- the API -----------------------------------------------------------------------------
    def enter_standby(self, t: float, instance_ids: list[str], decrement: bool) -> list[Activity]:
        self.settle(t)
        self._require(instance_ids, "InService")
        if decrement and self.desired - len(instance_ids) < self.spec.min_size:
            raise AutoScalingError(
                "ValidationError",
                f"Cannot decrement the desired capacity of {self.name} below its minimum size "
                f"{self.spec.min_size} (desired {self.desired}).",
            )
        done = []
        for i in instance_ids:
            self.members[i].lifecycle = "Standby"
            self._deregister(i, t)
            if decrement:
                self.desired -= 1
            done.append(self._activity(t, i, "Moving EC2 instance to Standby", "in response to a user request"))
        self._fill(t)
        self._sync()
        return done

    def exit_standby(self, t: float, instance_ids: list[str]) -> list[Activity]:
        self.settle(t)
        self._require(instance_ids, "Standby")
        if self.desired + len(instance_ids) > self.spec.max_size:
            raise AutoScalingError(
                "ValidationError",
                f"Cannot increment the desired capacity of {self.name} above its maximum size "
                f"{self.spec.max_size} (desired {self.desired}).",
            )
        done = []
        for i in instance_ids:
            member = self.members[i]
            # Checked at once: the grace period is for new instances, and this one answers already.
            member.lifecycle, member.in_service_at, member.checked_from = "InService", t, -INF
            self.desired += 1
            self._register(i, t)
            done.append(self._activity(t, i, "Moving EC2 instance out of Standby", "in response to a user request"))
        self._sync()
        return done

    def set_desired_capacity(self, t: float, desired: int) -> None:
        self.settle(t)
        if not self.spec.min_size <= desired <= self.spec.max_size:
            raise AutoScalingError(
                "ValidationError",
                f"New SetDesiredCapacity value {desired} is outside the minimum size {self.spec.min_size} and "
                f"maximum size {self.spec.max_size} of {self.name}.",
            )
        self.desired = desired
        excess = len(self.counted()) - desired
        for _ in range(max(0, excess)):
            victim = self._to_terminate()
            self._terminate(victim, t, "scale-in: the desired capacity was lowered")
        self._fill(t)
        self._sync()

    # -- over time ---------------------------------------------------------------------------
    def settle(self, t: float) -> None:
        """Act on everything that happened up to ``t``, in order: members going InService, health checks."""
        while True:
            step = self._next_event(t)
            if step is None:
                break
            at, instance_id, kind = step
            member = self.members[instance_id]
            if kind == "in service":
                member.lifecycle = "InService"
                self._register(instance_id, at)
            else:
                self._terminate(member, at, "an ELB health check failed: the instance is unhealthy")
                self._fill(at)
            self._sync()
        self.settled_to = max(self.settled_to, t)

    def _next_event(self, t: float) -> tuple[float, str, str] | None:
        found: tuple[float, str, str] | None = None
        for member in self.members.values():
            if member.lifecycle == "Pending" and member.in_service_at <= t:
                candidate = (member.in_service_at, member.instance_id, "in service")
            elif member.lifecycle == "InService" and self.spec.health_check_type == "ELB":
                at = self._first_unhealthy(member, t)
                if at is None:
                    continue
                candidate = (at, member.instance_id, "unhealthy")
            else:
                continue
            if found is None or candidate < found:
                found = candidate
        return found

    def _first_unhealthy(self, member: Member, t: float) -> float | None:
        """The first moment in (settled_to, t] the load balancer does not report the member healthy."""
        start = max(self.settled_to, member.checked_from + self.spec.grace_period, member.in_service_at)
        if start > t:
            return None
        inst = self.fleet.instances[member.instance_id]
        candidates = {start}
        for name in self.target_groups:
            model = self.fleet.groups[name]
            for (i, _), regs in model.registrations.items():
                if i != member.instance_id:
                    continue
                for reg in regs:
                    candidates.update(x for x in (reg.deregistered_at, reg.drain_end) if start <= x <= t)
                    # The state changes only at a health check: those while (or just after) the app is down.
                    for down, _, app_up in inst.down_windows():
                        lo, hi = max(start, down, reg.registered_at), min(t, app_up + model.health_check_interval)
                        k = max(1, int((lo - reg.registered_at) // model.health_check_interval))
                        while (at := reg.registered_at + k * model.health_check_interval) <= hi:
                            if at >= lo:
                                candidates.add(at)
                            k += 1
        for at in sorted(candidates):
            if any(self._reported(member.instance_id, name, at) in NOT_HEALTHY for name in self.target_groups):
                return at
        return None

    def _reported(self, instance_id: str, group: str, t: float) -> str:
        return self.fleet.target_state(instance_id, t, group)

    # -- what the group does -------------------------------------------------------------------
    def _to_terminate(self) -> Member:
        """The default termination policy: from the zone with the most members, then any (AWS: at random)."""
        candidates = self.counted()
        per_zone: dict[str, int] = {}
        for m in candidates:
            per_zone[m.zone] = per_zone.get(m.zone, 0) + 1
        most = max(per_zone.values())
        in_zone = sorted((m for m in candidates if per_zone[m.zone] == most), key=lambda m: m.instance_id)
        return self.rng.choice(in_zone)

    def _terminate(self, member: Member, t: float, cause: str) -> None:
        member.lifecycle = "Terminating"
        drained = self._deregister(member.instance_id, t)
        member.lifecycle = "Terminated"
        self.fleet.terminate(member.instance_id, drained)
        if self.moto is not None:
            self.moto.terminate(member.instance_id)
        self._activity(t, member.instance_id, "Terminating EC2 instance", cause)

    def _fill(self, t: float) -> None:
        """Launch until the InService and Pending members reach the desired capacity (zones balanced)."""
        while len(self.counted()) < self.desired:
            zones = sorted({m.zone for m in self.members.values()})
            per_zone = {z: sum(1 for m in self.counted() if m.zone == z) for z in zones}
            zone = min(zones, key=lambda z: (per_zone[z], z))
            if self.moto is not None:
                instance_id, ip = self.moto.launch(zone)
            else:
                instance_id, ip = f"i-launched{len(self.members):08d}", f"10.0.250.{len(self.members)}"
            inst = self.fleet.launch(instance_id, ip, t, name=f"{self.name}-{len(self.members) + 1}")
            booted = inst.launch[1] if inst.launch else t
            self.members[instance_id] = Member(instance_id, zone, "Pending", booted, t, booted)
            self._activity(t, instance_id, "Launching a new EC2 instance", "to keep the desired capacity")

    def _deregister(self, instance_id: str, t: float) -> float:
        """Out of the group's target groups (each on the group's port); when the last drain ends."""
        drained = t
        for name in self.target_groups:
            model = self.fleet.groups[name]
            self.fleet.deregister(instance_id, t, name)
            regs = model.registrations.get((instance_id, model.port), [])
            if regs and regs[-1].deregistered_at == t:
                drained = max(drained, regs[-1].drain_end)
        return drained

    def _register(self, instance_id: str, t: float) -> None:
        for name in self.target_groups:
            self.fleet.register(instance_id, t, name)

    def _activity(self, t: float, instance_id: str, description: str, cause: str) -> Activity:
        activity = Activity(t, instance_id, f"{description}: {instance_id}", cause)
        self.activities.append(activity)
        return activity

    def _sync(self) -> None:
        if self.moto is not None:
            self.moto.sync(self.desired, {i: m.lifecycle for i, m in self.members.items()})

    def activity_answer(self, activities: list[Activity]) -> dict[str, Any]:
        """The Activities of an EnterStandby / ExitStandby answer."""
        return {
            "Activities": [
                {
                    "ActivityId": str(uuid.UUID(int=self.rng.getrandbits(128))),
                    "AutoScalingGroupName": self.name,
                    "Description": a.description,
                    "Cause": f"At {dt.datetime.fromtimestamp(a.at, dt.UTC):%Y-%m-%dT%H:%M:%SZ} {a.cause}.",
                    "StartTime": dt.datetime.fromtimestamp(a.at, dt.UTC),
                    "StatusCode": "InProgress",
                    "Progress": 50,
                }
                for a in activities
            ]
        }


def answer(model: AutoScalingGroupModel, operation: str, params: dict[str, Any], t: float) -> dict[str, Any]:
    """The sandbox's answer to a call that changes the group (AutoScalingError: the service's error)."""
    ids = list(params.get("InstanceIds", []))
    if operation == "EnterStandby":
        return model.activity_answer(model.enter_standby(t, ids, bool(params["ShouldDecrementDesiredCapacity"])))
    if operation == "ExitStandby":
        return model.activity_answer(model.exit_standby(t, ids))
    if operation == "SetDesiredCapacity":
        model.set_desired_capacity(t, int(params["DesiredCapacity"]))
        return {}
    raise ValueError(f"the sandbox does not answer autoscaling:{operation}")


ANSWERED = frozenset({"EnterStandby", "ExitStandby", "SetDesiredCapacity"})
