"""Helpers for the reclaim, swap and OOM tests: run a scenario, read its counters and events, drive threads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
import trio

from smpmem.kernel import Kernel
from smpmem.run import RunResult, run_scenario
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread, Tracer

MACHINE = '''
[machine]
cpus = {cpus}
ram = "{ram}"
[[machine.disk]]
name = "sda"
{disk_extra}
'''


def machine(ram: str = "64MiB", cpus: int = 2, swap: str | None = "64MiB", files: dict[str, str] | None = None,
            disk_extra: str = "", tunables: str = "", run: str = "", swap_name: str = "/dev/sda2") -> str:
    """The TOML of a machine with one SSD, an optional swap area (a partition, or a swap file when
    ``swap_name`` is not under /dev/) and files (path → size)."""
    out = MACHINE.format(cpus=cpus, ram=ram, disk_extra=disk_extra)
    if swap is not None:
        out += f'[[machine.swap]]\nname = "{swap_name}"\nsize = "{swap}"\n'
    for path, size in (files or {}).items():
        out += f'[[machine.file]]\npath = "{path}"\nsize = "{size}"\n'
    if tunables:
        out += f"[tunables]\n{tunables}\n"
    out += f"[run]\nseed = 1\n{run}\n"
    return out


def run_toml(tmp_path: Path, text: str, events: str = "*") -> tuple[RunResult, dict[str, int], list[dict[str, Any]]]:
    """Run a scenario given as TOML; its result, final /proc/vmstat counters and event records."""
    sc = parse_scenario(text, overrides={"run.events": events} if events is not None else None)
    res = run_scenario(sc, out_dir=tmp_path / "run")
    info = orjson.loads((tmp_path / "run" / "run.json").read_bytes())
    recs = [orjson.loads(ln) for ln in (tmp_path / "run" / "events.jsonl").read_bytes().splitlines() if ln]
    return res, info["counters"], recs


def events_named(recs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["event"] == name]


ActorFn = Callable[[Thread], Awaitable[Any]]


def boot(text: str, events: str | None = None) -> Kernel:
    """A kernel booted from scenario TOML (its processes are not started); ``events`` globs are logged to memory."""
    tracer = None
    if events is not None:
        tracer = Tracer(None, io.BytesIO(), events=events)
    return Kernel(parse_scenario(text), tracer)


def records(kernel: Kernel) -> list[dict[str, Any]]:
    """The events a :func:`boot` kernel logged."""
    kernel.tracer.flush()
    return [orjson.loads(ln) for ln in kernel.tracer._fh.getvalue().splitlines() if ln]


def run_threads(kernel: Kernel, *fns: ActorFn, until: int | None = None, names: list[str] | None = None) -> list[Any]:
    """Run ``fns`` as threads (thread i on CPU i mod ncpus) until they end; their results."""
    results: list[Any] = [None] * len(fns)

    def make(i: int, fn: ActorFn) -> ActorFn:
        async def body(th: Thread) -> None:
            results[i] = await fn(th)
        return body

    def setup(_: Any) -> None:
        for i, fn in enumerate(fns):
            comm = names[i] if names else f"t{i}"
            kernel.start_thread(Thread(kernel, kernel.alloc_pid(), comm), make(i, fn), cpu=i % len(kernel.cpus))

    status = trio.run(lambda: kernel.run(setup, until=until))
    if kernel.sim.failure is not None:
        raise kernel.sim.failure
    assert status in ("completed", "timeout"), status
    return results


async def read_file(th: Thread, path: str, chunk: int = 64 * 1024, gap_ns: int = 0, passes: int = 1) -> int:
    """Read ``path`` from start to end in ``chunk``-byte reads, computing ``gap_ns`` between reads; bytes read."""
    from smpmem.mm.dcache import vfs_open
    from smpmem.mm.filemap import vfs_read

    f = await vfs_open(th, path)
    for _ in range(10):
        if f != -5:
            break
        # Two first opens racing for the same inode-table buffer can see it not yet read (-EIO):
        # the dcache's problem, not reclaim's; open again a little later.
        await th.sleep_for(1_000_000)
        f = await vfs_open(th, path)
    assert not isinstance(f, int), f
    total = 0
    for _ in range(passes):
        pos = 0
        while True:
            n = await vfs_read(th, f, pos, chunk)
            if n <= 0:
                break
            pos += n
            total += n
            if gap_ns:
                await th.compute(gap_ns)
    return total


def allocated_pages(kernel: Kernel) -> int:
    """Frames handed out by the page allocator and not yet back (buddy + per-CPU lists are free)."""
    return sum(z.nr_allocated for z in kernel.page_alloc.populated)
