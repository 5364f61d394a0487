"""A simulated web tier: EC2 instances behind ALB target groups, with the behaviour moto lacks.

moto's EC2 and ELBv2 are static (a registered target is healthy at once, a deregistered one vanishes,
a reboot is instantaneous). This model adds, in simulated time and driven by a seeded generator:

- reboots that are asynchronous as on EC2 ("it only queues a request to reboot"; a clean shutdown can
  take minutes before EC2 reboots hard): the old process keeps answering for a shutdown time after the
  call, then the instance takes a boot time and then an application readiness time;
- the target lifecycle, as the ALB documents it, from discrete health checks every
  HealthCheckIntervalSeconds after the registration: a newly registered target is ``initial`` and
  becomes ``healthy`` after ONE passing check, or ``unhealthy`` after UnhealthyThresholdCount
  failing ones; a healthy target turns ``unhealthy`` after UnhealthyThresholdCount consecutive
  failures, and an unhealthy one needs HealthyThresholdCount consecutive passes to be healthy again;
  ``draining`` for up to the deregistration delay (ending early once in-flight requests finish), then
  ``unused``;
- a steady request load over the targets the ALB routes to, so rebooting an instance that still had
  requests in flight, or that the ALB still routes to, counts dropped requests;
- several target groups (two listeners, or two load balancers), each with its own health checks,
  deregistration delay and share of the requests, and registrations keyed by (instance, port) as on
  ELB: a target registered with a port override is only deregistered by naming that port;
- faults: never ready, slow, throttled reboot call, a reboot that never happens.

State is kept as facts with timestamps (registered at, app down between ...), and every question
("what is the health of i-1 at t?") is answered from them, so the model has no ticking loop.
"""

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

INF = math.inf
TargetState = Literal["initial", "healthy", "unhealthy", "draining", "unused"]


@dataclass(frozen=True)
class Spread:
    """A duration in seconds: ``mean`` +/- ``spread`` (a fraction), uniform. spread 0 = exact."""

    mean: float
    spread: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.spread <= 0:
            return self.mean
        return rng.uniform(self.mean * (1 - self.spread), self.mean * (1 + self.spread))


@dataclass(frozen=True)
class FleetSpec:
    size: int = 12
    boot: Spread = Spread(45.0)
    readiness: Spread = Spread(30.0)
    deregistration_delay: int = 60
    health_check_interval: int = 10
    healthy_threshold: int = 3
    unhealthy_threshold: int = 2
    requests_per_second: float = 40.0
    request_seconds: float = 0.4  # mean duration of a request (Little's law: in flight = rate x this)
    drain: Spread = Spread(5.0, 0.6)  # until the last in-flight request ends (capped by the delay)
    shutdown: Spread = Spread(8.0)  # from the reboot call until the application stops answering
    health_port: int = 8080
    health_path: str = "/health"
    seed: int = 1
    zones: int = 1  # instances spread over this many Availability Zones (1 or 2), one after the other
    # Target groups besides the primary one ("web", every instance on health_port, share 1.0).
    more_groups: tuple["GroupSpec", ...] = ()
    auto_scaling: "AutoScalingSpec | None" = None  # an Auto Scaling group of (some of) the instances

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 5000:
            raise ValueError(f"fleet size must be 1..5000, got {self.size}")
        if self.zones not in (1, 2):
            raise ValueError(f"zones must be 1 or 2 (the sandbox's VPC has two subnets), got {self.zones}")


@dataclass(frozen=True)
class GroupSpec:
    """Another target group of the tier: its members (instance numbers from 0; None: all), each on the
    group's port unless overridden, behind the primary load balancer or a second one."""

    name: str
    port: int = 8080
    members: tuple[int, ...] | None = None
    port_overrides: tuple[tuple[int, int], ...] = ()  # (instance number, port it is registered on)
    share: float = 1.0  # its listener's requests, relative to the primary group's 1.0
    load_balancer: str = "web"  # another name: a second load balancer of that name
    health_check_interval: int = 10
    healthy_threshold: int = 3
    unhealthy_threshold: int = 2
    deregistration_delay: int = 60

    def port_of(self, number: int) -> int:
        return dict(self.port_overrides).get(number, self.port)


