"""The analysis report of a run directory: ``report.md``, ``report.html`` and ``plots/``.

:func:`analyze` reads the run once (one streaming pass over events.jsonl,
see ``_collect``), then builds the sections below from the gathered
figures, run.json and the /proc files in ``proc/`` and ``snapshots/``. A
section without data says so in one line (and which events or files would
fill it) rather than vanish.

Sections: input damage (if any), vmstat counters, reclaim, writeback, lock
contention, TLB and IPIs, page faults, zones (free pages vs watermarks),
page allocator and OOM, CPU activity, event counts. ``Report.data`` holds
the same figures as plain values for programs and tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..trace.gfp import TLB_FLUSH_REASON, WB_WORK_REASON
from ._collect import Collector, LockEv, TaskFaults, Who
from ._doc import Image, Pre, Report, Section  # noqa: F401  (Report re-exported)
from ._fmt import fmt_dur, pct, percentile, rate
from ._procfiles import LockRow, parse_lock_stat, render_lock_stat
from ._reader import Run, load
from . import plots as _plots

TOP_TASKS = 15
TOP_LOCKS = 10


def collect(run: Run) -> Collector:
    """One pass over the run's events (tolerant: damage lands in ``run.damage``)."""
    hint = max(run.virtual_ns, run.last_ts() or 0)
    return Collector(span_hint=hint).run(run.iter_events()).finish()


def analyze(run_dir: str | os.PathLike[str] | Run, out: str | os.PathLike[str] | None = None, *,
            plots: bool = True, write: bool = True) -> Report:
    """Analyse a run directory; write report.md, report.html and plots/ into ``out`` (default: the run dir)."""
    run = run_dir if isinstance(run_dir, Run) else load(run_dir)
    out_dir = Path(out) if out is not None else run.dir
    col = collect(run)
    zone_tl = run.zoneinfo_timeline()
    vmstat_tl = run.vmstat_timeline()
    images: dict[str, Path | _plots.Skipped] = {}
    if plots:
        pd = out_dir / "plots"
        images = {
            "zones": _plots.plot_zones(zone_tl, pd),
            "lru": _plots.plot_lru(vmstat_tl, pd),
            "dirty": _plots.plot_dirty(col, vmstat_tl, pd, run.virtual_ns),
            "kswapd": _plots.plot_reclaim_activity(col, pd),
            "lockwait": _plots.plot_lock_wait(col, pd),
            "cpu": _plots.plot_cpu_heatmap(col, pd),
        }
    rep = build_report(run, col, zone_tl, images)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.md").write_text(rep.to_markdown(base=out_dir))
        (out_dir / "report.html").write_text(rep.to_html())
    return rep


def _img(sec: Section, images: dict[str, Any], key: str, alt: str) -> None:
    im = images.get(key)
    if isinstance(im, Path):
        sec.blocks.append(Image(im, alt))
    elif isinstance(im, _plots.Skipped):
        sec.para(f"(Plot {im.name} not drawn: {im.reason}.)")


def build_report(run: Run, col: Collector, zone_tl: list[tuple[int, list[dict[str, Any]]]],
                 images: dict[str, Any]) -> Report:
    r = run.run
    vns = run.virtual_ns or col.last_ts
    facts = [("run directory", str(run.dir)), ("scenario", str(r.get("scenario", "?"))),
             ("seed", str(r.get("seed", "?"))),
             ("status", f"{r.get('status', '?')} ({r.get('reason', '')})"),
             ("virtual time", fmt_dur(vns)), ("wall time", f"{r.get('wall_s', '?')} s"),
             ("events", f"{col.n_events} read" + (f" of {r['events']} written" if "events" in r else "")),
             ("CPUs", str(run.ncpus or len(col.heat)))]
    if r.get("error"):
        facts.append(("error", str(r["error"])))
    data: dict[str, Any] = {"events": col.n_events, "counts": dict(col.counts),
                            "damage": [str(d) for d in run.damage], "virtual_ns": vns}
    sections = []
    if run.damage:
        sections.append(_damage_section(run, data))
    sections += [
        _counters_section(run, vns, data),
        _reclaim_section(run, col, images, data),
        _writeback_section(run, col, images, data),
        _locks_section(run, col, images, data),
        _tlb_section(run, col, data),
        _faults_section(run, col, data),
        _zones_section(zone_tl, images, data),
        _alloc_section(run, col, data),
        _cpu_section(run, col, images, data),
        _events_section(col, data),
    ]
    return Report(f"smpmem run report: {run.name}", facts, sections, data)


