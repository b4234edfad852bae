"""Benchmark of the page cache: ``python -m bench --only filemap``.

Buffered file I/O through the page cache, in 4 KiB pages per wall-clock
second on this machine (virtual time plays no part):

- read hits: 1 MiB ``read()`` calls over a 32 MiB file already cached
  (lookup, ``folio_mark_accessed``, copy; no I/O);
- read misses: one pass over a 64 MiB file not yet cached (readahead:
  page allocation, insertion, LRU, bios, completions, waits);
- writes: 1 MiB ``write()`` calls of 64 MiB to a new file with
  ``dirty_background_bytes`` at 8 MiB and ``dirty_bytes`` at 16 MiB, so the
  flusher writes back in the background and the writer is throttled in
  ``balance_dirty_pages`` (dirtying, writeback, completions, throttle pauses);

each without events and with every page cache, writeback and block event
written to a real file. Debug checks are off (``debug_vm = false``), as in
a measurement run; one line at the end gives the write rate with them on.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import trio

from smpmem.kernel import Kernel
from smpmem.mm.dcache import vfs_open
from smpmem.mm.filemap import vfs_read, vfs_write
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread, Tracer

MiB = 1 << 20
EVENTS = "filemap:*,writeback:*,block:*"


def _kernel(events_to: Any = None, debug: bool = False) -> Kernel:
    sc = parse_scenario(
        '[machine]\ncpus = 2\nram = "1GiB"\n'
        '[[machine.disk]]\nname = "sda"\nbandwidth = "2GiB"\n'
        '[[machine.file]]\npath = "/hot"\nsize = "32MiB"\n'
        '[[machine.file]]\npath = "/cold"\nsize = "64MiB"\n'
        '[tunables]\ndirty_bytes = "16MiB"\ndirty_background_bytes = "8MiB"\n'
        f'[run]\ndebug_vm = {"true" if debug else "false"}\n')
    tracer = Tracer(None, events_to, EVENTS) if events_to is not None else None
    return Kernel(sc, tracer=tracer)


def _run(k: Kernel, fn: Any) -> Any:
    out: list[Any] = []

    async def body(th: Thread) -> None:
        out.append(await fn(th))

    def setup(_: Any) -> None:
        k.start_thread(Thread(k, k.alloc_pid(), "bench"), body, cpu=0)

    status = trio.run(lambda: k.run(setup))
    if k.sim.failure is not None:
        raise k.sim.failure
    assert status == "completed", status
    return out[0]


def measure(kind: str, events: bool, debug: bool = False, write_mib: int = 64) -> tuple[float, int, float]:
    """(pages/s, events written, virtual seconds) of one workload."""
    fh = tempfile.NamedTemporaryFile(prefix="smpmem-bench-", suffix=".jsonl", delete=False) if events else None
    try:
        k = _kernel(fh, debug)

        async def work(th: Thread) -> tuple[int, float, float]:
            if kind == "write":
                f = await vfs_open(th, "/new", create=True)
                t0, v0 = time.perf_counter(), th.sim.now
                for i in range(write_mib):
                    assert await vfs_write(th, f, i * MiB, MiB) == MiB
                return write_mib * 256, time.perf_counter() - t0, (th.sim.now - v0) / 1e9
            path = "/hot" if kind == "hit" else "/cold"
            f = await vfs_open(th, path)
            size = f.f_inode.i_size
            if kind == "hit":
                for pos in range(0, size, MiB):  # warm the cache (not measured)
                    await vfs_read(th, f, pos, MiB)
            rounds = 8 if kind == "hit" else 1
            t0, v0 = time.perf_counter(), th.sim.now
            for _ in range(rounds):
                for pos in range(0, size, MiB):
                    assert await vfs_read(th, f, pos, MiB) == MiB
            return rounds * size // 4096, time.perf_counter() - t0, (th.sim.now - v0) / 1e9

        pages, wall, virt = _run(k, work)
        return pages / wall, k.tracer.lines, virt
    finally:
        if fh is not None:
            fh.close()
            os.unlink(fh.name)


def main() -> None:
    print("buffered file I/O through the page cache, 4 KiB pages per wall-clock second (debug_vm off)")
    print(f"{'workload':<34}{'no events':>14}{'all events':>14}{'events':>10}{'virtual s':>11}")
    for kind, what in (("hit", "read hits (32 MiB cached, x8)"), ("miss", "read misses (64 MiB, readahead)"),
                       ("write", "writes (64 MiB, flusher + throttle)")):
        quiet, _, virt = measure(kind, False)
        loud, nev, _ = measure(kind, True)
        print(f"{what:<34}{quiet:>14,.0f}{loud:>14,.0f}{nev:>10,}{virt:>11.3f}")
    rate, _, _ = measure("write", False, debug=True, write_mib=16)
    print(f"{'writes, 16 MiB, debug_vm on':<34}{rate:>14,.0f}")


if __name__ == "__main__":
    main()
