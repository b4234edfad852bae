"""Operations per simulated second, as will-it-scale reports them.

will-it-scale's tasks each bump a counter (``(*iterations)++``) and its main
loop prints, every second, the min, max and total of the per-task
increments. Here a program's ``ops`` steps bump the running thread's count;
each task keeps its count, the virtual times at which its measurement
started (its first ``ops`` step) and ended (an ``ops`` step with ``done``,
else the end of the run), and a sample ``(t, ops)`` at most every
:data:`SAMPLE_NS` of virtual time. :func:`wis_summary` puts that in
run.json (key ``"wis"``); :func:`ops_per_sec` turns a finished run into
per-task and total ops/s, optionally after a warm-up, and
:func:`intervals` into will-it-scale's ``min:… max:… total:…`` lines.

The counts are observations of the workload, not model state: counting
takes no virtual time and changes nothing the model does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._program import handler

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..sim import Thread

SAMPLE_NS = 1_000_000  # a sample per task at most every 1 ms of virtual time (will-it-scale: every second)
MAX_SAMPLES = 1024  # per task; beyond, every other sample is dropped and the interval doubles


@dataclass
class TaskOps:
    """One task's operation count: ``ops`` steps add to it. Written by that task only."""

    pid: int
    tgid: int
    comm: str
    start_ns: int  # its first ops step
    ops: int = 0
    last_ns: int = 0  # its latest ops step
    end_ns: int | None = None  # set by an ops step with done
    interval: int = SAMPLE_NS
    samples: list[tuple[int, int]] = field(default_factory=list)  # (virtual ns, ops then)

    def add(self, now: int, n: int) -> None:
        self.ops += n
        self.last_ns = now
        if not self.samples or now - self.samples[-1][0] >= self.interval:
            self.samples.append((now, self.ops))
            if len(self.samples) > MAX_SAMPLES:
                self.samples = self.samples[::2]
                self.interval *= 2


def tasks_of(kernel: "Kernel") -> dict[int, TaskOps]:
    """The counts of every task that ran an ``ops`` step, by pid (created on first use)."""
    return kernel.__dict__.setdefault("wis_tasks", {})


@handler("ops")
async def _ops(th: "Thread", step: Any) -> None:
    k = th.machine
    now = th.sim.now + th.pending  # the time the work counted here is done, charged or not
    tasks = tasks_of(k)  # type: ignore[arg-type]
    t = tasks.get(th.pid)
    if t is None:
        t = tasks[th.pid] = TaskOps(th.pid, th.tgid, th.comm, now, last_ns=now)
        t.samples.append((now, 0))
    t.add(now, step.n)
    if step.done and t.end_ns is None:
        t.end_ns = now
        if t.samples[-1][0] != now:
            t.samples.append((now, t.ops))


def wis_summary(kernel: "Kernel") -> dict[str, Any] | None:
    """The ``"wis"`` entry of run.json: every counting task's ops, window and samples; None if none counted.

    Call after the run: tasks still running then have their window end at
    the end of the run (``end_ns`` = the run's virtual time).
    """
    tasks = tasks_of(kernel)
    if not tasks:
        return None
    end = kernel.sim.now
    out = []
    for pid in sorted(tasks):
        t = tasks[pid]
        stop = t.end_ns if t.end_ns is not None else end
        samples = [list(s) for s in t.samples]
        if samples[-1][0] != stop:
            samples.append([stop, t.ops])
        out.append({"pid": t.pid, "tgid": t.tgid, "comm": t.comm, "ops": t.ops, "start_ns": t.start_ns,
                    "end_ns": stop, "finished": t.end_ns is not None, "samples": samples})
    return {"sample_ns": SAMPLE_NS, "tasks": out}


@dataclass(frozen=True)
class TaskRate:
    """One task's figure: ops in its window and ops per simulated second."""

    pid: int
    tgid: int
    comm: str
    ops: int
    window_ns: int
    ops_per_sec: float


