"""Locks (smpmem/sim/locks.py): lock_stat figures computed by hand, fairness, sleeping vs spinning, kills, lockdep.

Every schedule here is small enough to work out on paper; the comments do
so, and the tests assert the whole log of ``(what, virtual time)``.
"""

from __future__ import annotations

import io

import orjson
import pytest

from smpmem.sim import LockInversion, Machine, Mutex, RWSemaphore, SpinLock, Thread, Tracer
from smpmem.sim.costs import CostModel
from smpmem.sim.locks import LockStatistics, LockTime

FREE = CostModel(lock_acquire=0, cacheline_bounce=0, spin_handoff=0, context_switch=0, sleep_wakeup=0)

Log = list[tuple[str, int]]


def start(m: Machine, comm: str, fn, *args, cpu: int, at: int | None = None) -> Thread:
    return m.start_thread(Thread(m, m.alloc_pid(), comm), fn, *args, cpu=cpu, at=at)


async def ping_pong(costs: CostModel) -> tuple[Log, LockStatistics]:
    """t1 on CPU0 and t2 on CPU1 each take ``zone->lock`` 3 times: hold 100 ns, think 50 ns (busy)."""
    m = Machine(2, costs=costs)
    lock = SpinLock(m, "zone->lock")
    log: Log = []

    async def worker(th: Thread) -> None:
        for _ in range(3):
            await lock.acquire(th, site="rmqueue_bulk")
            log.append((f"{th.comm} acquired", th.sim.now))
            await th.compute(100)
            await lock.release(th)
            await th.compute(50)

    def setup(m: Machine) -> None:
        start(m, "t1", worker, cpu=0)
        start(m, "t2", worker, cpu=1)

    assert await m.run(setup) == "completed", m.sim.failure
    return log, lock.cls.statistics()


