"""Perfetto / Chrome trace-event JSON export of a run (opens in ui.perfetto.dev and chrome://tracing).

The JSON object format of the Trace Event Format: ``{"traceEvents": [...],
"displayTimeUnit": "ns", "otherData": {...}}``, ``ts``/``dur`` in µs
(floats, so nanoseconds survive). Tracks:

- **CPUs** (pid 0, named "CPUs", sorted first): one thread per CPU
  (tid = CPU number, "CPU n"). Its ``X`` slices say which task ran: from
  ``sched_switch`` (prev leaves, next starts); on a CPU with no switch yet,
  from the tasks named in the event headers (a task's slice lasts until an
  event of another task on that CPU). Events of pid 0 (idle, interrupt
  context) are instants on their CPU's track.
- **Tasks** (pid = the event's pid, or its thread group from run.json
  ``processes[].tids`` when given): ``X`` slices for lock waits
  (``contention_end`` with ``wait_ns``: ``[ts - wait_ns, ts]``), lock holds
  (``lock_release`` with ``hold_ns``: ``[ts - hold_ns, ts]``, else from the
  task's ``contention_end`` on that lock), direct reclaim
  (``mm_vmscan_direct_reclaim_begin`` → ``_end``) and kswapd awake
  (``mm_vmscan_kswapd_wake`` → ``_sleep``). Slices that would overlap
  without nesting go to extra lanes ("comm-pid lane k", tid = pid + k·10⁷)
  so that every track's slices nest properly.
- **Counters** (``C``, on pid 0): free pages with min/low/high per zone
  from zoneinfo snapshots; dirty and writeback pages with their thresholds
  from ``global_dirty_state``.
- Every other event is an instant (``i``, thread scope) with its fields as
  ``args`` (integers beyond 2^53, such as lock addresses, as hex strings).
- ``M`` metadata events name processes and threads.

Events are sorted by time, so ``ts`` is monotonic on every track.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ..trace.catalog import CATALOG, all_events
from ._reader import HEADER_KEYS, Run

CPU_PID = 0
LANE_STRIDE = 10_000_000
_MAX_SAFE = 2**53
_HEADER = frozenset(HEADER_KEYS)
_KEEP_ROOTS = 64
# Events turned into slices (not instants) when they pair up.
_SLICE_EVENTS = frozenset({"contention_begin", "contention_end", "lock_release", "sched_switch",
                           "mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end",
                           "mm_vmscan_kswapd_wake", "mm_vmscan_kswapd_sleep"})


class _Lane:
    """Top-level slices of one track, to keep every slice properly nested (see place())."""

    __slots__ = ("roots", "floor")

    def __init__(self) -> None:
        self.roots: list[tuple[int, int]] = []  # disjoint, sorted by start
        self.floor = -1  # end of the latest root dropped from the window

    def fits(self, s: int, e: int) -> int | None:
        """Index from which roots are absorbed by [s, e], or None if [s, e] would overlap without nesting."""
        if s < self.floor:
            return None
        roots = self.roots
        j = len(roots)
        while j > 0 and roots[j - 1][1] > s:
            rs, re_ = roots[j - 1]
            if rs >= e or (s <= rs and re_ <= e):  # disjoint after, or nested inside [s, e]
                j -= 1
                continue
            return None
        return j  # roots[:j] end at or before s; absorbed ones follow

    def add(self, s: int, e: int, first: int) -> None:
        roots = self.roots
        last = first
        while last < len(roots) and roots[last][1] <= e and roots[last][0] >= s:
            last += 1
        roots[first:last] = [(s, e)]
        if len(roots) > 2 * _KEEP_ROOTS:
            drop = roots[:-_KEEP_ROOTS]
            self.floor = max(self.floor, max(r[1] for r in drop))
            del roots[:-_KEEP_ROOTS]


def _us(ns: int) -> float:
    return ns / 1000


def _args(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's fields (no header), integers beyond 2^53 as hex text (JSON readers use doubles)."""
    out = {k: v for k, v in rec.items() if k not in _HEADER}
    for k, v in out.items():
        if type(v) is int and (v >= _MAX_SAFE or v <= -_MAX_SAFE):
            out[k] = hex(v)
    return out


