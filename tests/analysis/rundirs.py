"""Hand-written run directories for the analysis tests: every figure in them is computed by hand below.

``small_run`` — 4 CPUs, virtual time 100 µs:

- kswapd0 (pid 50, CPU 0) wakes at 1 µs, sleeps at 9 µs (awake 8 µs), wakes at
  20 µs, is woken again at 25 µs while awake (a re-wake) and is still awake
  at the end of the log (83 µs: awake 63 µs more; 71 µs in total).
  It isolates 32 inactive-file and 16 inactive-anon pages (scanned 48) and
  reclaims 30 file + 8 anon (38): efficiency 38/48 = 79.2 %; it writes one
  anon page (mm_vmscan_write_folio, RECLAIM_WB_ANON).
- stress (pid 100, CPU 1) wakes kswapd, then direct-reclaims from 10 µs to
  20 µs (stall 10 µs): scans 10 inactive-file pages, reclaims 5 (50.0 %).
  stress (pid 101, CPU 2) direct-reclaims from 30 µs to 60 µs (30 µs, 0
  pages). Two stalls: p50 10.0 µs, p99 = max = 30.0 µs, total 40.0 µs.
- zone->lock: pid 100 waits 2 µs (contention 61→63 µs) and holds it 1 µs;
  pid 101 holds it 3 µs uncontended. lock_stat: 1 contention, 2
  acquisitions, wait 2.00/2.00/2.00/2.00 µs, hold min 1.00 max 3.00 total
  4.00 avg 2.00 µs.
- TLB: CPU 1 flushes with reason 4 (remote ipi send) and sends IPIs to CPUs
  2 and 3, which flush with reason 1 (remote shootdown, pid 0) and handle
  one IPI each.
- Faults: pid 100 faults twice, the second one major (a page-cache add
  before its rss_stat); pid 101 faults once (minor).
- Writeback: global_dirty_state at 50 µs (dirty 100, writeback 10,
  thresholds 500/1000); the flusher writes 1024 − 1000 = 24 pages
  (background).
- snapshots at 0, 40 and 90 µs with DMA32 free 5000, 3000, 1500 pages
  (min 1000, low 2000, high 4000), and proc/zoneinfo at the end with 4500.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from smpmem.trace import gfp

LOCK = 0xFFFF888000123400
FILE_ASYNC = gfp.trace_reclaim_flags(True)   # RECLAIM_WB_FILE|RECLAIM_WB_ASYNC
ANON_ASYNC = gfp.trace_reclaim_flags(False)  # RECLAIM_WB_ANON|RECLAIM_WB_ASYNC
VIRTUAL_NS = 100_000

REF = Path("/work/shared/reference")


def ev(ts: int, cpu: int, pid: int, comm: str, event: str, **fields: Any) -> dict[str, Any]:
    return {"ts": ts, "cpu": cpu, "pid": pid, "comm": comm, "event": event, **fields}


def _inactive(ts: int, cpu: int, pid: int, comm: str, scanned: int, reclaimed: int, flags: int) -> dict[str, Any]:
    return ev(ts, cpu, pid, comm, "mm_vmscan_lru_shrink_inactive", nid=0, nr_scanned=scanned,
              nr_reclaimed=reclaimed, nr_dirty=0, nr_writeback=0, nr_congested=0, nr_immediate=0,
              nr_activate0=0, nr_activate1=0, nr_ref_keep=0, nr_unmap_fail=0, priority=12, reclaim_flags=flags)


def _isolate(ts: int, cpu: int, pid: int, comm: str, lru: int, scanned: int) -> dict[str, Any]:
    return ev(ts, cpu, pid, comm, "mm_vmscan_lru_isolate", highest_zoneidx=1, order=0, nr_requested=32,
              nr_scanned=scanned, nr_skipped=0, nr_taken=scanned, lru=lru)


K = (0, 50, "kswapd0")
S1 = (1, 100, "stress")
S2 = (2, 101, "stress")
GFP = gfp.GFP_HIGHUSER_MOVABLE

SMALL_EVENTS: list[dict[str, Any]] = [
    ev(1_000, *K, "mm_vmscan_kswapd_wake", nid=0, zid=1, order=0),
    _isolate(2_000, *K, gfp.LRU_INACTIVE_FILE, 32),
    _inactive(3_000, *K, 32, 30, FILE_ASYNC),
    _isolate(3_500, *K, gfp.LRU_INACTIVE_ANON, 16),
    _inactive(4_000, *K, 16, 8, ANON_ASYNC),
    ev(4_100, *K, "mm_vmscan_write_folio", pfn=0x1234, reclaim_flags=ANON_ASYNC),
    ev(5_000, *S1, "mm_vmscan_wakeup_kswapd", nid=0, zid=1, order=0, gfp_flags=GFP),
    ev(9_000, *K, "mm_vmscan_kswapd_sleep", nid=0),
    ev(10_000, *S1, "mm_vmscan_direct_reclaim_begin", order=0, gfp_flags=GFP),
    _isolate(12_000, *S1, gfp.LRU_INACTIVE_FILE, 10),
    _inactive(15_000, *S1, 10, 5, FILE_ASYNC),
    ev(20_000, *S1, "mm_vmscan_direct_reclaim_end", nr_reclaimed=5),
    ev(20_000, *K, "mm_vmscan_kswapd_wake", nid=0, zid=1, order=0),
    ev(25_000, *K, "mm_vmscan_kswapd_wake", nid=0, zid=1, order=0),
    ev(30_000, *S2, "mm_vmscan_direct_reclaim_begin", order=0, gfp_flags=GFP),
    ev(50_000, 3, 300, "writer", "global_dirty_state", nr_dirty=100, nr_writeback=10, background_thresh=500,
       dirty_thresh=1000, dirty_limit=1000, nr_dirtied=200, nr_written=90),
    ev(52_000, 3, 200, "kworker/u8:0", "writeback_start", name="8:0", nr_pages=1024, sb_dev=0, sync_mode=0,
       for_kupdate=0, range_cyclic=1, for_background=1, reason=0, cgroup_ino=1),
    ev(53_000, 3, 200, "kworker/u8:0", "writeback_written", name="8:0", nr_pages=1000, sb_dev=0, sync_mode=0,
       for_kupdate=0, range_cyclic=1, for_background=1, reason=0, cgroup_ino=1),
    ev(60_000, *S2, "mm_vmscan_direct_reclaim_end", nr_reclaimed=0),
    ev(61_000, *S1, "contention_begin", lock_addr=LOCK, flags=1, name="zone->lock"),
    ev(63_000, *S1, "contention_end", lock_addr=LOCK, ret=0, name="zone->lock", wait_ns=2_000),
    ev(64_000, *S1, "lock_release", lock_addr=LOCK, name="zone->lock", hold_ns=1_000),
    ev(65_000, *S2, "lock_release", lock_addr=LOCK, name="zone->lock", hold_ns=3_000),
    ev(70_000, *S1, "tlb_flush", reason=gfp.TLB_REMOTE_SEND_IPI, pages=1),
    ev(70_100, *S1, "ipi_send_cpu", cpu_target=2, callsite="flush_tlb_mm_range", callback="flush_tlb_func"),
    ev(70_100, *S1, "ipi_send_cpu", cpu_target=3, callsite="flush_tlb_mm_range", callback="flush_tlb_func"),
    ev(71_000, 2, 0, "swapper/2", "ipi_entry", reason="Function call interrupts"),
    ev(71_100, 2, 0, "swapper/2", "tlb_flush", reason=gfp.TLB_REMOTE_SHOOTDOWN, pages=1),
    ev(71_200, 3, 0, "swapper/3", "ipi_entry", reason="Function call interrupts"),
    ev(71_300, 3, 0, "swapper/3", "tlb_flush", reason=gfp.TLB_REMOTE_SHOOTDOWN, pages=1),
    ev(80_000, *S1, "page_fault_user", address=0x7F0000001000, ip=0x401000, error_code=6),
    ev(80_500, *S1, "rss_stat", mm_id=7, curr=1, member=gfp.MM_ANONPAGES, size=4096),
    ev(81_000, *S1, "page_fault_user", address=0x7F0000200000, ip=0x401000, error_code=4),
    ev(81_500, *S1, "mm_filemap_add_to_page_cache", pfn=0x2000, i_ino=12, index=0, s_dev=0x800001, order=0),
    ev(82_000, *S1, "rss_stat", mm_id=7, curr=1, member=gfp.MM_FILEPAGES, size=4096),
    ev(83_000, *S2, "page_fault_user", address=0x7F0000003000, ip=0x401000, error_code=6),
]

SMALL_RUN_JSON: dict[str, Any] = {
    "scenario": "small", "seed": 7, "status": "completed", "reason": "every process exited",
    "virtual_ns": VIRTUAL_NS, "wall_s": 0.01, "events": len(SMALL_EVENTS),
    "counters": {"allocstall_dma32": 0, "allocstall_normal": 2, "nr_free_pages": 4500, "pgfault": 3,
                 "pgmajfault": 1, "pgscan_direct": 10, "pgscan_kswapd": 48, "pgsteal_direct": 5,
                 "pgsteal_kswapd": 38, "pswpin": 0, "pswpout": 1},
    "locks": {"zone->lock": {"contentions": 1, "acquisitions": 2, "con_bounces": 1, "acq_bounces": 1,
                             "waittime_total": 2_000, "waittime_max": 2_000, "holdtime_total": 4_000}},
    "processes": [{"pid": 100, "comm": "stress", "threads": 1, "exit_code": 0, "ops": 3, "runtime_ns": 40_000},
                  {"pid": 101, "comm": "stress", "threads": 1, "exit_code": 0, "ops": 3, "runtime_ns": 20_000}],
    "config": {"machine": {"cpus": 4}},
}

# (ts, DMA32 free) of the snapshots; min/low/high 1000/2000/4000.
SNAPSHOTS = [(0, 5000), (40_000, 3000), (90_000, 1500)]
END_FREE = 4500


def zoneinfo_text(dma32_free: int, dma_free: int = 3000) -> str:
    """A /proc/zoneinfo in the kernel's layout (mm/vmstat.c zoneinfo_show_print) for DMA and DMA32."""

    def zone(name: str, free: int, wm: tuple[int, int, int], managed: int, node_stats: bool) -> str:
        out = [f"Node 0, zone {name:>8}"]
        if node_stats:
            out += ["  per-node stats", "      nr_inactive_anon 100", "      nr_active_anon 50"]
        out += [f"  pages free     {free}", "        boost    0", f"        min      {wm[0]}",
                f"        low      {wm[1]}", f"        high     {wm[2]}", f"        promo    {wm[2] + 100}",
                f"        spanned  {managed + 100}", f"        present  {managed + 50}",
                f"        managed  {managed}", "        cma      0", "        protection: (0, 1000, 1000, 1000)",
                f"      nr_free_pages {free}", "      nr_zone_inactive_anon 0", "  pagesets", "    cpu: 0",
                "              count:    10", "              high:     100", "              batch:    5",
                "              high_min: 100", "              high_max: 500", "  vm stats threshold: 8",
                "  node_unreclaimable:  0", "  start_pfn:           1"]
        return "\n".join(out) + "\n"

    return zone("DMA", dma_free, (10, 12, 15), 3900, True) + zone("DMA32", dma32_free, (1000, 2000, 4000), 60000, False)


