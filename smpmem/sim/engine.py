"""The virtual-time engine: one runnable task at a time, handed off through a heap.

Models nothing of the kernel; it is the clock every actor shares. Time is
integer nanoseconds. The engine owns all waiting: a heap of
``(wake_time, seq, actor)`` where ``seq`` comes from one counter, so the order
of every two entries is total and the same in every process (never decided by
object identity or hashing). A task that waits pushes itself and hands the
baton to the heap's earliest entry with ``trio.lowlevel.reschedule``; if it is
itself the earliest it simply continues, with no trio switch at all. Exactly
one simulated task is runnable at any moment, so trio's randomised run queue
never decides an order.

trio gives the structure: one nursery for the machine, a task per actor,
cancellation to kill an actor. Killing is deterministic: :meth:`Simulator.kill`
takes the victims out of whatever they wait on and queues them at the current
instant in their spawn order; each then raises ``trio.Cancelled`` when its turn
comes, and its ``finally`` blocks run in virtual time like any other code.

Life cycle of an :class:`Actor`::

    spawned --(popped from heap)--> running --(wait)--> blocked/sleeping
       ^                              |   ^                   |
       |                              |   +---(woken/popped)--+
       +------------------------------+--(returns / killed)--> done

Schedule exploration (off by default): with a :class:`PctSchedule` in
``Simulator.pct`` the entries due at the *same* instant leave the heap in
the order of a seeded random priority per actor instead of FIFO. Different
times still go in time order; the order stays total and the same in every
process for one seed. ``smpmem explore`` runs many seeds this way.
"""

from __future__ import annotations

import heapq
import math
import random
import types
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, final

import outcome
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

# The waits are trio's ``wait_task_rescheduled`` inlined: a generator-based
# coroutine yields trio's WaitTaskRescheduled trap itself (what
# wait_task_rescheduled does in two more frames), and the engine wakes it with
# one shared ``Value(None)`` that it never unwraps (only errors are). Every
# resumption walks the whole chain of awaiting frames, so each frame saved is
# paid back at every hand-off. The trap type is private to trio; should it
# move, the engine falls back to the public functions.
try:
    from trio._core._traps import WaitTaskRescheduled as _WaitTaskRescheduled
except ImportError:  # pragma: no cover - a trio without the private trap
    _WaitTaskRescheduled = None


class ModelBug(AssertionError):
    """A broken model invariant: the analogue of ``VM_BUG_ON``."""


class Deadlock(RuntimeError):
    """Every live actor is blocked and nothing is due on the clock."""


class WaitList(Protocol):
    """Something an actor can block on; it must be able to forget a killed waiter."""

    def remove_waiter(self, actor: "Actor") -> None: ...


def _abort_failed(_: Any) -> Abort:
    # The engine owns rescheduling: trio's cancellation never wakes a blocked
    # actor directly (that would make two tasks runnable at once).
    return Abort.FAILED


if _WaitTaskRescheduled is not None:
    _TRAP = _WaitTaskRescheduled(_abort_failed)  # immutable: one instance serves every wait
    _GO = outcome.Value(None)  # the wake-up value; shared, so never unwrapped

    @types.coroutine
    def _park() -> Generator[Any, Any, None]:
        """Wait until the engine reschedules this task (``wait_task_rescheduled``, inlined)."""
        res = yield _TRAP
        if res is not _GO:
            res.unwrap()  # an error sent by the teardown

    def _go() -> outcome.Value[None]:
        return _GO
else:  # pragma: no cover
    _TRAP = None

    def _park() -> Awaitable[None]:
        return wait_task_rescheduled(_abort_failed)

    def _go() -> outcome.Value[None]:
        return outcome.Value(None)