# --- sections -------------------------------------------------------------------------

def _damage_section(run: Run, data: dict[str, Any]) -> Section:
    s = Section("Damaged input")
    s.para(f"{len(run.damage)} line(s) of events.jsonl could not be read and were skipped; "
           "everything else was analysed.")
    s.table(["line", "problem"], [[d.line, d.reason] for d in run.damage[:50]], align="rl")
    if len(run.damage) > 50:
        s.para(f"… and {len(run.damage) - 50} more.")
    return s


def _counters_section(run: Run, vns: int, data: dict[str, Any]) -> Section:
    s = Section("vmstat counters")
    c = run.counters
    start = run.run.get("counters_start") or {}
    delta = {k: v - start.get(k, 0) for k, v in c.items()}
    data["counters"] = delta
    if not c:
        s.para("No vmstat counters in run.json (the model records none yet).")
        return s
    events = [(k, v) for k, v in delta.items() if not k.startswith("nr_") and v]
    gauges = [(k, v) for k, v in delta.items() if k.startswith("nr_") and v]
    zero = len(c) - len(events) - len(gauges)
    since = "since the start of the run" if start else "since boot (the model's counters start at 0)"
    if events:
        s.table(["counter", "delta", "per second"], [[k, v, rate(v, vns)] for k, v in events],
                caption=f"Event counters, {since}")
    else:
        s.para("Every event counter is zero.")
    if gauges:
        s.table(["counter", "at end"], [[k, v] for k, v in gauges], caption="State counters (nr_*) at the end")
    if zero:
        s.para(f"{zero} counter(s) are zero and not shown.")
    return s


def _eff(reclaimed: int, scanned: int) -> float | None:
    return reclaimed / scanned if scanned else None


def _who_data(w: Who) -> dict[str, Any]:
    sc, rc = w.scanned, w.reclaimed
    return {"scanned": list(sc), "reclaimed": list(rc), "scanned_total": sum(sc), "reclaimed_total": sum(rc),
            "efficiency": _eff(sum(rc), sum(sc)), "writes": list(w.writes)}


