"""The interpreter of scenario programs: one coroutine per step kind.

Each handler takes the running thread and the step and does what the step
says through the kernel's interfaces, charging virtual time from the cost
model. Memory steps (mmap, touch, ...) are registered by the memory model's
system-call layer in :data:`HANDLERS`; a step with no handler is a scenario
the machine cannot run, reported as a :class:`ProgramError` naming the step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..sim import SpinLock, Thread

if TYPE_CHECKING:
    from ..kernel import Kernel

Handler = Callable[[Thread, Any], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


class ProgramExit(Exception):
    """``exit()`` from a program: unwinds the thread's interpreter."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ProgramError(Exception):
    """A program asks for something this machine cannot do (a misuse, not a model bug)."""


def handler(op: str) -> Callable[[Handler], Handler]:
    """Register the coroutine that runs steps of kind ``op``."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[op] = fn
        return fn

    return deco


async def run_program(th: Thread, steps: list[Any]) -> int:
    """Run a program's steps on ``th``; returns the exit code (0 when it runs off the end)."""
    try:
        await run_steps(th, steps)
    except ProgramExit as e:
        if th.process is not None:
            th.process.exit_code = e.code
        return e.code
    return 0


async def run_steps(th: Thread, steps: list[Any]) -> None:
    for step in steps:
        fn = HANDLERS.get(step.op)
        if fn is None:
            raise ProgramError(f"step {step.op!r} needs a part of the memory model this build does not have")
        await fn(th, step)


# --- runtime steps ---------------------------------------------------------

@handler("compute")
async def _compute(th: Thread, step: Any) -> None:
    await th.compute(step.ns)


@handler("sleep")
async def _sleep(th: Thread, step: Any) -> None:
    await th.sync()
    await th.sleep_for(step.ns)


def demo_lock(kernel: "Kernel", name: str) -> SpinLock:
    """The kernel-wide spinlock a ``lock`` step names (created on first use)."""
    locks = kernel.__dict__.setdefault("demo_locks", {})
    lock = locks.get(name)
    if lock is None:
        lock = locks[name] = SpinLock(kernel, name)
    return lock


@handler("lock")
async def _lock(th: Thread, step: Any) -> None:
    lock = demo_lock(th.machine, step.name)  # type: ignore[arg-type]
    th.charge(th.machine.costs.syscall_entry)
    await lock.acquire(th, site=f"{step.name}_syscall+0x1c/0x80")
    th.charge(step.hold)
    await lock.release(th)


@handler("loop")
async def _loop(th: Thread, step: Any) -> None:
    proc = th.process
    for _ in range(step.count):
        await run_steps(th, step.body)
        if proc is not None:
            proc.ops += 1


@handler("exit")
async def _exit(th: Thread, step: Any) -> None:
    raise ProgramExit(step.code)


@handler("spawn_threads")
async def _spawn_threads(th: Thread, step: Any) -> None:
    """``pthread_create`` ``count`` times: new threads of this process run ``program``."""
    proc = th.process
    if proc is None:
        raise ProgramError("spawn_threads outside a process")
    from ._process import CLONE_THREAD_FLAGS, run_thread
    from ._syscalls import trace_newtask

    k = th.machine
    th.charge(k.costs.syscall_entry * step.count)
    await th.sync()
    for _ in range(step.count):
        t = proc.new_thread(allowed=th.allowed)
        proc.regions[t.pid] = dict(proc.regions.get(th.pid, {}))  # it sees what was mapped before
        if proc.mm is not None:
            proc.mm.mm_users += 1  # copy_mm with CLONE_VM: mmget, the thread shares the address space
        trace_newtask(th, t.pid, proc.comm, CLONE_THREAD_FLAGS, proc.oom_score_adj)
        k.start_thread(t, run_thread, step.program)  # type: ignore[attr-defined]