@final
class PctSchedule:
    """Same-instant order for schedule exploration, after PCT (Burckhardt et al., ASPLOS 2010).

    PCT gives every thread a random priority and, at ``depth - 1`` random
    steps (the *priority change points*), drops the running thread's
    priority below all the others: a bug of depth ``d`` (``d`` ordering
    constraints) is then found with probability at least ``1/(n k^(d-1))``
    per run. Here a "step" is a push onto the engine's heap, and priority
    only breaks ties between entries due at the same virtual time (time
    itself is never reordered). The heap key of an entry becomes
    ``rank << 40 | seq``: lower rank first, FIFO ``seq`` among equal ranks,
    so the order is total. Change points are drawn log-uniformly over the
    first ``horizon`` pushes (the length of a run is not known in advance),
    so early and late moments of short and long runs are both sampled.

    Deterministic: one ``random.Random`` stream seeded from the string
    ``"pct/<seed>"`` (string seeds are hashed with SHA-512, not ``hash()``),
    drawn in push order, which is itself deterministic.
    """

    __slots__ = ("rng", "rank", "pushes", "changes", "depth")

    SEQ_BITS = 40  # seq < 2**40 pushes per run
    LOWEST = 1 << 31  # ranks of demoted actors sit just below this; initial ranks are below 2**30

    def __init__(self, seed: int, depth: int = 3, horizon: int = 1 << 24) -> None:
        self.rng = random.Random(f"pct/{seed}")
        self.depth = depth
        self.rank: dict[int, int] = {}  # actor uid -> rank (lower runs first at one instant)
        self.pushes = 0
        # change point i (1-based) at push number changes[i - 1]; log-uniform in [1, horizon]
        log_h = math.log(horizon)
        self.changes = sorted(int(math.exp(self.rng.uniform(0.0, log_h))) for _ in range(max(depth - 1, 0)))

    def key(self, actor: "Actor", seq: int) -> int:
        """The heap key of ``actor``'s entry pushed with sequence number ``seq``."""
        self.pushes += 1
        uid = actor.uid
        changes = self.changes
        if changes and self.pushes >= changes[0]:
            changes.pop(0)
            # Change point i: the actor being scheduled drops below every initial priority.
            self.rank[uid] = self.LOWEST - (self.depth - 1 - len(changes))
        r = self.rank.get(uid)
        if r is None:
            r = self.rank[uid] = self.rng.randrange(1 << 20, 1 << 30)
        return (r << self.SEQ_BITS) | seq


class Actor:
    """An engine-level task: something that runs, waits and can be killed.

    Subclassed by :class:`smpmem.sim.cpu.Thread`. ``uid`` is the spawn order,
    the tie-break for everything that must be ordered deterministically.
    """

    __slots__ = (
        "sim", "uid", "name", "task", "go", "token", "waiting_on", "killed",
        "dying", "done", "scope", "result", "daemon", "nokill", "kill_deferred", "__weakref__",
    )

    def __init__(self, sim: "Simulator", name: str, daemon: bool = False) -> None:
        self.sim = sim
        self.uid = sim._next_uid()
        self.name = name
        self.task: Task | None = None  # the trio task, once it has started
        self.go = False  # popped before its trio task started: run at once when it does
        self.token = -1  # seq of this actor's live heap entry (-1: not in the heap)
        self.waiting_on: WaitList | None = None  # the wait list holding it, if blocked there
        self.killed = False  # kill() requested; Cancelled is raised at its next resumption
        self.dying = False  # Cancelled has been raised: cleanup runs without further raises
        self.done = False
        self.scope = trio.CancelScope()
        self.result: Any = None
        self.daemon = daemon  # a kernel daemon: the run completes without waiting for it
        self.nokill = 0  # depth of uninterruptible sections: a kill waits for the outermost to end
        self.kill_deferred = False  # kill() came during an uninterruptible section

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} #{self.uid}>"


