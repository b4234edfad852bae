"""Processes and their threads, started from the scenario's ``[[process]]`` entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sim import Thread
from ._program import run_program

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..scenario import Process as ProcessSpec


@dataclass(eq=False)
class Process:
    """A thread group: ``tgid``, ``comm``, its threads and its program state.

    ``regions`` maps each thread's pid to its program's region names (from
    ``mmap``/``malloc``) and what the memory model returned for them (a
    spawned thread or forked child starts with a copy of its parent's);
    ``exit_code`` is set by ``exit``.
    """

    kernel: "Kernel"
    tgid: int
    comm: str
    spec: "ProcessSpec | None" = None
    parent: "Process | None" = None
    threads: list[Thread] = field(default_factory=list)
    regions: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    oom_score_adj: int = 0
    mm: Any = None  # the address space (mm_struct), from exec; shared by the threads; None once it exited
    ops: int = 0  # completed loop iterations, for ops/s figures
    min_flt: int = 0  # faults of all its threads (task->min_flt summed, as /proc/PID/stat shows them)
    maj_flt: int = 0
    cmin_flt: int = 0  # of its waited-for children
    cmaj_flt: int = 0
    heap: Any = None  # the C library's malloc state (smpmem.workload._syscalls.Heap)
    start_time: int = 0  # virtual ns at fork/exec
    signal: int = 0  # the signal that killed it, if one did

    def new_thread(self, allowed: list[int] | None = None) -> Thread:
        """A thread of this process (the first thread's pid is the tgid)."""
        k = self.kernel
        pid = self.tgid if not self.threads else k.alloc_pid()
        th = Thread(k, pid, self.comm, tgid=self.tgid, allowed=allowed)
        th.process = self
        self.threads.append(th)
        return th

    @property
    def live_threads(self) -> list[Thread]:
        return [t for t in self.threads if not t.done]


def start_processes(kernel: "Kernel") -> list[Process]:
    """Create every process of the scenario and start its threads at their start times.

    Processes are created in file order (``count`` copies each), so pids are
    assigned deterministically: the first user pid follows the kernel daemons.
    """
    out: list[Process] = []
    for spec in kernel.scenario.process:
        for _ in range(spec.count):
            tgid = kernel.alloc_pid()
            proc = Process(kernel, tgid, spec.name, spec=spec, oom_score_adj=spec.oom_score_adj)
            kernel.processes[tgid] = proc
            out.append(proc)
            program = spec.program if spec.program is not None else _builtin(spec)
            threads = [proc.new_thread(allowed=spec.cpus) for _t in range(spec.threads)]
            # The first thread execs (a new mm) and then starts the others, which share it.
            kernel.start_thread(threads[0], run_leader, program, threads[1:], at=spec.start)
    return out


async def run_leader(th: Thread, program: list[Any], siblings: list[Thread]) -> int:
    """The first thread of a process: ``execve`` (a fresh mm), start the other threads, run."""
    from ..mm.mmap import mmget
    from ._syscalls import exec_mm, trace_newtask

    proc = th.process
    proc.start_time = th.sim.now
    if proc.oom_score_adj:
        # The launcher wrote /proc/self/oom_score_adj before the exec (as systemd's OOMScoreAdjust= does).
        from ..trace.events import oom as oom_events

        tr = th.machine.tracer
        if tr.on[oom_events.oom_score_adj_update.id]:
            tr.emit(oom_events.oom_score_adj_update, th, task_pid=th.pid, task_comm=proc.comm,
                    oom_score_adj=proc.oom_score_adj)
    if not await exec_mm(th, proc):
        proc.exit_code = 1  # execve failed (ENOMEM)
        return 1
    k = th.machine
    for t in siblings:
        mmget(proc.mm)
        trace_newtask(th, t.pid, proc.comm, CLONE_THREAD_FLAGS, proc.oom_score_adj)
        k.start_thread(t, run_thread, program)
    return await run_thread(th, program)


CLONE_THREAD_FLAGS = 0x3D0F00  # what glibc's pthread_create passes: CLONE_VM|CLONE_FS|...|CLONE_THREAD|...


async def run_thread(th: Thread, program: list[Any]) -> int:
    """A thread's life: its program, then ``exit_mm`` (the last thread tears the address space down).

    Runs on a normal end, on ``exit`` and when the thread is killed (a
    signal to its process, or the end of the run): locks it still holds are
    released first, as the runtime would, so that the teardown can take them.
    """
    from ._syscalls import exit_mm

    try:
        return await run_program(th, program)
    finally:
        for lock in reversed(list(th.held)):
            lock.force_release(th)
        while th.cpu.irq_depth > 0 and th.cpu.current is th:
            await th.local_irq_enable()
        await exit_mm(th)


def _builtin(spec: "ProcessSpec") -> list[Any]:
    from ._builtins import builtin_program

    return builtin_program(spec.builtin or "", spec.params)
