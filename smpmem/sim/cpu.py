"""CPUs and threads: who runs where, time slices, interrupts and IPIs.

Models the parts of kernel/sched/ and kernel/smp.c that memory management
feels: a thread runs on one CPU at a time; each CPU has a FIFO run queue and
switches threads when the running one sleeps, ends, or has used its time
slice while another waits (round-robin, no priorities, no migration once
placed: a thread is placed on the least loaded CPU it may use when it
starts). A thread waiting for a spinlock keeps its CPU busy; one that sleeps
(rwsem, mutex, I/O) gives it up.

IPIs (``smp_call_function_many``): a target CPU with interrupts enabled runs
the handler on arrival (its current thread loses the handler's time); a target
with interrupts disabled queues it and runs it when they are enabled again, as
``local_irq_restore`` does. The sender waits for every acknowledgement.

Private work is batched: :meth:`Thread.charge` adds to ``pending`` and
:meth:`Thread.sync` makes the virtual time pass before shared state is
touched (a lock, a shared list, a device).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, final

from ..trace.events import sched as sched_events
from .costs import CostModel
from .engine import Actor, ModelBug, Simulator
from .locks import LockRegistry
from .tracer import Tracer

IpiFunc = Callable[["CPU"], None]


class IpiCall:
    """One ``smp_call_function_many``: acknowledgements outstanding and the last one's time."""

    __slots__ = ("pending", "done_at", "waiter", "name", "arrive")

    def __init__(self, name: str) -> None:
        self.pending = 0
        self.done_at = 0
        self.arrive = 0  # when the IPI reaches the targets (send time + ipi_latency)
        self.waiter: Thread | None = None
        self.name = name

    def remove_waiter(self, actor: Actor) -> None:
        self.waiter = None

    def __repr__(self) -> str:
        return f"<IPI {self.name} pending={self.pending}>"


@final
class CPU:
    """One CPU: its running thread, run queue, interrupt state and per-CPU data.

    ``percpu`` holds the per-CPU structures of the memory model (pagesets,
    TLB, kmap_atomic slots, slab array caches), keyed by subsystem name.
    """

    __slots__ = (
        "machine", "id", "current", "runqueue", "irq_depth", "inbox", "percpu",
        "nr_switches", "nr_ipis_received", "busy_ns", "idle_log", "nr_threads",
    )

    def __init__(self, machine: "Machine", cpu_id: int) -> None:
        self.machine = machine
        self.id = cpu_id
        self.current: Thread | None = None  # the thread running (or spinning) here
        self.runqueue: deque[Thread] = deque()  # FIFO of threads waiting for this CPU
        self.irq_depth = 0  # > 0: interrupts disabled; IPIs wait in inbox
        self.inbox: deque[tuple[IpiFunc, IpiCall]] = deque()
        self.percpu: dict[str, Any] = {}
        self.nr_switches = 0
        self.nr_ipis_received = 0
        self.busy_ns = 0
        self.nr_threads = 0  # threads placed here (for placement)
        self.idle_log: Any = machine.tracer.bind(cpu_id, 0, "<idle>")

    def remove_waiter(self, actor: Actor) -> None:
        try:
            self.runqueue.remove(actor)  # type: ignore[arg-type]
        except ValueError:
            pass

    def __repr__(self) -> str:
        return f"<CPU{self.id}>"


