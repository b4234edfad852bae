"""Helpers for the kernel object allocator tests (slab, vmalloc, kmap): boot, run threads, read the event log."""

from __future__ import annotations

import io
from typing import Any, Awaitable, Callable

import orjson
import trio

from smpmem.kernel import Kernel
from smpmem.scenario import parse_scenario
from smpmem.sim import Thread, Tracer

ActorFn = Callable[[Thread], Awaitable[Any]]


def scenario(cpus: int = 4, ram: str = "256MiB", layout: str = "x86_64", nodes: int = 1, tunables: str = "",
             debug: bool = True) -> str:
    """Scenario TOML for a machine of ``cpus`` CPUs and ``ram`` of memory."""
    return (f'[machine]\ncpus = {cpus}\nram = "{ram}"\nlayout = "{layout}"\nnodes = {nodes}\n'
            f'[tunables]\n{tunables}\n[run]\ndebug_vm = {"true" if debug else "false"}\n')


def boot(toml: str | None = None, events: str | None = None, **kw: Any) -> Kernel:
    """A kernel from ``toml`` (or :func:`scenario` of ``kw``); with ``events``, logging them to ``kernel.log_buf``."""
    sc = parse_scenario(toml if toml is not None else scenario(**kw))
    if events is None:
        return Kernel(sc)
    buf = io.BytesIO()
    k = Kernel(sc, Tracer(None, buf, events=events))
    k.log_buf = buf  # type: ignore[attr-defined]
    return k


def records(kernel: Kernel, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON records logged so far (of one event type, if given)."""
    kernel.tracer.flush()
    out = [orjson.loads(line) for line in kernel.log_buf.getvalue().splitlines()]  # type: ignore[attr-defined]
    return [r for r in out if event is None or r["event"] == event]


async def run(kernel: Kernel, *fns: ActorFn, cpus: list[int] | None = None) -> list[Any]:
    """Run ``fns`` as threads (thread i on CPU ``cpus[i]``, default i mod ncpus) to completion; their results."""
    results: list[Any] = [None] * len(fns)

    def make(i: int, fn: ActorFn) -> ActorFn:
        async def body(th: Thread) -> None:
            results[i] = await fn(th)
        return body

    def setup(_: Any) -> None:
        for i, fn in enumerate(fns):
            cpu = cpus[i] if cpus is not None else i % len(kernel.cpus)
            kernel.start_thread(Thread(kernel, kernel.alloc_pid(), f"t{i}"), make(i, fn), cpu=cpu)

    status = await kernel.run(setup)
    if kernel.sim.failure is not None:
        raise kernel.sim.failure
    assert status == "completed", status
    return results


def run_sync(kernel: Kernel, *fns: ActorFn, cpus: list[int] | None = None) -> list[Any]:
    """:func:`run` from synchronous code (Hypothesis rules)."""
    return trio.run(lambda: run(kernel, *fns, cpus=cpus))


def free_and_pcp_pages(kernel: Kernel) -> int:
    """Pages the page allocator holds free: the buddy lists plus the per-CPU lists."""
    return sum(z.buddy_free_pages() + z.pcp_pages() for z in kernel.page_alloc.populated)


def lock_stat(kernel: Kernel, name: str) -> Any:
    """The lock_stat figures of class ``name``."""
    return kernel.locks.get_class(name).statistics()
