"""Benchmark of the runtime alone (smpmem/sim): virtual sleeps, contended spinlocks, events written.

Each model is also built in SimPy (the ``bench`` extra) and measured in the
same run, so the ratio smpmem/SimPy is comparable across machines. Figures are
operations per CPU-second of the benchmark process (the best of ``REPEAT``
runs; see :func:`best_rate`); virtual time plays no part.
Targets from issue 2 (a 2-core machine): 250 k sleeps/s, 90 k contended
acquisitions/s, 400 k events/s.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from smpmem.sim import Actor, Machine, Simulator, SpinLock, Thread, Tracer
from smpmem.sim.costs import CostModel
from smpmem.trace.events.kmem import mm_page_alloc

REPEAT = 3
TARGETS = {"sleeps": 250_000, "acquisitions": 90_000, "events": 400_000}


@dataclass
class Result:
    what: str
    smpmem: float  # operations per second
    simpy: float | None = None
    target: int | None = None


def best_rate(fn: Callable[[], int], repeat: int = REPEAT) -> float:
    """Operations per CPU-second of ``fn`` (which returns how many it did): the best of ``repeat`` runs.

    The clock is this process's CPU time (user + system, ``time.process_time``):
    every model here is single-threaded, so on an idle machine it equals the
    wall-clock time, and on a busy one it is not inflated by other processes.
    """
    best = 0.0
    for _ in range(repeat):
        t0 = time.process_time()
        n = fn()
        dt = time.process_time() - t0
        best = max(best, n / dt)
    return best


# -- 1. virtual sleeps ---------------------------------------------------------------------------


def sleep_delays(sleepers: int = 100, each: int = 2_000) -> list[list[int]]:
    """Each sleeper's own pseudo-random durations (1-999 ns), drawn before the clock starts."""
    return [[r.randrange(1, 1_000) for _ in range(each)] for r in (random.Random(i) for i in range(sleepers))]


def sleeps_smpmem(delays: list[list[int]]) -> int:
    """One actor per list of ``delays``, each sleeping those durations in turn."""
    sim = Simulator()

    async def sleeper(ds: list[int]) -> None:
        sleep = sim.sleep
        for d in ds:
            await sleep(d)

    async def main(sim: Simulator) -> None:
        for i, ds in enumerate(delays):
            sim.spawn(Actor(sim, f"s{i}"), sleeper, ds)

    assert trio.run(sim.run, main) == "completed"
    return sum(map(len, delays))


def sleeps_simpy(delays: list[list[int]]) -> int:
    """The same sleepers as SimPy processes yielding timeouts."""
    import simpy

    env = simpy.Environment()

    def sleeper(ds: list[int]):
        timeout = env.timeout
        for d in ds:
            yield timeout(d)

    for ds in delays:
        env.process(sleeper(ds))
    env.run()
    return sum(map(len, delays))


# -- 2. a contended spinlock ----------------------------------------------------------------------

HOLD, THINK = 200, 1_000  # ns: 16 CPUs want the lock 16 x 200 / 1200 times more than it can give


def spinlock_smpmem(cpus: int = 16, each: int = 1_000, tracer: Tracer | None = None) -> int:
    """One ``SpinLock`` and ``cpus`` threads, one per CPU: acquire, hold HOLD, release, think THINK."""
    m = Machine(cpus, seed=1, costs=CostModel(), tracer=tracer)
    lock = SpinLock(m, "&zone->lock")

    async def worker(th: Thread) -> None:
        acquire, release, compute = lock.acquire, lock.release, th.compute
        for _ in range(each):
            await acquire(th, "rmqueue_bulk")
            th.charge(HOLD)
            await release(th)
            await compute(THINK)

    def setup(m: Machine) -> None:
        for c in range(cpus):
            m.start_thread(Thread(m, m.alloc_pid(), f"w{c}"), worker, cpu=c)

    assert trio.run(m.run, setup) == "completed", m.sim.failure
    st = lock.cls.statistics()
    assert st.acquisitions == cpus * each and st.contentions > st.acquisitions // 2
    return st.acquisitions