class Thread(Actor):
    """A simulated thread (user thread or kernel daemon) that runs on a CPU.

    ``pending`` is virtual time owed for private work not yet synchronised;
    ``preempt_count`` > 0 (held spinlocks) forbids preemption;
    ``held`` is the stack of locks held, for lockdep and cleanup;
    ``held_keys`` their lockdep keys, in step (``struct held_lock``'s class).
    """

    __slots__ = (
        "machine", "pid", "tgid", "comm", "cpu", "allowed", "pending", "slice_start",
        "preempt_count", "held", "held_keys", "rng", "log", "on_cpu", "runtime_ns", "process",
        "nr_voluntary", "nr_involuntary",
    )

    def __init__(
        self,
        machine: "Machine",
        pid: int,
        comm: str,
        tgid: int | None = None,
        allowed: list[int] | None = None,
        daemon: bool = False,
    ) -> None:
        super().__init__(machine.sim, f"{comm}-{pid}", daemon=daemon)
        self.machine = machine
        self.pid = pid
        self.tgid = pid if tgid is None else tgid
        self.comm = comm[:15]
        self.allowed = allowed  # CPU ids this thread may run on (None: all)
        self.cpu: CPU = machine.cpus[0]
        self.pending = 0
        self.slice_start = 0
        self.preempt_count = 0
        self.held: list[Any] = []
        self.held_keys: list[tuple[str, int]] = []  # written by the locks only, in step with held
        self.rng = machine.rng_for(f"thread:{pid}:{comm}")
        self.log: Any = None
        self.on_cpu = False
        self.runtime_ns = 0
        self.process: Any = None  # the workload-level process, if any
        self.nr_voluntary = 0
        self.nr_involuntary = 0

    # -- time ----------------------------------------------------------------
    def charge(self, ns: int) -> None:
        """Owe ``ns`` of private work; paid at the next :meth:`sync`."""
        self.pending += ns

    async def sync(self) -> None:
        """Let owed time pass (the CPU stays busy), then honour a due preemption."""
        p = self.pending
        sim = self.sim
        if p:
            self.pending = 0
            self.runtime_ns += p
            await sim.sleep(p)
        cpu = self.cpu
        if cpu.runqueue and self.preempt_count == 0 and sim.now - self.slice_start >= self.machine.costs.timeslice:
            await self._preempt()

    async def compute(self, ns: int) -> None:
        """Busy the CPU for ``ns`` (user work), preemptible at slice ends."""
        # charge() + sync() inlined: one coroutine frame less on a hot path.
        p = self.pending + ns
        sim = self.sim
        if p:
            self.pending = 0
            self.runtime_ns += p
            await sim.sleep(p)
        if self.cpu.runqueue and self.preempt_count == 0 and sim.now - self.slice_start >= self.machine.costs.timeslice:
            await self._preempt()

    # -- the CPU ---------------------------------------------------------------
    async def acquire_cpu(self) -> None:
        """Get this thread's CPU, waiting in its run queue if another thread has it."""
        cpu = self.cpu
        if cpu.current is None:
            self._take(cpu)
            return
        cpu.runqueue.append(self)
        await self._wait_for_cpu(cpu)

    async def _wait_for_cpu(self, cpu: CPU) -> None:
        """Wait, queued in ``cpu.runqueue``, until a releasing thread hands the CPU over."""
        try:
            await self.sim.block(self, cpu)
        except BaseException:
            # Killed while waiting: still get the CPU for the cleanup, then unwind.
            if cpu.current is not self:
                if cpu.current is None:
                    self._take(cpu)
                else:
                    cpu.runqueue.append(self)
                    await self.sim.block(self, cpu)
            self.on_cpu = True
            raise
        assert cpu.current is self, f"{self!r} woke without {cpu!r}"
        self.on_cpu = True
        self.slice_start = self.sim.now

    def _take(self, cpu: CPU) -> None:
        cpu.current = self
        self.on_cpu = True
        self.slice_start = self.sim.now
        self._bind_log()
        hook = self.machine.switch_hook
        if hook is not None:
            hook(cpu, self)

    def _bind_log(self) -> None:
        if self.log is None or self.log._context["cpu"] != self.cpu.id:
            self.log = self.machine.tracer.bind(self.cpu.id, self.pid, self.comm)

    def release_cpu(self, state: str = "S") -> None:
        """Give the CPU to the next thread in its run queue (or leave it idle).

        Writers spinning on an rwsem this thread holds for write stop
        spinning: their owner is no longer on a CPU (``rwsem_spin_on_owner``).
        """
        cpu = self.cpu
        if cpu.current is not self:
            return
        self.on_cpu = False
        for lock in self.held:
            lock.owner_off_cpu(self)
        cpu.current = None
        if cpu.runqueue:
            nxt = cpu.runqueue.popleft()
            cpu.current = nxt
            cpu.nr_switches += 1
            tr = self.machine.tracer
            if tr.on[sched_events.sched_switch.id]:
                tr.emit(sched_events.sched_switch, self, prev_comm=self.comm, prev_pid=self.pid,
                        prev_state=state, next_comm=nxt.comm, next_pid=nxt.pid)
            self.sim.wake(nxt, self.sim.now + self.machine.costs.context_switch)
        hook = self.machine.switch_hook
        if hook is not None:
            hook(cpu, cpu.current)  # context_switch(): switch_mm or enter_lazy_tlb

    async def _preempt(self) -> None:
        self.nr_involuntary += 1
        cpu = self.cpu
        cpu.runqueue.append(self)
        self.release_cpu("R")
        await self._wait_for_cpu(cpu)

    async def sleep_on(self, waitlist: Any) -> None:
        """Sleep (give up the CPU) until a waker calls ``sim.wake``; then get the CPU back."""
        self.nr_voluntary += 1
        self.release_cpu("S")
        try:
            await self.sim.block(self, waitlist)
        finally:
            await self.acquire_cpu()

    async def sleep_for(self, ns: int) -> None:
        """Sleep for ``ns`` of virtual time off the CPU (``schedule_timeout``)."""
        self.release_cpu("S")
        try:
            await self.sim.sleep(ns)
        finally:
            await self.acquire_cpu()

    # -- interrupts --------------------------------------------------------------
    def local_irq_disable(self) -> None:
        self.cpu.irq_depth += 1

    async def local_irq_enable(self) -> None:
        """Re-enable interrupts; run the IPIs that arrived meanwhile."""
        cpu = self.cpu
        cpu.irq_depth -= 1
        assert cpu.irq_depth >= 0, f"unbalanced local_irq_enable on {cpu!r}"
        if cpu.irq_depth == 0 and cpu.inbox:
            await self.sync()
            self.machine.handle_pending_ipis(cpu, self)