class _Builder:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.out: list[tuple[int, int, dict[str, Any]]] = []  # (ts ns, seq, event)
        self.seq = 0
        self.lanes: dict[int, list[_Lane]] = {}
        self.task_names: dict[int, str] = {}
        self.tgid: dict[int, int] = {}
        for p in run.run.get("processes") or []:
            for tid in p.get("tids") or []:
                self.tgid[int(tid)] = int(p["pid"])
        self.cpus: set[int] = set()
        self.cpu_cur: dict[int, tuple[int, str, int]] = {}  # cpu -> (pid, comm, start)
        self.cpu_switched: set[int] = set()
        self.held: dict[tuple[int, Any], int] = {}  # (pid, lock_addr) -> acquired ts
        self.direct: dict[int, tuple[int, dict[str, Any]]] = {}
        self.kswapd: dict[int, tuple[int, dict[str, Any]]] = {}
        self.last_ts = 0
        _ = all_events()  # make sure the catalog is loaded for categories

    def emit(self, ts: int, ev: dict[str, Any]) -> None:
        self.seq += 1
        self.out.append((ts, self.seq, ev))

    def pid_of(self, tid: int) -> int:
        return self.tgid.get(tid, tid)

    # --- CPU tracks ----------------------------------------------------------------

    def cpu_slice(self, cpu: int, pid: int, comm: str, s: int, e: int) -> None:
        if pid == 0 or e < s:
            return
        self.emit(s, {"name": f"{comm}-{pid}", "cat": "sched", "ph": "X", "ts": _us(s), "dur": _us(e - s),
                      "pid": CPU_PID, "tid": cpu, "args": {"pid": pid, "comm": comm}})

    def on_header(self, rec: dict[str, Any]) -> None:
        cpu, pid, ts = rec["cpu"], rec["pid"], rec["ts"]
        if cpu in self.cpu_switched:
            return
        cur = self.cpu_cur.get(cpu)
        if cur is None or cur[0] != pid:
            if cur is not None:
                self.cpu_slice(cpu, cur[0], cur[1], cur[2], ts)
            self.cpu_cur[cpu] = (pid, rec.get("comm", ""), ts)

    def on_switch(self, rec: dict[str, Any]) -> None:
        cpu, ts = rec["cpu"], rec["ts"]
        cur = self.cpu_cur.get(cpu)
        if cur is not None:
            self.cpu_slice(cpu, cur[0], cur[1], cur[2], ts)
        self.cpu_switched.add(cpu)
        self.cpu_cur[cpu] = (rec.get("next_pid", 0), rec.get("next_comm", ""), ts)

    # --- task tracks ---------------------------------------------------------------

    def task_slice(self, tid: int, name: str, cat: str, s: int, e: int, args: dict[str, Any]) -> None:
        lanes = self.lanes.setdefault(tid, [])
        for k, lane in enumerate(lanes):
            first = lane.fits(s, e)
            if first is not None:
                break
        else:
            k, lane = len(lanes), _Lane()
            lanes.append(lane)
            first = 0
        lane.add(s, e, first)
        self.emit(s, {"name": name, "cat": cat, "ph": "X", "ts": _us(s), "dur": _us(e - s),
                      "pid": self.pid_of(tid), "tid": tid + k * LANE_STRIDE, "args": args})

    def instant(self, rec: dict[str, Any]) -> None:
        ev = rec["event"]
        et = CATALOG.get(ev)
        pid = rec["pid"]
        if pid == 0:
            track_pid, tid = CPU_PID, rec["cpu"]
        else:
            track_pid, tid = self.pid_of(pid), pid
        self.emit(rec["ts"], {"name": ev, "cat": et.subsystem if et else "smpmem", "ph": "i", "s": "t",
                              "ts": _us(rec["ts"]), "pid": track_pid, "tid": tid, "args": _args(rec)})

    def feed(self, rec: dict[str, Any]) -> None:
        ev, ts, pid = rec["event"], rec["ts"], rec["pid"]
        if ts > self.last_ts:
            self.last_ts = ts
        self.cpus.add(rec["cpu"])
        if pid:
            self.task_names.setdefault(pid, rec.get("comm", ""))
        if ev == "sched_switch":
            self.on_switch(rec)
            return
        self.on_header(rec)
        if pid == 0 or ev not in _SLICE_EVENTS:
            self.instant(rec)
            return
        name = rec.get("name") or hex(rec.get("lock_addr", 0))
        if ev == "contention_begin":
            return
        if ev == "contention_end":
            wait = rec.get("wait_ns")
            if rec.get("ret", 0) == 0:
                self.held[(pid, rec.get("lock_addr"))] = ts
            if wait is not None:
                self.task_slice(pid, f"wait {name}", "lock", ts - wait, ts, _args(rec))
            else:
                self.instant(rec)
            return
        if ev == "lock_release":
            acquired = self.held.pop((pid, rec.get("lock_addr")), None)
            hold = rec.get("hold_ns")
            start = ts - hold if hold is not None else acquired
            if start is None:
                self.instant(rec)
            else:
                self.task_slice(pid, name, "lock", start, ts, _args(rec))
            return
        if ev == "mm_vmscan_direct_reclaim_begin":
            self.direct[pid] = (ts, _args(rec))
            return
        if ev == "mm_vmscan_direct_reclaim_end":
            opened = self.direct.pop(pid, None)
            if opened is None:
                self.instant(rec)
            else:
                self.task_slice(pid, "direct reclaim", "vmscan", opened[0], ts, {**opened[1], **_args(rec)})
            return
        if ev == "mm_vmscan_kswapd_wake":
            if pid not in self.kswapd:
                self.kswapd[pid] = (ts, _args(rec))
            return
        if ev == "mm_vmscan_kswapd_sleep":
            opened = self.kswapd.pop(pid, None)
            if opened is None:
                self.instant(rec)
            else:
                self.task_slice(pid, "kswapd awake", "vmscan", opened[0], ts, opened[1])
            return

    def finish(self) -> None:
        end = self.last_ts
        for cpu, (pid, comm, s) in sorted(self.cpu_cur.items()):
            self.cpu_slice(cpu, pid, comm, s, end)
        for pid, (s, args) in sorted(self.direct.items()):
            self.task_slice(pid, "direct reclaim", "vmscan", s, end, {**args, "unfinished": True})
        for pid, (s, args) in sorted(self.kswapd.items()):
            self.task_slice(pid, "kswapd awake", "vmscan", s, end, {**args, "unfinished": True})
        self.counters()

    # --- counters --------------------------------------------------------------------

    def counters(self) -> None:
        for ts, zones in self.run.zoneinfo_timeline():
            for z in zones:
                if z.get("managed", 0) <= 0 or "free" not in z:
                    continue
                args = {k: z[k] for k in ("free", "min", "low", "high") if k in z}
                self.emit(ts, {"name": f"free pages: node {z['node']} {z['zone']}", "ph": "C", "ts": _us(ts),
                               "pid": CPU_PID, "args": args})

    def dirty_counter(self, rec: dict[str, Any]) -> None:
        args = {k: rec[k] for k in ("nr_dirty", "nr_writeback", "background_thresh", "dirty_thresh")
                if k in rec}
        self.emit(rec["ts"], {"name": "dirty pages", "ph": "C", "ts": _us(rec["ts"]), "pid": CPU_PID,
                              "args": args})

    # --- metadata --------------------------------------------------------------------

    def metadata(self) -> list[dict[str, Any]]:
        m: list[dict[str, Any]] = [
            {"ph": "M", "name": "process_name", "pid": CPU_PID, "tid": 0, "args": {"name": "CPUs"}},
            {"ph": "M", "name": "process_sort_index", "pid": CPU_PID, "tid": 0, "args": {"sort_index": -1}},
        ]
        for cpu in sorted(self.cpus):
            m.append({"ph": "M", "name": "thread_name", "pid": CPU_PID, "tid": cpu, "args": {"name": f"CPU {cpu}"}})
            m.append({"ph": "M", "name": "thread_sort_index", "pid": CPU_PID, "tid": cpu,
                      "args": {"sort_index": cpu}})
        named: set[int] = set()
        for tid, comm in sorted(self.task_names.items()):
            pid = self.pid_of(tid)
            if pid not in named:
                named.add(pid)
                pcomm = self.task_names.get(pid, comm)
                m.append({"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": pcomm}})
            m.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": f"{comm}-{tid}"}})
            for k in range(1, len(self.lanes.get(tid, []))):
                m.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid + k * LANE_STRIDE,
                          "args": {"name": f"{comm}-{tid} lane {k}"}})
        return m


def build_trace(run: Run) -> dict[str, Any]:
    """The trace-event JSON object for ``run`` (see module doc)."""
    b = _Builder(run)
    n = 0
    for rec in run.iter_events():
        n += 1
        b.feed(rec)
        if rec["event"] == "global_dirty_state":
            b.dirty_counter(rec)
    b.finish()
    b.out.sort(key=lambda t: (t[0], t[1]))
    r = run.run
    return {
        "traceEvents": b.metadata() + [e for _, _, e in b.out],
        "displayTimeUnit": "ns",
        "otherData": {"scenario": r.get("scenario"), "seed": r.get("seed"), "virtual_ns": r.get("virtual_ns"),
                      "status": r.get("status"), "events": n, "source": "smpmem"},
    }


def export_perfetto(run: Run, path: Path) -> Any:
    """Write :func:`build_trace` to ``path``; returns an ExportResult."""
    from .export import ExportResult

    trace = build_trace(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(trace))
    n = trace["otherData"]["events"]
    return ExportResult(path, n, len(trace["traceEvents"]))
