"""A procfs tree from a run directory, at the end of the run or at a chosen virtual time.

The files are the model's own renderings (fs/proc formats), copied from
``proc/`` (the end of the run) or from the latest ``snapshots/<ts>/`` at or
before the chosen time, per-PID directories included. Tools then read the
tree as they read /proc: ``psutil.PROCFS_PATH = DIR``, ``free``/``vmstat``
through a bind mount.

Files the model did not write but tools need are filled in, each from the
run's own figures, and listed in the result:

- ``vmstat`` (end of run only): run.json's counters, one ``name value``
  line each (mm/vmstat.c ``vmstat_show``); psutil's ``swap_memory()``
  reads ``pswpin``/``pswpout`` from it, so those two are always present.
- ``stat`` (fs/proc/stat.c ``show_stat``): ``cpu``/``cpuN`` lines in
  USER_HZ (100/s) of virtual time. The busy time is the sum of the run's
  processes' ``runtime_ns`` (run.json), counted as user time and spread
  evenly over the CPUs — per-CPU figures are an approximation until the
  model renders /proc/stat; the rest is idle. ``ctxt`` counts
  ``sched_switch`` events when the log has them (else 0), ``btime`` is 0.
- ``uptime`` (fs/proc/uptime.c): the virtual time, and idle time summed over CPUs.

Nothing is invented for ``meminfo``, ``zoneinfo`` and the per-PID files:
they are copied when the model wrote them and absent otherwise.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ._reader import Run, _open_events

USER_HZ = 100
SWAP_KEYS = ("pswpin", "pswpout")


@dataclass
class ProcTree:
    path: Path
    ts: int  # virtual time of the source (ns)
    source: Path  # proc/ or snapshots/<ts>/
    copied: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)


class NoSnapshotError(Exception):
    """No /proc state at or before the requested time."""


def pick_source(run: Run, at: int | None) -> tuple[int, Path]:
    """(ts, directory) of the /proc state to use: proc/ for the end, else the latest snapshot at or before ``at``."""
    end = run.virtual_ns
    if at is None or (at >= end and run.proc_dir.is_dir()):
        if not run.proc_dir.is_dir():
            raise NoSnapshotError(f"{run.proc_dir}: the run has no proc/ directory")
        return end, run.proc_dir
    snaps = [(ts, d) for ts, d in run.snapshots() if ts <= at]
    if not snaps:
        first = run.snapshots()
        hint = (f"the first snapshot is at {first[0][0]} ns" if first else
                "the run has no snapshots/ (set run.snapshot_interval in the scenario)")
        raise NoSnapshotError(f"no /proc snapshot at or before {at} ns in {run.dir} ({hint})")
    return snaps[-1]


def write_proc_tree(run: Run, out: str | os.PathLike[str], at: int | None = None) -> ProcTree:
    """Write the procfs tree for time ``at`` (None: the end) into ``out`` (see module doc)."""
    ts, src = pick_source(run, at)
    dst = Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    tree = ProcTree(dst, ts, src)
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if p.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst / rel)
            tree.copied.append(rel.as_posix())
    is_end = src == run.proc_dir
    if is_end and not (dst / "vmstat").exists() and run.counters:
        counters = dict(run.counters)
        for k in SWAP_KEYS:
            counters.setdefault(k, 0)
        (dst / "vmstat").write_text("".join(f"{k} {v}\n" for k, v in counters.items()))
        tree.filled.append("vmstat")
    elif (dst / "vmstat").exists():
        text = (dst / "vmstat").read_text()
        missing = [k for k in SWAP_KEYS if not any(line.startswith(k + " ") for line in text.splitlines())]
        if missing:
            (dst / "vmstat").write_text(text + "".join(f"{k} 0\n" for k in missing))
            tree.filled.append("vmstat (" + ", ".join(missing) + ")")
    if not (dst / "stat").exists():
        (dst / "stat").write_text(render_stat(run, ts))
        tree.filled.append("stat")
    if not (dst / "uptime").exists():
        ncpu = run.ncpus or 1
        busy = min(_busy_ns(run), ncpu * ts) if is_end else 0
        idle = ncpu * ts - busy
        (dst / "uptime").write_text(f"{_secs(ts)} {_secs(idle)}\n")
        tree.filled.append("uptime")
    return tree


def _secs(ns: int) -> str:
    """fs/proc/uptime.c: ``%lu.%02lu`` seconds."""
    cs = ns // 10_000_000
    return f"{cs // 100}.{cs % 100:02d}"


def _busy_ns(run: Run) -> int:
    return sum(int(p.get("runtime_ns") or 0) for p in run.run.get("processes") or [])


def render_stat(run: Run, ts: int) -> str:
    """/proc/stat for time ``ts`` (see the module doc for what is approximated)."""
    ncpu = run.ncpus or 1
    busy = min(_busy_ns(run), ncpu * ts) if ts >= run.virtual_ns else 0
    tick = 1_000_000_000 // USER_HZ
    per_busy = busy // ncpu // tick
    per_idle = max(0, ts // tick - per_busy)
    ctxt = sum(1 for _ in _switches(run)) if ts >= run.virtual_ns else 0

    def line(name: str, user: int, idle: int) -> str:
        return f"{name} {user} 0 0 {idle} 0 0 0 0 0 0\n"

    out = [line("cpu ", per_busy * ncpu, per_idle * ncpu)]
    out += [line(f"cpu{i}", per_busy, per_idle) for i in range(ncpu)]
    nproc = len(run.run.get("processes") or [])
    out += ["intr 0\n", f"ctxt {ctxt}\n", "btime 0\n", f"processes {nproc}\n", "procs_running 1\n",
            "procs_blocked 0\n", "softirq 0 0 0 0 0 0 0 0 0 0 0\n"]
    return "".join(out)


def _switches(run: Run):  # type: ignore[no-untyped-def]
    path = run.events_path
    if path is None:
        return
    needles = (b'"event":"sched_switch"', b'"event": "sched_switch"')
    with _open_events(path) as fh:
        for line in fh:
            if needles[0] in line or needles[1] in line:
                yield line
