"""A simulated web tier: EC2 instances behind one ALB target group, with the behaviour moto lacks.

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
- faults: never ready, slow, throttled reboot call, a reboot that never happens.

State is kept as facts with timestamps (registered at, app down between ...), and every question
("what is the health of i-1 at t?") is answered from them, so the model has no ticking loop.
"""

import math
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

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

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 5000:
            raise ValueError(f"fleet size must be 1..5000, got {self.size}")


Fault = Literal["never_ready", "slow", "throttle_reboot", "no_reboot"]


@dataclass
class Instance:
    instance_id: str
    private_ip: str
    fault: Fault | None = None
    # (down_at, os_up_at, app_up_at) per reboot; app_up_at may be INF (never ready).
    reboots: list[tuple[float, float, float]] = field(default_factory=list)
    throttled_reboots_left: int = 0

    def app_up(self, t: float) -> bool:
        return not any(down <= t < app_up for down, _, app_up in self.reboots)

    def os_up(self, t: float) -> bool:
        return not any(down <= t < os_up for down, os_up, _ in self.reboots)

    def app_went_up_at(self, t: float) -> float:
        """When the application last came up at or before ``t`` (-INF if never down)."""
        ups = [app_up for down, _, app_up in self.reboots if app_up <= t]
        return max(ups, default=-INF)

    def app_went_down_at(self, t: float) -> float:
        downs = [down for down, _, app_up in self.reboots if down <= t < app_up]
        return max(downs, default=-INF)


@dataclass
class Registration:
    registered_at: float
    deregistered_at: float = INF
    drain_end: float = INF


@dataclass
class FleetEvent:
    at: float
    instance_id: str
    what: str  # registered / deregistered / rebooted / reboot-throttled ...


