"""The ftrace text exporter and reader (smpmem/trace/ftrace.py, kernel/trace/trace.c, trace_output.c)."""

from __future__ import annotations

import re

import pytest
from mm_examples import EXAMPLES, addr_for_hash

from smpmem.trace import gfp
from smpmem.trace.fmt import hash_ptr
from smpmem.trace.ftrace import (
    event_line,
    format_ts,
    header,
    parse_ftrace,
    render_ftrace,
    sanitize_comm,
)
from smpmem.trace.gfp import page_ptr

# FORMATS.md §3, verbatim except the invented page= hash of line 2 (see SECTION3_RECORDS).
SECTION3 = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 9/9   #P:4
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
          stress-4120    [001] d....  5075.100000: page_fault_user: address=0x7f3a1c2d5000 ip=0x55d0c1a2b3c4 error_code=0x6
          stress-4120    [001] .....  5075.100004: mm_page_alloc: page=000000003b7a4c1e pfn=0x1a2b3 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO
          stress-4120    [001] .....  5075.100006: rss_stat: mm_id=2824390453 curr=1 type=MM_ANONPAGES size=8437760B
          stress-4120    [001] .....  5075.100019: mm_vmscan_wakeup_kswapd: nid=0 order=0 gfp_flags=GFP_HIGHUSER_MOVABLE
         kswapd0-93      [000] .....  5075.100100: mm_vmscan_kswapd_wake: nid=0 order=0
         kswapd0-93      [000] d..1.  5075.100150: contention_begin: 00000000d4c3b2a1 (flags=SPIN)
         kswapd0-93      [000] .....  5075.100410: mm_vmscan_lru_shrink_inactive: nid=0 nr_scanned=32 nr_reclaimed=30 nr_dirty=0 nr_writeback=0 nr_congested=0 nr_immediate=0 nr_activate_anon=0 nr_activate_file=2 nr_ref_keep=0 nr_unmap_fail=0 priority=12 flags=RECLAIM_WB_FILE|RECLAIM_WB_ASYNC
         kswapd0-93      [000] .....  5075.105400: mm_vmscan_kswapd_sleep: nid=0
          <idle>-0       [002] d.h1.  5075.105500: tlb_flush: pages:-1 reason:remote shootdown (1)
"""


def _rec(ts_us: int, cpu: int, pid: int, comm: str, event: str, **fields: object) -> dict:
    """A record with the common header; ts given in microseconds."""
    return {"ts": ts_us * 1000, "cpu": cpu, "pid": pid, "comm": comm, "event": event, **fields}


def _ex(event: str) -> dict:
    """The fields of an event's FORMATS.md example."""
    return dict(EXAMPLES[event][0])


SECTION3_RECORDS = [
    _rec(5075_100000, 1, 4120, "stress", "page_fault_user", irqs_off=True, **_ex("page_fault_user")),
    _rec(5075_100004, 1, 4120, "stress", "mm_page_alloc", **_ex("mm_page_alloc")),
    _rec(5075_100006, 1, 4120, "stress", "rss_stat", **_ex("rss_stat")),
    _rec(5075_100019, 1, 4120, "stress", "mm_vmscan_wakeup_kswapd", **_ex("mm_vmscan_wakeup_kswapd")),
    _rec(5075_100100, 0, 93, "kswapd0", "mm_vmscan_kswapd_wake", **_ex("mm_vmscan_kswapd_wake")),
    _rec(5075_100150, 0, 93, "kswapd0", "contention_begin", irqs_off=True, preempt_count=1,
         lock_addr=addr_for_hash("00000000d4c3b2a1"), flags=0x1, name="&zone->lock"),
    _rec(5075_100410, 0, 93, "kswapd0", "mm_vmscan_lru_shrink_inactive",
         **_ex("mm_vmscan_lru_shrink_inactive")),
    _rec(5075_105400, 0, 93, "kswapd0", "mm_vmscan_kswapd_sleep", nid=0),
    _rec(5075_105500, 2, 0, "swapper/2", "tlb_flush", irqs_off=True, hardirq=True, preempt_count=1,
         reason=gfp.TLB_REMOTE_SHOOTDOWN, pages=gfp.TLB_FLUSH_ALL),
]