def _reclaim_section(run: Run, col: Collector, images: dict[str, Any], data: dict[str, Any]) -> Section:
    s = Section("Reclaim")
    c = run.counters
    kd, dd = _who_data(col.kswapd), _who_data(col.direct)
    lat = sorted(col.direct_lat)
    allocstall = sum(v for k, v in c.items() if k.startswith("allocstall")) if any(
        k.startswith("allocstall") for k in c) else None
    kd.update(wakes=col.kswapd_wakes, rewakes=col.kswapd_rewakes, sleeps=col.kswapd_sleeps,
              awake_ns=col.kswapd_awake_ns)
    dd.update(reclaims=len(lat), stall_p50_ns=percentile(lat, 50), stall_p99_ns=percentile(lat, 99),
              stall_max_ns=lat[-1] if lat else None, stall_total_ns=sum(lat),
              unmatched_end=col.direct_unmatched_end, in_progress=len(col.direct_open))
    data["reclaim"] = {"kswapd": kd, "direct": dd, "allocstall": allocstall,
                       "wakeup_kswapd": sum(col.wakeup_kswapd.values())}
    vm_keys = ("pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct")
    have_events = any(col.counts.get(e) for e in (
        "mm_vmscan_kswapd_wake", "mm_vmscan_kswapd_sleep", "mm_vmscan_direct_reclaim_begin",
        "mm_vmscan_lru_isolate", "mm_vmscan_lru_shrink_inactive", "mm_vmscan_write_folio",
        "mm_vmscan_wakeup_kswapd"))
    have_counters = any(c.get(k) for k in vm_keys) or bool(allocstall)
    if not have_events and not have_counters:
        s.para("No reclaim in this run: no mm_vmscan_* events and no pgscan/pgsteal/allocstall counts.")
        _img(s, images, "kswapd", "kswapd and direct reclaim activity")
        return s
    vns = run.virtual_ns or col.last_ts
    s.para(f"kswapd: {col.kswapd_wakes} wake(s), {col.kswapd_rewakes} re-wake(s) while awake, "
           f"{col.kswapd_sleeps} sleep(s); awake {fmt_dur(col.kswapd_awake_ns)} in total "
           f"({pct(col.kswapd_awake_ns, vns)} of the run). "
           f"Allocating tasks woke kswapd {sum(col.wakeup_kswapd.values())} time(s) (mm_vmscan_wakeup_kswapd).")

    def fig(w: dict[str, Any], key: str, i: int) -> int:
        return w[key][i]

    rows = [
        ["pages scanned, anon", fig(kd, "scanned", 0), fig(dd, "scanned", 0)],
        ["pages scanned, file", fig(kd, "scanned", 1), fig(dd, "scanned", 1)],
        ["pages scanned, total", kd["scanned_total"], dd["scanned_total"]],
        ["pages reclaimed, anon", fig(kd, "reclaimed", 0), fig(dd, "reclaimed", 0)],
        ["pages reclaimed, file", fig(kd, "reclaimed", 1), fig(dd, "reclaimed", 1)],
        ["pages reclaimed, total", kd["reclaimed_total"], dd["reclaimed_total"]],
        ["reclaim efficiency (reclaimed/scanned)", pct(kd["reclaimed_total"], kd["scanned_total"]),
         pct(dd["reclaimed_total"], dd["scanned_total"])],
        ["pages written by reclaim, anon (swap)", col.kswapd.writes[0], col.direct.writes[0]],
        ["pages written by reclaim, file", col.kswapd.writes[1], col.direct.writes[1]],
        ["dirty pages met (nr_dirty)", col.kswapd.nr_dirty, col.direct.nr_dirty],
        ["pages under writeback met (nr_writeback)", col.kswapd.nr_writeback, col.direct.nr_writeback],
        ["pages activated", col.kswapd.nr_activate, col.direct.nr_activate],
        ["pages kept, referenced (nr_ref_keep)", col.kswapd.nr_ref_keep, col.direct.nr_ref_keep],
        ["unmap failures", col.kswapd.nr_unmap_fail, col.direct.nr_unmap_fail],
    ]
    for key in ("pgscan", "pgsteal"):
        if f"{key}_kswapd" in c or f"{key}_direct" in c:
            rows.append([f"vmstat {key}_kswapd / {key}_direct", c.get(f"{key}_kswapd", 0), c.get(f"{key}_direct", 0)])
    src = "mm_vmscan_lru_isolate (inactive lists)" if (col.kswapd.isolate_events or col.direct.isolate_events) \
        else "mm_vmscan_lru_shrink_inactive"
    s.table(["", "kswapd", "direct reclaim"], rows,
            caption=f"Pages scanned from {src}; reclaimed from mm_vmscan_lru_shrink_inactive; "
                    "by comm (kswapd*) as trace-vmscan-postprocess.pl does")
    scanned = [kd["scanned"][i] + dd["scanned"][i] for i in (0, 1)]
    reclaimed = [kd["reclaimed"][i] + dd["reclaimed"][i] for i in (0, 1)]
    data["reclaim"]["balance"] = {"scanned": scanned, "reclaimed": reclaimed}
    s.para(f"Anon/file balance: scanned {pct(scanned[0], sum(scanned))} anon / {pct(scanned[1], sum(scanned))} "
           f"file; reclaimed {pct(reclaimed[0], sum(reclaimed))} anon / {pct(reclaimed[1], sum(reclaimed))} file.")
    stall_line = (f"Direct reclaim: {len(lat)} stall(s) (begin/end pairs per task)")
    if lat:
        stall_line += (f": p50 {fmt_dur(dd['stall_p50_ns'])}, p99 {fmt_dur(dd['stall_p99_ns'])}, "
                       f"max {fmt_dur(dd['stall_max_ns'])}, total {fmt_dur(dd['stall_total_ns'])} "
                       f"(percentiles: nearest rank)")
    stall_line += "."
    if allocstall is not None:
        stall_line += f" vmstat allocstall: {allocstall}."
    if col.direct_unmatched_end or col.direct_open:
        stall_line += (f" {col.direct_unmatched_end} end(s) without a begin, "
                       f"{len(col.direct_open)} reclaim(s) still in progress at the end of the log.")
    if col.memcg_reclaims:
        stall_line += f" Memcg reclaims: {col.memcg_reclaims}."
    s.para(stall_line)
    if col.direct_tasks:
        tasks = sorted(col.direct_tasks.items(), key=lambda kv: -kv[1].stall_total)
        s.table(["pid", "comm", "direct reclaims", "stalled", "max stall", "pages reclaimed", "woke kswapd"],
                [[pid, t.comm, t.count, fmt_dur(t.stall_total), fmt_dur(t.stall_max), t.reclaimed,
                  col.wakeup_kswapd.get(pid, 0)] for pid, t in tasks[:TOP_TASKS]],
                caption="Direct reclaimers, most stalled first", align="rlrrrrr")
    _img(s, images, "kswapd", "kswapd and direct reclaim activity")
    _img(s, images, "lru", "LRU list sizes")
    return s