def vmstat_text(i: int) -> str:
    """A small /proc/vmstat of snapshot ``i``: LRU sizes and dirty state that grow with i."""
    vals = {"nr_free_pages": 5000 - 1000 * i, "nr_inactive_anon": 1000 + 100 * i, "nr_active_anon": 2000 + 50 * i,
            "nr_inactive_file": 3000 - 200 * i, "nr_active_file": 1500, "nr_dirty": 100 * i,
            "nr_writeback": 10 * i, "nr_dirty_threshold": 1000, "nr_dirty_background_threshold": 500,
            "pgfault": 10 * i}
    return "".join(f"{k} {v}\n" for k, v in vals.items())


def small_run(d: Path, *, snapshots: bool = True) -> Path:
    """Write the small hand-computed run into ``d`` and return it."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in SMALL_EVENTS))
    (d / "run.json").write_bytes(orjson.dumps(SMALL_RUN_JSON, option=orjson.OPT_INDENT_2))
    proc = d / "proc"
    proc.mkdir()
    (proc / "zoneinfo").write_text(zoneinfo_text(END_FREE))
    if snapshots:
        for i, (ts, free) in enumerate(SNAPSHOTS):
            s = d / "snapshots" / str(ts)
            s.mkdir(parents=True)
            (s / "zoneinfo").write_text(zoneinfo_text(free))
            (s / "vmstat").write_text(vmstat_text(i))
            (s / "meminfo").write_text((REF / "live-meminfo.txt").read_text())
    return d


def write_run(d: Path, events: list[dict[str, Any]], run: dict[str, Any] | None = None,
              raw: bytes | None = None) -> Path:
    """A run dir with these events (or raw events.jsonl bytes) and a minimal run.json."""
    d.mkdir(parents=True, exist_ok=True)
    body = raw if raw is not None else b"".join(orjson.dumps(e) + b"\n" for e in events)
    (d / "events.jsonl").write_bytes(body)
    (d / "run.json").write_bytes(orjson.dumps(run or {"scenario": "t", "seed": 1, "virtual_ns": 10_000,
                                                      "status": "completed"}))
    return d
