"""Parameter sweeps: a scenario run over a grid of parameter values × seeds, in parallel.

``run_sweep("scenarios/x.toml", ["machine.cpus=1,2,4", "tunables.pcp_batch=15,63"], seeds=[1, 2, 3])``
runs every combination (the grid in the order given, seeds innermost),
each point an ordinary run directory ``<out>/<param>=<value>_..._seed=<n>/``
(names from the point's parameters, so a re-run finds them), on local
processes or a Dask cluster (:class:`~smpmem.experiments._common.Pool`). It
then writes, in ``<out>``:

- ``results.csv`` (and ``results.parquet`` when pyarrow is installed): one
  row per point and seed with its status, error and key figures
  (:func:`~smpmem.experiments._common.figures_of`). The table holds nothing
  that depends on where or how fast a point ran, so the same grid gives the
  same table on any executor.
- ``summary.csv``: per combination of parameters, the mean and standard
  deviation (sample, n−1) of each figure over the seeds that completed.
- ``plots/<figure>.png``: each figure against the first swept parameter
  (or ``x``) with error bars (mean ± stdev over seeds), one line per value
  of the other parameters (matplotlib; skipped without it).
- ``sweep.json``: the grid, what ran, what was skipped, what failed, wall time.

A point that fails (a model error, an invalid combination, a crashed
worker) is a row with its status and error; the others go on. A point whose
``run.json`` already says ``completed`` or ``failed`` is not run again.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ._common import (
    ExperimentError, Param, Pool, figures_of, is_done, parse_param, point_name, run_many, scenario_text,
    value_text,
)

LEAD_FIGURES = (  # the figures' column order; lock:<class>:... columns follow, sorted
    "virtual_ns", "events", "ops", "ops_per_sec", "lock_wait_ns", "lock_contentions",
    "pgfault", "pgmajfault", "nr_tlb_remote_flush", "nr_tlb_remote_flush_received",
    "nr_tlb_local_flush_all", "nr_tlb_local_flush_one", "pgscan", "pgsteal", "allocstall",
)
PLOT_FIGURES = (  # plotted when present and not all zero
    "ops_per_sec", "lock_wait_ns", "lock_contentions", "pgfault", "nr_tlb_remote_flush",
    "nr_tlb_local_flush_all", "nr_tlb_local_flush_one", "pgscan", "pgsteal", "allocstall",
)

OnPoint = Callable[[str, dict[str, Any], int, int], None]  # (point name, result, done, total)


@dataclass
class SweepResult:
    """What a sweep left: its directory, the table and the files written."""

    dir: Path
    params: list[Param]
    seeds: list[int]
    rows: list[dict[str, Any]]  # one per point and seed, grid order
    columns: list[str]
    ran: int = 0
    skipped: int = 0
    files: list[Path] = field(default_factory=list)
    where: str = ""
    wall_s: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "completed"]


def run_sweep(
    scenario: str | Path,
    params: Sequence[Param | str],
    seeds: Sequence[int] | None = None,
    out: str | Path | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    executor: Any = None,
    plots: bool = True,
    x: str | None = None,
    warmup: int = 0,
    on_point: OnPoint | None = None,
) -> SweepResult:
    """Run the grid of ``params`` (× ``seeds``; default: the scenario's own seed) and write the table and plots.

    ``warmup`` (virtual ns): will-it-scale ops/s count from then on (each task's window starts
    no earlier), as will-it-scale discards its first intervals.
    """
    from ..scenario import ScenarioError, load_scenario

    path = Path(scenario)
    ps = [p if isinstance(p, Param) else parse_param(p) for p in params]
    if not ps:
        raise ExperimentError("a sweep needs at least one --param")
    names = [n for p in ps for n in (p.path, *p.also)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ExperimentError(f"--param {dupes[0]} is given twice")
    if "run.seed" in names:
        raise ExperimentError("sweep seeds with --seeds, not --param run.seed")
    try:
        base = load_scenario(path)
    except ScenarioError as e:
        raise ExperimentError(str(e)) from None
    seed_list = list(seeds) if seeds else [base.run.seed]
    d = Path(out) if out is not None else Path("logs") / f"sweep-{base.name}"
    d.mkdir(parents=True, exist_ok=True)
    text = scenario_text(path)
    source = str(path)
    labels = _labels(ps)

    grid: list[tuple[tuple[Any, ...], int]] = [
        (combo, seed) for combo in itertools.product(*(p.values for p in ps)) for seed in seed_list]
    results: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, tuple]] = []
    for i, (combo, seed) in enumerate(grid):
        name = point_name(list(zip(labels, combo)), seed)
        info = is_done(d / name)
        if info is not None:
            results[i] = {"status": info["status"], "error": info.get("error"), "dir": str(d / name), "run": info,
                          "skipped": True}
            continue
        overrides: dict[str, Any] = {}
        for p, v in zip(ps, combo):
            overrides.update(p.overrides(v))
        overrides["run.seed"] = seed
        todo.append((i, (text, source, overrides, str((d / name).resolve()))))

    t0 = time.perf_counter()
    skipped = len(results)
    total = len(grid)
    pool = Pool(jobs=jobs, scheduler=scheduler, executor=executor)
    if todo:
        with pool as ex:
            for i, res in run_many(ex, todo, window=max(2 * (pool.jobs or 1), 2)):
                results[i] = res
                if on_point is not None:
                    combo, seed = grid[i]
                    on_point(point_name(list(zip(labels, combo)), seed), res, len(results) - skipped, len(todo))
    wall = time.perf_counter() - t0

    rows = []
    for i, (combo, seed) in enumerate(grid):
        res = results[i]
        row: dict[str, Any] = {p.path: v for p, v in zip(ps, combo)}
        row["seed"] = seed
        row["status"] = res["status"]
        row["error"] = res.get("error") or ""
        row["dir"] = point_name(list(zip(labels, combo)), seed)
        row.update(figures_of(res.get("run"), warmup_ns=warmup))
        rows.append(row)
    columns = _columns(ps, rows)
    sr = SweepResult(d, ps, seed_list, rows, columns, ran=len(todo), skipped=skipped,
                     where=pool.where if todo else "nothing to run", wall_s=wall)
    sr.files += write_tables(sr)
    if plots:
        sr.files += plot_sweep(sr, x=x)
    meta = {"scenario": source, "name": base.name,
            "params": {"+".join((p.path, *p.also)): list(p.values) for p in ps},
            "seeds": seed_list, "points": total, "ran": sr.ran, "skipped": sr.skipped,
            "failed": [{"dir": r["dir"], "status": r["status"], "error": r["error"]} for r in sr.failed],
            "where": sr.where, "wall_s": round(wall, 3)}
    (d / "sweep.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    sr.files.append(d / "sweep.json")
    return sr


def _labels(ps: Sequence[Param]) -> list[str]:
    """Names in point directories: the short name (``cpus``) unless two parameters share it."""
    shorts = [p.short for p in ps]
    return [s if shorts.count(s) == 1 else p.path for p, s in zip(ps, shorts)]


def _columns(ps: Sequence[Param], rows: Sequence[dict[str, Any]]) -> list[str]:
    keys: set[str] = set()
    for r in rows:
        keys.update(r)
    lead = [p.path for p in ps] + ["seed", "status", "error", "dir"]
    figs = [f for f in LEAD_FIGURES if f in keys]
    # Per-class lock columns only for the classes that saw contention somewhere in the grid.
    locks = sorted(k for k in keys if k.startswith("lock:") and any(r.get(k) for r in rows))
    return lead + figs + locks


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return value_text(v)
    if isinstance(v, float):
        return repr(round(v, 6)) if math.isfinite(v) else ""
    return v


def write_tables(sr: SweepResult) -> list[Path]:
    """``results.csv``, ``results.parquet`` (with pyarrow) and ``summary.csv`` in the sweep directory."""
    out = []
    p = sr.dir / "results.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(sr.columns)
        for r in sr.rows:
            w.writerow([_cell(r.get(c)) for c in sr.columns])
    out.append(p)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        cols: dict[str, list[Any]] = {c: [r.get(c) for r in sr.rows] for c in sr.columns}
        for c, vals in cols.items():  # one type per column: params may mix ints and floats
            if any(isinstance(v, float) for v in vals) and all(isinstance(v, (int, float)) or v is None for v in vals):
                cols[c] = [None if v is None else float(v) for v in vals]
            elif c == "error":
                cols[c] = [v or None for v in vals]
        pq.write_table(pa.table(cols), sr.dir / "results.parquet")
        out.append(sr.dir / "results.parquet")
    out.append(write_summary(sr))
    return out


def numeric_figures(sr: SweepResult) -> list[str]:
    lead = {p.path for p in sr.params} | {"seed", "status", "error", "dir"}
    return [c for c in sr.columns if c not in lead]


def aggregate(sr: SweepResult) -> list[dict[str, Any]]:
    """Per combination of parameters (grid order): runs, failures, and mean/std of each figure over completed seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in sr.rows:
        groups.setdefault(tuple(r[p.path] for p in sr.params), []).append(r)
    figs = numeric_figures(sr)
    out = []
    for combo, rs in groups.items():
        ok = [r for r in rs if r["status"] == "completed"]
        row: dict[str, Any] = {p.path: v for p, v in zip(sr.params, combo)}
        row["runs"] = len(rs)
        row["failed"] = len(rs) - len(ok)
        for f in figs:
            vals = [float(r[f]) for r in ok if r.get(f) is not None]
            row[f"{f}_mean"] = statistics.fmean(vals) if vals else None
            row[f"{f}_std"] = statistics.stdev(vals) if len(vals) > 1 else (0.0 if vals else None)
        out.append(row)
    return out


def write_summary(sr: SweepResult) -> Path:
    rows = aggregate(sr)
    cols = [p.path for p in sr.params] + ["runs", "failed"]
    for f in numeric_figures(sr):
        cols += [f"{f}_mean", f"{f}_std"]
    p = sr.dir / "summary.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in cols])
    return p


def plot_sweep(sr: SweepResult, x: str | None = None) -> list[Path]:
    """One PNG per figure: mean ± stdev over seeds against ``x``, a line per value of the other parameters."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    xp = sr.params[0] if x is None else next((p for p in sr.params if x in (p.path, p.short)), None)
    if xp is None:
        raise ExperimentError(f"--x {x}: not one of the swept parameters ({', '.join(p.path for p in sr.params)})")
    others = [p for p in sr.params if p is not xp]
    agg = aggregate(sr)
    xs = list(xp.values)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    pos = {v: (v if numeric else i) for i, v in enumerate(xs)}
    d = sr.dir / "plots"
    d.mkdir(exist_ok=True)
    written = []
    for fig in PLOT_FIGURES:
        if not any(r.get(f"{fig}_mean") for r in agg):
            continue
        f, ax = plt.subplots(figsize=(6.4, 4.2))
        lines: dict[tuple, list[dict[str, Any]]] = {}
        for r in agg:
            lines.setdefault(tuple(r[p.path] for p in others), []).append(r)
        for key, rs in lines.items():
            pts = [(pos[r[xp.path]], r[f"{fig}_mean"], r[f"{fig}_std"] or 0.0) for r in rs
                   if r.get(f"{fig}_mean") is not None]
            if not pts:
                continue
            pts.sort()
            label = ", ".join(f"{p.short}={value_text(v)}" for p, v in zip(others, key)) or None
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, label=label)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [value_text(v) for v in xs])
        elif not numeric:
            ax.set_xticks(range(len(xs)), [value_text(v) for v in xs])
        ax.set_xlabel(xp.path)
        ax.set_ylabel(fig)
        nseeds = len(sr.seeds)
        ax.set_title(f"{fig} against {xp.short} (mean ± stdev over {nseeds} seed{'s' if nseeds != 1 else ''})",
                     fontsize=10)
        if others:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        f.tight_layout()
        p = d / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', fig)}.png"
        f.savefig(p, dpi=100)
        plt.close(f)
        written.append(p)
    return written


__all__ = ["SweepResult", "aggregate", "plot_sweep", "run_sweep", "write_tables"]