@dataclass(frozen=True)
class AutoScalingSpec:
    """An EC2 Auto Scaling group of the tier's instances (sandbox/autoscaling.py models what it does)."""

    name: str = "web-asg"
    members: tuple[int, ...] | None = None  # instance numbers from 0; None: every instance
    target_groups: tuple[str, ...] = ("web",)  # the target groups attached to the group (names)
    health_check_type: Literal["ELB", "EC2"] = "ELB"
    grace_period: int = 300
    min_size: int = 1
    max_size: int = 20

    def size(self, fleet_size: int) -> int:
        return fleet_size if self.members is None else len(self.members)


Fault = Literal["never_ready", "slow", "throttle_reboot", "no_reboot"]


@dataclass
class Instance:
    instance_id: str
    private_ip: str
    fault: Fault | None = None
    # (down_at, os_up_at, app_up_at) per reboot; app_up_at may be INF (never ready).
    reboots: list[tuple[float, float, float]] = field(default_factory=list)
    throttled_reboots_left: int = 0
    # An instance an Auto Scaling group launched during the run: (launched, os up, app up), down before.
    launch: tuple[float, float, float] | None = None
    terminated_at: float = INF  # terminated (by its Auto Scaling group): never answers again

    def down_windows(self) -> list[tuple[float, float, float]]:
        """(down, os up, app up) of every span the application did not answer: launch, reboots, termination."""
        windows = list(self.reboots)
        if self.launch is not None:
            windows.append((-INF, *self.launch[1:]))
        if self.terminated_at < INF:
            windows.append((self.terminated_at, INF, INF))
        return windows

    def app_up(self, t: float) -> bool:
        return not any(down <= t < app_up for down, _, app_up in self.down_windows())

    def os_up(self, t: float) -> bool:
        return not any(down <= t < os_up for down, os_up, _ in self.down_windows())

    def app_went_up_at(self, t: float) -> float:
        """When the application last came up at or before ``t`` (-INF if never down)."""
        ups = [app_up for down, _, app_up in self.down_windows() if app_up <= t]
        return max(ups, default=-INF)

    def app_went_down_at(self, t: float) -> float:
        downs = [down for down, _, app_up in self.down_windows() if down <= t < app_up]
        return max(downs, default=-INF)


@dataclass
class Registration:
    registered_at: float
    deregistered_at: float = INF
    drain_end: float = INF


@dataclass
class TargetGroupModel:
    """One target group: its health check settings, share of the load, and registrations by (instance, port)."""

    name: str
    port: int
    health_check_interval: int
    healthy_threshold: int
    unhealthy_threshold: int
    deregistration_delay: int
    share: float = 1.0
    arn: str = ""
    registrations: dict[tuple[str, int], list[Registration]] = field(default_factory=dict)

    def current(self, instance_id: str, port: int, t: float) -> Registration | None:
        regs = self.registrations.get((instance_id, port), [])
        if regs and regs[-1].registered_at <= t < regs[-1].deregistered_at:
            return regs[-1]
        return None


@dataclass
class FleetEvent:
    at: float
    instance_id: str
    what: str  # registered / deregistered / rebooted / reboot-throttled ...