class Fleet:
    """The simulated tier. Thread-safe: the interpreter's threads call it concurrently."""

    def __init__(self, spec: FleetSpec, start: float) -> None:
        self.spec = spec
        self.start = start
        self.rng = random.Random(spec.seed)
        self._lock = threading.RLock()
        self.instances: dict[str, Instance] = {}
        self.registrations: dict[str, list[Registration]] = {}
        self.events: list[FleetEvent] = []
        self.dropped_requests = 0.0
        self.names: dict[str, str] = {}  # instance id -> Name tag, for people

    # -- set-up ----------------------------------------------------------------------------
    def add_instance(self, instance_id: str, private_ip: str, name: str = "", registered: bool = True) -> Instance:
        with self._lock:
            inst = Instance(instance_id, private_ip)
            self.names[instance_id] = name or instance_id
            self.instances[instance_id] = inst
            # Registered and healthy long before the run starts.
            self.registrations[instance_id] = [Registration(self.start - 3600)] if registered else []
            return inst

    def inject(self, instance_id: str, fault: Fault, count: int = 1) -> None:
        with self._lock:
            inst = self.instances[instance_id]
            inst.fault = fault
            if fault == "throttle_reboot":
                inst.throttled_reboots_left = count

    # -- what the APIs do ------------------------------------------------------------------
    def register(self, instance_id: str, t: float) -> None:
        with self._lock:
            if self._current(instance_id, t) is None:
                self.registrations[instance_id].append(Registration(t))
                self.events.append(FleetEvent(t, instance_id, "registered"))

    def deregister(self, instance_id: str, t: float) -> None:
        with self._lock:
            reg = self._current(instance_id, t)
            if reg is None:
                return
            reg.deregistered_at = t
            # In-flight requests finish after a while; the deregistration delay caps the drain.
            reg.drain_end = t + min(float(self.spec.deregistration_delay), self.spec.drain.sample(self.rng))
            self.events.append(FleetEvent(t, instance_id, "deregistered"))

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
    def target_state(self, instance_id: str, t: float) -> TargetState:
        with self._lock:
            regs = self.registrations.get(instance_id, [])
            reg = next((r for r in reversed(regs) if r.registered_at <= t), None)
            if reg is None:
                return "unused"
            if t >= reg.deregistered_at:
                return "draining" if t < reg.drain_end else "unused"
            return self._registered_health(self.instances[instance_id], reg, t)

    def _registered_health(self, inst: Instance, reg: Registration, t: float) -> TargetState:
        """The state after the checks made since the registration, up to ``t``.

        "After your target is registered, it must pass one health check to be considered healthy"
        (ELB, Application Load Balancers guide, "Health checks for Application Load Balancer target
        groups"); HealthyThresholdCount is "the number of consecutive health checks successes required
        before considering an unhealthy target healthy" (ELB API reference, TargetGroup). AWS does not
        document when the first check is sent: the model sends it one interval after the registration.
        """
        spec = self.spec
        done = self._checks_done(reg, t)
        state: TargetState = "initial"
        next_check = 1
        for first_failing, last_failing in self._failing_checks(inst, reg, done):
            state = self._after_passes(state, first_failing - next_check)
            if last_failing - first_failing + 1 >= spec.unhealthy_threshold:
                state = "unhealthy"
            next_check = last_failing + 1
        return self._after_passes(state, done + 1 - next_check)

    def _after_passes(self, state: TargetState, passes: int) -> TargetState:
        if passes <= 0:
            return state
        if state == "initial" or passes >= self.spec.healthy_threshold:
            return "healthy"
        return state

    def _check_at(self, reg: Registration, k: int) -> float:
        return reg.registered_at + k * self.spec.health_check_interval

    def _first_check_from(self, reg: Registration, t: float) -> int:
        """The index (1 = the first check after the registration) of the first check at or after ``t``."""
        k = max(1, math.ceil((t - reg.registered_at) / self.spec.health_check_interval))
        while k > 1 and self._check_at(reg, k - 1) >= t:  # exact against float rounding
            k -= 1
        while self._check_at(reg, k) < t:
            k += 1
        return k

    def _checks_done(self, reg: Registration, t: float) -> int:
        return self._first_check_from(reg, math.nextafter(t, INF)) - 1

    def _failing_checks(self, inst: Instance, reg: Registration, done: int) -> list[tuple[int, int]]:
        """Runs of consecutive failing checks (first, last index) among the first ``done`` checks."""
        runs: list[tuple[int, int]] = []
        for down, _, app_up in sorted(inst.reboots):
            if app_up <= reg.registered_at:
                continue
            first = self._first_check_from(reg, down)
            last = min(done, self._first_check_from(reg, app_up) - 1 if app_up < INF else done)
            if first > last:
                continue
            if runs and first <= runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], max(runs[-1][1], last))
            else:
                runs.append((first, last))
        return runs

    def health_checks_done(self, instance_id: str, t: float) -> int:
        """Checks made since the target's current registration (0 while the registration is in progress)."""
        with self._lock:
            reg = self._current(instance_id, t)
            return 0 if reg is None else self._checks_done(reg, t)

    def status_checks_ok(self, instance_id: str, t: float) -> bool:
        return self.instances[instance_id].os_up(t)

    def health_endpoint(self, instance_id: str, t: float) -> int | None:
        """HTTP status the application answers, None when nothing listens (connection refused)."""
        inst = self.instances[instance_id]
        if inst.app_up(t):
            return 200
        return 503 if inst.os_up(t) else None

    def registered_targets(self, t: float) -> list[str]:
        """Instance ids registered or draining at ``t`` (what DescribeTargetHealth lists)."""
        return [i for i in self.instances if self.target_state(i, t) != "unused"]

    def instance_by_ip(self, ip: str) -> Instance | None:
        return next((i for i in self.instances.values() if i.private_ip == ip), None)

    # -- traffic ---------------------------------------------------------------------------
    def _routable(self, t: float) -> list[str]:
        healthy = [i for i in self.instances if self.target_state(i, t) == "healthy"]
        if healthy:
            return healthy
        # With no healthy target the ALB fails open to every registered one.
        return [i for i in self.instances if self.target_state(i, t) in ("initial", "unhealthy")]

    def serving(self, t: float) -> int:
        """In-service capacity: targets the ALB routes to whose application really answers."""
        return sum(1 for i in self._routable(t) if self.instances[i].app_up(t))

    def _in_flight(self, instance_id: str, t: float) -> float:
        """Requests in flight on the instance at ``t`` (cut if it goes down now)."""
        state = self.target_state(instance_id, t)
        if not self.instances[instance_id].app_up(t):
            return 0.0
        in_flight_total = self.spec.requests_per_second * self.spec.request_seconds
        routable = self._routable(t)
        if instance_id in routable:
            return in_flight_total / len(routable)
        if state == "draining":
            # What was in flight when it left the rotation, finishing linearly until the drain ends.
            reg = self.registrations[instance_id][-1]
            span = reg.drain_end - reg.deregistered_at
            left = (reg.drain_end - t) / span if span > 0 else 0.0
            return in_flight_total / max(1, len(self._routable(reg.deregistered_at)) + 1) * max(0.0, left)
        return 0.0

    def phase(self, instance_id: str, t: float) -> str:
        """One word for what an instance is doing at ``t`` (for live progress)."""
        inst = self.instances[instance_id]
        state = self.target_state(instance_id, t)
        if not inst.os_up(t):
            return "booting"
        if not inst.app_up(t):
            return "starting app" if state == "unused" else f"{state}, app down"
        return {"healthy": "in service", "unused": "out of service"}.get(state, state)

    def timeline(self, t0: float, t1: float, step: float = 1.0) -> "Timeline":
        """Sample capacity and count requests routed to dead instances over [t0, t1].

        Each instance's state is recomputed only where it can change (its own breakpoints), so a long
        run of a large fleet costs what its events cost, not samples x instances."""
        with self._lock:
            changes = sorted((b, i) for i in self.instances for b in self._breakpoints(i) if t0 < b <= t1)
            current = {i: self._routing_state(i, t0) for i in self.instances}
            counts = Counter(current.values())
            times, serving, in_service = [], [], []
            dropped_routing = 0.0
            next_change = 0
            t = t0
            while t <= t1:
                while next_change < len(changes) and changes[next_change][0] <= t:
                    instance_id = changes[next_change][1]
                    counts[current[instance_id]] -= 1
                    current[instance_id] = self._routing_state(instance_id, t)
                    counts[current[instance_id]] += 1
                    next_change += 1
                routable, dead = self._routable_counts(counts)
                if routable:
                    dropped_routing += self.spec.requests_per_second * step * dead / routable
                times.append(t)
                serving.append(routable - dead)
                in_service.append(routable)
                t += step
            return Timeline(times, serving, in_service, self.dropped_requests + dropped_routing)

    def _routing_state(self, instance_id: str, t: float) -> tuple[str, bool]:
        """What routing depends on: the ALB's view of the target, and whether its application answers."""
        return self.target_state(instance_id, t), self.instances[instance_id].app_up(t)

    @staticmethod
    def _routable_counts(counts: "Counter[tuple[str, bool]]") -> tuple[int, int]:
        """(targets routed to, those whose application is down), as ``_routable`` decides."""
        healthy = counts[("healthy", True)] + counts[("healthy", False)]
        if healthy:
            return healthy, counts[("healthy", False)]
        # With no healthy target the ALB fails open to every registered one.
        down = counts[("initial", False)] + counts[("unhealthy", False)]
        return down + counts[("initial", True)] + counts[("unhealthy", True)], down

    def _breakpoints(self, instance_id: str) -> set[float]:
        """Every instant at which the instance's target state or its application can change."""
        inst = self.instances[instance_id]
        points = {p for reboot in inst.reboots for p in reboot}
        settle = max(self.spec.healthy_threshold, self.spec.unhealthy_threshold) + 1
        for reg in self.registrations.get(instance_id, []):
            points |= {reg.registered_at, reg.deregistered_at, reg.drain_end}
            # The state changes only at a check, within a threshold of checks after a change of the application.
            for cause in (reg.registered_at, *(p for down, _, up in inst.reboots for p in (down, up))):
                if reg.registered_at <= cause < reg.deregistered_at:
                    first = self._first_check_from(reg, cause)
                    points |= {self._check_at(reg, k) for k in range(first, first + settle)}
        return {p for p in points if p < INF}

    def _timeline_by_sampling(self, t0: float, t1: float, step: float = 1.0) -> "Timeline":
        """The same as :meth:`timeline`, asking every instance at every sample (the reference for tests)."""
        times, serving, in_service = [], [], []
        dropped_routing = 0.0
        t = t0
        while t <= t1:
            routable = self._routable(t)
            dead = sum(1 for i in routable if not self.instances[i].app_up(t))
            if routable:
                dropped_routing += self.spec.requests_per_second * step * dead / len(routable)
            times.append(t)
            serving.append(len(routable) - dead)
            in_service.append(len(routable))
            t += step
        return Timeline(times, serving, in_service, self.dropped_requests + dropped_routing)

    def phases(self, instance_id: str) -> list[tuple[str, float, float]]:
        """(phase, start, end) bars for the picture: draining, rebooting, starting, initial."""
        out: list[tuple[str, float, float]] = []
        inst = self.instances[instance_id]
        for reg in self.registrations.get(instance_id, []):
            if reg.deregistered_at < INF:
                out.append(("draining", reg.deregistered_at, reg.drain_end))
        for down, os_up, app_up in inst.reboots:
            out.append(("booting", down, os_up))
            out.append(("starting app", os_up, app_up))
        for reg in self.registrations.get(instance_id, [])[1:]:
            healthy = self._first_healthy_after(instance_id, reg.registered_at)
            out.append(("health checks", reg.registered_at, healthy))
        return out

    def _first_healthy_after(self, instance_id: str, t: float) -> float:
        """When the target registered at ``t`` was first healthy (INF if never, for the picture)."""
        regs = self.registrations[instance_id]
        reg = next(r for r in regs if r.registered_at == t)
        inst = self.instances[instance_id]
        last_up = max((up for _, _, up in inst.reboots), default=-INF)
        if last_up == INF:
            return INF
        for k in range(1, self._first_check_from(reg, max(last_up, t)) + self.spec.healthy_threshold + 1):
            at = self._check_at(reg, k)
            if at >= reg.deregistered_at:
                return INF
            if self._registered_health(inst, reg, at) == "healthy":
                return at
        return INF

    def _current(self, instance_id: str, t: float) -> Registration | None:
        regs = self.registrations[instance_id]
        if regs and regs[-1].registered_at <= t < regs[-1].deregistered_at:
            return regs[-1]
        return None


@dataclass
class Timeline:
    times: list[float]
    serving: list[int]  # routed to and really answering
    in_service: list[int]  # routed to by the ALB
    dropped_requests: float

    @property
    def min_serving(self) -> int:
        return min(self.serving, default=0)
