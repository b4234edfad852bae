"""Locks with the kernel's semantics, lock_stat figures and a lockdep-style order checker.

- :class:`SpinLock` models ``spinlock_t`` (a queued/ticket lock): FIFO; the
  waiter keeps its CPU busy spinning; taking it disables preemption; the
  ``_irqsave`` forms also hold off IPIs. Handing it to a CPU other than the
  last holder's costs a cache-line bounce.
- :class:`RWSemaphore` models ``struct rw_semaphore`` (``mmap_lock``):
  sleeping, FIFO; a waiting writer blocks new readers; when readers are
  woken, every reader in the queue is (kernel/locking/rwsem.c
  ``rwsem_mark_wake``, up to ``MAX_READERS_WAKEUP``); a writer spins
  optimistically while a write owner runs, or for a bounded time on readers
  (``rwsem_optimistic_spin``).
- :class:`Mutex` models ``struct mutex``: sleeping, FIFO hand-off (no
  optimistic spinning).

Every lock belongs to a :class:`LockClass`, which keeps the columns of
``/proc/lock_stat`` (kernel/locking/lockdep.c ``lock_contended`` /
``lock_acquired``: a bounce is an acquisition or contention on a CPU other
than the last acquirer's). :class:`LockDep` records the order in which
classes nest and reports a possible deadlock, naming both orders.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, final

from ..trace.events import lock as lock_events
from ..trace.events.lock import LCB_F_MUTEX, LCB_F_READ, LCB_F_SPIN, LCB_F_WRITE
from .engine import Actor, ModelBug

if TYPE_CHECKING:
    from .cpu import Machine, Thread

LOCKSTAT_POINTS = 4  # contention call sites remembered per class, as in lockdep


@dataclass(frozen=True, slots=True)
class LockTime:
    """One ``struct lock_time``: count, min, max, total (ns)."""

    nr: int = 0
    min: int = 0
    max: int = 0
    total: int = 0

    @property
    def avg(self) -> int:
        return self.total // self.nr if self.nr else 0


class _Time:
    __slots__ = ("nr", "min", "max", "total")

    def __init__(self) -> None:
        self.nr = self.min = self.max = self.total = 0

    def add(self, t: int) -> None:
        if self.nr == 0 or t < self.min:
            self.min = t
        if t > self.max:
            self.max = t
        self.total += t
        self.nr += 1

    def freeze(self) -> LockTime:
        return LockTime(self.nr, self.min, self.max, self.total)


@dataclass(frozen=True, slots=True)
class LockStatistics:
    """The /proc/lock_stat row(s) of one class (W: writers/exclusive, R: readers)."""

    name: str
    con_bounces_write: int
    con_bounces_read: int
    acq_bounces_write: int
    acq_bounces_read: int
    waittime_write: LockTime
    waittime_read: LockTime
    holdtime_write: LockTime
    holdtime_read: LockTime
    contention_points: tuple[tuple[str, int], ...]  # where waiters waited (lockdep contention_point)
    contending_points: tuple[tuple[str, int], ...] = ()  # where the holder they waited for took it

    @property
    def contentions(self) -> int:
        return self.waittime_write.nr + self.waittime_read.nr

    @property
    def acquisitions(self) -> int:
        return self.holdtime_write.nr + self.holdtime_read.nr

    @property
    def wait_total(self) -> int:
        return self.waittime_write.total + self.waittime_read.total


@final
class LockClass:
    """A lockdep class (``&zone->lock``, ``&mm->mmap_lock`` …) and its lock_stat figures."""

    def __init__(self, name: str, order: int) -> None:
        self.name = name
        self.order = order  # registration order: the deterministic listing order
        self.bounces = [0, 0, 0, 0]  # contended_write, contended_read, acquired_write, acquired_read
        self.waittime = (_Time(), _Time())  # write, read
        self.holdtime = (_Time(), _Time())
        self.points: dict[str, int] = {}  # contention call site -> count (first LOCKSTAT_POINTS sites)
        self.contending: dict[str, int] = {}  # the holder's acquisition site -> count (lockdep contending_point)

    def contended(self, read: bool, bounce: bool, site: str | None, holder_site: str | None = None) -> None:
        """lockdep ``__lock_contended``: ``site`` is the waiter's call site, ``holder_site`` the holder's (lock->ip)."""
        if bounce:
            self.bounces[1 if read else 0] += 1
        for where, points in ((site, self.points), (holder_site, self.contending)):
            if where is not None:
                if where in points:
                    points[where] += 1
                elif len(points) < LOCKSTAT_POINTS:
                    points[where] = 1

    def acquired(self, read: bool, bounce: bool, waited: int | None) -> None:
        if bounce:
            self.bounces[3 if read else 2] += 1
        if waited is not None:
            self.waittime[1 if read else 0].add(waited)

    def released(self, read: bool, held: int) -> None:
        self.holdtime[1 if read else 0].add(held)

    def statistics(self) -> LockStatistics:
        return LockStatistics(
            self.name, self.bounces[0], self.bounces[1], self.bounces[2], self.bounces[3],
            self.waittime[0].freeze(), self.waittime[1].freeze(),
            self.holdtime[0].freeze(), self.holdtime[1].freeze(),
            tuple(self.points.items()), tuple(self.contending.items()),
        )

    def __repr__(self) -> str:
        return f"<LockClass {self.name}>"


class LockInversion(ModelBug):
    """Two lock classes were taken in both orders: a possible ABBA deadlock."""


@dataclass(frozen=True)
class Violation:
    """One report of the order checker."""

    kind: str  # "circular" or "recursive"
    message: str
    held: tuple[str, ...]
    taking: str


@final
class LockDep:
    """Records the order classes nest in and reports inversions (kernel/locking/lockdep.c, much reduced).

    A key is ``(class name, subclass)``: taking two locks of one class needs a
    distinct subclass, as ``mmap_write_lock_nested`` does. On a report,
    ``raise_on_violation`` raises :class:`LockInversion`; otherwise the report
    is kept in :attr:`violations` (what lockdep does: warn once and go on).
    """

    def __init__(self, raise_on_violation: bool = True, enabled: bool = True) -> None:
        self.after: dict[tuple[str, int], dict[tuple[str, int], tuple[str, ...]]] = {}
        self.violations: list[Violation] = []
        self.raise_on_violation = raise_on_violation
        self.enabled = enabled

    def check(self, held: Iterable[tuple[str, int]], taking: tuple[str, int], who: str) -> None:
        if not self.enabled:
            return
        held = list(held)
        after = self.after
        for k in held:
            if k == taking or taking not in after.get(k, ()):
                break
        else:
            return  # every 'taken after' edge is known already: nothing to record or report
        names = tuple(_key_name(k) for k in held)
        for k in held:
            if k == taking:
                self._report("recursive", f"possible recursive locking: {who} takes {_key_name(taking)} "
                             f"while already holding it (held: {', '.join(names)})", names, taking)
                continue
            edges = self.after.setdefault(k, {})
            if taking in edges:
                continue
            back = self._path(taking, k)
            if back is not None:
                chain = " -> ".join(_key_name(x) for x in back)
                self._report(
                    "circular",
                    f"possible circular locking dependency: {who} takes {_key_name(taking)} while holding "
                    f"{_key_name(k)} (held: {', '.join(names)}), but earlier {chain} was taken in that order",
                    names, taking)
                continue
            edges[taking] = names

    def _path(self, src: tuple[str, int], dst: tuple[str, int]) -> list[tuple[str, int]] | None:
        """A chain of recorded 'taken after' edges from src to dst, if one exists."""
        stack = [(src, [src])]
        seen = {src}
        while stack:
            node, path = stack.pop()
            if node == dst:
                return path
            for nxt in self.after.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    def _report(self, kind: str, msg: str, held: tuple[str, ...], taking: tuple[str, int]) -> None:
        v = Violation(kind, msg, held, _key_name(taking))
        self.violations.append(v)
        if self.raise_on_violation:
            raise LockInversion(msg)


def _key_name(k: tuple[str, int]) -> str:
    return k[0] if k[1] == 0 else f"{k[0]}/{k[1]}"


@final
class LockRegistry:
    """The machine's lock classes (in registration order) and its order checker."""

    def __init__(self) -> None:
        self.classes: dict[str, LockClass] = {}
        self.lockdep = LockDep()
        self._next_addr = 0xFFFF888000100000

    def get_class(self, name: str) -> LockClass:
        cls = self.classes.get(name)
        if cls is None:
            cls = self.classes[name] = LockClass(name, len(self.classes))
        return cls

    def alloc_addr(self) -> int:
        self._next_addr += 64
        return self._next_addr

    def statistics(self) -> list[LockStatistics]:
        return [c.statistics() for c in self.classes.values()]


