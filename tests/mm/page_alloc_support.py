"""Helpers for the page allocator tests: boot a kernel from TOML, run actors, read free lists."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

from smpmem.kernel import Kernel
from smpmem.mm.page_alloc import BootMem
from smpmem.mm.zone import NR_PAGE_ORDERS, Zone
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread

ActorFn = Callable[[Thread], Awaitable[Any]]


def boot(toml: str = "", bootmem: BootMem | None = None) -> Kernel:
    """A kernel booted from scenario TOML, with ``bootmem`` reservations (None: the default ones)."""

    class K(Kernel):
        pass

    K.bootmem = bootmem
    return K(parse_scenario(toml))


def toy(pages: int, cpus: int = 1, tunables: str = "min_free_kbytes = 0", debug: bool = True) -> Kernel:
    """A machine whose one DMA zone holds ``pages`` free frames from pfn 0 (no reservations)."""
    return boot(f'[machine]\ncpus = {cpus}\nram = "16MiB"\n'
                f'[[machine.zone]]\nname = "DMA"\nstart = 0\nsize = {pages * 4096}\n'
                f'[tunables]\n{tunables}\n[run]\ndebug_vm = {"true" if debug else "false"}\n', BootMem.none())


async def run(kernel: Kernel, *fns: ActorFn, cpus: list[int] | None = None, until: int | None = None) -> list[Any]:
    """Run ``fns`` as threads (thread i on CPU ``cpus[i]``, default i) to completion; their results."""
    results: list[Any] = [None] * len(fns)

    def make(i: int, fn: ActorFn) -> ActorFn:
        async def body(th: Thread) -> None:
            results[i] = await fn(th)
        return body

    def setup(_: Any) -> None:
        for i, fn in enumerate(fns):
            cpu = cpus[i] if cpus is not None else i % len(kernel.cpus)
            kernel.start_thread(Thread(kernel, kernel.alloc_pid(), f"t{i}"), make(i, fn), cpu=cpu)

    status = await kernel.run(setup, until=until)
    if kernel.sim.failure is not None:
        raise kernel.sim.failure
    assert status == "completed", status
    return results


def run_sync(kernel: Kernel, *fns: ActorFn, cpus: list[int] | None = None) -> list[Any]:
    """:func:`run` from synchronous code (Hypothesis rules)."""
    return trio.run(lambda: run(kernel, *fns, cpus=cpus))


def free_lists(zone: Zone, mt: int | None = None) -> dict[int, list[int]]:
    """Non-empty free lists by order: pfns head first (one migratetype, or all of them in type order)."""
    out: dict[int, list[int]] = {}
    for order in range(NR_PAGE_ORDERS):
        mts = [mt] if mt is not None else range(5)
        pfns = [p for m in mts for p in zone.free_list(order, m)]
        if pfns:
            out[order] = pfns
    return out


def free_block_orders(zone: Zone) -> list[int]:
    """``nr_free`` of every order (a buddyinfo line)."""
    return [a.nr_free for a in zone.free_area]
