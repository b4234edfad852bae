"""Perfetto / Chrome trace-event JSON export (smpmem/analysis/perfetto.py), validated against the format."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from rundirs import LOCK, ev, write_run

from smpmem.analysis import load
from smpmem.analysis.export import export
from smpmem.analysis.perfetto import LANE_STRIDE, build_trace

REQUIRED = {"X": {"name", "ts", "dur", "pid", "tid"}, "B": {"name", "ts", "pid", "tid"}, "E": {"ts", "pid", "tid"},
            "i": {"name", "ts", "pid", "tid", "s"}, "C": {"name", "ts", "pid", "args"},
            "M": {"name", "pid", "args"}}


def _ns(us: float) -> int:
    """µs → ns as Perfetto's importer reads a number (llround(value * 1000), json_utils CoerceToTs)."""
    return round(us * 1000)


def validate(trace: dict[str, Any]) -> list[str]:
    """Problems with a trace in the JSON object form of the Trace Event Format (empty: valid)."""
    errs: list[str] = []
    if trace.get("displayTimeUnit") not in ("ms", "ns"):
        errs.append("displayTimeUnit must be ms or ns")
    events = trace.get("traceEvents")
    if not isinstance(events, list):
        return errs + ["traceEvents is not a list"]
    named_threads, named_procs = set(), set()
    last_ts: dict[tuple[Any, ...], int] = {}
    slices: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    open_b: dict[tuple[int, int], list[int]] = defaultdict(list)
    used: set[tuple[int, int]] = set()
    for i, e in enumerate(events):
        ph = e.get("ph")
        if ph not in REQUIRED:
            errs.append(f"#{i}: unknown phase {ph!r}")
            continue
        missing = REQUIRED[ph] - set(e)
        if missing:
            errs.append(f"#{i} ({ph}): missing {sorted(missing)}")
            continue
        if ph == "M":
            if e["name"] == "thread_name":
                named_threads.add((e["pid"], e["tid"]))
            if e["name"] == "process_name":
                named_procs.add(e["pid"])
            continue
        if not isinstance(e["ts"], (int, float)) or e["ts"] < 0:
            errs.append(f"#{i}: bad ts {e['ts']!r}")
        track = (e["pid"], "C", e["name"]) if ph == "C" else (e["pid"], e["tid"])
        if _ns(e["ts"]) < last_ts.get(track, -1):
            errs.append(f"#{i}: ts goes backwards on track {track}")
        last_ts[track] = _ns(e["ts"])
        if ph == "C":
            if not e["args"] or not all(isinstance(v, (int, float)) for v in e["args"].values()):
                errs.append(f"#{i}: counter args must be numbers")
            continue
        used.add((e["pid"], e["tid"]))
        if ph == "X":
            if e["dur"] < 0:
                errs.append(f"#{i}: negative dur")
            slices[(e["pid"], e["tid"])].append((_ns(e["ts"]), _ns(e["ts"]) + _ns(e["dur"])))
        elif ph == "B":
            open_b[(e["pid"], e["tid"])].append(e["ts"])
        elif ph == "E":
            if not open_b[(e["pid"], e["tid"])]:
                errs.append(f"#{i}: E without B")
            else:
                open_b[(e["pid"], e["tid"])].pop()
        elif ph == "i" and e["s"] not in ("g", "p", "t"):
            errs.append(f"#{i}: instant scope {e['s']!r}")
    for track, stack in open_b.items():
        if stack:
            errs.append(f"{track}: B without E")
    for track, ss in slices.items():
        stack: list[int] = []
        for s, end in sorted(ss, key=lambda p: (p[0], -p[1])):
            while stack and stack[-1] <= s:
                stack.pop()
            if stack and end > stack[-1]:
                errs.append(f"{track}: slice [{s}, {end}] overlaps its parent without nesting")
            stack.append(end)
    for track in used:
        if track not in named_threads:
            errs.append(f"{track}: no thread_name metadata")
        if track[0] not in named_procs:
            errs.append(f"{track}: no process_name metadata")
    return errs


