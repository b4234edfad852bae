"""Benchmark of the address-space model: simulated accesses on the TLB-hit path, anonymous faults.

- accesses/s: one thread reads and writes a 32-page region that fits its
  64-entry TLB, a million times: every access is a TLB hit (dict lookup,
  LRU touch, content-token check), no trio switch. Target (issue 5): 1 M/s.
- anonymous faults/s on 1 CPU and on 16 CPUs (16 threads of one process,
  each faulting its own region: mmap_lock read, page allocation, zeroing,
  rmap, LRU batch, PTE).
Events are on (every event of the catalog, JSON Lines to a temporary file);
the per-event invariant checks (debug_vm) are off except where it says so.
Figures are wall-clock rates, the best of REPEAT runs.
"""

from __future__ import annotations

import os
import tempfile
import time

import trio

REPEAT = 3
TARGET_ACCESSES = 1_000_000


def _run(toml: str, events: bool = True) -> tuple[float, object]:
    from smpmem.kernel import Kernel
    from smpmem.scenario import parse_scenario
    from smpmem.sim import Tracer
    from smpmem.workload import start_processes

    sc = parse_scenario(toml)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "events.jsonl"), "wb", buffering=1 << 20) as fh:
            tr = Tracer(None, fh, events="*" if events else None)
            k = Kernel(sc, tr)
            t0 = time.perf_counter()
            status = trio.run(lambda: k.run(start_processes, until=sc.run.duration))
            dt = time.perf_counter() - t0
            tr.flush()
    if k.sim.failure is not None:
        raise k.sim.failure
    assert status == "completed", status
    return dt, k


def accesses(n: int = 1_000_000, debug: bool = False) -> float:
    toml = f'''
[machine]
cpus = 1
ram = "128MiB"
[run]
duration = "10s"
debug_vm = {"true" if debug else "false"}
[[process]]
name = "hits"
program = [
  {{ op = "mmap", name = "r", size = "128KiB" }},
  {{ op = "touch", region = "r", write = true }},
  {{ op = "touch", region = "r", count = {n // 2} }},
  {{ op = "touch", region = "r", count = {n // 2}, write = true }},
]
'''
    best = 0.0
    for _ in range(REPEAT):
        dt, k = _run(toml)
        ts = k.cpus[0].percpu["tlb"]
        assert ts.hits >= n, (ts.hits, ts.misses)
        best = max(best, n / dt)
    return best


def faults(cpus: int, pages_per_thread: int = 4096) -> tuple[float, int]:
    toml = f'''
[machine]
cpus = {cpus}
ram = "2GiB"
[run]
duration = "10s"
debug_vm = false
[[process]]
name = "faults"
threads = {cpus}
program = [
  {{ op = "mmap", name = "r", size = "{pages_per_thread * 4}KiB" }},
  {{ op = "touch", region = "r", write = true }},
]
'''
    best = 0.0
    n = 0
    for _ in range(REPEAT):
        dt, k = _run(toml)
        n = k.vmstat["pgfault"]
        best = max(best, n / dt)
    return best, n


def main() -> None:
    a = accesses()
    print(f"TLB-hit accesses/s (events on, debug_vm off): {a:,.0f}  target {TARGET_ACCESSES:,}  "
          f"{'OK' if a >= TARGET_ACCESSES else 'BELOW TARGET'}")
    ad = accesses(200_000, debug=True)
    print(f"TLB-hit accesses/s (events on, debug_vm on, stale-entry check per hit): {ad:,.0f}")
    for cpus in (1, 16):
        rate, n = faults(cpus)
        print(f"anonymous page faults/s, {cpus:2d} CPU{'s' if cpus > 1 else ' '} ({n} faults, events on): {rate:,.0f}")


if __name__ == "__main__":
    main()