def spinlock_simpy(cpus: int = 16, each: int = 1_000) -> int:
    """The same model in SimPy: a FIFO Resource of capacity 1, the same hold and think times."""
    import simpy

    env = simpy.Environment()
    lock = simpy.Resource(env, capacity=1)
    done = [0]

    def worker():
        for _ in range(each):
            with lock.request() as req:
                yield req
                yield env.timeout(HOLD)
            done[0] += 1
            yield env.timeout(THINK)

    for _ in range(cpus):
        env.process(worker())
    env.run()
    return done[0]


# -- 3. events written ----------------------------------------------------------------------------


def events_tracer(n: int = 200_000) -> int:
    """``Tracer.emit`` of mm_page_alloc with every event enabled, to a real file."""
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    os.close(fd)
    try:
        with open(path, "wb") as fh:
            sim = Simulator()
            tr = Tracer(sim, out=fh, events="*")
            ctx = _Ctx(tr.bind(0, 1, "bench"))
            emit = tr.emit
            for i in range(n):
                sim.now = i
                emit(mm_page_alloc, ctx, pfn=i, order=0, gfp_flags=0xCC0, migratetype=1)
            tr.flush()
        assert tr.lines == n
    finally:
        os.unlink(path)
    return n


def events_spinlock_model(cpus: int = 16, each: int = 300) -> tuple[int, int]:
    """The spinlock model with every event on, to a real file: (events written, acquisitions)."""
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    os.close(fd)
    try:
        with open(path, "wb") as fh:
            tr = Tracer(None, out=fh, events="*")
            acq = spinlock_smpmem(cpus, each, tracer=tr)
            tr.flush()
            return tr.lines, acq
    finally:
        os.unlink(path)


class _Ctx:
    __slots__ = ("log",)

    def __init__(self, log) -> None:
        self.log = log


# -- report ---------------------------------------------------------------------------------------


def measure(scale: float = 1.0) -> list[Result]:
    """Run every measurement (``scale`` < 1 shortens them, for the smoke test)."""
    s = lambda n: max(1, int(n * scale))  # noqa: E731
    delays = sleep_delays(100, s(2_000))
    out = [
        Result("virtual sleeps/s (100 sleepers)",
               best_rate(lambda: sleeps_smpmem(delays)), best_rate(lambda: sleeps_simpy(delays)),
               TARGETS["sleeps"]),
        Result("contended spinlock acquisitions/s (16 CPUs)",
               best_rate(lambda: spinlock_smpmem(16, s(1_000))), best_rate(lambda: spinlock_simpy(16, s(1_000))),
               TARGETS["acquisitions"]),
        Result("events/s written, all events on (Tracer.emit to a file)",
               best_rate(lambda: events_tracer(s(200_000))), None, TARGETS["events"]),
    ]
    counts: list[int] = []

    def model() -> int:
        ev, acq = events_spinlock_model(16, s(300))
        counts.append(acq)
        return ev

    out.append(Result("events/s written by the spinlock model, all events on", best_rate(model)))
    return out


def report(results: list[Result]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="smpmem runtime (smpmem/sim)", title_justify="left")
    for col in ("measure", "smpmem /s", "SimPy /s", "smpmem/SimPy", "target /s", ""):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for r in results:
        table.add_row(
            r.what,
            f"{r.smpmem:,.0f}",
            "" if r.simpy is None else f"{r.simpy:,.0f}",
            "" if r.simpy is None else f"{r.smpmem / r.simpy:.2f}",
            "" if r.target is None else f"{r.target:,}",
            "" if r.target is None else ("met" if r.smpmem >= r.target else "MISSED"),
        )
    Console(width=140).print(table)


def main(scale: float = 1.0) -> list[Result]:
    results = measure(scale)
    report(results)
    return results


if __name__ == "__main__":
    main()