class TestLockStatFigures:
    async def test_two_cpus_free_costs(self):
        """With zero lock costs: 5 contentions, waits 100+4x50, 6 acquisitions of 100 ns, every hand-off bounces.

        t1 takes the free lock at 0 (no bounce: never taken before) and holds to
        100; t2 arrives at 0 and waits (contended on CPU1, last taken on CPU0: a
        con-bounce). Each release hands the lock to the spinner on the other CPU
        at the same instant (an acq-bounce). After its first turn each thread
        thinks 50 ns and then waits 50 ns for the other's turn to end:

            t1  0-100          200-300          400-500
            t2        100-200          300-400          500-600
            waits: t2 100 (0..100), then 50 each: t1 150..200, t2 250..300,
                   t1 350..400, t2 450..500
        """
        log, st = await ping_pong(FREE)
        assert log == [("t1 acquired", 0), ("t2 acquired", 100), ("t1 acquired", 200),
                       ("t2 acquired", 300), ("t1 acquired", 400), ("t2 acquired", 500)]
        assert st == LockStatistics(
            name="zone->lock",
            con_bounces_write=5, con_bounces_read=0,
            acq_bounces_write=5, acq_bounces_read=0,
            waittime_write=LockTime(nr=5, min=50, max=100, total=300),
            waittime_read=LockTime(),
            holdtime_write=LockTime(nr=6, min=100, max=100, total=600),
            holdtime_read=LockTime(),
            contention_points=(("rmqueue_bulk", 5),),
            contending_points=(("rmqueue_bulk", 5),),
        )
        assert (st.contentions, st.acquisitions, st.wait_total) == (5, 6, 300)
        assert st.waittime_write.avg == 60 and st.holdtime_write.avg == 100

    async def test_two_cpus_with_bounce_costs(self):
        """With lock_acquire=20, spin_handoff=60, cacheline_bounce=120 every hand-off costs 180 ns of waiting.

        t1 takes the free lock at 0 paying lock_acquire (20): the hold starts at
        20, the critical section ends at 120 (hold 100). t2 has spun since 0; the
        hand-off costs spin_handoff + cacheline_bounce = 180, so t2 owns it at
        300 (wait 300) and releases at 400. t1 came back at 120+50 = 170 and gets
        it at 400+180 = 580 (wait 410); from then on each thread arrives 50 ns
        after its own release and waits for the other's 100 ns hold plus 180:

            t1 20-120, t2 300-400, t1 580-680, t2 860-960, t1 1140-1240, t2 1420-1520
            waits: 300, 410, 410, 410, 410 (total 1940)
        """
        log, st = await ping_pong(CostModel(lock_acquire=20, spin_handoff=60, cacheline_bounce=120, context_switch=0))
        assert log == [("t1 acquired", 0), ("t2 acquired", 300), ("t1 acquired", 580),
                       ("t2 acquired", 860), ("t1 acquired", 1140), ("t2 acquired", 1420)]
        assert st.waittime_write == LockTime(nr=5, min=300, max=410, total=1940)
        assert st.holdtime_write == LockTime(nr=6, min=100, max=100, total=600)
        assert (st.con_bounces_write, st.acq_bounces_write) == (5, 5)

    async def test_same_cpu_reacquire_does_not_bounce(self):
        """A lock taken again on the CPU that last had it is no acq-bounce and pays no cache-line transfer."""
        m = Machine(2, costs=CostModel(lock_acquire=20, cacheline_bounce=120, context_switch=0))
        lock = SpinLock(m, "kmap_lock")
        log: Log = []

        async def worker(th: Thread, n: int) -> None:
            for _ in range(n):
                await lock.acquire(th)
                await lock.release(th)
                log.append((th.comm, th.sim.now))

        def setup(m: Machine) -> None:
            start(m, "a", worker, 2, cpu=0)
            start(m, "b", worker, 1, cpu=1, at=1_000)

        assert await m.run(setup) == "completed"
        # a: 0+20, 20+20 (same CPU); b at 1000 pays 20 + a bounce of 120.
        assert log == [("a", 20), ("a", 40), ("b", 1_140)]
        st = lock.cls.statistics()
        assert (st.acq_bounces_write, st.contentions, st.acquisitions) == (1, 0, 3)


