"""The tracer (smpmem/sim/tracer.py): lock contention events as JSON Lines, the enable mask, counters."""

from __future__ import annotations

import io

import orjson

from smpmem.sim import Machine, Mutex, RWSemaphore, SpinLock, Thread, Tracer
from smpmem.sim.costs import CostModel
from smpmem.trace.events.lock import LCB_F_MUTEX, LCB_F_READ, LCB_F_SPIN, LCB_F_WRITE, contention_begin

FREE = CostModel(lock_acquire=0, cacheline_bounce=0, spin_handoff=0, context_switch=0, sleep_wakeup=0)


def records(buf: io.BytesIO) -> list[dict]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def start(m: Machine, comm: str, fn, *args, cpu: int, at: int | None = None) -> Thread:
    return m.start_thread(Thread(m, m.alloc_pid(), comm), fn, *args, cpu=cpu, at=at)


class TestContentionEvents:
    async def test_spinlock_contention_begin_and_end_with_address_and_flags(self):
        """A contended spinlock logs contention_begin (flags SPIN) and contention_end at the hand-off, with its address."""
        buf = io.BytesIO()
        m = Machine(2, costs=FREE, tracer=Tracer(None, out=buf, events="lock:*"))
        lock = SpinLock(m, "zone->lock")

        async def holder(th: Thread) -> None:
            await lock.acquire(th)
            await th.compute(100)
            await lock.release(th)

        async def waiter(th: Thread) -> None:
            await th.compute(30)
            await lock.acquire(th)
            await lock.release(th)

        def setup(m: Machine) -> None:
            start(m, "holder", holder, cpu=0)
            start(m, "waiter", waiter, cpu=1)

        assert await m.run(setup) == "completed"
        a = lock.addr
        assert records(buf) == [
            {"ts": 30, "cpu": 1, "pid": 2, "comm": "waiter", "event": "contention_begin",
             "lock_addr": a, "flags": LCB_F_SPIN, "name": "zone->lock"},
            {"ts": 100, "cpu": 0, "pid": 1, "comm": "holder", "event": "lock_release",
             "lock_addr": a, "name": "zone->lock", "hold_ns": 100},
            {"ts": 100, "cpu": 1, "pid": 2, "comm": "waiter", "event": "contention_end",
             "lock_addr": a, "ret": 0, "name": "zone->lock", "wait_ns": 70},
            {"ts": 100, "cpu": 1, "pid": 2, "comm": "waiter", "event": "lock_release",
             "lock_addr": a, "name": "zone->lock", "hold_ns": 0},
        ]

    async def test_sleeping_locks_flag_mutex_read_and_write(self):
        """Mutex waits carry LCB_F_MUTEX, rwsem waits LCB_F_READ or LCB_F_WRITE; each lock its own address."""
        buf = io.BytesIO()
        m = Machine(3, costs=FREE, tracer=Tracer(None, out=buf, events="lock:contention_*"))
        mutex = Mutex(m, "inode->i_rwsem")
        sem = RWSemaphore(m, "mm->mmap_lock")

        async def writer(th: Thread) -> None:
            await mutex.acquire(th)
            await sem.down_write(th)
            await th.compute(100)
            await sem.up_write(th)
            await mutex.release(th)

        async def reader(th: Thread) -> None:
            await th.compute(10)
            await sem.down_read(th)
            await sem.up_read(th)

        async def other_writer(th: Thread) -> None:
            await th.compute(20)
            await mutex.acquire(th)
            await mutex.release(th)

        def setup(m: Machine) -> None:
            start(m, "w", writer, cpu=0)
            start(m, "r", reader, cpu=1)
            start(m, "w2", other_writer, cpu=2)

        assert await m.run(setup) == "completed"
        got = [(r["ts"], r["comm"], r["event"], r["lock_addr"], r.get("flags")) for r in records(buf)]
        assert got == [
            (10, "r", "contention_begin", sem.addr, LCB_F_READ),
            (20, "w2", "contention_begin", mutex.addr, LCB_F_MUTEX),
            (100, "r", "contention_end", sem.addr, None),
            (100, "w2", "contention_end", mutex.addr, None),
        ]
        assert mutex.addr != sem.addr
        assert LCB_F_WRITE == 0x4  # the writer's flag, as include/trace/events/lock.h

    def test_ftrace_body_of_contention_begin(self):
        """The catalog renders contention_begin as the kernel's "%p (flags=%s)"."""
        body = contention_begin.body({"lock_addr": 0xFFFF888000100040, "flags": LCB_F_SPIN | LCB_F_READ})
        ptr, rest = body.split(" ", 1)
        assert len(ptr) == 16 and rest == "(flags=SPIN|READ)"


class TestEnableMask:
    async def test_disabled_events_are_not_written_but_counters_still_count(self):
        """With no event enabled nothing is written, and vmstat counters are kept regardless."""
        buf = io.BytesIO()
        tr = Tracer(None, out=buf, events=None)
        m = Machine(2, costs=FREE, tracer=tr)
        lock = SpinLock(m, "zone->lock")

        async def worker(th: Thread) -> None:
            await lock.acquire(th)
            th.machine.tracer.count("pgalloc_normal")
            await th.compute(10)
            await lock.release(th)

        def setup(m: Machine) -> None:
            start(m, "a", worker, cpu=0)
            start(m, "b", worker, cpu=1)

        assert await m.run(setup) == "completed"
        assert buf.getvalue() == b"" and tr.lines == 0
        assert tr.vmstat == {"pgalloc_normal": 2}
        assert lock.cls.statistics().contentions == 1
