"""The kernel's own trace post-processing scripts read smpmem's ftrace export (FORMATS.md §4).

Runs Linux 6.12's Documentation/trace/postprocess/trace-vmscan-postprocess.pl
and trace-pagealloc-postprocess.pl (located by kernel_scripts, never copied)
on synthetic record streams rendered by smpmem.trace.ftrace, and checks the
numbers in their reports.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from kernel_scripts import PAGEALLOC, VMSCAN, run_script

from smpmem.trace import gfp
from smpmem.trace.ftrace import render_ftrace

FILE, ANON = gfp.trace_reclaim_flags(True), gfp.trace_reclaim_flags(False)


class Stream:
    """Builds records for one task: ``at(ms)`` sets the clock, each call appends one event."""

    def __init__(self, out: list[dict[str, Any]], pid: int, comm: str, cpu: int) -> None:
        self.out, self.pid, self.comm, self.cpu, self.ts = out, pid, comm, cpu, 0

    def at(self, ms: float) -> Stream:
        """Move this task's clock to ``ms`` milliseconds."""
        self.ts = round(ms * 1_000_000)
        return self

    def ev(self, event: str, **fields: Any) -> Stream:
        """Append one event 1 us after the previous one."""
        self.out.append({"ts": self.ts, "cpu": self.cpu, "pid": self.pid, "comm": self.comm,
                         "event": event, **fields})
        self.ts += 1000
        return self

    def isolate(self, lru: int, nr_scanned: int) -> Stream:
        """mm_vmscan_lru_isolate taking everything scanned."""
        return self.ev("mm_vmscan_lru_isolate", highest_zoneidx=2, order=0, nr_requested=32,
                       nr_scanned=nr_scanned, nr_skipped=0, nr_taken=nr_scanned, lru=lru)

    def shrink(self, nr_scanned: int, nr_reclaimed: int, flags: int) -> Stream:
        """mm_vmscan_lru_shrink_inactive."""
        return self.ev("mm_vmscan_lru_shrink_inactive", nid=0, nr_scanned=nr_scanned,
                       nr_reclaimed=nr_reclaimed, nr_dirty=0, nr_writeback=0, nr_congested=0,
                       nr_immediate=0, nr_activate0=0, nr_activate1=0, nr_ref_keep=0,
                       nr_unmap_fail=0, priority=12, reclaim_flags=flags)

    def write(self, pfn: int, flags: int) -> Stream:
        """mm_vmscan_write_folio."""
        return self.ev("mm_vmscan_write_folio", pfn=pfn, reclaim_flags=flags)


def reclaim_records() -> list[dict[str, Any]]:
    """Two direct reclaims (10 ms, 30 ms) and two kswapd runs (50 ms, 100 ms with a re-wakeup)."""
    out: list[dict[str, Any]] = []
    a = Stream(out, 4120, "stress", 1)
    a.at(1000).ev("mm_vmscan_wakeup_kswapd", nid=0, zid=2, order=0, gfp_flags=gfp.GFP_HIGHUSER_MOVABLE)
    a.at(1000.010).ev("mm_vmscan_direct_reclaim_begin", order=0, gfp_flags=gfp.GFP_HIGHUSER_MOVABLE)
    a.isolate(gfp.LRU_INACTIVE_FILE, 32).shrink(32, 30, FILE)
    a.isolate(gfp.LRU_INACTIVE_ANON, 16).shrink(16, 10, ANON).write(0x2B3C4, ANON)
    a.isolate(gfp.LRU_ACTIVE_FILE, 8)  # active lists do not count as scanning
    a.ev("mm_vmscan_lru_shrink_active", nid=0, nr_taken=8, nr_active=2, nr_deactivated=6,
         nr_referenced=2, priority=12, reclaim_flags=FILE)
    a.at(1010.010).ev("mm_vmscan_direct_reclaim_end", nr_reclaimed=40)

    b = Stream(out, 211, "kworker/u8:2", 2)
    b.at(1100).ev("mm_vmscan_direct_reclaim_begin", order=2, gfp_flags=gfp.GFP_KERNEL)
    b.isolate(gfp.LRU_INACTIVE_FILE, 64).shrink(64, 50, FILE).write(0x3000, FILE)
    b.at(1130).ev("mm_vmscan_direct_reclaim_end", nr_reclaimed=50)

    k = Stream(out, 93, "kswapd0", 0)
    k.at(1000.100).ev("mm_vmscan_kswapd_wake", nid=0, zid=2, order=0)
    k.isolate(gfp.LRU_INACTIVE_FILE, 128).shrink(128, 120, FILE).write(0x4000, FILE).write(0x4001, FILE)
    k.isolate(gfp.LRU_INACTIVE_ANON, 64).shrink(64, 20, ANON)
    k.at(1050.100).ev("mm_vmscan_kswapd_sleep", nid=0)
    k.at(2000).ev("mm_vmscan_kswapd_wake", nid=0, zid=2, order=0)
    k.at(2001).ev("mm_vmscan_kswapd_wake", nid=0, zid=2, order=3)
    k.at(2100).ev("mm_vmscan_kswapd_sleep", nid=0)
    return sorted(out, key=lambda r: r["ts"])  # stable: a trace is in time order