def test_validator_catches_bad_nesting() -> None:
    """The validator itself rejects a partial overlap and a backwards timestamp."""
    bad = {"displayTimeUnit": "ns", "traceEvents": [
        {"ph": "X", "name": "a", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
        {"ph": "X", "name": "b", "ts": 5, "dur": 10, "pid": 1, "tid": 1},
        {"ph": "i", "name": "c", "ts": 1, "pid": 1, "tid": 1, "s": "t"}]}
    errs = validate(bad)
    assert any("without nesting" in e for e in errs) and any("backwards" in e for e in errs)


class TestSmallRun:
    def test_valid(self, small: Path) -> None:
        """The small run's trace passes the trace-event validation."""
        assert validate(build_trace(load(small))) == []

    def test_tracks(self, small: Path) -> None:
        """A CPUs process (pid 0) with one thread per CPU; tasks named comm-pid."""
        t = build_trace(load(small))
        meta = {(e["name"], e["pid"], e.get("tid")): e["args"] for e in t["traceEvents"] if e["ph"] == "M"}
        assert meta[("process_name", 0, 0)] == {"name": "CPUs"}
        assert [meta[("thread_name", 0, c)]["name"] for c in range(4)] == ["CPU 0", "CPU 1", "CPU 2", "CPU 3"]
        assert meta[("thread_name", 100, 100)] == {"name": "stress-100"}

    def test_slices(self, small: Path) -> None:
        """Lock wait, lock holds, direct reclaim and kswapd awake become X slices with the right spans (µs)."""
        t = build_trace(load(small))
        xs = {(e["name"], e["tid"], e["ts"], e["dur"]) for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] != 0}
        assert ("wait zone->lock", 100, 61.0, 2.0) in xs
        assert ("zone->lock", 100, 63.0, 1.0) in xs
        assert ("zone->lock", 101, 62.0, 3.0) in xs
        assert ("direct reclaim", 100, 10.0, 10.0) in xs
        assert ("direct reclaim", 101, 30.0, 30.0) in xs
        assert ("kswapd awake", 50, 1.0, 8.0) in xs
        assert ("kswapd awake", 50, 20.0, 63.0) in xs  # still awake at the end of the log

    def test_counters_and_instants(self, small: Path) -> None:
        """Free pages per zone from zoneinfo and dirty state are C events; idle events sit on CPU tracks."""
        t = build_trace(load(small))
        cs = [e for e in t["traceEvents"] if e["ph"] == "C"]
        dma32 = [(e["ts"], e["args"]["free"]) for e in cs if e["name"] == "free pages: node 0 DMA32"]
        assert dma32 == [(0.0, 5000), (40.0, 3000), (90.0, 1500), (100.0, 4500)]
        assert any(e["name"] == "dirty pages" and e["args"]["nr_dirty"] == 100 for e in cs)
        shoot = [e for e in t["traceEvents"] if e["ph"] == "i" and e["name"] == "tlb_flush" and e["pid"] == 0]
        assert sorted(e["tid"] for e in shoot) == [2, 3]
        fault = next(e for e in t["traceEvents"] if e["name"] == "page_fault_user")
        assert fault["cat"] == "exceptions" and fault["args"]["error_code"] == 6

    def test_cpu_slices_from_headers(self, small: Path) -> None:
        """Without sched_switch, a CPU's slices follow the tasks named in its events."""
        t = build_trace(load(small))
        cpu1 = [(e["name"], e["ts"]) for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == 0 and e["tid"] == 1]
        assert cpu1 == [("stress-100", 5.0)]

    def test_file_and_time_unit(self, small: Path, tmp_path: Path) -> None:
        """export writes JSON with displayTimeUnit and the run's identity in otherData."""
        res = export(load(small), "perfetto", tmp_path / "t.json")
        t = orjson.loads(res.path.read_bytes())
        assert t["displayTimeUnit"] == "ns"
        assert t["otherData"]["scenario"] == "small" and t["otherData"]["events"] == res.events


class TestSlicesNest:
    def test_hand_over_hand_locking_gets_a_lane(self, tmp_path: Path) -> None:
        """Holds A [0,100] and B [50,150] overlap without nesting: B goes to a second lane; C nests in A."""
        events = [
            ev(20, 0, 7, "w", "lock_release", lock_addr=3, name="C", hold_ns=10),
            ev(100, 0, 7, "w", "lock_release", lock_addr=1, name="A", hold_ns=100),
            ev(150, 0, 7, "w", "lock_release", lock_addr=2, name="B", hold_ns=100),
        ]
        t = build_trace(load(write_run(tmp_path / "r", events)))
        assert validate(t) == []
        lanes = {e["name"]: e["tid"] for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == 7}
        assert lanes == {"A": 7, "C": 7, "B": 7 + LANE_STRIDE}
        names = {e["tid"]: e["args"]["name"] for e in t["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
        assert names[7 + LANE_STRIDE] == "w-7 lane 1"

    def test_sched_switch_slices(self, tmp_path: Path) -> None:
        """sched_switch closes the previous task's slice on that CPU and opens the next one's."""
        events = [
            ev(0, 0, 1, "a", "tlb_flush", reason=2, pages=1),
            ev(1000, 0, 1, "a", "sched_switch", prev_comm="a", prev_pid=1, prev_state="R", next_comm="b", next_pid=2),
            ev(3000, 0, 2, "b", "sched_switch", prev_comm="b", prev_pid=2, prev_state="S", next_comm="swapper/0",
               next_pid=0),
            ev(4000, 0, 0, "swapper/0", "sched_switch", prev_comm="swapper/0", prev_pid=0, prev_state="R",
               next_comm="a", next_pid=1),
            ev(5000, 0, 1, "a", "contention_end", lock_addr=LOCK, ret=0, name="l", wait_ns=500),
        ]
        t = build_trace(load(write_run(tmp_path / "r", events)))
        assert validate(t) == []
        cpu0 = [(e["name"], e["ts"], e["dur"]) for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == 0]
        assert cpu0 == [("a-1", 0.0, 1.0), ("b-2", 1.0, 2.0), ("a-1", 4.0, 1.0)]
        # a lock address above 2^53 is given as hex text, not a lossy float
        w = next(e for e in t["traceEvents"] if e["name"] == "wait l")
        assert w["args"]["lock_addr"] == hex(LOCK)

    def test_many_overlapping_holds_validate(self, tmp_path: Path) -> None:
        """A long random mix of nested and crossing holds on a few threads always validates."""
        import random

        rnd = random.Random(5)
        events = []
        for i in range(3000):
            ts = 1000 + 10 * i
            pid = rnd.choice((1, 2, 3))
            events.append(ev(ts, pid % 2, pid, "t", "lock_release", lock_addr=rnd.randrange(8),
                             name=f"l{rnd.randrange(4)}", hold_ns=rnd.randrange(0, 400)))
        assert validate(build_trace(load(write_run(tmp_path / "r", events)))) == []