class TestRWSemaphore:
    async def test_a_waiting_writer_is_not_starved_by_later_readers(self):
        """A writer gets the rwsem after the readers holding it, before readers that arrived after it.

        Readers r1 (0-100) and r2 (50-150) overlap, so a reader always holds the
        lock; w arrives at 75 and queues; r3 (110) and r4 (120) find a waiter
        queued and queue behind it instead of joining the current readers. r2's
        up_read at 150 wakes w (sleep_wakeup 10): w holds 160-260; its up_write
        wakes r3 and r4 together at 270.
        """
        m = Machine(5, costs=CostModel(lock_acquire=0, cacheline_bounce=0, sleep_wakeup=10, context_switch=0))
        sem = RWSemaphore(m, "mm->mmap_lock")
        sem.nonspinnable = True  # RWSEM_NONSPINNABLE: w queues at once instead of spinning on the readers first
        log: Log = []

        async def reader(th: Thread) -> None:
            await sem.down_read(th, site="do_user_addr_fault")
            log.append((f"{th.comm} in", th.sim.now))
            await th.compute(100)
            await sem.up_read(th)

        async def writer(th: Thread) -> None:
            await sem.down_write(th, site="do_mmap")
            log.append((f"{th.comm} in", th.sim.now))
            await th.compute(100)
            await sem.up_write(th)

        def setup(m: Machine) -> None:
            start(m, "r1", reader, cpu=0, at=0)
            start(m, "r2", reader, cpu=1, at=50)
            start(m, "w", writer, cpu=2, at=75)
            start(m, "r3", reader, cpu=3, at=110)
            start(m, "r4", reader, cpu=4, at=120)

        assert await m.run(setup) == "completed", m.sim.failure
        assert log == [("r1 in", 0), ("r2 in", 50), ("w in", 160), ("r3 in", 270), ("r4 in", 270)]
        st = sem.cls.statistics()
        assert st.waittime_write == LockTime(nr=1, min=85, max=85, total=85)  # 75 -> 160
        assert st.waittime_read == LockTime(nr=2, min=150, max=160, total=310)  # 120->270, 110->270
        assert st.holdtime_write.nr == 1 and st.holdtime_read.nr == 4

    async def test_up_write_wakes_every_queued_reader_even_past_a_writer(self):
        """rwsem_mark_wake: the readers queued behind a writer's hold all wake together; a queued writer waits.

        w1 holds 0-100, asleep (off its CPU, so w2 does not spin on it). Queued in
        order: r1 (10), w2 (20), r2 (30). At 100 the head is a reader, so every
        queued reader (r1 and r2) is granted; w2 stays queued and gets the lock
        when the last reader leaves (r2, 100+50).
        """
        m = Machine(4, costs=FREE)
        sem = RWSemaphore(m, "mm->mmap_lock")
        log: Log = []

        async def user(th: Thread, write: bool, hold: int, asleep: bool = False) -> None:
            await (sem.down_write(th) if write else sem.down_read(th))
            log.append((f"{th.comm} in", th.sim.now))
            await (th.sleep_for(hold) if asleep else th.compute(hold))
            await (sem.up_write(th) if write else sem.up_read(th))
            log.append((f"{th.comm} out", th.sim.now))

        def setup(m: Machine) -> None:
            start(m, "w1", user, True, 100, True, cpu=0, at=0)
            start(m, "r1", user, False, 30, cpu=1, at=10)
            start(m, "w2", user, True, 10, cpu=2, at=20)
            start(m, "r2", user, False, 50, cpu=3, at=30)

        assert await m.run(setup) == "completed", m.sim.failure
        assert log == [
            ("w1 in", 0), ("w1 out", 100),
            ("r1 in", 100), ("r2 in", 100), ("r1 out", 130), ("r2 out", 150),
            ("w2 in", 150), ("w2 out", 160),
        ]
        st = sem.cls.statistics()
        assert st.waittime_read == LockTime(nr=2, min=70, max=90, total=160)
        assert st.waittime_write == LockTime(nr=1, min=130, max=130, total=130)


class TestRwsemOptimisticSpin:
    @staticmethod
    async def run(owner_sleeps_at: int | None) -> tuple[Log, RWSemaphore, list[str]]:
        """w1 (CPU0) holds the rwsem for write 0-100; r1 (CPU1) queues at 10; w2 (CPU2) arrives at 20.

        With ``owner_sleeps_at``, w1 computes until then and sleeps the rest of its hold.
        """
        m = Machine(4, costs=FREE, tracer=Tracer(None, io.BytesIO(), events="lock:contention_begin"))
        sem = RWSemaphore(m, "mm->mmap_lock")
        log: Log = []

        async def w1(th: Thread) -> None:
            await sem.down_write(th)
            if owner_sleeps_at is None:
                await th.compute(100)
            else:
                await th.compute(owner_sleeps_at)
                await th.sleep_for(100 - owner_sleeps_at)
            await sem.up_write(th)

        async def user(th: Thread, write: bool) -> None:
            await (sem.down_write(th) if write else sem.down_read(th))
            log.append((f"{th.comm} in", th.sim.now))
            await th.compute(10)
            await (sem.up_write(th) if write else sem.up_read(th))

        def setup(m: Machine) -> None:
            start(m, "w1", w1, cpu=0, at=0)
            start(m, "r1", user, False, cpu=1, at=10)
            start(m, "w2", user, True, cpu=2, at=20)

        assert await m.run(setup) == "completed", m.sim.failure
        m.tracer.flush()
        begins = [orjson.loads(x)["comm"] for x in m.tracer._fh.getvalue().splitlines() if x]
        return log, sem, begins

    async def test_writer_spins_on_a_running_owner_and_steals_the_lock(self):
        """rwsem_optimistic_spin: w2 spins while w1 runs and takes the lock at its release, ahead of the
        sleeping reader r1; lock_stat counts w2's contention, but only r1 hits the sleeping slow path
        (contention_begin)."""
        log, sem, begins = await self.run(None)
        assert log == [("w2 in", 100), ("r1 in", 110)]
        st = sem.cls.statistics()
        assert st.contentions == 2 and st.waittime_write == LockTime(nr=1, min=80, max=80, total=80)
        assert begins == ["r1"]

    async def test_spinner_sleeps_when_the_owner_leaves_its_cpu(self):
        """rwsem_spin_on_owner: w1 sleeps at 50 while holding the lock, so w2 stops spinning and queues behind
        r1; at 100 the reader at the head goes first."""
        log, sem, begins = await self.run(50)
        assert log == [("r1 in", 100), ("w2 in", 110)]
        assert begins == ["r1", "w2"]