def _writeback_section(run: Run, col: Collector, images: dict[str, Any], data: dict[str, Any]) -> Section:
    s = Section("Writeback")
    c = run.counters
    reclaim_w = {"kswapd": list(col.kswapd.writes), "direct": list(col.direct.writes)}
    flusher_pages = sum(col.flusher_pages.values())
    data["writeback"] = {"reclaim_writes": reclaim_w, "flusher_pages": dict(col.flusher_pages),
                         "flusher_works": dict(col.flusher_works), "nr_written": c.get("nr_written"),
                         "dirty_state_events": col.dirty_state_events}
    ev_names = ("mm_vmscan_write_folio", "mm_vmscan_writepage", "writeback_start", "writeback_written",
                "global_dirty_state", "balance_dirty_pages", "writeback_dirty_folio")
    if not any(col.counts.get(e) for e in ev_names) and not c.get("nr_written") and not c.get("nr_dirtied"):
        s.para("No writeback in this run: no reclaim writes, flusher work, dirty-state events or "
               "nr_dirtied/nr_written counts.")
        _img(s, images, "dirty", "dirty and writeback pages")
        return s
    rw = sum(reclaim_w["kswapd"]) + sum(reclaim_w["direct"])
    rows = [["kswapd (mm_vmscan_write_folio)", reclaim_w["kswapd"][0], reclaim_w["kswapd"][1], sum(reclaim_w["kswapd"])],
            ["direct reclaim (mm_vmscan_write_folio)", reclaim_w["direct"][0], reclaim_w["direct"][1],
             sum(reclaim_w["direct"])],
            ["flusher (writeback_start/_written)", "", "", flusher_pages]]
    s.table(["written by", "anon (swap)", "file", "pages"], rows, caption="Pages written, by whom")
    if col.flusher_works:
        s.table(["reason", "work items", "pages"],
                [[dict(WB_WORK_REASON).get(k, str(k)), v, col.flusher_pages.get(k, 0)]
                 for k, v in sorted(col.flusher_works.items())],
                caption="Flusher work by reason (writeback_written)")
    if "nr_written" in c:
        s.para(f"vmstat nr_written {c['nr_written']}, nr_dirtied {c.get('nr_dirtied', '-')}, "
               f"nr_vmscan_write {c.get('nr_vmscan_write', '-')}; pages written other than by reclaim: "
               f"{c['nr_written'] - rw}.")
    if col.dirty_state_events:
        peak_d = max((v for v in col.dirty_tl["nr_dirty"] if v is not None), default=0)
        peak_w = max((v for v in col.dirty_tl["nr_writeback"] if v is not None), default=0)
        th = next((v for v in reversed(col.dirty_tl["dirty_thresh"]) if v is not None), None)
        bg = next((v for v in reversed(col.dirty_tl["background_thresh"]) if v is not None), None)
        s.para(f"global_dirty_state: {col.dirty_state_events} event(s); peak dirty {peak_d} pages, peak under "
               f"writeback {peak_w} pages; last thresholds: background {bg}, dirty {th} pages.")
    if col.bdp_pauses:
        rows2 = sorted(col.bdp_pauses.items(), key=lambda kv: -kv[1][1])
        s.table(["pid", "comm", "balance_dirty_pages", "paused (ms)"],
                [[pid, col.comms.get(pid, ""), n, ms] for pid, (n, ms) in rows2[:TOP_TASKS]],
                caption="Dirty throttling (balance_dirty_pages)", align="rlrr")
    _img(s, images, "dirty", "dirty and writeback pages")
    return s


