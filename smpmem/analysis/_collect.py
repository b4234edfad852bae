"""One streaming pass over events.jsonl that gathers every figure the report and plots need.

:class:`Collector` dispatches each record by event name to a small handler
(a dict lookup and a bound method call); events without a handler are only
counted. Nothing per event is kept except what a figure needs: direct
reclaim latencies, kswapd awake spans, and time-binned arrays on a shared
:class:`Timeline` whose bin width doubles as time grows, so memory does not
depend on the length of the log.

Attribution follows the kernel's trace-vmscan-postprocess.pl: a reclaim
event whose ``comm`` starts with ``kswapd`` is kswapd's, any other is direct
reclaim by the allocating task; pages scanned count ``mm_vmscan_lru_isolate``
``nr_scanned`` on the inactive lists (``lru_shrink_inactive``'s
``nr_scanned`` when no isolate events were logged), pages reclaimed count
``mm_vmscan_lru_shrink_inactive`` ``nr_reclaimed``; anon or file by the
``lru`` or by ``RECLAIM_WB_FILE`` in ``reclaim_flags``.

A page fault is *major* when, between it and the end of its handling, the
same task had to read the page, as the kernel counts ``pgmajfault``: a
page-cache miss adds the page to the cache (``mm_filemap_add_to_page_cache``,
filemap_fault), or a swap-cache miss reads it from swap
(``block_bio_queue`` of a read that is neither readahead nor metadata:
``swap_read_folio`` submits a plain ``REQ_OP_READ``, rwbs ``R``; see
:func:`is_swapin_read`). The kernel has no swap-in tracepoint; the block
layer's is the one a swap-in always passes. When the fault logged the
kernel's ``mm_filemap_fault`` (which names the faulting file page), only
the add of *that* page makes it major: a minor fault on a page marked for
readahead adds the pages after it (async readahead) without being major.
Handling ends at the task's
next fault or at an ``rss_stat`` that grows one of its own RSS counters
(``curr`` 1, file, anon or shmem pages: the fault mapped the page); an
``rss_stat`` that shrinks a counter, as direct reclaim inside the fault
logs when it unmaps the task's own pages, does not end it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..trace.gfp import (LRU_INACTIVE_ANON, LRU_INACTIVE_FILE, MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES,
                         RECLAIM_WB_FILE, RECLAIM_WB_SYNC)

NBINS = 240

# A fault is major if its task logs one of these before the fault completes (see module doc);
# block_bio_queue only for a swap-in read (is_swapin_read).
MAJOR_FAULT_MARKERS = frozenset({"mm_filemap_add_to_page_cache", "block_bio_queue"})
# Events that end the handling of a task's fault without a read: an rss_stat growing a counter (see module doc).
FAULT_DONE = frozenset({"rss_stat"})
# rss_stat members a fault grows when it maps the page (MM_SWAPENTS only shrinks on a swap-in).
FAULT_RSS_MEMBERS = frozenset({MM_FILEPAGES, MM_ANONPAGES, MM_SHMEMPAGES})


def is_swapin_read(rwbs: str) -> bool:
    """A ``block_bio_queue`` ``rwbs`` of a swap-in: a read (R) without readahead (A) or metadata (M) flags.

    ``swap_read_folio`` (mm/page_io.c) submits ``REQ_OP_READ`` (``RS`` when
    synchronous), also for swap readahead's neighbours; page-cache
    readahead, which a *minor* file fault can start, carries
    ``REQ_RAHEAD``, and buffer-head metadata reads ``REQ_META``.
    """
    return "R" in rwbs and "A" not in rwbs and "M" not in rwbs

FULL_FLUSH = (-1, 2**64 - 1)  # tlb_flush pages of a full flush (TLB_FLUSH_ALL), signed or not


def nice_width(span: int, n: int) -> int:
    """The smallest 1, 2 or 5 × 10^k ns bin width that fits ``span`` in ``n`` bins."""
    need = max(1, -(-span // n))
    k = 1
    while True:
        for m in (1, 2, 5):
            if m * k >= need:
                return m * k
        k *= 10


class Timeline:
    """``n`` time bins of one width for every registered array; the width doubles when ts passes the end.

    Doubling merges neighbouring bins in every array (``sum``: added,
    ``last``: the later non-None value, ``max``: the larger), so arrays stay
    aligned and their size fixed.
    """

    def __init__(self, width: int, n: int = NBINS) -> None:
        self.w = max(1, int(width))
        self.n = n
        self._arrays: list[tuple[list[Any], str]] = []

    def array(self, kind: str = "sum") -> list[Any]:
        arr: list[Any] = [0 if kind == "sum" else None] * self.n
        self._arrays.append((arr, kind))
        return arr

    def grow(self, ts: int) -> None:
        """Double the width until ``ts`` falls in the last bin or before."""
        while ts // self.w >= self.n:
            self.w *= 2
            half = self.n // 2
            for arr, kind in self._arrays:
                for i in range(half):
                    a, b = arr[2 * i], arr[2 * i + 1]
                    if kind == "sum":
                        arr[i] = a + b
                    elif kind == "last":
                        arr[i] = b if b is not None else a
                    else:
                        arr[i] = a if b is None else b if a is None else max(a, b)
                fill = 0 if kind == "sum" else None
                for i in range(half, self.n):
                    arr[i] = fill

    def edges(self) -> list[int]:
        """Start time (ns) of each bin."""
        return [i * self.w for i in range(self.n)]


@dataclass
class Who:
    """Reclaim figures of one reclaimer kind (kswapd or direct), split anon/file."""

    scanned_isolate: list[int] = field(default_factory=lambda: [0, 0])  # [anon, file]
    scanned_inactive: list[int] = field(default_factory=lambda: [0, 0])
    reclaimed: list[int] = field(default_factory=lambda: [0, 0])
    writes: list[int] = field(default_factory=lambda: [0, 0])
    sync_writes: int = 0
    nr_taken: int = 0
    nr_dirty: int = 0
    nr_writeback: int = 0
    nr_immediate: int = 0
    nr_activate: int = 0
    nr_ref_keep: int = 0
    nr_unmap_fail: int = 0
    active_taken: int = 0
    active_deactivated: int = 0
    active_referenced: int = 0
    isolate_events: int = 0
    inactive_events: int = 0

    @property
    def scanned(self) -> list[int]:
        """Pages scanned [anon, file]: lru_isolate on inactive lists, else lru_shrink_inactive."""
        return self.scanned_isolate if self.isolate_events else self.scanned_inactive


@dataclass
class LockEv:
    """Per lock class figures from contention_end and lock_release events (ns)."""

    contentions: int = 0
    begins: int = 0
    failed: int = 0  # contention_end with ret != 0
    wait_total: int = 0
    wait_min: int | None = None
    wait_max: int = 0
    releases: int = 0
    hold_total: int = 0
    hold_min: int | None = None
    hold_max: int = 0
    hold_seen: bool = False  # a lock_release carried hold_ns


@dataclass
class TaskFaults:
    comm: str
    user: int = 0
    kernel: int = 0
    major: int = 0


@dataclass
class DirectTask:
    comm: str
    count: int = 0
    stall_total: int = 0
    stall_max: int = 0
    reclaimed: int = 0
    wakeups: int = 0


class Collector:
    """Figures gathered in one pass; feed records with :meth:`feed` (or :meth:`run`)."""

    def __init__(self, span_hint: int = 0, nbins: int = NBINS) -> None:
        self.tl = Timeline(nice_width(span_hint, nbins) if span_hint else 1000, nbins)
        self.n_events = 0
        self.counts: dict[str, int] = {}
        self.first_ts: int | None = None
        self.last_ts = 0
        self.non_monotonic = 0
        self.comms: dict[int, str] = {}
        self.cpu_events: dict[int, int] = {}
        self.heat: dict[int, list[int]] = {}
        # reclaim
        self.kswapd = Who()
        self.direct = Who()
        self.kswapd_wakes = 0
        self.kswapd_rewakes = 0
        self.kswapd_sleeps = 0
        self.kswapd_awake: dict[int, tuple[int, int]] = {}  # pid -> (start ts, nid)
        self.kswapd_spans: list[tuple[int, str, int, int, int]] = []  # (pid, comm, nid, start, end)
        self.kswapd_awake_ns = 0
        self.wakeup_kswapd: dict[int, int] = defaultdict(int)
        self.direct_open: dict[int, tuple[int, int]] = {}  # pid -> (begin ts, order)
        self.direct_lat: list[int] = []
        self.direct_tasks: dict[int, DirectTask] = {}
        self.direct_unmatched_end = 0
        self.direct_spans: list[tuple[int, int, int]] = []  # (pid, begin, end)
        self.memcg_reclaims = 0
        # writeback
        self.wb_start: dict[tuple[int, str], tuple[int, int]] = {}  # (pid, bdi) -> (nr_pages, reason)
        self.flusher_pages: dict[int, int] = defaultdict(int)  # reason -> pages
        self.flusher_works: dict[int, int] = defaultdict(int)
        self.flusher_comms: dict[str, int] = defaultdict(int)
        self.dirty_state_events = 0
        self.dirty_tl = {k: self.tl.array("last") for k in
                         ("nr_dirty", "nr_writeback", "background_thresh", "dirty_thresh", "dirty_limit")}
        self.bdp_pauses: dict[int, list[int]] = {}  # pid -> [events, pause ms total]
        # locks
        self.locks: dict[str, LockEv] = {}
        self.lock_wait_tl: dict[str, list[int]] = {}
        # tlb / ipi
        self.tlb_reason: dict[int, list[int]] = {}  # reason -> [flushes, pages, full]
        self.tlb_cpu: dict[int, int] = defaultdict(int)
        self.ipi_sent: dict[int, int] = defaultdict(int)
        self.ipi_recv: dict[int, int] = defaultdict(int)
        self.ipi_handled: dict[int, int] = defaultdict(int)
        # faults
        self.faults: dict[int, TaskFaults] = {}
        self._fault_open: dict[int, TaskFaults] = {}
        self._rss_last: dict[tuple[Any, int], int] = {}  # (mm_id, member) → last rss_stat size
        self._fault_file: dict[int, tuple[Any, Any, Any]] = {}  # pid → (s_dev, i_ino, index) of mm_filemap_fault
        # page allocator
        self.pages_alloc = 0
        self.alloc_fail = 0
        self.pages_freed = 0
        self.oom_victims: list[tuple[int, int, str, int]] = []  # (ts, pid, comm, anon_rss kB)
        self.ctxt: dict[int, int] = defaultdict(int)

        self.handlers: dict[str, Callable[[dict[str, Any], int], None]] = {
            "mm_vmscan_kswapd_wake": self._kswapd_wake,
            "mm_vmscan_kswapd_sleep": self._kswapd_sleep,
            "mm_vmscan_wakeup_kswapd": self._wakeup_kswapd,
            "mm_vmscan_direct_reclaim_begin": self._direct_begin,
            "mm_vmscan_direct_reclaim_end": self._direct_end,
            "mm_vmscan_memcg_reclaim_begin": self._memcg_begin,
            "mm_vmscan_lru_isolate": self._lru_isolate,
            "mm_vmscan_lru_shrink_inactive": self._shrink_inactive,
            "mm_vmscan_lru_shrink_active": self._shrink_active,
            "mm_vmscan_write_folio": self._write_folio,
            "mm_vmscan_writepage": self._write_folio,
            "writeback_start": self._wb_start,
            "writeback_written": self._wb_written,
            "global_dirty_state": self._dirty_state,
            "balance_dirty_pages": self._bdp,
            "contention_begin": self._contention_begin,
            "contention_end": self._contention_end,
            "lock_release": self._lock_release,
            "tlb_flush": self._tlb_flush,
            "ipi_send_cpu": self._ipi_send,
            "ipi_entry": self._ipi_entry,
            "page_fault_user": self._fault_user,
            "page_fault_kernel": self._fault_kernel,
            "rss_stat": self._fault_done,
            "mm_filemap_fault": self._filemap_fault,
            "mm_page_alloc": self._page_alloc,
            "mm_page_free": self._page_free,
            "mm_page_free_batched": self._page_free_batched,
            "mark_victim": self._mark_victim,
            "sched_switch": self._sched_switch,
        }
        for ev in MAJOR_FAULT_MARKERS:
            self.handlers[ev] = self._major_marker

    # --- the loop -----------------------------------------------------------------

    def run(self, records: Iterable[dict[str, Any]]) -> "Collector":
        """Feed every record (the hot loop: keep it lean)."""
        tl = self.tl
        w, n = tl.w, tl.n
        counts, heat, cpu_events, comms, handlers = self.counts, self.heat, self.cpu_events, self.comms, self.handlers
        last = self.last_ts
        nev = 0
        for r in records:
            nev += 1
            ev = r["event"]
            counts[ev] = counts.get(ev, 0) + 1
            ts = r["ts"]
            if ts < last:
                self.non_monotonic += 1
            else:
                last = ts
            b = ts // w
            if b >= n:
                tl.grow(ts)
                w = tl.w
                b = ts // w
            cpu = r["cpu"]
            row = heat.get(cpu)
            if row is None:
                row = heat[cpu] = tl.array()
                cpu_events[cpu] = 0
            row[b] += 1
            cpu_events[cpu] += 1
            pid = r.get("pid")
            if pid is not None and pid not in comms:
                comms[pid] = r.get("comm") or ""
            h = handlers.get(ev)
            if h is not None:
                h(r, b)
            if self.first_ts is None:
                self.first_ts = ts
        self.n_events += nev
        self.last_ts = last
        return self

    def finish(self) -> "Collector":
        """Close spans still open at the end of the log (kswapd awake, direct reclaim in progress)."""
        for pid, (start, nid) in sorted(self.kswapd_awake.items()):
            self.kswapd_spans.append((pid, self.comms.get(pid, ""), nid, start, self.last_ts))
            self.kswapd_awake_ns += self.last_ts - start
        self.kswapd_awake.clear()
        return self

    # --- reclaim --------------------------------------------------------------------

    def _who(self, r: dict[str, Any]) -> Who:
        return self.kswapd if str(r.get("comm", "")).startswith("kswapd") else self.direct

    def _kswapd_wake(self, r: dict[str, Any], b: int) -> None:
        pid = r["pid"]
        if pid in self.kswapd_awake:
            self.kswapd_rewakes += 1
            return
        self.kswapd_wakes += 1
        self.kswapd_awake[pid] = (r["ts"], r.get("nid", 0))

    def _kswapd_sleep(self, r: dict[str, Any], b: int) -> None:
        self.kswapd_sleeps += 1
        pid = r["pid"]
        opened = self.kswapd_awake.pop(pid, None)
        if opened is not None:
            start, nid = opened
            self.kswapd_spans.append((pid, r.get("comm", ""), nid, start, r["ts"]))
            self.kswapd_awake_ns += r["ts"] - start

    def _wakeup_kswapd(self, r: dict[str, Any], b: int) -> None:
        self.wakeup_kswapd[r["pid"]] += 1

    def _task(self, r: dict[str, Any]) -> DirectTask:
        pid = r["pid"]
        t = self.direct_tasks.get(pid)
        if t is None:
            t = self.direct_tasks[pid] = DirectTask(r.get("comm", ""))
        return t

    def _direct_begin(self, r: dict[str, Any], b: int) -> None:
        self.direct_open[r["pid"]] = (r["ts"], r.get("order", 0))

    def _direct_end(self, r: dict[str, Any], b: int) -> None:
        opened = self.direct_open.pop(r["pid"], None)
        if opened is None:
            self.direct_unmatched_end += 1
            return
        lat = r["ts"] - opened[0]
        self.direct_lat.append(lat)
        self.direct_spans.append((r["pid"], opened[0], r["ts"]))
        t = self._task(r)
        t.count += 1
        t.stall_total += lat
        t.stall_max = max(t.stall_max, lat)
        t.reclaimed += r.get("nr_reclaimed", 0)

    def _memcg_begin(self, r: dict[str, Any], b: int) -> None:
        self.memcg_reclaims += 1

    def _lru_isolate(self, r: dict[str, Any], b: int) -> None:
        who = self._who(r)
        who.isolate_events += 1
        lru = r.get("lru")
        who.nr_taken += r.get("nr_taken", 0)
        if lru == LRU_INACTIVE_ANON:
            who.scanned_isolate[0] += r.get("nr_scanned", 0)
        elif lru == LRU_INACTIVE_FILE:
            who.scanned_isolate[1] += r.get("nr_scanned", 0)

    def _shrink_inactive(self, r: dict[str, Any], b: int) -> None:
        who = self._who(r)
        who.inactive_events += 1
        f = 1 if r.get("reclaim_flags", 0) & RECLAIM_WB_FILE else 0
        who.scanned_inactive[f] += r.get("nr_scanned", 0)
        who.reclaimed[f] += r.get("nr_reclaimed", 0)
        who.nr_dirty += r.get("nr_dirty", 0)
        who.nr_writeback += r.get("nr_writeback", 0)
        who.nr_immediate += r.get("nr_immediate", 0)
        who.nr_activate += r.get("nr_activate0", 0) + r.get("nr_activate1", 0)
        who.nr_ref_keep += r.get("nr_ref_keep", 0)
        who.nr_unmap_fail += r.get("nr_unmap_fail", 0)

    def _shrink_active(self, r: dict[str, Any], b: int) -> None:
        who = self._who(r)
        who.active_taken += r.get("nr_taken", 0)
        who.active_deactivated += r.get("nr_deactivated", 0)
        who.active_referenced += r.get("nr_referenced", 0)

    def _write_folio(self, r: dict[str, Any], b: int) -> None:
        who = self._who(r)
        flags = r.get("reclaim_flags", 0)
        who.writes[1 if flags & RECLAIM_WB_FILE else 0] += 1
        if flags & RECLAIM_WB_SYNC:
            who.sync_writes += 1

    # --- writeback ------------------------------------------------------------------

    def _wb_start(self, r: dict[str, Any], b: int) -> None:
        self.wb_start[(r["pid"], r.get("name", ""))] = (r.get("nr_pages", 0), r.get("reason", -1))

    def _wb_written(self, r: dict[str, Any], b: int) -> None:
        opened = self.wb_start.pop((r["pid"], r.get("name", "")), None)
        reason = r.get("reason", -1)
        self.flusher_works[reason] += 1
        self.flusher_comms[r.get("comm", "")] += 1
        if opened is not None and opened[0] >= r.get("nr_pages", 0):
            self.flusher_pages[reason] += opened[0] - r.get("nr_pages", 0)

    def _dirty_state(self, r: dict[str, Any], b: int) -> None:
        self.dirty_state_events += 1
        for k, arr in self.dirty_tl.items():
            arr[b] = r.get(k)

    def _bdp(self, r: dict[str, Any], b: int) -> None:
        e = self.bdp_pauses.get(r["pid"])
        if e is None:
            e = self.bdp_pauses[r["pid"]] = [0, 0]
        e[0] += 1
        e[1] += max(0, r.get("pause", 0))

    # --- locks ----------------------------------------------------------------------

    def _lock(self, name: str) -> LockEv:
        s = self.locks.get(name)
        if s is None:
            s = self.locks[name] = LockEv()
        return s

    def _contention_begin(self, r: dict[str, Any], b: int) -> None:
        self._lock(r.get("name") or hex(r.get("lock_addr", 0))).begins += 1

    def _contention_end(self, r: dict[str, Any], b: int) -> None:
        name = r.get("name") or hex(r.get("lock_addr", 0))
        s = self._lock(name)
        if r.get("ret", 0):
            s.failed += 1
            return
        s.contentions += 1
        w = r.get("wait_ns")
        if w is None:
            return
        s.wait_total += w
        if s.wait_min is None or w < s.wait_min:
            s.wait_min = w
        if w > s.wait_max:
            s.wait_max = w
        arr = self.lock_wait_tl.get(name)
        if arr is None:
            arr = self.lock_wait_tl[name] = self.tl.array()
        arr[b] += w

    def _lock_release(self, r: dict[str, Any], b: int) -> None:
        s = self._lock(r.get("name") or hex(r.get("lock_addr", 0)))
        s.releases += 1
        h = r.get("hold_ns")
        if h is None:
            return
        s.hold_seen = True
        s.hold_total += h
        if s.hold_min is None or h < s.hold_min:
            s.hold_min = h
        if h > s.hold_max:
            s.hold_max = h

    # --- tlb / ipi ------------------------------------------------------------------

    def _tlb_flush(self, r: dict[str, Any], b: int) -> None:
        reason = r.get("reason", -1)
        e = self.tlb_reason.get(reason)
        if e is None:
            e = self.tlb_reason[reason] = [0, 0, 0]
        e[0] += 1
        pages = r.get("pages", 0)
        if pages in FULL_FLUSH:
            e[2] += 1
        else:
            e[1] += pages
        self.tlb_cpu[r["cpu"]] += 1

    def _ipi_send(self, r: dict[str, Any], b: int) -> None:
        self.ipi_sent[r["cpu"]] += 1
        target = r.get("cpu_target")
        if target is not None:
            self.ipi_recv[target] += 1

    def _ipi_entry(self, r: dict[str, Any], b: int) -> None:
        self.ipi_handled[r["cpu"]] += 1

    # --- faults ---------------------------------------------------------------------

    def _fault_task(self, r: dict[str, Any]) -> TaskFaults:
        pid = r["pid"]
        t = self.faults.get(pid)
        if t is None:
            t = self.faults[pid] = TaskFaults(r.get("comm", ""))
        self._fault_open[pid] = t
        self._fault_file.pop(pid, None)
        return t

    def _fault_user(self, r: dict[str, Any], b: int) -> None:
        self._fault_task(r).user += 1

    def _fault_kernel(self, r: dict[str, Any], b: int) -> None:
        self._fault_task(r).kernel += 1

    def _fault_done(self, r: dict[str, Any], b: int) -> None:
        """An ``rss_stat`` ends the task's fault if it grows one of the task's own page counters."""
        member = r.get("member")
        key = (r.get("mm_id"), member)
        size = r.get("size", 0)
        last = self._rss_last.get(key)
        self._rss_last[key] = size
        if r.get("curr", 1) and member in FAULT_RSS_MEMBERS and (last is None or size > last):
            self._fault_open.pop(r["pid"], None)

    def _filemap_fault(self, r: dict[str, Any], b: int) -> None:
        """The faulting file page of the task's open fault (filemap_fault's tracepoint)."""
        if r["pid"] in self._fault_open:
            self._fault_file[r["pid"]] = (r.get("s_dev"), r.get("i_ino"), r.get("index"))

    def _major_marker(self, r: dict[str, Any], b: int) -> None:
        ev = r["event"]
        if ev == "block_bio_queue":
            if not is_swapin_read(r.get("rwbs", "")):
                return
        else:  # mm_filemap_add_to_page_cache: the faulting page itself, when mm_filemap_fault named it
            want = self._fault_file.get(r["pid"])
            if want is not None and want != (r.get("s_dev"), r.get("i_ino"), r.get("index")):
                return
        t = self._fault_open.pop(r["pid"], None)
        if t is not None:
            t.major += 1

    # --- page allocator, oom, sched ---------------------------------------------

    def _page_alloc(self, r: dict[str, Any], b: int) -> None:
        if r.get("pfn", 0) == -1:
            self.alloc_fail += 1
        else:
            self.pages_alloc += 1 << r.get("order", 0)

    def _page_free(self, r: dict[str, Any], b: int) -> None:
        self.pages_freed += 1 << r.get("order", 0)

    def _page_free_batched(self, r: dict[str, Any], b: int) -> None:
        self.pages_freed += 1

    def _mark_victim(self, r: dict[str, Any], b: int) -> None:
        self.oom_victims.append((r["ts"], r.get("task_pid", r["pid"]), r.get("task_comm", r.get("comm", "")),
                                 r.get("anon_rss", 0)))

    def _sched_switch(self, r: dict[str, Any], b: int) -> None:
        self.ctxt[r["cpu"]] += 1