class TestRwsemSpinOnReaders:
    @staticmethod
    async def run(read_hold: int, second_writer_at: int | None = None) -> tuple[Log, RWSemaphore, list[str]]:
        """r1 (CPU0) holds the rwsem for read from 0 for ``read_hold`` ns; w (CPU1) wants it for write at 2 us."""
        m = Machine(4, costs=FREE, tracer=Tracer(None, io.BytesIO(), events="lock:contention_begin"))
        sem = RWSemaphore(m, "mm->mmap_lock")
        log: Log = []

        async def reader(th: Thread) -> None:
            await sem.down_read(th)
            await th.compute(read_hold)
            await sem.up_read(th)

        async def writer(th: Thread) -> None:
            await sem.down_write(th)
            log.append((f"{th.comm} in", th.sim.now))
            await th.compute(1_000)
            await sem.up_write(th)

        def setup(m: Machine) -> None:
            start(m, "r1", reader, cpu=0, at=0)
            start(m, "w", writer, cpu=1, at=2_000)
            if second_writer_at is not None:
                start(m, "w2", writer, cpu=2, at=second_writer_at)

        assert await m.run(setup) == "completed", m.sim.failure
        m.tracer.flush()
        begins = [orjson.loads(x)["comm"] for x in m.tracer._fh.getvalue().splitlines() if x]
        return log, sem, begins

    async def test_writer_spins_while_readers_finish_soon(self):
        """rwsem_optimistic_spin on a reader-owned lock: the reader leaves at 8 us, within w's threshold of
        (20 + 1 reader) / 2 = 10.5 us, so w takes it then without sleeping (no contention_begin)."""
        log, sem, begins = await self.run(8_000)
        assert log == [("w in", 8_000)] and begins == [] and not sem.nonspinnable
        assert sem.cls.statistics().waittime_write == LockTime(nr=1, min=6_000, max=6_000, total=6_000)

    async def test_writer_gives_up_on_long_readers_and_the_lock_stops_spinning(self):
        """The reader holds 0-40 us: w spins 10.5 us, marks the lock RWSEM_NONSPINNABLE and sleeps; w2,
        arriving at 20 us while the reader still holds it, does not spin and queues at once."""
        log, sem, begins = await self.run(40_000, second_writer_at=20_000)
        assert begins == ["w", "w2"]
        assert log == [("w in", 40_000), ("w2 in", 41_000)]
        assert not sem.nonspinnable  # cleared once a writer owned the lock