class TestHeader:
    def test_irq_info_header_char_by_char(self) -> None:
        """The 12 header lines match FORMATS.md §3 character for character."""
        got = header(9, 9, 4)
        want = "".join(SECTION3.splitlines(keepends=True)[:12])
        assert len(got.splitlines()) == 12
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g == w, f"char {i}: {got[:i + 1]!r}"

    def test_no_irq_info_header(self) -> None:
        """Without irq-info the legend is the two func_help_header lines and nothing else."""
        assert header(3, 5, 2, irq_info=False) == (
            "# tracer: nop\n#\n# entries-in-buffer/entries-written: 3/5   #P:2\n#\n"
            "#           TASK-PID     CPU#     TIMESTAMP  FUNCTION\n"
            "#              | |         |         |         |\n")

    def test_counts_and_cpus(self) -> None:
        """entries counts emitted lines, written adds the lost ones, #P defaults to max cpu + 1."""
        text = render_ftrace(SECTION3_RECORDS[:3], lost=4)
        assert "# entries-in-buffer/entries-written: 3/7   #P:2\n" in text


class TestEventLines:
    def test_section3_example_exactly(self) -> None:
        """The whole FORMATS.md §3 trace renders exactly (page= hash: page_ptr of the pfn)."""
        want = SECTION3.replace("page=000000003b7a4c1e", f"page={page_ptr(0x1A2B3)}")
        assert render_ftrace(SECTION3_RECORDS, ncpus=4) == want

    def test_no_irq_info_line(self) -> None:
        """With irq_info=False the 5 latency chars go; "[%03d] " is followed by " %5lu.%06lu"."""
        line = event_line(SECTION3_RECORDS[4], irq_info=False)
        assert line == "         kswapd0-93      [000]   5075.100100: mm_vmscan_kswapd_wake: nid=0 order=0"

    @pytest.mark.parametrize(("ns", "text"), [
        (0, "    0.000000"), (499, "    0.000000"), (500, "    0.000001"),
        (1_999_999_500, "    2.000000"), (123456_789012_345, "123456.789012"),
    ])
    def test_timestamp_rounds_to_microseconds(self, ns: int, text: str) -> None:
        """ts is rounded to the nearest microsecond (ns2usecs) and printed %5lu.%06lu."""
        assert format_ts(ns) == text

    @pytest.mark.parametrize(("comm", "pid", "shown"), [
        ("kswapd0", 93, "kswapd0"), ("kworker/u8:2", 211, "kworker-u8-2"),
        ("swapper/0", 0, "<idle>"), ("", 7, "<...>"), (None, 7, "<...>"),
        ("a_very_long_process_name", 5, "a-very-long-pro"),
    ])
    def test_comm_sanitised(self, comm: str | None, pid: int, shown: str) -> None:
        """Comms are cut to 15 chars and kept to [a-zA-Z0-9-]; pid 0 is <idle>."""
        assert sanitize_comm(comm, pid) == shown

    def test_prefix_regexes_of_the_perl_scripts(self) -> None:
        """Both scripts' line regexes split a rendered line into comm-pid, cpu, time and event."""
        vmscan = (r"\s*([a-zA-Z0-9-]*)\s*(\[[0-9]*\])(\s*[dX.][Nnp.][Hhs.][0-9a-fA-F.]*|)"
                  r"\s*([0-9.]*):\s*([a-zA-Z_]*):\s*(.*)")
        pagealloc = r"\s*([a-zA-Z0-9-]*)\s*(\[[0-9]*\])\s*([0-9.]*):\s*([a-zA-Z_]*):\s*(.*)"
        rec = _rec(10, 3, 211, "kworker/u8:2", "mm_vmscan_kswapd_sleep", nid=0)
        m = re.search(vmscan, event_line(rec))
        assert m and m[1] == "kworker-u8-2-211" and m[4] == "0.000010" and m[5] == "mm_vmscan_kswapd_sleep"
        m = re.search(pagealloc, event_line(rec, irq_info=False))
        assert m and m[1] == "kworker-u8-2-211" and m[4] == "mm_vmscan_kswapd_sleep"
        assert re.search(pagealloc, event_line(rec)) is None

    def test_compat_writepage_line(self) -> None:
        """compat_writepage adds a decimal-pfn mm_vmscan_writepage line after each write_folio."""
        rec = _rec(1, 0, 93, "kswapd0", "mm_vmscan_write_folio", **_ex("mm_vmscan_write_folio"))
        lines = render_ftrace([rec], compat_writepage=True).splitlines()
        assert lines[2] == "# entries-in-buffer/entries-written: 2/2   #P:1"
        assert lines[-2].endswith(f"mm_vmscan_write_folio: page={page_ptr(0x2B3C4)} pfn=0x2b3c4 "
                                  "flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC")
        assert lines[-1].endswith(f"mm_vmscan_writepage: page={page_ptr(0x2B3C4)} pfn={0x2B3C4} "
                                  "flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC")
        assert lines[-1].split("mm_vmscan_writepage")[0] == lines[-2].split("mm_vmscan_write_folio")[0]