@dataclass(frozen=True)
class WisResult:
    """Per-task and total ops/s of a run (will-it-scale's per-task figures and their sum)."""

    tasks: tuple[TaskRate, ...]

    @property
    def total(self) -> float:
        """Sum of the tasks' ops/s: will-it-scale's ``total``."""
        return sum(t.ops_per_sec for t in self.tasks)

    @property
    def min(self) -> float:
        return min((t.ops_per_sec for t in self.tasks), default=0.0)

    @property
    def max(self) -> float:
        return max((t.ops_per_sec for t in self.tasks), default=0.0)

    @property
    def ops(self) -> int:
        return sum(t.ops for t in self.tasks)


def _summary_of(source: Any) -> dict[str, Any]:
    """The ``wis`` summary from a run directory, a run.json path or dict, a RunResult or a Kernel."""
    kernel = getattr(source, "kernel", None) or (source if hasattr(source, "sim") else None)
    if kernel is not None:
        return wis_summary(kernel) or {"sample_ns": SAMPLE_NS, "tasks": []}
    if isinstance(source, (str, Path)):
        p = Path(source)
        source = json.loads((p / "run.json" if p.is_dir() else p).read_text())
    if isinstance(source, dict):
        if "tasks" in source and "sample_ns" in source:
            return source
        w = source.get("wis")
        if w is None:
            raise ValueError("run.json has no \"wis\" entry: no task counted operations (no ops steps ran), or "
                             "the run predates the entry")
        return w
    raise TypeError(f"cannot read will-it-scale figures from {type(source).__name__}")


def _ops_at(samples: list[list[int]], t: int) -> float:
    """The task's count at virtual time ``t``, linear between samples."""
    prev = samples[0]
    if t <= prev[0]:
        return float(prev[1])
    for s in samples[1:]:
        if s[0] >= t:
            if s[0] == prev[0]:
                return float(s[1])
            return prev[1] + (s[1] - prev[1]) * (t - prev[0]) / (s[0] - prev[0])
        prev = s
    return float(prev[1])


def ops_per_sec(source: Any, warmup_ns: int = 0) -> WisResult:
    """Per-task and total operations per simulated second of a finished run.

    ``source``: a run directory, its run.json (path or parsed), a
    :class:`smpmem.run.RunResult` or the run's kernel. Each task's window
    runs from its first ``ops`` step (or ``warmup_ns`` if later) to its
    ``done`` step or the end of the run; a task whose window is empty is
    left out.
    """
    summary = _summary_of(source)
    rates = []
    for t in summary["tasks"]:
        samples = t["samples"]
        lo = max(t["start_ns"], warmup_ns)
        hi = t["end_ns"]
        if hi <= lo:
            continue
        n = _ops_at(samples, hi) - _ops_at(samples, lo)
        rates.append(TaskRate(t["pid"], t["tgid"], t["comm"], round(n), hi - lo, n * 1e9 / (hi - lo)))
    return WisResult(tuple(rates))


def intervals(source: Any, interval_ns: int) -> list[tuple[int, int, int, int]]:
    """will-it-scale's periodic lines: ``(t_end, min, max, total)`` of per-task increments per interval.

    Each interval ``[t - interval_ns, t)`` from the earliest task start; a
    task's increment is interpolated from its samples (exact at sample times).
    """
    summary = _summary_of(source)
    tasks = summary["tasks"]
    if not tasks or interval_ns <= 0:
        return []
    t0 = min(t["start_ns"] for t in tasks)
    t1 = max(t["end_ns"] for t in tasks)
    out = []
    t = t0 + interval_ns
    while t <= t1:
        diffs = [round(_ops_at(x["samples"], t) - _ops_at(x["samples"], t - interval_ns)) for x in tasks]
        out.append((t, min(diffs), max(diffs), sum(diffs)))
        t += interval_ns
    return out