class Machine:
    """The simulated hardware the memory model runs on: CPUs, clock, tracer, costs.

    The memory model's machine (``smpmem.kernel``) builds on this.
    """

    def __init__(
        self,
        ncpus: int,
        seed: int = 1,
        costs: CostModel | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        if ncpus < 1:
            raise ValueError("a machine needs at least one CPU")
        self.sim = Simulator()
        self.seed = seed
        self.costs = costs or CostModel()
        self.tracer = tracer or Tracer(self.sim)
        self.tracer.clock = self.sim
        self.locks = LockRegistry()
        self.cpus = [CPU(self, i) for i in range(ncpus)]
        self._next_pid = 1
        self.threads: list[Thread] = []
        # Called as hook(cpu, next_thread_or_None) whenever a CPU changes what it runs
        # (the memory model's switch_mm / enter_lazy_tlb); None: no hook.
        self.switch_hook: Callable[[CPU, Thread | None], None] | None = None

    # -- randomness ------------------------------------------------------------
    def rng_for(self, name: str) -> random.Random:
        """A deterministic stream for one actor: seeded from the run seed and the actor's name."""
        return random.Random(f"{self.seed}/{name}")

    # -- threads -----------------------------------------------------------------
    def alloc_pid(self) -> int:
        pid = self._next_pid
        self._next_pid += 1
        return pid

    def place(self, thread: Thread) -> CPU:
        """The least loaded CPU the thread may run on (lowest id on ties: deterministic)."""
        ids = thread.allowed if thread.allowed else range(len(self.cpus))
        cpu = min((self.cpus[i] for i in ids), key=lambda c: (c.nr_threads, c.id))
        return cpu

    def start_thread(
        self,
        thread: Thread,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        at: int | None = None,
        cpu: int | None = None,
    ) -> Thread:
        """Place ``thread`` on a CPU and run ``fn(thread, *args)`` there from ``at``."""
        c = self.cpus[cpu] if cpu is not None else self.place(thread)
        c.nr_threads += 1
        thread.cpu = c
        thread._bind_log()
        self.threads.append(thread)
        self.sim.spawn(thread, self._thread_main, thread, fn, args, at=at)
        return thread

    async def _thread_main(self, thread: Thread, fn: Callable[..., Awaitable[Any]], args: tuple) -> Any:
        try:
            # Inside the try: a thread killed while queued for its first CPU
            # still gets it for the cleanup (_wait_for_cpu) and must give it back.
            await thread.acquire_cpu()
            result = await fn(thread, *args)
            await thread.sync()
            return result
        finally:
            if thread.held:
                # A killed thread releases what it holds (lockdep would say "held at exit").
                for lock in reversed(list(thread.held)):
                    lock.force_release(thread)
            thread.cpu.nr_threads -= 1
            thread.release_cpu("X")

    # -- IPIs --------------------------------------------------------------------
    async def smp_call_function_many(
        self, sender: Thread, targets: list[CPU], func: IpiFunc, name: str = "call_function", wait: bool = True
    ) -> None:
        """Run ``func(cpu)`` on each target CPU by IPI and wait for all to acknowledge.

        Models kernel/smp.c ``smp_call_function_many_cond``. The sender pays
        ``ipi_send`` per target; a target with interrupts enabled handles it
        on arrival, one with interrupts disabled when it re-enables them.
        """
        costs = self.costs
        await sender.sync()
        now = self.sim.now
        call = IpiCall(name)
        call.arrive = arrive = now + costs.ipi_latency
        done_at = now
        ipi_send = sched_events.ipi_send_cpu
        tr = self.tracer
        sent = 0
        for cpu in targets:
            if cpu is sender.cpu:
                continue
            sent += 1
            if tr.on[ipi_send.id]:
                tr.emit(ipi_send, sender, cpu_target=cpu.id, callsite="smp_call_function_many_cond", callback=name)
            cpu.nr_ipis_received += 1
            if cpu.irq_depth == 0:
                func(cpu)
                cur = cpu.current
                if cur is not None:
                    cur.pending += costs.ipi_handle  # the interrupted thread loses the handler's time
                done_at = max(done_at, arrive + costs.ipi_handle)
            else:
                call.pending += 1
                cpu.inbox.append((func, call))
        # Set before the sender pays for sending: a target may handle its queued IPI meanwhile.
        call.done_at = done_at
        sender.charge(costs.ipi_send * sent)
        await sender.sync()
        if not wait:
            return
        if call.pending:
            call.waiter = sender
            await self.sim.block(sender, call)  # spinning in csd_lock_wait: the CPU stays busy
        done_at = call.done_at
        if done_at > self.sim.now:
            await self.sim.sleep_until(done_at)

    def handle_pending_ipis(self, cpu: CPU, running: Thread) -> None:
        """Run the IPIs queued while ``cpu`` had interrupts disabled (at local_irq_enable)."""
        costs = self.costs
        now = self.sim.now
        while cpu.inbox:
            func, call = cpu.inbox.popleft()
            func(cpu)
            running.pending += costs.ipi_handle
            call.pending -= 1
            # Interrupts back on before the IPI arrived: it is handled on arrival.
            call.done_at = max(call.done_at, max(now, call.arrive) + costs.ipi_handle)
            if call.pending == 0 and call.waiter is not None:
                w, call.waiter = call.waiter, None
                self.sim.wake(w, call.done_at)

    # -- running -------------------------------------------------------------------
    async def run(self, setup: Callable[["Machine"], Any] | None = None, until: int | None = None,
                  before_teardown: Callable[[str], None] | None = None) -> str:
        async def main(_: Simulator) -> None:
            if setup is not None:
                r = setup(self)
                if hasattr(r, "__await__"):
                    await r

        return await self.sim.run(main, until=until, before_teardown=before_teardown)


__all__ = ["CPU", "Thread", "Machine", "IpiCall", "ModelBug"]