def summary(report: str) -> dict[str, str]:
    """The ``Summary`` section of the vmscan report as {label: value}."""
    tail = report.split("\nSummary\n", 1)[1]
    return {m[1]: m[2] for m in re.finditer(r"^(.+?):\s+(.+?)\s*$", tail, re.M)}


def run_vmscan(text: str) -> str:
    """Run the vmscan script; skip if a mounted tracefs would replace its default regexes."""
    report = run_script(VMSCAN, text)
    if "WARNING: Event vmscan/mm_vmscan_write_folio format string not found" not in report:
        pytest.skip("this host exposes /sys/kernel/tracing/events formats, which the script "
                    "prefers to its defaults; the expected numbers assume the defaults")
    return report


class TestVmscanScript:
    def test_summary_counts(self) -> None:
        """The Summary reproduces the reclaim counts, write I/O and times of the stream."""
        s = summary(run_vmscan(render_ftrace(reclaim_records(), compat_writepage=True)))
        assert s["Direct reclaims"] == "2"
        assert s["Direct reclaim pages scanned"] == "112"
        assert s["Direct reclaim file pages scanned"] == "96"
        assert s["Direct reclaim anon pages scanned"] == "16"
        assert s["Direct reclaim pages reclaimed"] == "90"
        assert s["Direct reclaim file pages reclaimed"] == "80"
        assert s["Direct reclaim anon pages reclaimed"] == "10"
        assert s["Direct reclaim write file async I/O"] == "1"
        assert s["Direct reclaim write anon async I/O"] == "1"
        assert s["Direct reclaim write file sync I/O"] == "0"
        assert s["Wake kswapd requests"] == "1"
        assert s["Time stalled direct reclaim"] == "0.04 seconds"
        assert s["Kswapd wakeups"] == "2"
        assert s["Kswapd pages scanned"] == "192"
        assert s["Kswapd file pages scanned"] == "128"
        assert s["Kswapd anon pages scanned"] == "64"
        assert s["Kswapd pages reclaimed"] == "140"
        assert s["Kswapd file pages reclaimed"] == "120"
        assert s["Kswapd anon pages reclaimed"] == "20"
        assert s["Kswapd reclaim write file async I/O"] == "2"
        assert s["Kswapd reclaim write anon async I/O"] == "0"
        assert s["Time kswapd awake"] == "0.15 seconds"

    def test_processes_and_latencies(self) -> None:
        """Per-process rows use the sanitised comm-pid; latencies are order-ms pairs."""
        report = run_vmscan(render_ftrace(reclaim_records(), compat_writepage=True))
        assert "WARNING: Failed to parse" not in report
        rows = {line.split()[0]: line.split() for line in report.splitlines() if line.strip()}
        assert rows["stress-4120"][1:3] == ["1", "1"]  # direct reclaims, kswapd wakeups asked
        assert rows["kworker-u8-2-211"][1:3] == ["1", "0"]
        assert rows["kswapd0-93"][1:3] == ["2", "1"]  # wakeups, re-wakeups
        assert "rewake-3=1" in " ".join(rows["kswapd0-93"])
        lat = report.split("Reclaim latencies expressed as order-latency_in_ms\n", 1)[1]
        assert re.search(r"^stress-4120\s+0-10(\.\d+)? $", lat, re.M)
        assert re.search(r"^kworker-u8-2-211\s+2-30(\.\d+)? $", lat, re.M)

    def test_write_folio_alone_counts_no_writes(self) -> None:
        """Without the compat line the 6.12 script counts no reclaim writes (FORMATS.md §4)."""
        s = summary(run_vmscan(render_ftrace(reclaim_records())))
        assert s["Direct reclaims"] == "2" and s["Kswapd pages reclaimed"] == "140"
        writes = [v for k, v in s.items() if "write" in k]
        assert len(writes) == 8 and set(writes) == {"0"}


