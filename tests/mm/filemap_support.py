"""Helpers for the page cache, block and writeback tests: a kernel with disks and files, threads, events, eviction."""

from __future__ import annotations

import io
from typing import Any, Awaitable, Callable

import orjson
import trio

from smpmem.kernel import Kernel
from smpmem.mm.filemap import folio_put, remove_mapping
from smpmem.mm.lru import folio_isolate_lru, lru_add_drain
from smpmem.mm.page import Page
from smpmem.mm.pagemap import AddressSpace, folio_lock, folio_unlock
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread, Tracer

ThreadFn = Callable[[Thread], Awaitable[Any]]


def fs_kernel(files: str = '[[machine.file]]\npath = "/data"\nsize = "1MiB"\n', disk: str = 'name = "sda"',
              tunables: str = "", ram: str = "256MiB", cpus: int = 2, events: str | None = None,
              extra: str = "") -> Kernel:
    """A kernel with one disk (``disk`` holds its TOML keys), ``files``, and an event log if ``events`` is given."""
    toml = (f'[machine]\ncpus = {cpus}\nram = "{ram}"\n[[machine.disk]]\n{disk}\n{files}\n'
            f'[tunables]\n{tunables}\n{extra}')
    buf = io.BytesIO()
    tracer = Tracer(None, buf, events=events) if events else None
    k = Kernel(parse_scenario(toml), tracer)
    k.__dict__["_test_log"] = buf
    return k


def records(k: Kernel) -> list[dict[str, Any]]:
    """Every event the kernel logged (JSON records), in order."""
    k.tracer.flush()
    return [orjson.loads(line) for line in k.__dict__["_test_log"].getvalue().splitlines()]


def run(k: Kernel, *fns: ThreadFn, cpus: list[int] | None = None, until: int | None = None) -> list[Any]:
    """Run ``fns`` as threads t0, t1, ... (thread i on CPU i, or ``cpus[i]``) to the end; their results."""
    results: list[Any] = [None] * len(fns)

    def make(i: int, fn: ThreadFn) -> ThreadFn:
        async def body(th: Thread) -> None:
            results[i] = await fn(th)
        return body

    def setup(_: Any) -> None:
        for i, fn in enumerate(fns):
            cpu = cpus[i] if cpus is not None else i % len(k.cpus)
            k.start_thread(Thread(k, k.alloc_pid(), f"t{i}"), make(i, fn), cpu=cpu)

    status = trio.run(lambda: k.run(setup, until=until))
    if k.sim.failure is not None:
        raise k.sim.failure
    assert status in ("completed", "timeout"), status
    return results


async def evict(th: Thread, mapping: AddressSpace, index: int) -> bool:
    """Drop one cached page the way reclaim does: isolate it from its LRU, lock, remove_mapping, free."""
    page: Page = mapping.i_pages[index]
    await lru_add_drain(th)
    if not await folio_isolate_lru(th, page):
        return False
    await folio_lock(th, page)
    ok = await remove_mapping(th, mapping, page)
    folio_unlock(th.machine.pagecache.waits, page)
    if not ok:
        from smpmem.mm.lru import folio_add_lru

        page._refcount -= 1
        await folio_add_lru(th, page)  # back to the LRU: putback_lru_page
        return False
    await folio_put(th, page)
    return True


def disk(k: Kernel, name: str = "sda") -> Any:
    return k.block.devices[name]