class _Lock:
    """What every lock shares: class, address, the wait queue and cleanup on kill."""

    __slots__ = ("machine", "cls", "addr", "waiters", "last_cpu", "subclass", "ip", "key")
    flags = 0

    def __init__(self, machine: "Machine", cls: str, subclass: int = 0) -> None:
        self.machine = machine
        reg: LockRegistry = machine.locks  # type: ignore[attr-defined]
        self.cls = reg.get_class(cls)
        self.addr = reg.alloc_addr()
        self.waiters: deque[Any] = deque()
        self.last_cpu = -1  # lockdep's lock->cpu: the last acquirer's CPU
        self.ip: str | None = None  # lockdep's lock->ip: the last acquirer's call site
        self.subclass = subclass
        self.key = (self.cls.name, subclass)  # the lockdep key at the default subclass

    def remove_waiter(self, actor: Actor) -> None:
        for w in self.waiters:
            if (w[0] if isinstance(w, tuple) else w) is actor:
                self.waiters.remove(w)
                return

    def owner_off_cpu(self, th: "Thread") -> None:
        """``th``, holding this lock, gives up its CPU: optimistic spinners on it must stop (rwsem)."""

    def _lockdep(self, th: "Thread", subclass: int) -> tuple[str, int]:
        """lockdep's ``__lock_acquire`` check of the key taken against the keys held; returns the key."""
        key = self.key if subclass == self.subclass else (self.cls.name, subclass)
        ld = self.machine.locks.lockdep  # type: ignore[attr-defined]
        if ld.enabled and th.held_keys:
            ld.check(th.held_keys, key, th.name)
        return key

    def _hold(self, th: "Thread", key: tuple[str, int]) -> None:
        """Push onto ``th``'s held stack, with the lockdep key it was taken with."""
        th.held.append(self)
        th.held_keys.append(key)

    def _unhold(self, th: "Thread") -> None:
        """Off ``th``'s held stack (the first entry of this lock), key and all."""
        i = th.held.index(self)
        del th.held[i]
        del th.held_keys[i]

    def _begin_contention(self, th: "Thread", flags: int) -> None:
        tr = self.machine.tracer
        if tr.on[lock_events.contention_begin.id]:
            tr.emit(lock_events.contention_begin, th, lock_addr=self.addr, flags=flags, name=self.cls.name)

    def _end_contention(self, th: "Thread", waited: int) -> None:
        tr = self.machine.tracer
        if tr.on[lock_events.contention_end.id]:
            tr.emit(lock_events.contention_end, th, lock_addr=self.addr, ret=0, name=self.cls.name, wait_ns=waited)

    def _release_event(self, th: "Thread", held: int) -> None:
        tr = self.machine.tracer
        if tr.on[lock_events.lock_release.id]:
            tr.emit(lock_events.lock_release, th, lock_addr=self.addr, name=self.cls.name, hold_ns=held)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.cls.name}>"


