"""One run of a scenario: the run directory, the event log, run.json, /proc snapshots.

``run_scenario`` builds the kernel from a validated scenario, starts its
processes, runs the simulation in virtual time and leaves
``logs/<name>-<seed>-<stamp>/`` with ``events.jsonl``, ``run.json``,
``proc/`` and ``dmesg`` (the kernel log, :mod:`smpmem.printk`).
Wall-clock time is read here (for the stamp and the report of how long
the run took), never inside the model.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson
import trio

from . import __version__
from .kernel import Kernel
from .scenario import Scenario
from .sim import Tracer
from .workload import start_processes
from .workload.wis import wis_summary

ENGINE_TO_STATUS = {
    "completed": ("completed", "every process exited"),
    "timeout": ("completed", "run.duration reached"),
    "interrupted": ("interrupted", "interrupted (SIGINT)"),
    "failed": ("failed", "a model error stopped the run"),
    "deadlock": ("failed", "every thread is blocked and nothing is due"),
    "max_events": ("completed", "run.max_events reached"),
}


@dataclass
class RunResult:
    """What a run left: its directory, status and headline figures."""

    dir: Path
    status: str
    reason: str
    virtual_ns: int
    wall_s: float
    events: int
    error: str | None
    kernel: Kernel

    @property
    def exit_code(self) -> int:
        return {"completed": 0, "interrupted": 130}.get(self.status, 1)


def run_dir_for(scenario: Scenario, seed: int, out_root: Path) -> Path:
    """``<out_root>/<name>-<seed>-<stamp>``, with a numeric suffix if that exists already."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = out_root / f"{scenario.name}-{seed}-{stamp}"
    d, n = base, 1
    while d.exists():
        n += 1
        d = base.with_name(f"{base.name}.{n}")
    return d


