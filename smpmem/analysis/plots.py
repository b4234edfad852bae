"""The report's plots: PNG files drawn with matplotlib's Agg backend (no display needed).

Each ``plot_*`` function writes one PNG into the given directory and returns
its path, or returns a :class:`Skipped` saying which data was missing — a
plot is never drawn from nothing. Figures are built with
``matplotlib.figure.Figure`` (no pyplot global state), 100 dpi, time on the
x axis in µs, ms or s of virtual time depending on the span.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._collect import Collector
from ._fmt import time_unit

DPI = 100
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


@dataclass(frozen=True)
class Skipped:
    """A plot not drawn, and why."""

    name: str
    reason: str


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, layout="constrained")


def _save(fig: Any, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    p = out / name
    fig.savefig(p, dpi=DPI, facecolor="white")
    return p


def plot_zones(zone_tl: list[tuple[int, list[dict[str, Any]]]], out: Path) -> Path | Skipped:
    """Free pages against min/low/high over time, one panel per populated zone (from zoneinfo snapshots)."""
    name = "zones.png"
    if len(zone_tl) < 2:
        return Skipped(name, "needs zoneinfo at two or more times (set run.snapshot_interval)")
    keys: list[tuple[int, str]] = []
    for _, zones in zone_tl:
        for z in zones:
            k = (z["node"], z["zone"])
            if z.get("managed", 0) > 0 and "free" in z and k not in keys:
                keys.append(k)
    if not keys:
        return Skipped(name, "no populated zone in zoneinfo")
    span = zone_tl[-1][0] - zone_tl[0][0]
    unit, div = time_unit(max(span, zone_tl[-1][0]))
    fig = _figure(10, 2.6 * len(keys) + 0.6)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (node, zname) in zip(axes, keys):
        series: dict[str, list[tuple[float, int]]] = {k: [] for k in ("free", "min", "low", "high")}
        for ts, zones in zone_tl:
            for z in zones:
                if (z["node"], z["zone"]) == (node, zname):
                    for k in series:
                        if k in z:
                            series[k].append((ts / div, z[k]))
        styles = {"free": dict(color=COLORS[0], lw=2.2, label="free"),
                  "high": dict(color=COLORS[2], lw=1.4, ls="--", label="high"),
                  "low": dict(color=COLORS[1], lw=1.4, ls="--", label="low"),
                  "min": dict(color=COLORS[3], lw=1.4, ls="--", label="min")}
        for k in ("free", "high", "low", "min"):
            pts = series[k]
            if pts:
                ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", **styles[k])
        if series["min"]:
            ax.axhspan(0, series["min"][-1][1], color=COLORS[3], alpha=0.06)
        ax.set_title(f"Node {node}, zone {zname}", fontsize=10, loc="left")
        ax.set_ylabel("pages (4 KiB)")
        top = max((p[1] for k in series for p in series[k]), default=1)
        ax.set_ylim(0, top * 1.25 + 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, ncol=4)
    axes[-1].set_xlabel(f"virtual time ({unit})")
    fig.suptitle("Free pages vs watermarks per zone", fontsize=12, fontweight="bold")
    return _save(fig, out, name)


LRU_KEYS = (("nr_active_anon", "active anon"), ("nr_inactive_anon", "inactive anon"),
            ("nr_active_file", "active file"), ("nr_inactive_file", "inactive file"))


def plot_lru(vmstat_tl: list[tuple[int, dict[str, int]]], out: Path) -> Path | Skipped:
    """Active and inactive LRU sizes, anon and file, over time (from vmstat snapshots)."""
    name = "lru.png"
    pts = [(ts, v) for ts, v in vmstat_tl if any(k in v for k, _ in LRU_KEYS)]
    if len(pts) < 2:
        return Skipped(name, "needs vmstat nr_active_*/nr_inactive_* at two or more times (run.snapshot_interval)")
    unit, div = time_unit(pts[-1][0])
    fig = _figure(10, 4.2)
    ax = fig.subplots()
    styles = [dict(color=COLORS[0]), dict(color=COLORS[0], ls="--"),
              dict(color=COLORS[1]), dict(color=COLORS[1], ls="--")]
    few = len(pts) <= 40
    for (k, label), st in zip(LRU_KEYS, styles):
        ax.plot([ts / div for ts, _ in pts], [v.get(k, 0) for _, v in pts], lw=2, label=label,
                marker="o" if few else None, ms=4, **st)
    ax.set_title("LRU list sizes (anon: blue, file: orange; dashed: inactive)", fontsize=12, fontweight="bold")
    ax.set_xlabel(f"virtual time ({unit})")
    ax.set_ylabel("pages (4 KiB)")
    top = max((v.get(k, 0) for _, v in pts for k, _ in LRU_KEYS), default=1)
    ax.set_ylim(0, top * 1.3 + 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9, ncol=2)
    return _save(fig, out, name)


def plot_dirty(col: Collector, vmstat_tl: list[tuple[int, dict[str, int]]], out: Path,
               end_ns: int = 0) -> Path | Skipped:
    """Dirty and writeback pages against the background and dirty thresholds.

    From ``global_dirty_state`` events when logged (the last value per time
    bin), else from vmstat snapshots (nr_dirty, nr_writeback,
    nr_dirty_background_threshold, nr_dirty_threshold).
    """
    name = "dirty.png"
    series: dict[str, list[tuple[float, int]]]
    end_ns = max(end_ns, col.last_ts)
    if col.dirty_state_events:
        unit, div = time_unit(end_ns)
        w = col.tl.w
        series = {}
        for k, arr in col.dirty_tl.items():
            series[k] = [((i * w + w / 2) / div, v) for i, v in enumerate(arr) if v is not None]
        src = "global_dirty_state events"
    else:
        pts = [(ts, v) for ts, v in vmstat_tl if "nr_dirty" in v]
        if len(pts) < 2:
            return Skipped(name, "needs global_dirty_state events or vmstat nr_dirty at two or more times")
        end_ns = max(end_ns, pts[-1][0])
        unit, div = time_unit(end_ns)
        m = {"nr_dirty": "nr_dirty", "nr_writeback": "nr_writeback",
             "background_thresh": "nr_dirty_background_threshold", "dirty_thresh": "nr_dirty_threshold"}
        series = {k: [(ts / div, v[src_k]) for ts, v in pts if src_k in v] for k, src_k in m.items()}
        src = "vmstat snapshots"
    fig = _figure(10, 4.2)
    ax = fig.subplots()
    styles = {"nr_dirty": dict(color=COLORS[3], lw=2, label="dirty"),
              "nr_writeback": dict(color=COLORS[4], lw=2, label="under writeback"),
              "background_thresh": dict(color=COLORS[2], lw=1.4, ls="--", label="background threshold"),
              "dirty_thresh": dict(color=COLORS[1], lw=1.4, ls="--", label="dirty threshold (throttle)"),
              "dirty_limit": dict(color=COLORS[7], lw=1, ls=":", label="dirty limit")}
    few = max((len(v) for v in series.values()), default=0) <= 40
    for k, st in styles.items():
        pts2 = series.get(k) or []
        if pts2:
            ax.plot([p[0] for p in pts2], [p[1] for p in pts2], drawstyle="steps-post",
                    marker="o" if few else None, ms=4, **st)
    ax.set_title(f"Dirty and writeback pages vs thresholds ({src})", fontsize=12, fontweight="bold")
    ax.set_xlabel(f"virtual time ({unit})")
    ax.set_ylabel("pages (4 KiB)")
    ax.set_xlim(0, end_ns / div)
    top = max((p[1] for v in series.values() for p in v), default=1)
    ax.set_ylim(0, top * 1.3 + 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    return _save(fig, out, name)


def plot_reclaim_activity(col: Collector, out: Path, max_tasks: int = 12) -> Path | Skipped:
    """kswapd awake spans and direct reclaim stalls as bars on one row per task."""
    name = "kswapd.png"
    if not col.kswapd_spans and not col.direct_spans:
        return Skipped(name, "no kswapd wake/sleep or direct reclaim begin/end events")
    end = max([s[4] for s in col.kswapd_spans] + [s[2] for s in col.direct_spans] + [col.last_ts])
    unit, div = time_unit(end)
    rows: list[tuple[str, list[tuple[float, float]], str]] = []
    by_k: dict[int, list[tuple[float, float]]] = {}
    kname: dict[int, str] = {}
    for pid, comm, nid, s, e in col.kswapd_spans:
        by_k.setdefault(pid, []).append((s / div, max(e - s, 0) / div))
        kname[pid] = f"{comm or 'kswapd'}-{pid} (node {nid})"
    for pid in sorted(by_k):
        rows.append((kname[pid], by_k[pid], COLORS[0]))
    by_d: dict[int, list[tuple[float, float]]] = {}
    for pid, s, e in col.direct_spans:
        by_d.setdefault(pid, []).append((s / div, max(e - s, 0) / div))
    top = sorted(by_d, key=lambda p: -sum(d for _, d in by_d[p]))[:max_tasks]
    for pid in sorted(top):
        rows.append((f"{col.comms.get(pid, '?')}-{pid} direct", by_d[pid], COLORS[3]))
    fig = _figure(10, 1.0 + 0.45 * len(rows) + 0.8)
    ax = fig.subplots()
    min_w = end / div / 800  # keep very short spans visible
    for i, (_, spans, color) in enumerate(rows):
        ax.broken_barh([(s, max(d, min_w)) for s, d in spans], (i - 0.35, 0.7), facecolors=color)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=9)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.set_xlim(0, end / div)
    ax.set_xlabel(f"virtual time ({unit})")
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=COLORS[0], label="kswapd awake"), Patch(color=COLORS[3], label="direct reclaim stall")],
               loc="outside lower center", fontsize=9, ncol=2, frameon=False)
    ax.set_title("Reclaim activity: kswapd awake spans and direct reclaim stalls", fontsize=12, fontweight="bold")
    return _save(fig, out, name)


def plot_lock_wait(col: Collector, out: Path, top: int = 6) -> Path | Skipped:
    """Lock wait time over time (sum of contention_end wait_ns per bin), stacked by lock class."""
    name = "lockwait.png"
    if not col.lock_wait_tl:
        return Skipped(name, "no contention_end events with wait_ns")
    w = col.tl.w
    nb = min(col.tl.n, col.last_ts // w + 1)
    unit, div = time_unit(nb * w)
    ranked = sorted(col.lock_wait_tl, key=lambda k: -sum(col.lock_wait_tl[k]))
    shown, rest = ranked[:top], ranked[top:]
    ys = [[v / 1e3 for v in col.lock_wait_tl[k][:nb]] for k in shown]
    labels = list(shown)
    if rest:
        ys.append([sum(col.lock_wait_tl[k][i] for k in rest) / 1e3 for i in range(nb)])
        labels.append(f"{len(rest)} other classes")
    xs = [(i * w + w / 2) / div for i in range(nb)]
    fig = _figure(10, 4.2)
    ax = fig.subplots()
    ax.stackplot(xs, ys, labels=labels, colors=COLORS[:len(ys)], alpha=0.85, step="mid")
    ax.set_title(f"Lock wait time over time (per {w / div:.3g} {unit} bin)", fontsize=12, fontweight="bold")
    ax.set_xlabel(f"virtual time ({unit})")
    ax.set_ylabel("wait ended in bin (µs)")
    ax.set_xlim(0, nb * w / div)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="lock class", title_fontsize=8)
    return _save(fig, out, name)


def plot_cpu_heatmap(col: Collector, out: Path) -> Path | Skipped:
    """Events per CPU per time bin as a heat map."""
    name = "cpu_heatmap.png"
    if not col.heat:
        return Skipped(name, "no events")
    w = col.tl.w
    nb = min(col.tl.n, col.last_ts // w + 1)
    cpus = sorted(col.heat)
    grid = [col.heat[c][:nb] for c in cpus]
    unit, div = time_unit(nb * w)
    fig = _figure(10, 1.6 + 0.32 * len(cpus))
    ax = fig.subplots()
    im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="magma", vmin=0,
                   extent=(0, nb * w / div, len(cpus) - 0.5, -0.5))
    ax.set_yticks(range(len(cpus)), [f"CPU {c}" for c in cpus], fontsize=8 if len(cpus) > 16 else 9)
    ax.set_xlabel(f"virtual time ({unit})")
    ax.set_title(f"Events per CPU over time (bin {w / div:.3g} {unit})", fontsize=12, fontweight="bold")
    cb = fig.colorbar(im, ax=ax, pad=0.01)
    cb.set_label("events per bin")
    return _save(fig, out, name)