class TestSleepingAndSpinning:
    @staticmethod
    async def contend(kind: str) -> Log:
        """a (CPU0) holds the lock 0-1000; b (CPU1) wants it at 10; c is queued behind b on CPU1."""
        m = Machine(2, costs=CostModel(lock_acquire=0, cacheline_bounce=0, spin_handoff=0, sleep_wakeup=0,
                                       context_switch=100))
        lock = SpinLock(m, "L") if kind == "spin" else Mutex(m, "L")
        log: Log = []

        async def a(th: Thread) -> None:
            await lock.acquire(th)
            await th.compute(1_000)
            await lock.release(th)

        async def b(th: Thread) -> None:
            await th.compute(10)
            await lock.acquire(th)
            log.append(("b acquired", th.sim.now))
            await lock.release(th)

        async def c(th: Thread) -> None:
            log.append(("c runs", th.sim.now))
            await th.compute(300)
            log.append(("c done", th.sim.now))

        def setup(m: Machine) -> None:
            start(m, "a", a, cpu=0)
            start(m, "b", b, cpu=1)
            start(m, "c", c, cpu=1)

        assert await m.run(setup) == "completed", m.sim.failure
        return log

    async def test_mutex_sleeper_gives_up_its_cpu(self):
        """b sleeps on the mutex at 10, so c gets CPU1 after one context switch (110) and is done before b wakes."""
        assert await self.contend("mutex") == [("c runs", 110), ("c done", 410), ("b acquired", 1_000)]

    async def test_spinlock_waiter_keeps_its_cpu(self):
        """b spins on the spinlock from 10 to 1000, so c runs only after b ends (1000 + context switch)."""
        assert await self.contend("spin") == [("b acquired", 1_000), ("c runs", 1_100), ("c done", 1_400)]


def holder_kinds():
    return pytest.mark.parametrize("kind", ["spin", "mutex", "rwsem"])


def make_lock(m: Machine, kind: str):
    """A lock of ``kind`` with uniform acquire/release coroutines (rwsem taken for write)."""
    if kind == "spin":
        lock = SpinLock(m, "L")
        return lock, lock.acquire, lock.release
    if kind == "mutex":
        lock = Mutex(m, "L")
        return lock, lock.acquire, lock.release
    lock = RWSemaphore(m, "L")
    return lock, lock.down_write, lock.up_write


class TestKill:
    @holder_kinds()
    async def test_killing_the_holder_releases_the_lock_to_the_next_waiter(self, kind):
        """A thread killed while holding a lock releases it at the kill instant and the first waiter gets it."""
        m = Machine(3, costs=FREE)
        lock, acquire, release = make_lock(m, kind)
        log: Log = []

        async def holder(th: Thread) -> None:
            await acquire(th)
            try:
                await th.compute(1_000)
            finally:
                log.append(("holder unwinds", th.sim.now))

        async def waiter(th: Thread) -> None:
            await th.compute(10)
            await acquire(th)
            log.append(("waiter acquired", th.sim.now))
            await th.compute(5)
            await release(th)

        async def killer(th: Thread, victim: Thread) -> None:
            await th.compute(300)
            th.sim.kill([victim])

        def setup(m: Machine) -> None:
            h = start(m, "holder", holder, cpu=0)
            start(m, "waiter", waiter, cpu=1)
            start(m, "killer", killer, h, cpu=2)

        assert await m.run(setup) == "completed", m.sim.failure
        assert log == [("holder unwinds", 300), ("waiter acquired", 300)]
        st = lock.cls.statistics()
        assert st.holdtime_write == LockTime(nr=2, min=5, max=300, total=305)
        assert st.waittime_write == LockTime(nr=1, min=290, max=290, total=290)
        assert not lock.waiters

    @holder_kinds()
    async def test_a_killed_waiter_leaves_the_queue(self, kind):
        """A thread killed while queued for a lock leaves the queue; the waiter behind it gets the lock next."""
        m = Machine(4, costs=FREE)
        lock, acquire, release = make_lock(m, kind)
        log: Log = []

        async def holder(th: Thread) -> None:
            await acquire(th)
            await th.compute(1_000)
            await release(th)

        async def waiter(th: Thread, delay: int) -> None:
            await th.compute(delay)
            try:
                await acquire(th)
            finally:
                log.append((f"{th.comm} leaves acquire", th.sim.now))
            await release(th)

        async def killer(th: Thread, victim: Thread) -> None:
            await th.compute(300)
            assert len(lock.waiters) + len(getattr(lock, "spinners", ())) == 2  # an rwsem's writers spin
            th.sim.kill([victim])

        def setup(m: Machine) -> None:
            start(m, "holder", holder, cpu=0)
            first = start(m, "first", waiter, 10, cpu=1)
            start(m, "second", waiter, 20, cpu=2)
            start(m, "killer", killer, first, cpu=3)

        assert await m.run(setup) == "completed", m.sim.failure
        assert log == [("first leaves acquire", 300), ("second leaves acquire", 1_000)]
        assert not lock.waiters and not getattr(lock, "spinners", ())
        st = lock.cls.statistics()
        # The killed waiter counted a contention but no wait time (it never got the lock).
        assert st.waittime_write == LockTime(nr=1, min=980, max=980, total=980)
        assert st.acquisitions == 2


