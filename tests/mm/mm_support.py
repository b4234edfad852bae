"""Helpers for the address-space tests: boot a small kernel, run programs or coroutines in processes."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

from smpmem.kernel import Kernel
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread
from smpmem.workload import Process
from smpmem.workload._syscalls import exec_mm, exit_mm

Body = Callable[[Thread, Process], Awaitable[Any]]


def boot(cpus: int = 4, ram: str = "256MiB", tunables: str = "", run: str = "") -> Kernel:
    """A kernel from a few lines of scenario TOML (debug_vm on, every mm check at every hand-off)."""
    k = Kernel(parse_scenario(f'[machine]\ncpus = {cpus}\nram = "{ram}"\n[tunables]\n{tunables}\n[run]\n{run}\n'))
    k.mm_check_every_switch = True
    return k


def spawn(k: Kernel, body: Body, cpu: int = 0, comm: str = "t", keep: bool = False) -> Process:
    """A process whose first thread execs, runs ``body(th, proc)`` and (unless ``keep``) exits."""
    tgid = k.alloc_pid()
    proc = Process(k, tgid, comm)
    k.processes[tgid] = proc
    th = proc.new_thread()

    async def main(th: Thread) -> Any:
        assert await exec_mm(th, proc)
        try:
            return await body(th, proc)
        finally:
            if not keep:
                await exit_mm(th)

    k.start_thread(th, main, cpu=cpu)
    return proc


def run(k: Kernel, setup: Callable[[Kernel], Any] | None = None, until: int | None = None) -> str:
    """Run the machine to the end; re-raise a model error."""
    status = trio.run(lambda: k.run(setup, until=until))
    if k.sim.failure is not None:
        raise k.sim.failure
    return status


def run_one(k: Kernel, body: Body, cpu: int = 0) -> Any:
    """Run one process doing ``body``; its result."""
    out: list[Any] = []

    async def wrapped(th: Thread, proc: Process) -> Any:
        r = await body(th, proc)
        out.append(r)
        return r

    run(k, lambda _: spawn(k, wrapped, cpu=cpu))
    return out[0] if out else None
