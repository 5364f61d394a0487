"""A cooperative scheduler over a virtual clock: deterministic runs, as fast as the CPU allows.

The sandbox's threads (the interpreter's execution, state, Map iteration and Parallel branch
threads, and the handlers they run) are *participants*: exactly one of them runs at a time, holding
the baton. A participant gives the baton up only where it would wait: a sleep, an Event, Lock or
Condition wait, a thread join (the primitives this module provides, which the sandbox puts in place
of ``threading``'s in moto's interpreter). The baton then goes to the next runnable participant, in
the order they became runnable (ties: in the order they started waiting), so the interleaving, and
with it every seeded draw of the fleet model, is the same on every run whatever the machine's load.

Time moves only when a caller drives it (:meth:`Scheduler.run`): once no participant can run, the
clock jumps to the earliest deadline and the participants waiting for it run, in the order their
deadlines were set. Nothing else moves time, so between two calls the sandbox stands still: a test
can read the state of a run and act on it (send a task token, stop an execution) at a fixed
simulated instant. Actions from outside (any thread that is not a participant) are made while
holding the baton (:meth:`Scheduler.external`), then the participants they woke run until they wait
again, before the action returns.

Blocking on anything this module does not provide (a plain ``threading.Lock`` held by another
participant) would stop the whole simulation: what the sandbox runs must wait only on these
primitives. One exception is allowed for: a participant that starts threads of its own and waits
for them with plain primitives (a handler uploading to S3: boto3's transfer manager has a thread
pool). Those threads are its *helpers* (:meth:`Scheduler.adopting_helpers`): they run while it
waits, holding its baton, their work costs no simulated time, and nothing else runs meanwhile.
"""

import datetime as _dt
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol, cast

from sandbox.clock import NS, SimClock

DEFAULT_WALL_TIMEOUT = 120.0


class Stalled(TimeoutError):
    """Nothing can happen any more: every sandbox thread waits, with no deadline, for an outside action."""


class SwitchHooks(Protocol):
    """Process-wide state a participant keeps to itself while it waits (e.g. environment variables)."""

    def suspend(self) -> object:
        """Called by a participant giving the baton up; returns what :meth:`resume` restores."""

    def resume(self, token: object) -> None:
        """Called by a participant taking the baton back."""


class _Waitable:
    """Something participants wait on, in FIFO order."""

    __slots__ = ("label", "waiters")

    def __init__(self, label: str) -> None:
        self.label = label
        self.waiters: deque[_Waiter] = deque()


class _Waiter:
    __slots__ = ("name", "waiting_on", "woken")

    def __init__(self, name: str) -> None:
        self.name = name
        self.waiting_on: _Waitable | None = None
        self.woken = False


class _Participant(_Waiter):
    __slots__ = ("deadline", "done", "ended", "go", "seq", "timer")

    def __init__(self, name: str, seq: int) -> None:
        super().__init__(name)
        self.seq = seq
        self.go = threading.Lock()  # released by whoever hands this participant the baton
        self.go.acquire()
        self.timer: int | None = None  # key of its live timer entry
        self.deadline: int | None = None  # nanoseconds
        self.done = False
        self.ended = _Waitable(f"the end of {name}")