class Fleet:
    """The simulated tier. Thread-safe: the interpreter's threads call it concurrently.

    Methods that take ``group`` (a target group's name) and ``port`` default to the primary group
    ("web") and the group's port, so a one-group tier reads as before.
    """

    PRIMARY = "web"

    def __init__(self, spec: FleetSpec, start: float) -> None:
        self.spec = spec
        self.start = start
        self.rng = random.Random(spec.seed)
        self._lock = threading.RLock()
        self.instances: dict[str, Instance] = {}
        self.groups: dict[str, TargetGroupModel] = {}
        self.events: list[FleetEvent] = []
        self.dropped_requests = 0.0
        self.names: dict[str, str] = {}  # instance id -> Name tag, for people
        self.auto_scaling: dict[str, Any] = {}  # group name -> sandbox.autoscaling.AutoScalingGroupModel
        self.add_group(
            TargetGroupModel(
                self.PRIMARY,
                spec.health_port,
                spec.health_check_interval,
                spec.healthy_threshold,
                spec.unhealthy_threshold,
                spec.deregistration_delay,
            )
        )

    @property
    def registrations(self) -> dict[str, list[Registration]]:
        """The primary group's registrations on its port, by instance (what a one-group tier has)."""
        primary = self.groups[self.PRIMARY]
        return {i: primary.registrations.get((i, primary.port), []) for i in self.instances}

    # -- set-up ----------------------------------------------------------------------------
    def add_group(self, group: TargetGroupModel) -> TargetGroupModel:
        with self._lock:
            self.groups[group.name] = group
            return group

    def add_instance(self, instance_id: str, private_ip: str, name: str = "", registered: bool = True) -> Instance:
        with self._lock:
            inst = Instance(instance_id, private_ip)
            self.names[instance_id] = name or instance_id
            self.instances[instance_id] = inst
            primary = self.groups[self.PRIMARY]
            primary.registrations[(instance_id, primary.port)] = []
            if registered:  # registered and healthy long before the run starts
                self.enrol(instance_id, self.PRIMARY, primary.port)
            return inst

    def enrol(self, instance_id: str, group: str, port: int) -> None:
        """Registered in ``group`` on ``port`` since long before the run (set-up, not an API call)."""
        with self._lock:
            self.groups[group].registrations.setdefault((instance_id, port), []).append(Registration(self.start - 3600))

    def launch(self, instance_id: str, private_ip: str, t: float, name: str = "") -> Instance:
        """An instance launched at ``t`` (by an Auto Scaling group): it boots, then its application starts."""
        with self._lock:
            inst = self.add_instance(instance_id, private_ip, name=name, registered=False)
            os_up = t + self.spec.boot.sample(self.rng)
            inst.launch = (t, os_up, os_up + self.spec.readiness.sample(self.rng))
            self.events.append(FleetEvent(t, instance_id, "launched"))
            return inst

    def terminate(self, instance_id: str, t: float) -> None:
        with self._lock:
            # Requests still in flight on it are cut.
            self.dropped_requests += self._in_flight(instance_id, t)
            self.instances[instance_id].terminated_at = t
            self.events.append(FleetEvent(t, instance_id, "terminated"))

    def settle(self, t: float) -> None:
        """Let the Auto Scaling groups act on what happened up to ``t`` (health checks, launches)."""
        with self._lock:
            for group in self.auto_scaling.values():
                group.settle(t)

    def group_by_arn(self, arn: str) -> TargetGroupModel | None:
        return next((g for g in self.groups.values() if g.arn == arn), None)

    def inject(self, instance_id: str, fault: Fault, count: int = 1) -> None:
        with self._lock:
            inst = self.instances[instance_id]
            inst.fault = fault
            if fault == "throttle_reboot":
                inst.throttled_reboots_left = count

    # -- what the APIs do ------------------------------------------------------------------
    def _group(self, group: str | None) -> TargetGroupModel:
        return self.groups[group or self.PRIMARY]

    def register(self, instance_id: str, t: float, group: str | None = None, port: int | None = None) -> None:
        with self._lock:
            model = self._group(group)
            port = model.port if port is None else port
            if model.current(instance_id, port, t) is None:
                model.registrations.setdefault((instance_id, port), []).append(Registration(t))
                self.events.append(FleetEvent(t, instance_id, f"registered in {model.name}:{port}"))

    def deregister(self, instance_id: str, t: float, group: str | None = None, port: int | None = None) -> None:
        """ELB deregisters the target (instance, port): without a port, the group's port. A target
        registered with a port override stays registered then (ELB API reference, DeregisterTargets)."""
        with self._lock:
            model = self._group(group)
            port = model.port if port is None else port
            reg = model.current(instance_id, port, t)
            if reg is None:
                return
            reg.deregistered_at = t
            # In-flight requests finish after a while; the deregistration delay caps the drain.
            reg.drain_end = t + min(float(model.deregistration_delay), self.spec.drain.sample(self.rng))
            self.events.append(FleetEvent(t, instance_id, f"deregistered from {model.name}:{port}"))

    def reboot_is_throttled(self, instance_id: str, t: float) -> bool:
        """Whether this reboot call is throttled (an injected fault, used up one call at a time)."""
        with self._lock:
            inst = self.instances.get(instance_id)
            if inst is None or inst.throttled_reboots_left <= 0:
                return False
            inst.throttled_reboots_left -= 1
            self.events.append(FleetEvent(t, instance_id, "reboot-throttled"))
            return True

    def reboot(self, instance_id: str, t: float) -> None:
        """The reboot call at ``t``: queued, the instance goes down after its shutdown time."""
        with self._lock:
            inst = self.instances[instance_id]
            self.events.append(FleetEvent(t, instance_id, "reboot-requested"))
            if inst.fault == "no_reboot":
                return  # accepted, and never carried out
            down = t + self.spec.shutdown.sample(self.rng)
            # Requests in flight when it goes down are cut (as far as the registrations known now tell).
            self.dropped_requests += self._in_flight(instance_id, down)
            boot = self.spec.boot.sample(self.rng)
            readiness = self.spec.readiness.sample(self.rng)
            if inst.fault == "slow":
                readiness *= 4
            os_up = down + boot
            app_up = INF if inst.fault == "never_ready" else os_up + readiness
            inst.reboots.append((down, os_up, app_up))
            self.events.append(FleetEvent(down, instance_id, "rebooted"))

    # -- what the APIs report --------------------------------------------------------------
    def target_state(
        self, instance_id: str, t: float, group: str | None = None, port: int | None = None
    ) -> TargetState:
        with self._lock:
            model = self._group(group)
            port = model.port if port is None else port
            regs = model.registrations.get((instance_id, port), [])
            reg = next((r for r in reversed(regs) if r.registered_at <= t), None)
            if reg is None:
                return "unused"
            if t >= reg.deregistered_at:
                return "draining" if t < reg.drain_end else "unused"
            return self._registered_health(model, self.instances[instance_id], reg, t)

    def _registered_health(self, model: TargetGroupModel, inst: Instance, reg: Registration, t: float) -> TargetState:
        """The state after the checks made since the registration, up to ``t``.

        "After your target is registered, it must pass one health check to be considered healthy"
        (ELB, Application Load Balancers guide, "Health checks for Application Load Balancer target
        groups"); HealthyThresholdCount is "the number of consecutive health checks successes required
        before considering an unhealthy target healthy" (ELB API reference, TargetGroup). AWS does not
        document when the first check is sent: the model sends it one interval after the registration.
        """
        interval = model.health_check_interval
        done = self._checks_done(reg, interval, t)
        state: TargetState = "initial"
        next_check = 1
        for first_failing, last_failing in self._failing_checks(inst, reg, interval, done):
            state = self._after_passes(model, state, first_failing - next_check)
            if last_failing - first_failing + 1 >= model.unhealthy_threshold:
                state = "unhealthy"
            next_check = last_failing + 1
        return self._after_passes(model, state, done + 1 - next_check)

    @staticmethod
    def _after_passes(model: TargetGroupModel, state: TargetState, passes: int) -> TargetState:
        if passes <= 0:
            return state
        if state == "initial" or passes >= model.healthy_threshold:
            return "healthy"
        return state

    @staticmethod
    def _first_check_from(reg: Registration, interval: float, t: float) -> int:
        """The index (1 = the first check after the registration) of the first check at or after ``t``."""
        k = max(1, math.ceil((t - reg.registered_at) / interval))
        while k > 1 and reg.registered_at + (k - 1) * interval >= t:  # exact against float rounding
            k -= 1
        while reg.registered_at + k * interval < t:
            k += 1
        return k

    def _checks_done(self, reg: Registration, interval: float, t: float) -> int:
        return self._first_check_from(reg, interval, math.nextafter(t, INF)) - 1

    def _failing_checks(self, inst: Instance, reg: Registration, interval: float, done: int) -> list[tuple[int, int]]:
        """Runs of consecutive failing checks (first, last index) among the first ``done`` checks."""
        runs: list[tuple[int, int]] = []
        for down, _, app_up in sorted(inst.down_windows()):
            if app_up <= reg.registered_at:
                continue
            first = self._first_check_from(reg, interval, max(down, reg.registered_at))
            last = min(done, self._first_check_from(reg, interval, app_up) - 1 if app_up < INF else done)
            if first > last:
                continue
            if runs and first <= runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], max(runs[-1][1], last))
            else:
                runs.append((first, last))
        return runs

    def health_checks_done(self, instance_id: str, t: float, group: str | None = None, port: int | None = None) -> int:
        """Checks made since the target's current registration (0 while the registration is in progress)."""
        with self._lock:
            model = self._group(group)
            reg = model.current(instance_id, model.port if port is None else port, t)
            return 0 if reg is None else self._checks_done(reg, model.health_check_interval, t)

    def status_checks_ok(self, instance_id: str, t: float) -> bool:
        return self.instances[instance_id].os_up(t)

    def health_endpoint(self, instance_id: str, t: float) -> int | None:
        """HTTP status the application answers, None when nothing listens (connection refused)."""
        inst = self.instances[instance_id]
        if inst.app_up(t):
            return 200
        return 503 if inst.os_up(t) else None

    def targets(self, t: float, group: str | None = None) -> list[tuple[str, int]]:
        """(instance id, port) of the targets registered or draining at ``t`` (what DescribeTargetHealth lists)."""
        model = self._group(group)
        with self._lock:
            keys = list(model.registrations)
        return [(i, p) for i, p in keys if self.target_state(i, t, model.name, p) != "unused"]

    def registered_targets(self, t: float, group: str | None = None) -> list[str]:
        """Instance ids registered or draining at ``t`` in the group (on any port)."""
        return list(dict.fromkeys(i for i, _ in self.targets(t, group)))

    def instance_by_ip(self, ip: str) -> Instance | None:
        return next((i for i in self.instances.values() if i.private_ip == ip), None)

    # -- traffic ---------------------------------------------------------------------------
    def _routable(
        self, t: float, group: str | None = None, state: Callable[[str, int], TargetState] | None = None
    ) -> list[str]:
        """Instance ids the group's load balancer routes to at ``t`` (once per port registered); ``state``
        (instance id, port) -> its state at ``t``, if the caller knows them faster."""
        model = self._group(group)
        with self._lock:
            keys = list(model.registrations)
        state_of = state or (lambda i, p: self.target_state(i, t, model.name, p))
        states = [(i, state_of(i, p)) for i, p in keys]
        healthy = [i for i, state in states if state == "healthy"]
        if healthy:
            return healthy
        # With no healthy target the ALB fails open to every registered one.
        return [i for i, state in states if state in ("initial", "unhealthy")]

    def _rps(self, model: TargetGroupModel) -> float:
        return self.spec.requests_per_second * model.share

    def serving(self, t: float, group: str | None = None) -> int:
        """In-service capacity of a group: targets its load balancer routes to whose application answers."""
        return sum(1 for i in self._routable(t, group) if self.instances[i].app_up(t))

    def _in_flight(self, instance_id: str, t: float) -> float:
        """Requests in flight on the instance at ``t`` from every group (cut if it goes down now)."""
        if not self.instances[instance_id].app_up(t):
            return 0.0
        total = 0.0
        for model in self.groups.values():
            in_flight_total = self._rps(model) * self.spec.request_seconds
            routable = self._routable(t, model.name)
            for (target, port), regs in model.registrations.items():
                if target != instance_id or not regs:
                    continue
                state = self.target_state(instance_id, t, model.name, port)
                if instance_id in routable and state not in {"draining", "unused"}:
                    total += in_flight_total / len(routable)
                elif state == "draining":
                    # What was in flight when it left the rotation, finishing linearly until the drain ends.
                    reg = regs[-1]
                    span = reg.drain_end - reg.deregistered_at
                    left = (reg.drain_end - t) / span if span > 0 else 0.0
                    share = in_flight_total / max(1, len(self._routable(reg.deregistered_at, model.name)) + 1)
                    total += share * max(0.0, left)
        return total

    def phase(self, instance_id: str, t: float) -> str:
        """One word for what an instance is doing at ``t`` (for live progress)."""
        inst = self.instances[instance_id]
        states = {
            self.target_state(instance_id, t, g.name, p)
            for g in self.groups.values()
            for (i, p) in g.registrations
            if i == instance_id
        } or {"unused"}
        order = ("draining", "unhealthy", "initial", "healthy", "unused")
        state = next(s for s in order if s in states)
        if not inst.os_up(t):
            return "booting"
        if not inst.app_up(t):
            return "starting app" if state == "unused" else f"{state}, app down"
        return {"healthy": "in service", "unused": "out of service"}.get(state, state)

    def _state_until(self, model: TargetGroupModel, instance_id: str, port: int, t: float) -> tuple[TargetState, float]:
        """The target's state at ``t`` and when it can next change, once the world is settled: only at a
        registration's start, end or drain end, and at the health checks of the registration in force."""
        state = self.target_state(instance_id, t, model.name, port)
        regs = model.registrations.get((instance_id, port), [])
        changes = [b for r in regs for b in (r.registered_at, r.deregistered_at, r.drain_end) if b > t]
        reg = next((r for r in reversed(regs) if r.registered_at <= t), None)  # a later one may be known
        if reg is not None and t < reg.deregistered_at:
            interval = model.health_check_interval
            changes.append(reg.registered_at + (self._checks_done(reg, interval, t) + 1) * interval)
        return state, min(changes, default=INF)

    @staticmethod
    def _app_up_until(inst: Instance, t: float) -> tuple[bool, float]:
        """Whether the application answers at ``t``, and when that can next change."""
        edges = [b for down, _, up in inst.down_windows() for b in (down, up) if b > t]
        return inst.app_up(t), min(edges, default=INF)

    def timeline(self, t0: float, t1: float, step: float = 1.0) -> "Timeline":
        """Sample capacity per group and count requests routed to dead instances over [t0, t1].

        Each target's state and each application's answer are recomputed only once they can have changed
        (:meth:`_state_until`), so a sample costs a lookup per target rather than its health-check history."""
        self.settle(t1)
        times: list[float] = []
        by_group: dict[str, list[int]] = {name: [] for name in self.groups}
        in_service: list[int] = []
        dropped_routing = 0.0
        states: dict[tuple[str, str, int], tuple[TargetState, float]] = {}
        answers: dict[str, tuple[bool, float]] = {}

        def state(model: TargetGroupModel, t: float, instance_id: str, port: int) -> TargetState:
            known = states.get((model.name, instance_id, port))
            if known is None or t >= known[1]:
                known = states[(model.name, instance_id, port)] = self._state_until(model, instance_id, port, t)
            return known[0]

        def app_up(instance_id: str, t: float) -> bool:
            known = answers.get(instance_id)
            if known is None or t >= known[1]:
                known = answers[instance_id] = self._app_up_until(self.instances[instance_id], t)
            return known[0]

        t = t0
        while t <= t1:
            times.append(t)
            for model in self.groups.values():
                routable = self._routable(t, model.name, partial(state, model, t))
                dead = sum(1 for i in routable if not app_up(i, t))
                if routable:
                    dropped_routing += self._rps(model) * step * dead / len(routable)
                by_group[model.name].append(len(routable) - dead)
                if model.name == self.PRIMARY:
                    in_service.append(len(routable))
            t += step
        return Timeline(
            times,
            by_group[self.PRIMARY],
            in_service,
            self.dropped_requests + dropped_routing,
            serving_by_group=by_group,
        )

    def phases(self, instance_id: str) -> list[tuple[str, float, float]]:
        """(phase, start, end) bars for the picture: draining, rebooting, starting, initial."""
        out: list[tuple[str, float, float]] = []
        inst = self.instances[instance_id]
        regs = self.registrations.get(instance_id, [])
        for reg in regs:
            if reg.deregistered_at < INF:
                out.append(("draining", reg.deregistered_at, reg.drain_end))
        for down, os_up, app_up in inst.reboots:
            out.append(("booting", down, os_up))
            out.append(("starting app", os_up, app_up))
        for reg in regs[1:]:
            healthy = self._first_healthy_after(instance_id, reg.registered_at)
            out.append(("health checks", reg.registered_at, healthy))
        return out

    def _first_healthy_after(self, instance_id: str, t: float) -> float:
        """When the target registered at ``t`` in the primary group was first healthy (INF if never)."""
        model = self.groups[self.PRIMARY]
        reg = next(r for r in self.registrations[instance_id] if r.registered_at == t)
        inst = self.instances[instance_id]
        last_up = max((up for _, _, up in inst.reboots), default=-INF)
        if last_up == INF:
            return INF
        interval = model.health_check_interval
        for k in range(1, self._first_check_from(reg, interval, max(last_up, t)) + model.healthy_threshold + 1):
            at = reg.registered_at + k * interval
            if at >= reg.deregistered_at:
                return INF
            if self._registered_health(model, inst, reg, at) == "healthy":
                return at
        return INF


@dataclass
class Timeline:
    times: list[float]
    serving: list[int]  # routed to and really answering
    in_service: list[int]  # routed to by the ALB
    dropped_requests: float
    serving_by_group: dict[str, list[int]] = field(default_factory=dict)  # target group name -> serving

    @property
    def min_serving(self) -> int:
        return min(self.serving, default=0)

    def min_serving_in(self, group: str) -> int:
        return min(self.serving_by_group[group], default=0)