def lock_rows(run: Run, col: Collector | None) -> list[LockRow]:
    """Per class lock_stat figures: events fill in, proc/lock_stat overrides, run.json overrides (ns)."""
    rows: dict[str, LockRow] = {}
    if col is not None:
        for name, ev in col.locks.items():
            rows[name] = _row_from_events(name, ev)
    p = run.proc_dir / "lock_stat"
    if p.is_file():
        for pr in parse_lock_stat(p.read_text()):
            base = rows.setdefault(pr.name, LockRow(pr.name))
            for k, v in vars(pr).items():
                if v is not None:
                    setattr(base, k, v)
    mapping = {"con_bounces": "con_bounces", "contentions": "contentions", "acquisitions": "acquisitions",
               "acq_bounces": "acq_bounces", "waittime_total": "wait_total", "waittime_max": "wait_max",
               "waittime_min": "wait_min", "holdtime_total": "hold_total", "holdtime_max": "hold_max",
               "holdtime_min": "hold_min"}
    for name, f in run.locks.items():
        base = rows.setdefault(name, LockRow(name))
        for k, attr in mapping.items():
            if k in f:
                setattr(base, attr, f[k])
    for row in rows.values():  # the kernel prints 0.00 for the times of an empty lock_time (nr == 0)
        if row.contentions == 0:
            row.wait_min, row.wait_max, row.wait_total = row.wait_min or 0, row.wait_max or 0, row.wait_total or 0
        if row.acquisitions == 0:
            row.hold_min, row.hold_max, row.hold_total = row.hold_min or 0, row.hold_max or 0, row.hold_total or 0
    return sorted(rows.values(), key=lambda r: (-(r.wait_total or 0), -(r.contentions or 0), r.name))


def _row_from_events(name: str, ev: LockEv) -> LockRow:
    r = LockRow(name, contentions=ev.contentions)
    if ev.contentions:
        r.wait_total, r.wait_min, r.wait_max = ev.wait_total, ev.wait_min, ev.wait_max
    if ev.hold_seen:
        r.acquisitions, r.hold_total, r.hold_min, r.hold_max = ev.releases, ev.hold_total, ev.hold_min, ev.hold_max
    return r