@final
class SpinLock(_Lock):
    """``spinlock_t``: FIFO, the waiter spins (its CPU stays busy), preemption off while held."""

    __slots__ = ("owner", "acquired_at", "irqsave")

    def __init__(self, machine: "Machine", cls: str, subclass: int = 0) -> None:
        super().__init__(machine, cls, subclass)
        self.owner: Thread | None = None
        self.acquired_at = 0
        self.irqsave = False

    def locked(self) -> bool:
        return self.owner is not None

    async def acquire(self, th: "Thread", site: str | None = None) -> None:
        """``spin_lock``: take it, spinning FIFO behind earlier waiters."""
        if th.pending:
            await th.sync()
        self._hold(th, self._lockdep(th, self.subclass))
        th.preempt_count += 1
        cls = self.cls
        costs = self.machine.costs
        cpu_id = th.cpu.id
        if self.owner is None:
            bounce = self.last_cpu != cpu_id and self.last_cpu != -1
            cls.acquired(False, bounce, None)
            self.owner = th
            self.last_cpu = cpu_id
            self.ip = site
            th.pending += costs.lock_acquire + (costs.cacheline_bounce if bounce else 0)
            self.acquired_at = th.sim.now + th.pending
            return
        cls.contended(False, self.last_cpu != cpu_id, site, self.ip)
        self._begin_contention(th, LCB_F_SPIN)
        t0 = th.sim.now
        self.waiters.append(th)
        try:
            await th.sim.block(th, self)  # spinning: th stays cpu.current
        except BaseException:
            th.preempt_count -= 1
            self._unhold(th)
            if self.owner is th:
                self._hand_on(th)
            raise
        # release() made us the owner and already counted the acquisition.
        self.ip = site
        waited = th.sim.now - t0
        cls.waittime[0].add(waited)
        self._end_contention(th, waited)

    async def release(self, th: "Thread") -> None:
        """``spin_unlock``: pay for the critical section, then hand the lock to the next spinner."""
        if th.pending:
            th.runtime_ns += th.pending
            p, th.pending = th.pending, 0
            try:
                await th.sim.sleep(p)
            except BaseException:
                self._release(th)  # killed while paying for the critical section: its work is done, let go
                raise
        self._release(th)

    def _release(self, th: "Thread") -> None:
        if self.owner is not th:
            raise ModelBug(f"{th.name} releases {self.cls.name} held by {self.owner and self.owner.name}")
        now = th.sim.now
        held = now - self.acquired_at
        self.cls.released(False, held)
        self._release_event(th, held)
        th.preempt_count -= 1
        self._unhold(th)
        self._hand_on(th)

    def _hand_on(self, th: "Thread") -> None:
        self.owner = None
        if self.waiters:
            nxt = self.waiters.popleft()
            costs = self.machine.costs
            bounce = nxt.cpu.id != self.last_cpu
            at = th.sim.now + costs.spin_handoff + (costs.cacheline_bounce if bounce else 0)
            self.owner = nxt
            self.acquired_at = at
            self.last_cpu = nxt.cpu.id
            self.cls.acquired(False, bounce, None)
            th.sim.wake(nxt, at)

    async def acquire_irqsave(self, th: "Thread", site: str | None = None) -> None:
        """``spin_lock_irqsave``: interrupts off (IPIs wait), then spin."""
        th.local_irq_disable()
        await self.acquire(th, site)

    async def release_irqrestore(self, th: "Thread") -> None:
        """``spin_unlock_irqrestore``: release, then run the IPIs that waited."""
        try:
            await self.release(th)
        finally:
            await th.local_irq_enable()

    def force_release(self, th: "Thread") -> None:
        """Release on behalf of a dying thread (its cleanup did not)."""
        if self.owner is th:
            self._release(th)