def versions() -> dict[str, str]:
    out = {"smpmem": __version__, "python": platform.python_version()}
    for pkg in ("trio", "structlog", "orjson", "sortedcontainers", "pydantic"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "?"
    return out


def run_scenario(
    scenario: Scenario,
    out_root: str | Path = "logs",
    out_dir: str | Path | None = None,
    source: str | None = None,
    progress: bool = False,
    on_kernel: Callable[[Kernel], None] | None = None,
    script: Any = None,
) -> RunResult:
    """Run ``scenario`` (already validated; its ``run.seed`` and ``run.events`` apply) and write its run directory."""
    seed = scenario.run.seed
    d = Path(out_dir) if out_dir is not None else run_dir_for(scenario, seed, Path(out_root))
    created = not d.exists()
    d.mkdir(parents=True, exist_ok=True)
    events_path = d / "events.jsonl"
    t_wall = time.perf_counter()
    with open(events_path, "wb", buffering=1 << 20) as fh:
        tracer = Tracer(None, fh, events=None)
        if scenario.run.events:
            tracer.enable(scenario.run.events)
        try:
            kernel = Kernel(scenario, tracer)
        except ValueError:  # BootError: the machine cannot boot; leave no half run directory
            fh.close()
            if created:
                import shutil

                shutil.rmtree(d, ignore_errors=True)
            raise
        if on_kernel is not None:
            on_kernel(kernel)
        snapshot: dict[str, str] = {}

        def before_teardown(status: str) -> None:
            tracer.stop()
            snapshot.update(proc_snapshot(kernel))

        internal: BaseException | None = None
        try:
            engine_status = _run_trio(kernel, scenario, before_teardown, progress, d / "snapshots", script)
        except Exception as exc:  # a bug outside the actors (boot, snapshot): report, don't crash
            engine_status, internal = "failed", _leaf(exc)
        tracer.flush()
    wall = time.perf_counter() - t_wall
    status, reason = ENGINE_TO_STATUS.get(engine_status, ("failed", engine_status))
    err = kernel.sim.failure or internal
    error = None if err is None else f"{type(err).__name__}: {err}"
    if error is None and kernel.debug_vm and status == "completed":
        try:
            # The sampled walks (LRU lists, every mm, every swap area) run in full for the final check.
            kernel.lru_check_every_switch = True  # type: ignore[attr-defined]
            kernel.mm_check_every_switch = True  # type: ignore[attr-defined]
            kernel.swap_check_every_switch = True  # type: ignore[attr-defined]
            kernel.checks.run()
        except AssertionError as e:
            status, reason, error = "failed", "an invariant is broken at the end of the run", str(e)
    if err is not None:
        import traceback

        (d / "error.txt").write_text("".join(traceback.format_exception(err)))
    write_proc(d / "proc", snapshot)
    write_dmesg(d / "dmesg", kernel)
    info: dict[str, Any] = {
        "scenario": scenario.name,
        "source": source,
        "description": scenario.description,
        "seed": seed,
        "status": status,
        "reason": reason,
        "error": error,
        "versions": versions(),
        "virtual_ns": kernel.sim.now,
        "wall_s": round(wall, 3),
        "events": tracer.lines,
        "events_enabled": [e.qualname for e in tracer.enabled],
        "counters": counters_of(snapshot, kernel),
        "locks": lock_summary(kernel),
        "processes": process_summary(kernel),
        "wis": wis_summary(kernel),
        "config": scenario.resolved(),
    }
    (d / "run.json").write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return RunResult(d, status, reason, kernel.sim.now, wall, tracer.lines, error, kernel)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside trio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _run_trio(kernel: Kernel, scenario: Scenario, before_teardown: Callable[[str], None], progress: bool,
              snapshots_dir: Path | None = None, script: Any = None) -> str:
    """Run the simulation under trio, with Ctrl-C asking for a clean stop."""
    sim = kernel.sim

    def on_sigint(signum: int, frame: Any) -> None:
        sim.request_stop("interrupted")

    def setup(k: Kernel) -> None:
        start_processes(k)
        if script is not None:  # a Python scenario script's main() runs as one more process
            from .workload.script import start_script

            start_script(k, script)
        if scenario.run.snapshot_interval and snapshots_dir is not None:
            start_snapshots(k, scenario.run.snapshot_interval, snapshots_dir)

    async def main() -> str:
        async with trio.open_nursery() as outer:
            if progress:
                outer.start_soon(_progress, kernel, scenario.run.duration)
            status = await kernel.run(setup, until=scenario.run.duration, before_teardown=before_teardown)
            outer.cancel_scope.cancel()
        return status

    old = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    try:
        return trio.run(main)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


async def _progress(kernel: Kernel, duration: int) -> None:
    """A progress bar in wall-clock time: virtual time reached and events written (reads only)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn("[bold]{task.description}"), BarColumn(),
            TextColumn("{task.fields[vt]} of {task.fields[tot]} virtual"),
            TextColumn("{task.fields[ev]} events"), TimeElapsedColumn())
    with Progress(*cols, transient=True, stderr=True) as bar:
        task = bar.add_task(kernel.scenario.name, total=duration, vt="0", tot=fmt_ns(duration), ev=0)
        while True:
            bar.update(task, completed=kernel.sim.now, vt=fmt_ns(kernel.sim.now), ev=kernel.tracer.lines)
            await trio.sleep(0.1)


def start_snapshots(kernel: Kernel, interval: int, d: Path) -> None:
    """Write the /proc files every ``interval`` of virtual time to ``d/<ts_ns>/``.

    An observer, not a simulated thread: a bare engine actor (daemon) that
    takes no CPU and changes no state, so the event log is the same with or
    without snapshots.
    """
    from .sim import Actor

    sim = kernel.sim

    async def snap() -> None:
        while True:
            await sim.sleep(interval)
            write_proc(d / str(sim.now), proc_snapshot(kernel))

    sim.spawn(Actor(sim, "snapshot", daemon=True), snap)


def fmt_ns(ns: int) -> str:
    for unit, div in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns >= div:
            return f"{ns / div:.3g}{unit}"
    return f"{ns}ns"


def proc_snapshot(kernel: Kernel) -> dict[str, str]:
    """The /proc files of the machine now, as {relative path: text}."""
    from .proc.snapshot import snapshot

    return snapshot(kernel)


def write_proc(d: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def write_dmesg(path: Path, kernel: Kernel) -> None:
    """The kernel log as ``dmesg`` prints it (empty when the kernel printed nothing)."""
    from .printk import format_dmesg

    log = getattr(kernel, "printk", None)
    path.write_text(format_dmesg(log.records) if log is not None else "")


def counters_of(snapshot: dict[str, str], kernel: Kernel) -> dict[str, int]:
    """The run's final /proc/vmstat as {name: value} (every counter, zone and event ones alike)."""
    text = snapshot.get("vmstat")
    if text is None:
        return dict(sorted(kernel.vmstat.items()))
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out


def lock_summary(kernel: Kernel) -> dict[str, dict[str, int]]:
    """Per lock class: the lock_stat figures (ns), for run.json and sweeps."""
    out = {}
    for s in kernel.locks.statistics():
        out[s.name] = {
            "contentions": s.contentions, "acquisitions": s.acquisitions,
            "con_bounces": s.con_bounces_write + s.con_bounces_read,
            "acq_bounces": s.acq_bounces_write + s.acq_bounces_read,
            "waittime_total": s.wait_total,
            "waittime_max": max(s.waittime_write.max, s.waittime_read.max),
            "holdtime_total": s.holdtime_write.total + s.holdtime_read.total,
        }
    return out


def process_summary(kernel: Kernel) -> list[dict[str, Any]]:
    out = []
    for tgid, p in sorted(kernel.processes.items()):
        out.append({"pid": tgid, "comm": p.comm, "threads": len(p.threads), "exit_code": p.exit_code,
                    "ops": p.ops, "runtime_ns": sum(t.runtime_ns for t in p.threads)})
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m smpmem run SCENARIO")