@final
class Simulator:
    """The clock, the heap and the hand-off. One per machine.

    ``now`` is the virtual time of the running actor. Invariant: exactly one
    actor (or the driver) is runnable in trio at any moment.
    """

    def __init__(self) -> None:
        self.now: int = 0
        self._heap: list[tuple[int, int, Actor]] = []
        self._seq = 0  # the heap tie-break: FIFO among entries due at the same instant
        # Schedule exploration: when set, same-instant entries are ordered by PCT priority
        # (PctSchedule.key) instead of FIFO; None (the default) keeps FIFO and byte-identical logs.
        self.pct: PctSchedule | None = None
        self._uid = 0
        self.current: Actor | None = None
        self._driver = Actor(self, "driver")
        self._live: dict[int, Actor] = {}  # uid -> actor, insertion (= spawn) order
        self._tearing_down = False
        self._workers = 0  # live non-daemon actors; the run completes when it drops to 0
        self._nursery: trio.Nursery | None = None
        self.failure: BaseException | None = None
        self.stop_requested: str | None = None  # reason, set by request_stop()
        self.switches = 0  # trio hand-offs (for the benchmark)
        self.on_switch: Callable[[], None] | None = None  # debug hook: runs at every hand-off

    # -- identity -------------------------------------------------------------
    def _next_uid(self) -> int:
        self._uid += 1
        return self._uid

    # -- spawning -------------------------------------------------------------
    def spawn(self, actor: Actor, fn: Callable[..., Awaitable[Any]], *args: Any, at: int | None = None) -> Actor:
        """Start ``fn(*args)`` as ``actor``, due at ``at`` (default: now).

        The heap slot is taken here, synchronously, so spawn order (not trio's
        start order) decides who runs first.
        """
        if self._nursery is None:
            raise RuntimeError("spawn() before the simulator is running")
        self._live[actor.uid] = actor
        if not actor.daemon:
            self._workers += 1
        self._push(actor, self.now if at is None else max(at, self.now))
        self._nursery.start_soon(self._run_actor, actor, fn, args, name=actor.name)
        return actor

    async def _run_actor(self, actor: Actor, fn: Callable[..., Awaitable[Any]], args: tuple) -> None:
        actor.task = current_task()
        if not actor.go:
            await _park()
        try:
            with actor.scope:
                if actor.killed:
                    await self._deliver_kill(actor)
                actor.result = await fn(*args)
        except BaseException as exc:  # a model error: stop the run, keep the first
            if self.failure is None:
                self.failure = exc
            self.request_stop("failed")
        finally:
            actor.done = True
            self._live.pop(actor.uid, None)
            if not actor.daemon:
                self._workers -= 1
                if self._workers == 0:
                    self.request_stop("completed")
            self._hand_off()

    # -- the hand-off ---------------------------------------------------------
    def _push(self, actor: Actor, t: int) -> None:
        self._seq += 1
        seq = self._seq
        if self.pct is not None:  # schedule exploration: PCT priority first, then FIFO
            seq = self.pct.key(actor, seq) if actor is not self._driver else seq
        actor.token = seq
        heapq.heappush(self._heap, (t, seq, actor))

    def _hand_off(self) -> None:
        """Make the next due actor runnable (the caller is about to block or end)."""
        self.switches += 1
        if self.on_switch is not None:
            try:
                self.on_switch()
            except BaseException as exc:
                # A broken invariant found between two events ends the run as
                # failed. The error must not surface in the actor handing off:
                # it may already be queued on the heap, and unwinding it there
                # would leave two tasks runnable.
                self.on_switch = None
                if self.failure is None:
                    self.failure = exc
                self.request_stop("failed")
        heap = self._heap
        if self.stop_requested is None:
            while heap:
                t, seq, nxt = heapq.heappop(heap)
                if seq != nxt.token:
                    continue  # stale entry: the actor was moved or killed
                nxt.token = -1
                self.now = t
                self.current = nxt
                if nxt.task is None:
                    nxt.go = True
                else:
                    reschedule(nxt.task, _go())
                return
        self._activate(self._driver)

    def _activate(self, actor: Actor) -> None:
        self.current = actor
        if actor.task is None:
            actor.go = True
        else:
            reschedule(actor.task, _go())

    async def _deliver_kill(self, actor: Actor) -> None:
        actor.dying = True
        await trio.lowlevel.checkpoint()  # raises Cancelled: actor.scope is cancelled
        raise ModelBug(f"{actor!r} was killed but its cancel scope did not fire")

    # -- what actors call -----------------------------------------------------
    # sleep_until and sleep are the hot path of the whole model. They are
    # generator-based coroutines (``await sim.sleep(dt)`` as before) kept flat:
    # no nested frames, the hand-off's common case and trio's trap inlined.
    # Both must behave exactly as ``_push`` + ``_hand_off`` + ``_park`` would.
    @types.coroutine
    def sleep_until(self, t: int) -> Generator[Any, Any, None]:
        """Let virtual time pass until ``t`` for the running actor."""
        if t < self.now:
            t = self.now
        return (yield from self.sleep(t - self.now))

    @types.coroutine
    def sleep(self, dt: int) -> Generator[Any, Any, None]:
        """Let ``dt`` nanoseconds pass for the running actor."""
        if dt < 0:
            raise ModelBug(f"virtual time would run backwards: sleep({dt})")
        actor = self.current
        heap = self._heap
        t = self.now + dt
        if (not heap or t < heap[0][0]) and self.stop_requested is None and not actor.killed:
            self.now = t  # still the earliest: continue without a switch
            return
        if actor.kill_deferred and actor.killed:  # a kill held back by an uninterruptible section
            actor.kill_deferred = False
            yield from self._deliver_kill(actor).__await__()
        self._seq += 1
        seq = self._seq
        if self.pct is not None:  # schedule exploration (see _push)
            seq = self.pct.key(actor, seq)
        actor.token = seq
        if _TRAP is None or self.on_switch is not None or self.stop_requested is not None or not heap:
            heapq.heappush(heap, (t, seq, actor))
            self._hand_off()
            yield from _park()
        else:
            # _hand_off inlined. The heap is not empty and its top is due no later
            # than t (or this actor was killed), so pushing then popping is one
            # heappushpop; a stale top (a moved or killed actor) is skipped as there.
            self.switches += 1
            t, seq, nxt = heapq.heappushpop(heap, (t, seq, actor))
            while seq != nxt.token:
                if not heap:
                    nxt = None
                    break
                t, seq, nxt = heapq.heappop(heap)
            if nxt is None:
                self._activate(self._driver)
            elif nxt is actor:
                # Itself the earliest after all (killed, or first at this instant by
                # PCT priority): run on, as _hand_off rescheduling itself would.
                nxt.token = -1
                self.now = t
            else:
                nxt.token = -1
                self.now = t
                self.current = nxt
                if nxt.task is None:
                    nxt.go = True
                else:
                    reschedule(nxt.task, _GO)
                res = yield _TRAP
                if res is not _GO:
                    res.unwrap()
        if actor.killed and not actor.dying:
            yield from self._deliver_kill(actor).__await__()

    @types.coroutine
    def block(self, actor: Actor, on: WaitList) -> Generator[Any, Any, None]:
        """Block ``actor`` (the running one) on a wait list until :meth:`wake`."""
        assert actor is self.current, f"{actor!r} blocks but {self.current!r} is running"
        if actor.kill_deferred and actor.killed:  # a kill held back by an uninterruptible section
            actor.kill_deferred = False
            on.remove_waiter(actor)  # the caller queued it there: forget it, as kill() would
            yield from self._deliver_kill(actor).__await__()
        actor.waiting_on = on
        self._hand_off()
        if _TRAP is None:  # pragma: no cover
            yield from _park()
        else:  # _park inlined, as in sleep
            res = yield _TRAP
            if res is not _GO:
                res.unwrap()
        if actor.killed and not actor.dying:
            yield from self._deliver_kill(actor).__await__()

    def wake(self, actor: Actor, at: int | None = None) -> None:
        """Make a blocked actor due at ``at`` (default: now). Its wait list has let go of it."""
        actor.waiting_on = None
        self._push(actor, self.now if at is None else max(at, self.now))

    def reschedule_at(self, actor: Actor, t: int) -> None:
        """Move a sleeping actor's wake-up to ``t`` (lazy deletion of the old heap entry)."""
        assert actor.token != -1, f"{actor!r} is not sleeping"
        self._push(actor, max(t, self.now))

    # -- killing --------------------------------------------------------------
    def kill(self, actors: list[Actor]) -> None:
        """Kill actors: each raises ``trio.Cancelled`` at the current instant, in uid order."""
        for a in sorted(actors, key=lambda a: a.uid):
            if a.done or a.killed:
                continue
            if a.nokill:
                a.kill_deferred = True  # delivered when its uninterruptible section ends
                continue
            a.killed = True
            a.scope.cancel()
            if a is self.current:
                continue  # it finds out at its next wait
            if a.waiting_on is not None:
                a.waiting_on.remove_waiter(a)
                a.waiting_on = None
            self._push(a, self.now)

    @contextmanager
    def uninterruptible(self, actor: Actor) -> Iterator[None]:
        """A section of ``actor``'s code that a kill does not cut short.

        Kernel code is not interrupted by a fatal signal: SIGKILL acts at the
        return to user space or in a ``_killable`` wait. Most of the model
        lets a kill land at the next wait (its cleanup then undoes what was
        half done); a section that cannot be undone half-way (munmap after the
        VMAs are detached) runs to its end here, and a kill that came meanwhile
        is delivered then, at the actor's next wait.
        """
        actor.nokill += 1
        try:
            yield
        finally:
            actor.nokill -= 1
            if not actor.nokill and actor.kill_deferred:
                self.kill([actor])  # kill_deferred stays set: the next wait raises at once

    def request_stop(self, reason: str) -> None:
        """Ask the driver to end the run at the next hand-off (interrupt, failure)."""
        if self.stop_requested is None and not self._tearing_down:
            self.stop_requested = reason

    @property
    def live_actors(self) -> list[Actor]:
        return list(self._live.values())

    # -- the driver -----------------------------------------------------------
    async def run(
        self,
        main: Callable[["Simulator"], Awaitable[Any]] | None = None,
        until: int | None = None,
        before_teardown: Callable[[str], None] | None = None,
    ) -> str:
        """Run the simulation; return its status.

        ``main(sim)`` is awaited first by the driver, synchronously with virtual
        time 0, to build the machine and spawn actors. Status: ``completed``
        (every actor finished), ``timeout`` (``until`` reached), ``interrupted``,
        ``deadlock`` or ``failed`` (``self.failure`` holds the error). At the
        end every remaining actor is killed and unwinds in virtual time;
        ``before_teardown(status)`` runs first (snapshots, stopping the log).
        """
        driver = self._driver
        driver.task = current_task()
        self.current = driver
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if main is not None:
                await main(self)
            if until is not None:
                self._push(driver, until)
            self._hand_off()
            await _park()
            driver.token = -1  # a pending `until` entry is stale once the driver runs
            status = self._status(until)
            if status == "deadlock" and self.failure is None:
                # Named before the teardown kills them: afterwards no one is waiting on anything.
                waits = ", ".join(f"{a.name} on {a.waiting_on!r}" for a in self.live_actors)
                self.failure = Deadlock(f"every actor is blocked at t={self.now}ns: {waits}")
            if before_teardown is not None:
                before_teardown(status)
            failure = self.failure
            await self._teardown()
        self._nursery = None
        if self.failure is not failure:
            status = "failed"  # a model error while the actors unwound
        return status

    def _status(self, until: int | None) -> str:
        if self.stop_requested == "failed":
            return "failed"
        if self.stop_requested is not None:
            return self.stop_requested
        if self._workers == 0:
            return "completed"
        if until is not None and self.now >= until:
            return "timeout"
        return "deadlock"

    async def _teardown(self) -> None:
        """Kill every live actor and let each unwind, one at a time, in virtual time."""
        self.stop_requested = None
        self._tearing_down = True
        for _ in range(3):
            if not self._live:
                return
            self.current = None
            self.kill(self.live_actors)
            self._hand_off()  # the last actor to finish hands the baton back
            await _park()
            self._driver.token = -1
            self.stop_requested = None
        # Still blocked after being killed: their cleanup waits on something no
        # one will release. Fail them loudly rather than hang the nursery: one at
        # a time, each raising ModelBug where it waits and handing the baton back
        # when it has unwound (two at once would be two runnable tasks).
        while self._live:
            a = next(iter(self._live.values()))
            if a.waiting_on is not None:
                a.waiting_on.remove_waiter(a)
                a.waiting_on = None
            a.token = -1
            self.current = a
            reschedule(a.task, outcome.Error(ModelBug(f"{a!r} is stuck during teardown")))
            await _park()
            self._driver.token = -1