@final
class Mutex(_Lock):
    """``struct mutex``: sleeping, FIFO hand-off."""

    __slots__ = ("owner", "acquired_at")

    def __init__(self, machine: "Machine", cls: str, subclass: int = 0) -> None:
        super().__init__(machine, cls, subclass)
        self.owner: Thread | None = None
        self.acquired_at = 0

    async def acquire(self, th: "Thread", site: str | None = None) -> None:
        if th.pending:
            await th.sync()
        self._hold(th, self._lockdep(th, self.subclass))
        costs = self.machine.costs
        cpu_id = th.cpu.id
        if self.owner is None:
            bounce = self.last_cpu not in (cpu_id, -1)
            self.cls.acquired(False, bounce, None)
            self.owner = th
            self.last_cpu = cpu_id
            self.ip = site
            th.pending += costs.lock_acquire + (costs.cacheline_bounce if bounce else 0)
            self.acquired_at = th.sim.now + th.pending
            return
        self.cls.contended(False, self.last_cpu != cpu_id, site, self.ip)
        self._begin_contention(th, LCB_F_MUTEX)
        t0 = th.sim.now
        self.waiters.append(th)
        try:
            await th.sleep_on(self)
        except BaseException:
            self._unhold(th)
            if self.owner is th:
                self._hand_on(th)
            raise
        self.ip = site
        waited = th.sim.now - t0
        self.cls.waittime[0].add(waited)
        self._end_contention(th, waited)

    async def release(self, th: "Thread") -> None:
        if th.pending:
            try:
                await th.sync()
            except BaseException:
                self._release(th)  # killed while paying for the critical section: let go
                raise
        self._release(th)

    def _release(self, th: "Thread") -> None:
        if self.owner is not th:
            raise ModelBug(f"{th.name} releases {self.cls.name} held by {self.owner and self.owner.name}")
        held = th.sim.now - self.acquired_at
        self.cls.released(False, held)
        self._release_event(th, held)
        self._unhold(th)
        self._hand_on(th)

    def _hand_on(self, th: "Thread") -> None:
        self.owner = None
        if self.waiters:
            nxt = self.waiters.popleft()
            at = th.sim.now + self.machine.costs.sleep_wakeup
            self.owner = nxt
            self.acquired_at = at
            bounce = nxt.cpu.id != self.last_cpu
            self.last_cpu = nxt.cpu.id
            self.cls.acquired(False, bounce, None)
            th.sim.wake(nxt, at)

    def force_release(self, th: "Thread") -> None:
        if self.owner is th:
            self._release(th)


