"""The ELB API's request throttling: token buckets per action category, per account and Region.

"ELB uses the token bucket algorithm to implement API throttling ... Each request that you make
removes one token from the bucket ... If a bucket is below its maximum capacity, a set number of
tokens is added back every second until the bucket reaches its maximum capacity" (ELB user guide,
"Request throttling for the ELB API"). The buckets are the account's, shared with every other
caller in it (the console, CLI scripts, controllers); services calling on your behalf (EC2 Auto
Scaling, ECS, CloudFormation) have buckets of their own. A throttled request fails with HTTP 400,
code ``Throttling``, "Rate exceeded" (the guide names the error ThrottlingException; on the wire,
and so in botocore's ClientError, the code is ``Throttling``: e.g. "An error occurred (Throttling)
when calling the DescribeTargetHealth operation ...: Rate exceeded", ansible-collections/
community.aws issue 444; "Throttling: Rate exceeded, status code: 400",
kubernetes-sigs/aws-load-balancer-controller issue 1871).

The sandbox checks every attempt (botocore's retries included) of a call made by a function or a
state machine's Task, on the virtual clock; calls from the test harness and the sandbox's own
look-ups take no tokens. Docs/sandbox.md ("The ELB API's token buckets") has the figures.
"""

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BucketSpec:
    """A category of ELB API v2 actions and its bucket: the burst it allows, and tokens added per second."""

    name: str
    capacity: float
    refill_per_second: float


# ELB user guide, "Request throttling for the ELB API": non-mutating actions "bucket size ... is 40 tokens"
# with "a refill rate of 10 tokens per second"; RegisterTargets/DeregisterTargets and Modify* have buckets
# of their own (20 tokens, 4/s and 20 tokens, 3/s: the figures aws-load-balancer-controller's client-side
# limits take from that page's table, commit 965719e). Other mutating actions are modelled like Modify*.
DESCRIBE = BucketSpec("non-mutating (Describe*)", capacity=40, refill_per_second=10)
REGISTRATION = BucketSpec("registration (RegisterTargets, DeregisterTargets)", capacity=20, refill_per_second=4)
MUTATING = BucketSpec("mutating (Modify*, Create*, Delete*, ...)", capacity=20, refill_per_second=3)
DOCUMENTED: Mapping[str, BucketSpec] = {"describe": DESCRIBE, "registration": REGISTRATION, "mutating": MUTATING}

THROTTLED_CODE = "Throttling"
THROTTLED_MESSAGE = "Rate exceeded"


def category(operation: str) -> str:
    """The bucket an ELB API v2 action draws from: ``describe``, ``registration`` or ``mutating``."""
    if operation.startswith("Describe"):
        return "describe"
    if operation in ("RegisterTargets", "DeregisterTargets"):
        return "registration"
    return "mutating"


@dataclass
class ElbRequest:
    """One attempt at an ELB API call as the buckets saw it."""

    operation: str
    category: str
    at: float
    caller: str | None  # the function (logical id) or state machine that made it
    throttled: bool


@dataclass
class _Bucket:
    spec: BucketSpec
    tokens: float
    at: float
    reserved_per_second: float = 0.0  # taken by the account's other callers
    reserved_burst: float = 0.0

    @property
    def capacity(self) -> float:
        return self.spec.capacity - self.reserved_burst

    def take(self, now: float) -> bool:
        """Refill for the time since the last request, then take one token if there is one."""
        rate = self.spec.refill_per_second - self.reserved_per_second
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.at) * rate)
        self.at = max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class ElbApiBuckets:
    """The account's ELB API v2 buckets on the sandbox's clock, full at the start."""

    now: Callable[[], float]
    specs: Mapping[str, BucketSpec] = field(default_factory=lambda: dict(DOCUMENTED))
    requests: list[ElbRequest] = field(default_factory=list)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        t = self.now()
        self._buckets = {name: _Bucket(spec, spec.capacity, t) for name, spec in self.specs.items()}

    def reserve(self, bucket: str, *, per_second: float, burst: float = 0.0) -> None:
        """Other callers in the account use ``per_second`` of ``bucket``'s refill and ``burst`` of its capacity."""
        if bucket not in self._buckets:
            raise ValueError(f"no ELB API bucket {bucket!r}: use one of {', '.join(sorted(self._buckets))}")
        spec = self._buckets[bucket].spec
        if not 0 <= per_second < spec.refill_per_second:
            raise ValueError(
                f"per_second must be 0 or more and below the {bucket} bucket's refill of "
                f"{spec.refill_per_second:g} tokens a second (something must be left for the run), not {per_second}"
            )
        if not 0 <= burst < spec.capacity:
            raise ValueError(
                f"burst must be 0 or more and below the {bucket} bucket's capacity of {spec.capacity:g}, not {burst}"
            )
        with self._lock:
            b = self._buckets[bucket]
            b.take(self.now())  # settle the refill so far at the old rate
            b.reserved_per_second, b.reserved_burst = per_second, burst
            b.tokens = min(b.tokens, b.capacity)

    def admit(self, operation: str, caller: str | None) -> bool:
        """Whether this attempt gets a token (recorded either way)."""
        name = category(operation)
        t = self.now()
        with self._lock:
            allowed = self._buckets[name].take(t)
            self.requests.append(ElbRequest(operation, name, t, caller, throttled=not allowed))
        return allowed

    def count(self, operation: str | None = None, *, throttled: bool | None = None) -> int:
        """Attempts that reached ELB (of ``operation``, throttled or not, if given)."""
        return sum(
            1
            for r in self.requests
            if (operation is None or r.operation == operation) and (throttled is None or r.throttled == throttled)
        )