ROUND_TRIP_REQUIRED = {"mm_page_alloc", "mm_page_free", "tlb_flush", "contention_begin",
                       "contention_end", "mm_vmscan_kswapd_wake", "mm_vmscan_lru_isolate",
                       "mm_vmscan_lru_shrink_inactive", "mm_vmscan_write_folio"}


def _round_trip_records() -> list[dict]:
    """Every example, plus lock events and header variations, at distinct times and cpus."""
    recs = [_rec(1_000 + i * 7, i % 4, 100 + i, f"task{i}", ev, **fields)
            for i, (ev, (fields, _)) in enumerate(sorted(EXAMPLES.items()))]
    recs += [
        _rec(9_000, 1, 50, "locker", "contention_begin", irqs_off=True, preempt_count=0x21,
             lock_addr=0xFFFF888003A1C040, flags=0x5),
        _rec(9_001, 1, 50, "locker", "contention_end", lock_addr=0xFFFF888003A1C040, ret=0),
        _rec(9_002, 2, 0, "swapper/2", "tlb_flush", softirq=True, reason=0, pages=-1),
        _rec(9_003, 3, 51, "alloc", "mm_page_alloc", pfn=-1, order=2, gfp_flags=0, migratetype=0),
        _rec(9_004, 3, 51, "alloc", "vm_unmapped_area", **dict(_ex("vm_unmapped_area"), addr=-12)),
    ]
    return recs


class TestParse:
    def test_round_trip(self) -> None:
        """parse_ftrace(render_ftrace(records)) gives back every field (pointers as their hashes)."""
        recs = _round_trip_records()
        parsed = parse_ftrace(render_ftrace(recs))
        assert len(parsed) == len(recs)
        for orig, back in zip(recs, parsed, strict=True):
            assert "body" not in back, back["event"]
            for key, val in back.items():
                want = orig[key] if key != "comm" else sanitize_comm(orig["comm"], orig["pid"])
                if isinstance(val, str) and isinstance(want, int):
                    want = hash_ptr(want)
                assert val == want, (orig["event"], key)
            hidden = set(orig) - set(back)  # fields TP_printk does not print
            assert hidden <= {"zid", "name", "wait_ns"}, (orig["event"], hidden)
        assert ROUND_TRIP_REQUIRED <= {p["event"] for p in parsed}

    def test_parse_without_irq_info(self) -> None:
        """The no-flags layout parses to the same records minus the latency keys."""
        recs = [dict(r) for r in SECTION3_RECORDS]
        with_flags = parse_ftrace(render_ftrace(recs))
        without = parse_ftrace(render_ftrace(recs, irq_info=False))
        for a, b in zip(with_flags, without, strict=True):
            for k in ("irqs_off", "hardirq", "softirq", "preempt_count"):
                a.pop(k, None)
            assert a == b

    def test_compat_lines_dropped(self) -> None:
        """Compat writepage lines are skipped unless keep_compat is set."""
        rec = _rec(1, 0, 93, "kswapd0", "mm_vmscan_write_folio", **_ex("mm_vmscan_write_folio"))
        text = render_ftrace([rec], compat_writepage=True)
        assert [r["event"] for r in parse_ftrace(text)] == ["mm_vmscan_write_folio"]
        kept = parse_ftrace(text, keep_compat=True)
        assert kept[1]["event"] == "mm_vmscan_writepage" and "body" in kept[1]

    def test_uninvertible_event_keeps_body(self) -> None:
        """An event without an inverse comes back with its text under ``body``."""
        rec = _rec(5, 0, 9, "x", "sched_switch", prev_comm="a", prev_pid=1, prev_state="S",
                   next_comm="b", next_pid=2)
        (back,) = parse_ftrace(render_ftrace([rec]))
        assert back["body"].startswith("prev_comm=a prev_pid=1 prev_prio=120")