def _locks_section(run: Run, col: Collector, images: dict[str, Any], data: dict[str, Any]) -> Section:
    s = Section("Lock contention")
    rows = lock_rows(run, col)
    data["locks"] = {r.name: {**vars(r), "wait_avg": r.wait_avg, "hold_avg": r.hold_avg} for r in rows}
    if not rows:
        s.para("No lock figures: run.json has no locks and no contention_*/lock_release events were logged.")
        return s
    s.para("In /proc/lock_stat format (times in µs), sorted by total wait time; '-' marks a figure "
           "neither run.json, proc/lock_stat nor the events recorded.")
    s.blocks.append(Pre(render_lock_stat(rows)))
    total_wait = sum(r.wait_total or 0 for r in rows)
    contended = [r for r in rows if r.contentions]
    if contended:
        s.table(["lock class", "contentions", "acquisitions", "contended", "wait total", "wait avg",
                 "wait max", "share of wait"],
                [[r.name, r.contentions, "-" if r.acquisitions is None else r.acquisitions,
                  pct(r.contentions or 0, r.acquisitions or 0), fmt_dur(r.wait_total), fmt_dur(r.wait_avg),
                  fmt_dur(r.wait_max), pct(r.wait_total or 0, total_wait)] for r in contended[:TOP_LOCKS]],
                caption="Most contended lock classes")
    else:
        s.para("No lock class was contended.")
    _img(s, images, "lockwait", "lock wait over time")
    return s


def _tlb_section(run: Run, col: Collector, data: dict[str, Any]) -> Section:
    s = Section("TLB flushes and IPIs")
    c = run.counters
    names = dict(TLB_FLUSH_REASON)
    data["tlb"] = {"reasons": {names.get(k, str(k)): {"flushes": v[0], "pages": v[1], "full": v[2]}
                               for k, v in col.tlb_reason.items()},
                   "ipi_sent": dict(col.ipi_sent), "ipi_received": dict(col.ipi_recv),
                   "ipi_handled": dict(col.ipi_handled), "flushes_per_cpu": dict(col.tlb_cpu)}
    tlb_counters = {k: v for k, v in c.items() if k.startswith("nr_tlb_")}
    if not col.tlb_reason and not col.ipi_sent and not col.ipi_handled and not tlb_counters:
        s.para("No TLB flushes or IPIs in this run (needs tlb_flush, ipi_send_cpu, ipi_entry events "
               "or nr_tlb_* counters).")
        return s
    if col.tlb_reason:
        s.table(["reason", "flushes", "pages (ranged)", "full flushes"],
                [[f"{names.get(k, '?')} ({k})", v[0], v[1], v[2]] for k, v in sorted(col.tlb_reason.items())],
                caption="tlb_flush by reason; shootdowns: 'remote ipi send' at the sender, "
                        "'remote shootdown' at each receiver")
    cpus = sorted(set(col.tlb_cpu) | set(col.ipi_sent) | set(col.ipi_recv) | set(col.ipi_handled))
    if cpus:
        s.table(["CPU", "TLB flushes", "IPIs sent", "IPIs received", "IPIs handled"],
                [[cpu, col.tlb_cpu.get(cpu, 0), col.ipi_sent.get(cpu, 0), col.ipi_recv.get(cpu, 0),
                  col.ipi_handled.get(cpu, 0)] for cpu in cpus],
                caption="Per CPU (sent from ipi_send_cpu's CPU, received by its cpu_target, handled: ipi_entry)",
                align="rrrrr")
    if tlb_counters:
        s.para("vmstat: " + ", ".join(f"{k} {v}" for k, v in tlb_counters.items()) + ".")
    return s


def tgid_map(run: Run) -> dict[int, int]:
    """Thread id → process id from run.json ``processes[].tids`` (empty when the run does not list them)."""
    out: dict[int, int] = {}
    for p in run.run.get("processes") or []:
        for tid in p.get("tids") or []:
            out[int(tid)] = int(p["pid"])
    return out