def pagealloc_records() -> list[dict[str, Any]]:
    """Allocations and frees by one task, pcp drains and refills, one extfrag, one other event."""
    out: list[dict[str, Any]] = []
    a = Stream(out, 4120, "stress", 1).at(1000)
    a.ev("mm_page_alloc_extfrag", pfn=0x8000, alloc_order=0, fallback_order=2,
         alloc_migratetype=1, fallback_migratetype=0, change_ownership=1)
    for pfn in range(0x1000, 0x1003):
        a.ev("mm_page_alloc_zone_locked", pfn=pfn, order=0, migratetype=1, percpu_refill=1)
    for pfn in range(0x1000, 0x1005):
        a.ev("mm_page_alloc", pfn=pfn, order=0, gfp_flags=gfp.GFP_HIGHUSER_MOVABLE, migratetype=1)
    for pfn in range(0x1000, 0x1002):
        a.ev("mm_page_free", pfn=pfn, order=0)
    for pfn in range(0x1002, 0x1005):
        a.ev("mm_page_free_batched", pfn=pfn)
    d = Stream(out, 50, "kworker/1:1", 1).at(2000)
    for pfn in range(0x2000, 0x2004):
        d.ev("mm_page_pcpu_drain", pfn=pfn, order=0, migratetype=1)
    d.ev("mm_page_free", pfn=0x3000, order=1)
    for pfn in range(0x2004, 0x2008):
        d.ev("mm_page_pcpu_drain", pfn=pfn, order=0, migratetype=0)
    Stream(out, 93, "kswapd0", 0).at(3000).ev("mm_vmscan_kswapd_wake", nid=0, zid=2, order=0)
    return out


def pagealloc_rows(report: str) -> dict[str, list[int]]:
    """The report's per-process rows as {comm-pid: [13 counters]}."""
    rows = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) == 14 and all(p.isdigit() for p in parts[1:]):
            rows[parts[0]] = [int(p) for p in parts[1:]]
    return rows


class TestPageallocScript:
    def test_counts_without_irq_info(self) -> None:
        """With irq_info=False every counted event lands in the right column."""
        report = run_script(PAGEALLOC, render_ftrace(pagealloc_records(), irq_info=False))
        rows = pagealloc_rows(report)
        # allocd, under lock, freed direct, freed pagevec, pcpu pages drain, pcpu drains,
        # pcpu refills, frag fallback, causing, migtype changed, severe, moderate, unknown
        assert rows["stress-4120"] == [5, 3, 2, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        assert rows["kworker-1-1-50"] == [0, 0, 1, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0]
        assert rows["kswapd0-93"] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]

    def test_extfrag_hex_pfn_is_not_parsed(self) -> None:
        """6.x prints extfrag's pfn in hex; the script's decimal-pfn regex rejects it (FORMATS.md §4)."""
        report = run_script(PAGEALLOC, render_ftrace(pagealloc_records(), irq_info=False))
        assert "WARNING: Failed to parse mm_page_alloc_extfrag as expected" in report

    def test_irq_info_layout_matches_nothing(self) -> None:
        """The default layout has latency flags the script's regex cannot skip: no rows at all."""
        report = run_script(PAGEALLOC, render_ftrace(pagealloc_records()))
        assert pagealloc_rows(report) == {}