READ, WRITE = True, False


RWSEM_WAIT_TIMEOUT = 4_000_000  # kernel/locking/rwsem.c: DIV_ROUND_UP(HZ, 250) jiffies; a waiter this old gets a hand-off


@final
class RWSemaphore(_Lock):
    """``struct rw_semaphore``: sleeping; a queued waiter (writer or reader) blocks new readers.

    Fields: ``readers`` (count of read holders), ``writer`` (the write
    holder), ``waiters`` (FIFO of ``(thread, is_read, t0)``), ``spinners``
    (writers spinning on a running write owner). Invariant:
    ``writer is None or readers == 0``.

    Writers spin optimistically (``rwsem_optimistic_spin``): a writer that
    finds the lock write-held by a thread on a CPU stays on its own CPU and
    takes the lock when the owner lets go, ahead of the sleepers, without a
    sleep and a wake-up; it stops spinning and queues to sleep when the owner
    leaves its CPU (sleeps or is preempted), and a waiter queued for
    ``RWSEM_WAIT_TIMEOUT`` gets the lock handed to it instead (the HANDOFF
    bit). On a reader-owned lock a writer spins for ``rwsem_rspin_threshold``
    ((20 + readers) / 2 µs, readers capped at 30): if the last reader leaves
    meanwhile it takes the lock, else it marks the lock ``nonspinnable``
    (RWSEM_NONSPINNABLE, cleared when a writer next owns it) and sleeps; new
    readers still get in while it spins. lock_stat counts a spin as a
    contention; the ``contention_begin`` / ``_end`` tracepoints, as in the
    kernel, mark only the sleeping slow path. Simplified: no ``osq`` queueing
    cost, a spinner is not preempted.
    """

    __slots__ = ("readers", "writer", "read_since", "write_since", "spinners", "nonspinnable")

    def __init__(self, machine: "Machine", cls: str, subclass: int = 0) -> None:
        super().__init__(machine, cls, subclass)
        self.readers = 0
        self.writer: Thread | None = None
        self.read_since: dict[int, int] = {}  # reader uid -> acquisition time
        self.write_since = 0
        # (writer, t0, on readers), spinning in rwsem_optimistic_spin: on a running writer until it lets go or
        # leaves its CPU, or on readers for a bounded time
        self.spinners: deque[tuple[Thread, int, bool]] = deque()
        self.nonspinnable = False  # RWSEM_NONSPINNABLE: a writer gave up spinning on readers

    def remove_waiter(self, actor: Actor) -> None:
        for w in self.spinners:
            if w[0] is actor:
                self.spinners.remove(w)
                return
        super().remove_waiter(actor)

    async def down_read(self, th: "Thread", site: str | None = None) -> None:
        """``down_read`` (``mmap_read_lock``)."""
        await self._down(th, READ, site)

    async def down_write(self, th: "Thread", site: str | None = None) -> None:
        """``down_write`` (``mmap_write_lock``)."""
        await self._down(th, WRITE, site)

    async def _down(self, th: "Thread", read: bool, site: str | None, subclass: int | None = None) -> None:
        if th.pending:
            await th.sync()
        sub = self.subclass if subclass is None else subclass
        self._hold(th, self._lockdep(th, sub))
        costs = self.machine.costs
        cpu_id = th.cpu.id
        free = self.writer is None and not self.waiters and (read or self.readers == 0)
        if free:
            bounce = self.last_cpu not in (cpu_id, -1)
            self.cls.acquired(read, bounce, None)
            self.last_cpu = cpu_id
            self.ip = site
            th.pending += costs.lock_acquire + (costs.cacheline_bounce if bounce else 0)
            self._grant(th, read, th.sim.now + th.pending)
            return
        self.cls.contended(read, self.last_cpu != cpu_id, site, self.ip)
        t0 = th.sim.now
        owner = self.writer
        if not read and owner is not None and owner.on_cpu and not self._handoff_due(t0):
            # rwsem_can_spin_on_owner: the owner runs; spin on it (the CPU stays busy).
            self.spinners.append((th, t0, False))
            try:
                await th.sim.block(th, self)
            except BaseException:
                self._unhold(th)
                if self.writer is th:
                    self._up(th, WRITE)
                raise
            if self.writer is th:  # took it on the owner's release
                self.ip = site
                self.cls.waittime[0].add(th.sim.now - t0)
                return
            # The owner left its CPU (or a hand-off is due): the slow path, asleep in the queue.
        elif not read and owner is None and self.readers and not self.nonspinnable and not self._handoff_due(t0):
            # Reader-owned: spin for rwsem_rspin_threshold, (20 + readers) / 2 us, then give up, mark the
            # lock RWSEM_NONSPINNABLE (until a writer owns it) and sleep.
            entry = (th, t0, True)
            self.spinners.append(entry)
            try:
                await th.sim.sleep((20 + min(self.readers, 30)) * 500)
            except BaseException:
                if entry in self.spinners:
                    self.spinners.remove(entry)
                self._unhold(th)
                if self.writer is th:
                    self._up(th, WRITE)
                raise
            if self.writer is th:  # the last reader left while it spun
                self.ip = site
                self.cls.waittime[0].add(th.sim.now - t0)
                return
            if entry in self.spinners:
                self.spinners.remove(entry)
                self.nonspinnable = True
        self._begin_contention(th, LCB_F_READ if read else LCB_F_WRITE)
        self.waiters.append((th, read, t0))
        try:
            await th.sleep_on(self)
        except BaseException:
            self._unhold(th)
            if self.writer is th or th.uid in self.read_since:
                self._up(th, read)
            raise
        self.ip = site
        waited = th.sim.now - t0
        self.cls.waittime[1 if read else 0].add(waited)
        self._end_contention(th, waited)

    def _handoff_due(self, now: int) -> bool:
        """RWSEM_FLAG_HANDOFF: the first sleeper has waited ``RWSEM_WAIT_TIMEOUT``; nobody may steal the lock."""
        return bool(self.waiters) and now - self.waiters[0][2] >= RWSEM_WAIT_TIMEOUT

    def owner_off_cpu(self, th: "Thread") -> None:
        """rwsem_spin_on_owner sees the write owner off its CPU: the spinners give up."""
        if self.spinners and self.writer is th:
            self.stop_spinners()

    def stop_spinners(self) -> None:
        """The owner left its CPU (or the queue gets the lock): each spinner takes the sleeping slow path."""
        if not self.spinners:
            return
        spinners, self.spinners = self.spinners, deque()
        for th, _t0, on_readers in spinners:
            if on_readers:
                th.sim.reschedule_at(th, th.sim.now)  # cut its bounded spin short
            else:
                th.sim.wake(th)

    def _grant(self, th: "Thread", read: bool, at: int) -> None:
        if read:
            self.readers += 1
            self.read_since[th.uid] = at
        else:
            self.writer = th
            self.write_since = at
            self.nonspinnable = False  # rwsem_set_owner clears the owner field's flags

    async def up_read(self, th: "Thread") -> None:
        if th.pending:
            try:
                await th.sync()
            except BaseException:
                self._up(th, READ)  # killed while paying for the critical section: let go
                raise
        self._up(th, READ)

    async def up_write(self, th: "Thread") -> None:
        if th.pending:
            try:
                await th.sync()
            except BaseException:
                self._up(th, WRITE)  # killed while paying for the critical section: let go
                raise
        self._up(th, WRITE)

    def _up(self, th: "Thread", read: bool) -> None:
        now = th.sim.now
        if read:
            since = self.read_since.pop(th.uid, None)
            if since is None:
                raise ModelBug(f"{th.name} up_read on {self.cls.name} it does not hold")
            self.readers -= 1
        else:
            if self.writer is not th:
                raise ModelBug(f"{th.name} up_write on {self.cls.name} held by {self.writer and self.writer.name}")
            since = self.write_since
            self.writer = None
        self.cls.released(read, now - since)
        self._release_event(th, now - since)
        if self in th.held:
            self._unhold(th)
        if self.readers == 0 and self.writer is None:
            if self.spinners and not self._handoff_due(now):
                # A spinner sees the owner field clear and takes the lock at once (rwsem_try_write_lock_unqueued).
                nxt, _t0, on_readers = self.spinners.popleft()
                costs = self.machine.costs
                bounce = nxt.cpu.id != self.last_cpu
                at = now + costs.spin_handoff + (costs.cacheline_bounce if bounce else 0)
                self.last_cpu = nxt.cpu.id
                self.cls.acquired(WRITE, bounce, None)
                self._grant(nxt, WRITE, at)
                if on_readers:
                    th.sim.reschedule_at(nxt, at)  # its bounded spin ends now
                else:
                    th.sim.wake(nxt, at)
                return
            self.stop_spinners()
            self._mark_wake(th)

    def _mark_wake(self, waker: "Thread") -> None:
        """rwsem_mark_wake: a writer at the head gets it alone; else every queued reader does."""
        if not self.waiters:
            return
        costs = self.machine.costs
        at = waker.sim.now + costs.sleep_wakeup
        head, read, _ = self.waiters[0]
        if not read:
            self.waiters.popleft()
            self._grant_waiter(head, WRITE, at)
            return
        keep: deque[Any] = deque()
        woken = 0
        for w in self.waiters:
            th, r, _t0 = w
            if r and woken < 0x100:  # MAX_READERS_WAKEUP
                self._grant_waiter(th, READ, at)
                woken += 1
            else:
                keep.append(w)
        self.waiters = keep

    def _grant_waiter(self, th: "Thread", read: bool, at: int) -> None:
        bounce = th.cpu.id != self.last_cpu
        self.last_cpu = th.cpu.id
        self.cls.acquired(read, bounce, None)
        self._grant(th, read, at)
        th.sim.wake(th, at)

    def force_release(self, th: "Thread") -> None:
        if self.writer is th:
            self._up(th, WRITE)
        elif th.uid in self.read_since:
            self._up(th, READ)


__all__ = [
    "LockClass", "LockDep", "LockInversion", "LockRegistry", "LockStatistics", "LockTime",
    "Mutex", "RWSemaphore", "SpinLock", "Violation",
]