def _faults_section(run: Run, col: Collector, data: dict[str, Any]) -> Section:
    s = Section("Page faults")
    c = run.counters
    data["faults"] = {pid: {"comm": t.comm, "user": t.user, "kernel": t.kernel, "major": t.major,
                            "minor": t.user + t.kernel - t.major} for pid, t in col.faults.items()}
    cnt = {k: c[k] for k in ("pgfault", "pgmajfault") if k in c}
    if not col.faults and not cnt:
        s.para("No page faults in this run (needs page_fault_user/page_fault_kernel events or "
               "pgfault/pgmajfault counters).")
        return s
    tgid = tgid_map(run)
    per: dict[int, TaskFaults] = {}
    for pid, t in col.faults.items():  # per process when run.json names each process's threads
        key = tgid.get(pid, pid)
        agg = per.setdefault(key, TaskFaults(t.comm))
        agg.user, agg.kernel, agg.major = agg.user + t.user, agg.kernel + t.kernel, agg.major + t.major
    unit = "process (threads summed by run.json processes[].tids)" if tgid else "task (pid as logged)"
    if per:
        tasks = sorted(per.items(), key=lambda kv: (-(kv[1].user + kv[1].kernel), kv[0]))
        rows = [[pid, t.comm, t.user + t.kernel, t.user, t.kernel, t.user + t.kernel - t.major, t.major]
                for pid, t in tasks[:TOP_TASKS]]
        if len(tasks) > TOP_TASKS:
            rest = tasks[TOP_TASKS:]
            tot = sum(t.user + t.kernel for _, t in rest)
            maj = sum(t.major for _, t in rest)
            rows.append(["", f"{len(rest)} other tasks", tot, sum(t.user for _, t in rest),
                         sum(t.kernel for _, t in rest), tot - maj, maj])
        s.table(["pid", "comm", "faults", "user", "kernel", "minor", "major"], rows,
                caption=f"Faults per {unit}; major: the page had to be read (mm_filemap_add_to_page_cache, "
                        "or a swap-in read: block_bio_queue rwbs R) before the fault completed", align="rlrrrrr")
    total = sum(t.user + t.kernel for t in col.faults.values())
    major = sum(t.major for t in col.faults.values())
    line = f"From events: {total} fault(s), {major} major."
    if cnt:
        line += " vmstat: " + ", ".join(f"{k} {v}" for k, v in cnt.items()) + "."
    s.para(line)
    return s