class _External(_Waiter):
    """A thread that is not a participant, waiting on a primitive (in wall time)."""

    __slots__ = ("event",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.event = threading.Event()


class _Outsider:
    """The baton holder while a thread that is not a participant acts on the sandbox."""

    __slots__ = ("depth", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.depth = 0


class Scheduler:
    """Runs the sandbox's threads one at a time on a virtual clock.

    ``Thread``, ``Event``, ``Lock``, ``RLock`` and ``Condition`` are classes bound to this scheduler,
    with the interface of ``threading``'s; :meth:`threading_module` bundles them as a module.
    """

    def __init__(self, clock: SimClock, hooks: SwitchHooks | None = None) -> None:
        self.clock = clock
        self._hooks = hooks
        self._mutex = threading.Lock()  # guards everything below; never held while Python code of a participant runs
        self._quiet = threading.Condition(self._mutex)  # notified when nobody holds the baton and nobody is runnable
        self._holder: _Participant | _Outsider | None = None
        self._ready: deque[_Participant] = deque()
        self._timers: list[tuple[int, int, _Participant]] = []  # (deadline in ns, key, participant)
        self._seq = itertools.count()
        self._local = threading.local()
        self._alive: dict[int, _Participant] = {}  # by seq: for diagnostics
        self.switches = 0  # hand-overs of the baton
        self.jumps = 0  # moves of the clock
        attrs: dict[str, Any] = {"scheduler": self}
        self.Thread = cast(type[SimThread], type("Thread", (SimThread,), attrs))
        self.Event = cast(type[SimEvent], type("Event", (SimEvent,), attrs))
        self.Lock = cast(type[SimLock], type("Lock", (SimLock,), attrs))
        self.RLock = cast(type[SimRLock], type("RLock", (SimRLock,), attrs))
        self.Condition = cast(type[SimCondition], type("Condition", (SimCondition,), attrs))

    # -- reading ---------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock.now()

    def current(self) -> _Participant | None:
        """The calling thread's participant record; None for any other thread (a test, the command line)."""
        participant: _Participant | None = getattr(self._local, "participant", None)
        return participant

    def is_participant(self) -> bool:
        return self.current() is not None

    def _inside(self) -> bool:
        """A participant, or a helper thread one of them started: it already holds the baton."""
        return self.current() is not None or getattr(self._local, "helper_of", None) is not None

    @contextmanager
    def adopting_helpers(self) -> Iterator[None]:
        """While active, a plain thread started by a participant (or its helper) is its helper."""
        original = threading.Thread.start
        scheduler = self

        def start(thread: threading.Thread) -> None:
            parent = scheduler.current() or getattr(scheduler._local, "helper_of", None)
            if parent is not None and not isinstance(thread, SimThread):
                run = thread.run

                def helper_run() -> None:
                    scheduler._local.helper_of = parent
                    run()

                thread.run = helper_run  # type: ignore[method-assign]
            original(thread)

        threading.Thread.start = start  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            threading.Thread.start = original  # type: ignore[method-assign]

    def describe(self) -> str:
        """What every participant waits for (for error messages)."""
        with self._mutex:
            return self._describe_locked()

    def _describe_locked(self) -> str:
        lines = []
        for p in self._alive.values():
            until = ""
            if p.timer is not None and p.deadline is not None:
                until = f"until {_dt.datetime.fromtimestamp(p.deadline / NS, _dt.UTC):%Y-%m-%dT%H:%M:%S.%fZ}"
            if p is self._holder:
                state = "running"
            elif p in self._ready:
                state = "runnable"
            elif p.waiting_on is not None:
                state = f"waits for {p.waiting_on.label}" + (f" or {until}" if until else " (no deadline)")
            else:
                state = f"sleeps {until}"
            lines.append(f"  {p.name}: {state}")
        return "\n".join(lines) or "  (no sandbox thread)"

    # -- participants ----------------------------------------------------------------------
    def _spawn(self, name: str) -> _Participant:
        with self._mutex:
            participant = _Participant(name, next(self._seq))
            self._alive[participant.seq] = participant
            self._ready.append(participant)
            self._dispatch_locked()
        return participant

    def _unspawn(self, participant: _Participant) -> None:
        """The thread could not start: forget it."""
        with self._mutex:
            self._alive.pop(participant.seq, None)
            if participant in self._ready:
                self._ready.remove(participant)
            elif self._holder is participant:
                self._holder = None
                self._dispatch_locked()

    def _enter(self, participant: _Participant) -> None:
        self._local.participant = participant
        participant.go.acquire()

    def _leave(self, participant: _Participant) -> None:
        with self._mutex:
            if self._hooks is not None:
                self._hooks.suspend()  # leave the process as the others expect it
            participant.done = True
            self._alive.pop(participant.seq, None)
            self._notify_locked(participant.ended, None)
            self._holder = None
            self._dispatch_locked()
        self._local.participant = None

    def _dispatch_locked(self) -> None:
        """Hand the baton to the next runnable participant if nobody holds it."""
        if self._holder is not None:
            return
        if self._ready:
            participant = self._ready.popleft()
            self._holder = participant
            self.switches += 1
            participant.go.release()
        else:
            self._quiet.notify_all()

    def _wake_locked(self, waiter: _Waiter, woken: bool) -> None:
        waiter.woken = woken
        if waiter.waiting_on is not None:
            waiter.waiting_on.waiters.remove(waiter)
            waiter.waiting_on = None
        if isinstance(waiter, _Participant):
            waiter.timer = None
            waiter.deadline = None
            self._ready.append(waiter)
        elif isinstance(waiter, _External):
            waiter.event.set()

    def _notify_locked(self, waitable: _Waitable, n: int | None) -> None:
        """Wake the first ``n`` waiters of ``waitable`` (all if None), in the order they started waiting."""
        while waitable.waiters and (n is None or n > 0):
            self._wake_locked(waitable.waiters[0], True)
            if n is not None:
                n -= 1
        self._dispatch_locked()

    def _wait(
        self,
        waitable: _Waitable | None,
        timeout: float | None,
        ready: Callable[[], bool],
        before_park: Callable[[], None] | None = None,
    ) -> bool:
        """Wait until notified through ``waitable`` or ``timeout`` simulated seconds pass.

        ``ready`` (checked first, under the scheduler's lock) returns at once when true. Returns True
        when ready or notified, False on timeout. ``before_park`` runs under the lock just before
        waiting (a Condition releases its lock there).
        """
        participant = self.current()
        if participant is None:
            return self._wait_outside(waitable, timeout, ready, before_park)
        with self._mutex:
            if ready():
                return True
            if timeout is not None and timeout <= 0:
                return False
            if before_park is not None:
                before_park()
            token = self._park_locked(participant, waitable, timeout)
        participant.go.acquire()
        if self._hooks is not None:
            self._hooks.resume(token)
        return participant.woken

    def _park_locked(self, participant: _Participant, waitable: _Waitable | None, timeout: float | None) -> object:
        participant.woken = False
        if waitable is not None:
            waitable.waiters.append(participant)
            participant.waiting_on = waitable
        if timeout is not None:
            key = next(self._seq)
            participant.timer = key
            participant.deadline = self.clock.now_ns() + round(timeout * NS)
            heapq.heappush(self._timers, (participant.deadline, key, participant))
        token = self._hooks.suspend() if self._hooks is not None else None
        self._holder = None
        self._dispatch_locked()
        return token

    def _wait_outside(
        self,
        waitable: _Waitable | None,
        timeout: float | None,
        ready: Callable[[], bool],
        before_park: Callable[[], None] | None,
    ) -> bool:
        """A thread that is not a participant waits on a primitive: in wall time, letting participants run."""
        waiter = _External(threading.current_thread().name)
        outsider: _Outsider | None = getattr(self._local, "outsider", None)
        with self._mutex:
            if ready():
                return True
            if (timeout is not None and timeout <= 0) or waitable is None:
                return False
            if before_park is not None:
                before_park()
            waitable.waiters.append(waiter)
            waiter.waiting_on = waitable
            holding = outsider is not None and self._holder is outsider
            if holding:
                self._holder = None
                self._dispatch_locked()
        waiter.event.wait(timeout)
        with self._mutex:
            if waiter.waiting_on is not None:
                waiter.waiting_on.waiters.remove(waiter)
                waiter.waiting_on = None
            if holding:
                self._wait_quiet_locked(time.monotonic() + DEFAULT_WALL_TIMEOUT)
                self._holder = outsider
        return waiter.woken

    @contextmanager
    def instantaneous(self) -> Iterator[None]:
        """A participant acting as the outside world would (a delayed delivery): its sleeps take no time."""
        self._local.instant = getattr(self._local, "instant", 0) + 1
        try:
            yield
        finally:
            self._local.instant -= 1

    def call_later(self, delay: float, action: Callable[[], None], name: str = "call_later") -> "Timer":
        """Run ``action`` ``delay`` simulated seconds from now, in a sandbox thread of its own.

        The action itself takes no simulated time (:meth:`instantaneous`), like an action from outside.
        """
        timer = Timer()

        def run() -> None:
            self.sleep(delay)
            if not timer.cancelled:
                with self.instantaneous():
                    action()
            timer.done = True

        with self.external():
            self.Thread(target=run, name=name, daemon=True).start()
        return timer

    @contextmanager
    def deadline(self, at: float, stop: Callable[[], BaseException]) -> Iterator[None]:
        """While inside, the calling thread is stopped at ``at``: a sleep that would pass it sleeps until
        ``at`` and raises ``stop()`` (how Lambda ends an invocation at its timeout, mid-wait)."""
        outer: tuple[int, Callable[[], BaseException]] | None = getattr(self._local, "deadline", None)
        self._local.deadline = (round(at * NS), stop)
        try:
            yield
        finally:
            self._local.deadline = outer

    def sleep(self, seconds: float) -> None:
        """Sleep in simulated time (a participant); returns at once for any other thread."""
        participant = self.current()
        instant: int = getattr(self._local, "instant", 0)
        if participant is None or instant:
            return
        deadline: tuple[int, Callable[[], BaseException]] | None = getattr(self._local, "deadline", None)
        if deadline is not None and self.clock.now_ns() + round(seconds * NS) > deadline[0]:
            self.sleep(max(0, deadline[0] - self.clock.now_ns()) / NS)
            raise deadline[1]()
        with self._mutex:
            if seconds > 0:
                token = self._park_locked(participant, None, seconds)
            else:  # yield: the others runnable now go first
                token = self._hooks.suspend() if self._hooks is not None else None
                self._ready.append(participant)
                self._holder = None
                self._dispatch_locked()
        participant.go.acquire()
        if self._hooks is not None:
            self._hooks.resume(token)

    # -- outside the sandbox: acting, and driving the clock -----------------------------------
    def _wait_quiet_locked(self, wall_deadline: float) -> None:
        while self._holder is not None or self._ready:
            left = wall_deadline - time.monotonic()
            if left <= 0 or not self._quiet.wait(left):
                if self._holder is None and not self._ready:
                    return
                raise TimeoutError(
                    "the sandbox's threads did not come to a wait in wall-clock time "
                    f"(a loop that never waits?):\n{self._describe_locked()}"
                )

    @contextmanager
    def external(self, timeout: float = DEFAULT_WALL_TIMEOUT) -> Iterator[None]:
        """Act on the sandbox from outside: with every participant waiting, and none running meanwhile.

        On exit the participants the action woke run until they wait again (no time passes).
        Re-entrant; a no-op in a participant or its helper.
        """
        if self._inside():
            yield
            return
        outsider: _Outsider | None = getattr(self._local, "outsider", None)
        if outsider is not None and outsider.depth > 0:
            outsider.depth += 1
            try:
                yield
            finally:
                outsider.depth -= 1
            return
        outsider = _Outsider(threading.current_thread().name)
        self._local.outsider = outsider
        deadline = time.monotonic() + timeout
        with self._mutex:
            self._wait_quiet_locked(deadline)
            self._holder = outsider
        outsider.depth = 1
        try:
            yield
        finally:
            outsider.depth = 0
            with self._mutex:
                if self._holder is outsider:
                    self._holder = None
                    self._dispatch_locked()
                self._wait_quiet_locked(max(deadline, time.monotonic() + timeout))

    def settle(self, timeout: float = DEFAULT_WALL_TIMEOUT) -> None:
        """Wait (wall time) until every participant waits; time does not move."""
        with self.external(timeout):
            pass

    def run(
        self,
        until: Callable[[], bool] | None = None,
        at: float | None = None,
        timeout: float = DEFAULT_WALL_TIMEOUT,
    ) -> None:
        """Drive the clock until ``until()`` holds or simulated time reaches ``at``.

        ``until`` is checked whenever every participant waits (before each move of the clock), in
        the calling thread, with no participant running. ``at``: the clock stops exactly there
        (what is due at ``at`` has run). ``timeout``: wall seconds, a safety net (TimeoutError).
        Raises :class:`Stalled` when neither holds and nothing can happen any more.
        """
        if self.current() is not None:
            raise RuntimeError("a sandbox thread cannot drive the clock")
        deadline = time.monotonic() + timeout
        with self.external(timeout):
            outsider: _Outsider = self._local.outsider
            while True:
                if until is not None and until():
                    return
                with self._mutex:
                    due = self._next_deadline_locked()
                    stop = None if at is None else round(at * NS)
                    if due is None or (stop is not None and due > stop):
                        if stop is not None:
                            if stop > self.clock.now_ns():
                                self.clock.advance_to_ns(stop)
                                self.jumps += 1
                            return
                        raise Stalled(
                            "nothing can happen any more: every sandbox thread waits, with no deadline, for an "
                            f"action from outside (a task token nobody answers?):\n{self._describe_locked()}"
                        )
                    if due > self.clock.now_ns():
                        self.clock.advance_to_ns(due)
                        self.jumps += 1
                    self._fire_locked(due)
                    self._holder = None
                    self._dispatch_locked()
                    self._wait_quiet_locked(deadline)
                    self._holder = outsider
                if time.monotonic() > deadline:
                    raise TimeoutError(f"still running after {timeout} s of wall time")

    def _next_deadline_locked(self) -> int | None:
        while self._timers:
            deadline, key, participant = self._timers[0]
            if participant.timer == key:
                return deadline
            heapq.heappop(self._timers)  # stale: that wait ended otherwise
        return None

    def _fire_locked(self, due: int) -> None:
        """Wake every participant whose deadline is ``due`` or earlier, in the order the deadlines were set."""
        while self._timers and self._timers[0][0] <= due:
            _, key, participant = heapq.heappop(self._timers)
            if participant.timer == key:
                self._wake_locked(participant, False)

    def threading_module(self) -> Any:
        """A stand-in for the ``threading`` module whose primitives are this scheduler's."""
        import types

        module = types.ModuleType("threading")
        module.__dict__.update(threading.__dict__)
        module.__dict__.update(
            Thread=self.Thread, Event=self.Event, Lock=self.Lock, RLock=self.RLock, Condition=self.Condition
        )
        return module


class Timer:
    """What :meth:`Scheduler.call_later` returns."""

    def __init__(self) -> None:
        self.cancelled = False
        self.done = False

    def cancel(self) -> None:
        self.cancelled = True


class SimThread(threading.Thread):
    """threading.Thread whose thread is a participant of the scheduler."""

    scheduler: ClassVar[Scheduler]
    _sim: _Participant | None = None

    def start(self) -> None:
        self._sim = self.scheduler._spawn(self.name)
        try:
            super().start()
        except BaseException:
            self.scheduler._unspawn(self._sim)
            raise

    def run(self) -> None:
        participant = self._sim
        assert participant is not None
        self.scheduler._enter(participant)
        try:
            super().run()
        finally:
            self.scheduler._leave(participant)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end; ``timeout`` in simulated seconds (wall seconds outside the sandbox)."""
        participant = self._sim
        if participant is None:
            super().join(timeout)
            return
        self.scheduler._wait(participant.ended, timeout, lambda: participant.done)

    def is_alive(self) -> bool:
        if self._sim is None:
            return super().is_alive()
        return not self._sim.done


class SimEvent:
    """threading.Event on the scheduler: ``wait`` timeouts are simulated seconds."""

    scheduler: ClassVar[Scheduler]

    def __init__(self) -> None:
        self._flag = False
        self._waitable = _Waitable("an Event")

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        with self.scheduler._mutex:
            self._flag = True
            self.scheduler._notify_locked(self._waitable, None)

    def clear(self) -> None:
        with self.scheduler._mutex:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        return self.scheduler._wait(self._waitable, timeout, lambda: self._flag)


class SimLock:
    """threading.Lock on the scheduler: a participant waiting for it lets the others run."""

    scheduler: ClassVar[Scheduler]
    _reentrant = False

    def __init__(self) -> None:
        self._owner: int | None = None
        self._count = 0
        self._waitable = _Waitable("a Lock")

    def _try_take(self, me: int) -> bool:
        if self._owner is None:
            self._owner, self._count = me, 1
            return True
        if self._reentrant and self._owner == me:
            self._count += 1
            return True
        return False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        scheduler = self.scheduler
        if not blocking:
            with scheduler._mutex:
                return self._try_take(me)
        limit = None if timeout is None or timeout < 0 else timeout
        while True:
            notified = scheduler._wait(self._waitable, limit, lambda: self._try_take(me))
            if self._owner == me:
                return True
            if not notified:
                return False

    def release(self) -> None:
        scheduler = self.scheduler
        with scheduler._mutex:
            if self._owner is None or (self._reentrant and self._owner != threading.get_ident()):
                raise RuntimeError("release unlocked lock")
            self._count -= 1
            if self._count == 0:
                self._owner = None
                scheduler._notify_locked(self._waitable, 1)

    def _release_all_locked(self) -> int:
        """For Condition.wait: release completely (under the scheduler's lock); returns the count."""
        count = self._count
        self._owner, self._count = None, 0
        self.scheduler._notify_locked(self._waitable, 1)
        return count

    def locked(self) -> bool:
        return self._owner is not None

    def _is_owned(self) -> bool:
        return self._owner == threading.get_ident()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class SimRLock(SimLock):
    _reentrant = True

    def __init__(self) -> None:
        super().__init__()
        self._waitable.label = "an RLock"


class SimCondition:
    """threading.Condition on the scheduler (over a scheduler lock; an RLock by default)."""

    scheduler: ClassVar[Scheduler]

    def __init__(self, lock: SimLock | None = None) -> None:
        self._lock = lock if lock is not None else self.scheduler.RLock()
        self._waitable = _Waitable("a Condition")

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._lock._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        saved = [0]

        def release() -> None:
            saved[0] = self._lock._release_all_locked()

        notified = self.scheduler._wait(self._waitable, timeout, lambda: False, before_park=release)
        self._lock.acquire()
        self._lock._count = saved[0]
        return notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        result = predicate()
        while not result:
            if not self.wait(timeout):
                return predicate()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        with self.scheduler._mutex:
            self.scheduler._notify_locked(self._waitable, n)

    def notify_all(self) -> None:
        with self.scheduler._mutex:
            self.scheduler._notify_locked(self._waitable, None)

    notifyAll = notify_all