class TestLockDep:
    @staticmethod
    async def abba(raise_on_violation: bool) -> tuple[Machine, str]:
        """t1 takes A then B at 0; t2 takes B then A at 100, after t1 is done: an inversion, no deadlock."""
        m = Machine(2, costs=FREE)
        m.locks.lockdep.raise_on_violation = raise_on_violation
        a = SpinLock(m, "&zone->lock")
        b = SpinLock(m, "&lruvec->lru_lock")

        async def nest(th: Thread, outer: SpinLock, inner: SpinLock) -> None:
            await outer.acquire(th)
            await inner.acquire(th)
            await inner.release(th)
            await outer.release(th)

        def setup(m: Machine) -> None:
            start(m, "t1", nest, a, b, cpu=0)
            start(m, "t2", nest, b, a, cpu=1, at=100)

        return m, await m.run(setup)

    async def test_inversion_raises_with_both_lock_names(self):
        """A→B then B→A raises LockInversion naming both classes; the run fails with it."""
        m, status = await self.abba(raise_on_violation=True)
        assert status == "failed"
        err = m.sim.failure
        assert isinstance(err, LockInversion)
        assert str(err) == (
            "possible circular locking dependency: t2-2 takes &zone->lock while holding &lruvec->lru_lock "
            "(held: &lruvec->lru_lock), but earlier &zone->lock -> &lruvec->lru_lock was taken in that order"
        )

    async def test_inversion_is_recorded_when_not_raising(self):
        """With raise_on_violation=False the run completes and the report is kept, as lockdep warns once."""
        m, status = await self.abba(raise_on_violation=False)
        assert status == "completed"
        [v] = m.locks.lockdep.violations
        assert (v.kind, v.held, v.taking) == ("circular", ("&lruvec->lru_lock",), "&zone->lock")
        assert "&zone->lock" in v.message and "&lruvec->lru_lock" in v.message

    async def test_nested_subclass_is_not_recursive(self):
        """Two locks of one class need distinct subclasses; the same subclass twice is reported as recursion."""
        m = Machine(1, costs=FREE)
        m.locks.lockdep.raise_on_violation = False
        outer = SpinLock(m, "&mm->page_table_lock")
        inner = SpinLock(m, "&mm->page_table_lock", subclass=1)
        same = SpinLock(m, "&mm->page_table_lock")

        async def fn(th: Thread) -> None:
            await outer.acquire(th)
            await inner.acquire(th)
            await inner.release(th)
            await same.acquire(th)
            await same.release(th)
            await outer.release(th)

        assert await m.run(lambda m: start(m, "t", fn, cpu=0)) == "completed"
        [v] = m.locks.lockdep.violations
        assert v.kind == "recursive" and v.taking == "&mm->page_table_lock"