def _zones_section(zone_tl: list[tuple[int, list[dict[str, Any]]]], images: dict[str, Any],
                   data: dict[str, Any]) -> Section:
    s = Section("Zones: free pages vs watermarks")
    data["zones"] = {}
    if not zone_tl:
        s.para("No zoneinfo in proc/ or snapshots/ (needs the zoneinfo file; set run.snapshot_interval "
               "for a timeline).")
        return s
    keys: list[tuple[int, str]] = []
    for _, zones in zone_tl:
        for z in zones:
            k = (z["node"], z["zone"])
            if z.get("managed", 0) > 0 and k not in keys:
                keys.append(k)
    rows = []
    for node, zname in keys:
        pts = [(ts, z) for ts, zones in zone_tl for z in zones if (z["node"], z["zone"]) == (node, zname)]
        lo_ts, lo = min(((ts, z) for ts, z in pts), key=lambda p: p[1].get("free", 0))
        end = pts[-1][1]
        below_low = sum(1 for _, z in pts if z.get("free", 0) < z.get("low", 0))
        below_min = sum(1 for _, z in pts if z.get("free", 0) < z.get("min", 0))
        key = f"Node {node} {zname}"
        data["zones"][key] = {"samples": len(pts), "free_end": end.get("free"), "free_lowest": lo.get("free"),
                              "lowest_at": lo_ts, "min": end.get("min"), "low": end.get("low"),
                              "high": end.get("high"), "managed": end.get("managed"),
                              "below_low": below_low, "below_min": below_min,
                              "timeline": [(ts, z.get("free"), z.get("min"), z.get("low"), z.get("high"))
                                           for ts, z in pts]}
        rows.append([key, end.get("managed"), end.get("min"), end.get("low"), end.get("high"), pts[0][1].get("free"),
                     end.get("free"), f"{lo.get('free')} at {fmt_dur(lo_ts)}", f"{below_low}/{len(pts)}",
                     f"{below_min}/{len(pts)}"])
    s.table(["zone", "managed", "min", "low", "high", "free (first)", "free (end)", "lowest free",
             "samples < low", "samples < min"], rows,
            caption=f"From zoneinfo at {len(zone_tl)} time(s) (snapshots and the end); pages of 4 KiB")
    if len(zone_tl) > 2:
        step = max(1, len(zone_tl) // 12)
        picks = zone_tl[::step]
        if picks[-1] is not zone_tl[-1]:
            picks.append(zone_tl[-1])
        trows = []
        for ts, zones in picks:
            row: list[Any] = [fmt_dur(ts)]
            for k in keys:
                z = next((z for z in zones if (z["node"], z["zone"]) == k), None)
                if z is None:
                    row.append("")
                    continue
                mark = " <min" if z.get("free", 0) < z.get("min", 0) else " <low" if z.get("free", 0) < z.get("low", 0) else ""
                row.append(f"{z.get('free')}{mark}")
            trows.append(row)
        multi = len({n for n, _ in keys}) > 1
        s.table(["time"] + [f"node {n} {z} free" if multi else f"{z} free" for n, z in keys], trows,
                caption="Timeline (sampled; <low, <min: below that watermark)")
    _img(s, images, "zones", "free pages vs watermarks per zone")
    return s


def _alloc_section(run: Run, col: Collector, data: dict[str, Any]) -> Section:
    s = Section("Page allocator and OOM")
    data["alloc"] = {"pages_allocated": col.pages_alloc, "failures": col.alloc_fail, "pages_freed": col.pages_freed,
                     "oom_victims": [list(v) for v in col.oom_victims]}
    names = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_alloc_zone_locked",
             "mm_page_pcpu_drain", "mm_page_alloc_extfrag", "mark_victim")
    if not any(col.counts.get(n) for n in names):
        s.para("No page allocator or OOM events in this run (needs kmem:mm_page_* and oom:mark_victim).")
        return s
    s.table(["figure", "value"],
            [["pages allocated (mm_page_alloc, 2^order each)", col.pages_alloc],
             ["failed allocations (pfn -1)", col.alloc_fail],
             ["pages freed (mm_page_free, mm_page_free_batched)", col.pages_freed],
             ["zone->lock refills (mm_page_alloc_zone_locked)", col.counts.get("mm_page_alloc_zone_locked", 0)],
             ["pages drained from pcp lists (mm_page_pcpu_drain)", col.counts.get("mm_page_pcpu_drain", 0)],
             ["fragmentation fallbacks (mm_page_alloc_extfrag)", col.counts.get("mm_page_alloc_extfrag", 0)]])
    if col.oom_victims:
        s.table(["time", "pid", "comm", "anon-rss (kB)"],
                [[fmt_dur(ts), pid, comm, rss] for ts, pid, comm, rss in col.oom_victims],
                caption="OOM victims (mark_victim)", align="rrlr")
    return s


def _cpu_section(run: Run, col: Collector, images: dict[str, Any], data: dict[str, Any]) -> Section:
    s = Section("CPU activity")
    data["cpus"] = {"events": dict(col.cpu_events), "context_switches": dict(col.ctxt)}
    if not col.cpu_events:
        s.para("No events, so no CPU activity to show.")
        return s
    s.table(["CPU", "events", "context switches"],
            [[cpu, n, col.ctxt.get(cpu, 0)] for cpu, n in sorted(col.cpu_events.items())], align="rrr")
    if col.non_monotonic:
        s.para(f"Note: {col.non_monotonic} event(s) had a timestamp earlier than the one before.")
    _img(s, images, "cpu", "events per CPU over time")
    return s


def _events_section(col: Collector, data: dict[str, Any]) -> Section:
    s = Section("Events")
    if not col.counts:
        s.para("No events in events.jsonl (missing file, or event logging was off).")
        return s
    s.table(["event", "count", "share"],
            [[k, v, pct(v, col.n_events)] for k, v in sorted(col.counts.items(), key=lambda kv: (-kv[1], kv[0]))])
    return s
