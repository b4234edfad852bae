"""Benchmark of the slab allocator: ``python -m bench --only slab`` (or ``python -m bench.slab``).

Measures, in wall-clock time on this machine:

- ``kmalloc`` + ``kfree`` pairs per second on 1 CPU and on 16 CPUs, each
  thread holding a working set of 100 objects of 64 bytes (so its array
  refills and flushes through ``list_lock`` now and then), with events off
  and with the kmem events written to a real file (two lines per pair);
- the fraction of allocations served from the per-CPU arrays (STATS
  ``allochit / (allochit + allocmiss)``), and ``&n->list_lock``'s
  acquisitions and contentions.

Debug checks are off (``debug_vm = false``), as in a measurement run.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from typing import Any

import trio

from smpmem.kernel import Kernel
from smpmem.mm import slab as S
from smpmem.mm.gfp import GFP_KERNEL
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread, Tracer

WORKING_SET = 100  # objects each thread holds before freeing them
SIZE = 64


def _kernel(cpus: int, events_to: Any = None) -> Kernel:
    sc = parse_scenario(f'[machine]\ncpus = {cpus}\nram = "1GiB"\n[run]\ndebug_vm = false\n')
    tracer = Tracer(None, events_to, "kmem:kmalloc,kmem:kfree") if events_to is not None else None
    return Kernel(sc, tracer=tracer)


def pairs_per_second(cpus: int, pairs_per_cpu: int, events: bool) -> dict[str, Any]:
    """kmalloc/kfree pairs per second for ``cpus`` threads, with the array hit ratio and list_lock figures."""
    fh = tempfile.NamedTemporaryFile(prefix="smpmem-bench-", suffix=".jsonl", delete=False) if events else None
    k = _kernel(cpus, events_to=fh)

    async def churn(th: Thread) -> None:
        for _ in range(pairs_per_cpu // WORKING_SET):
            objs = [await S.kmalloc(th, SIZE, GFP_KERNEL) for _ in range(WORKING_SET)]
            for o in objs:
                await S.kfree(th, o)

    def setup(_: Any) -> None:
        for c in range(cpus):
            k.start_thread(Thread(k, k.alloc_pid(), f"churn{c}"), churn, cpu=c)

    gc.collect()
    t0 = time.perf_counter()
    status = trio.run(lambda: k.run(setup))
    elapsed = time.perf_counter() - t0
    assert status == "completed", (status, k.sim.failure)
    lines = k.tracer.lines
    size = 0
    if fh is not None:
        k.tracer.flush()
        fh.close()
        size = os.path.getsize(fh.name)
        os.unlink(fh.name)
    st = k.slab.caches[f"kmalloc-{SIZE}"].statistics()
    lk = k.locks.get_class("&n->list_lock").statistics()
    return {"rate": cpus * pairs_per_cpu / elapsed, "hit": st.hit_ratio, "lines": lines, "bytes": size,
            "acq": lk.acquisitions, "con": lk.contentions, "virtual_ns": k.sim.now}


def main() -> None:
    print(f"slab allocator (smpmem/mm/slab.py), kmalloc({SIZE}) + kfree pairs, {WORKING_SET} objects held per "
          "thread, 1 GiB, debug checks off")
    for cpus, pairs in ((1, 100_000), (16, 12_500)):
        for events in (False, True):
            r = pairs_per_second(cpus, pairs, events)
            ev = f"events on ({r['lines']} lines, {r['bytes'] >> 20} MiB to a file)" if events else "events off"
            print(f"  {cpus:2d} CPU{'s' if cpus > 1 else ' '} {ev:<42} {r['rate']:10,.0f} pairs/s   "
                  f"per-CPU array hits {r['hit']:.4f}   list_lock: {r['acq']} acquisitions, {r['con']} contentions")


if __name__ == "__main__":
    main()
