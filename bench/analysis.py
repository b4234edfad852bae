"""Benchmark of `smpmem analyze` on a synthetic run: events per second of the streaming pass.

    python -m bench.analysis [--events N] [--keep DIR] [--exports]

Writes a run directory with N synthetic events (default 1 000 000) in the
proportions of a memory-pressure run — page allocations and frees, faults
with rss_stat, lock contention and releases, LRU isolation and shrinking,
TLB flushes and IPIs, kswapd and direct reclaim — plus run.json and a few
zoneinfo snapshots, then times: the reader alone (orjson per line), the
analysis pass (reader + collector), the whole ``analyze`` (report and six
plots) and, with --exports, each export format. Prints events/s for each.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import orjson

LOCKS = ("&zone->lock", "&lruvec->lru_lock", "&mm->mmap_lock", "ptlock", "&mapping->i_pages")


def _zoneinfo(free: int) -> str:
    return (f"Node 0, zone    DMA32\n  pages free     {free}\n        boost    0\n        min      1000\n"
            f"        low      2000\n        high     4000\n        promo    4100\n        spanned  70000\n"
            f"        present  65000\n        managed  60000\n        cma      0\n"
            f"        protection: (0, 0, 0, 0)\n      nr_free_pages {free}\n")


def generate(d: Path, n: int, seed: int = 1, ncpus: int = 8) -> Path:
    """Write a synthetic run directory with ``n`` events (see module doc)."""
    rnd = random.Random(seed)
    d.mkdir(parents=True, exist_ok=True)
    dumps = orjson.dumps
    ts = 0
    direct_open: set[int] = set()
    kswapd_awake = False
    with open(d / "events.jsonl", "wb", buffering=1 << 20) as fh:
        for i in range(n):
            ts += rnd.randrange(50, 150)
            cpu = rnd.randrange(ncpus)
            pid = 100 + cpu * 4 + rnd.randrange(4)
            r = rnd.random()
            h: dict[str, Any] = {"ts": ts, "cpu": cpu, "pid": pid, "comm": "stress", "event": ""}
            if r < 0.22:
                h.update(event="mm_page_alloc", pfn=rnd.randrange(1 << 20), order=0, gfp_flags=0x100cca,
                         migratetype=1)
            elif r < 0.40:
                h.update(event="mm_page_free", pfn=rnd.randrange(1 << 20), order=0)
            elif r < 0.52:
                h.update(event="page_fault_user", address=0x7F0000000000 + rnd.randrange(1 << 30) * 4096,
                         ip=0x401000, error_code=6)
            elif r < 0.62:
                h.update(event="rss_stat", mm_id=pid, curr=1, member=1, size=rnd.randrange(1 << 30))
            elif r < 0.78:
                name = rnd.choice(LOCKS)
                h.update(event="lock_release", lock_addr=0xFFFF888000000000 + LOCKS.index(name) * 64, name=name,
                         hold_ns=rnd.randrange(50, 2000))
            elif r < 0.82:
                name = rnd.choice(LOCKS)
                h.update(event="contention_end", lock_addr=0xFFFF888000000000 + LOCKS.index(name) * 64, ret=0,
                         name=name, wait_ns=rnd.randrange(100, 20000))
            elif r < 0.86:
                name = rnd.choice(LOCKS)
                h.update(event="contention_begin", lock_addr=0xFFFF888000000000 + LOCKS.index(name) * 64, flags=1,
                         name=name)
            elif r < 0.90:
                h.update(event="mm_vmscan_lru_isolate", highest_zoneidx=1, order=0, nr_requested=32,
                         nr_scanned=32, nr_skipped=0, nr_taken=32, lru=rnd.choice((0, 2)))
                if rnd.random() < 0.5:
                    h.update(comm="kswapd0", pid=50)
            elif r < 0.94:
                h.update(event="mm_vmscan_lru_shrink_inactive", nid=0, nr_scanned=32,
                         nr_reclaimed=rnd.randrange(33), nr_dirty=0, nr_writeback=0, nr_congested=0,
                         nr_immediate=0, nr_activate0=0, nr_activate1=1, nr_ref_keep=0, nr_unmap_fail=0,
                         priority=12, reclaim_flags=rnd.choice((9, 10)))
                if rnd.random() < 0.5:
                    h.update(comm="kswapd0", pid=50)
            elif r < 0.96:
                h.update(event="tlb_flush", reason=rnd.choice((1, 2, 4)), pages=1)
            elif r < 0.97:
                h.update(event="ipi_send_cpu", cpu_target=rnd.randrange(ncpus), callsite="flush_tlb_mm_range",
                         callback="flush_tlb_func")
            elif r < 0.98:
                h.update(event="global_dirty_state", nr_dirty=rnd.randrange(1000), nr_writeback=rnd.randrange(100),
                         background_thresh=500, dirty_thresh=1000, dirty_limit=1000, nr_dirtied=i, nr_written=i)
            elif r < 0.99:
                h.update(event="mm_vmscan_kswapd_sleep" if kswapd_awake else "mm_vmscan_kswapd_wake", comm="kswapd0",
                         pid=50, nid=0, zid=1, order=0)
                kswapd_awake = not kswapd_awake
            else:
                if pid in direct_open:
                    h.update(event="mm_vmscan_direct_reclaim_end", nr_reclaimed=rnd.randrange(32))
                    direct_open.discard(pid)
                else:
                    h.update(event="mm_vmscan_direct_reclaim_begin", order=0, gfp_flags=0x100cca)
                    direct_open.add(pid)
            fh.write(dumps(h))
            fh.write(b"\n")
    run = {"scenario": "bench", "seed": seed, "status": "completed", "reason": "synthetic", "virtual_ns": ts,
           "wall_s": 0, "events": n, "counters": {"pgfault": n // 8, "pgscan_kswapd": n, "pgsteal_kswapd": n // 2},
           "locks": {}, "processes": [], "config": {"machine": {"cpus": ncpus}}}
    (d / "run.json").write_bytes(orjson.dumps(run))
    for k in range(10):
        s = d / "snapshots" / str(ts * k // 10)
        s.mkdir(parents=True, exist_ok=True)
        (s / "zoneinfo").write_text(_zoneinfo(5000 - 300 * k))
    return d


def _timed(label: str, n: int, fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    print(f"  {label:34s} {dt:7.2f} s   {n / dt / 1e3:8.0f} k events/s")
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the run directory here and keep it")
    ap.add_argument("--exports", action="store_true", help="also time the ftrace, perfetto, csv, parquet exports")
    args = ap.parse_args([] if argv is None else argv)  # main() from `python -m bench`: the defaults

    from smpmem.analysis import analyze, load
    from smpmem.analysis.report import collect

    with tempfile.TemporaryDirectory() as tmp:
        d = args.keep or Path(tmp) / "run"
        n = args.events
        t = time.perf_counter()
        generate(d, n)
        size = (d / "events.jsonl").stat().st_size
        print(f"{n} synthetic events, {size / 2**20:.0f} MiB, generated in {time.perf_counter() - t:.1f} s")
        run = load(d)
        _timed("read only (orjson per line)", n, lambda: sum(1 for _ in run.iter_events()))
        _timed("analysis pass (read + collect)", n, lambda: collect(run))
        dt = _timed("analyze (report + 6 plots)", n, lambda: analyze(d))
        if args.exports:
            from smpmem.analysis.export import export

            for fmt in ("ftrace", "perfetto", "csv", "parquet"):
                _timed(f"export --format {fmt}", n, lambda fmt=fmt: export(load(d), fmt))
        print(f"projected for 10 M events: analyze ≈ {dt * 10_000_000 / n:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
