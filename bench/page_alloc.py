"""Benchmark of the page allocator: ``python -m bench.page_alloc``.

Measures, in wall-clock time on this machine:

- order-0 ``alloc_pages`` + ``free_page`` pairs per second on 1 CPU and on
  16 CPUs contending for ``zone->lock`` (each thread keeps a working set, so
  its pcp list refills and drains), without events and with every kmem event
  written to a real file;
- Python bytes per allocated frame (tracemalloc: Page objects, mem_map, the
  pcp and buddy bookkeeping) and per free frame;
- the boot time of a 16 GiB machine.

Debug checks are off (``debug_vm = false``), as in a measurement run.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
import tracemalloc
from typing import Any

import trio

from smpmem.kernel import Kernel
from smpmem.mm import page_alloc as PA
from smpmem.mm.gfp import GFP_KERNEL
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread, Tracer

WORKING_SET = 512  # pages each thread holds before freeing them: more than pcp->high, so lists refill and drain


# pcp->high fixed at 6 batches (as percpu_pagelist_high_fraction would): a working set larger than
# that makes every thread refill and drain its list through zone->lock. With 6.12's auto-tuned high
# (the default) the lists grow to absorb the whole working set and zone->lock is almost never taken.
PCP = "pcp_batch = 63\npcp_high = 378\n"


def _kernel(cpus: int, ram: str = "4GiB", events_to: Any = None, tunables: str = "") -> Kernel:
    sc = parse_scenario(f'[machine]\ncpus = {cpus}\nram = "{ram}"\n[tunables]\n{tunables}[run]\ndebug_vm = false\n')
    tracer = Tracer(None, events_to, "kmem:*") if events_to is not None else None
    return Kernel(sc, tracer=tracer)


def pairs_per_second(cpus: int, pairs_per_cpu: int, events: bool) -> tuple[float, int, int, int]:
    """(pairs/s, zone->lock acquisitions, contentions, events written) for ``cpus`` threads churning pages."""
    fh = tempfile.NamedTemporaryFile(prefix="smpmem-bench-", suffix=".jsonl", delete=False) if events else None
    k = _kernel(cpus, events_to=fh, tunables=PCP)

    async def churn(th: Thread) -> None:
        for _ in range(pairs_per_cpu // WORKING_SET):
            pages = [await PA.alloc_pages(th, GFP_KERNEL, 0) for _ in range(WORKING_SET)]
            for p in pages:
                await PA.free_page(th, p)

    def setup(_: Any) -> None:
        for c in range(cpus):
            k.start_thread(Thread(k, k.alloc_pid(), f"churn{c}"), churn, cpu=c)

    gc.collect()
    t0 = time.perf_counter()
    status = trio.run(lambda: k.run(setup))
    elapsed = time.perf_counter() - t0
    assert status == "completed", (status, k.sim.failure)
    lines = k.tracer.lines
    if fh is not None:
        k.tracer.flush()
        fh.close()
        os.unlink(fh.name)
    s = k.locks.get_class("&zone->lock").statistics()
    return cpus * pairs_per_cpu / elapsed, s.acquisitions, s.contentions, lines


def bytes_per_frame(n: int = 100_000) -> tuple[float, float]:
    """(Python bytes per allocated frame, per free frame) measured with tracemalloc."""
    k = _kernel(1, ram="1GiB")
    held: list[Any] = []

    async def alloc(th: Thread) -> None:
        for _ in range(n):
            held.append(await PA.alloc_pages(th, GFP_KERNEL, 0))

    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    trio.run(lambda: k.run(lambda _: k.start_thread(Thread(k, k.alloc_pid(), "hog"), alloc, cpu=0)))
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_allocated = (after - before) / n
    gc.collect()
    tracemalloc.start()
    t0, _ = tracemalloc.get_traced_memory()
    big = _kernel(4, ram="16GiB")
    t1, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_free = (t1 - t0) / big.page_alloc.nr_free_pages()
    return per_allocated, per_free


def boot_time(ram: str = "16GiB", repeat: int = 3) -> float:
    """Best wall-clock time to build and boot a machine of ``ram``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        _kernel(16, ram=ram)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    print("page allocator (smpmem/mm/page_alloc.py), order-0 alloc_pages + free_page, working set "
          f"{WORKING_SET} pages per thread, pcp batch 63 / high 378, 4 GiB, debug checks off")
    for cpus, pairs in ((1, 40_960), (16, 5_120)):
        for events in (False, True):
            rate, acq, con, lines = pairs_per_second(cpus, pairs, events)
            ev = f"events on ({lines} lines to a file)" if events else "events off"
            print(f"  {cpus:2d} CPU{'s' if cpus > 1 else ' '} {ev:<34} {rate:10,.0f} pairs/s   "
                  f"zone->lock: {acq} acquisitions, {con} contentions")
    per_alloc, per_free = bytes_per_frame()
    print(f"  Python memory: {per_alloc:.0f} bytes per allocated frame, {per_free:.4f} bytes per free frame")
    print(f"  boot of a 16 GiB machine (16 CPUs): {boot_time() * 1000:.0f} ms")


if __name__ == "__main__":
    main()
