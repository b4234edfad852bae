"""The virtual-time engine (smpmem/sim/engine.py): ordering, the no-switch path, kills, run endings.

Tests record ``(name, now)`` pairs and assert the whole log, as SimPy's do.
"""

from __future__ import annotations

import random

from smpmem.sim import Actor, Deadlock, Machine, ModelBug, Mutex, Simulator
from smpmem.sim.costs import CostModel


class WaitQueue:
    """The smallest wait list an actor can block on: a FIFO that forgets killed waiters."""

    def __init__(self) -> None:
        self.waiters: list[Actor] = []

    def remove_waiter(self, actor: Actor) -> None:
        self.waiters.remove(actor)


class TestOrdering:
    async def test_sleeps_wake_in_time_order_fifo_on_ties(self):
        """Sleepers wake in wake-time order; those due at the same instant wake in the order they slept."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def sleeper(name: str, dt: int) -> None:
            await sim.sleep(dt)
            log.append((name, sim.now))

        async def main(sim: Simulator) -> None:
            for name, dt in [("a", 30), ("b", 10), ("c", 20), ("d", 10), ("e", 0), ("f", 30)]:
                sim.spawn(Actor(sim, name), sleeper, name, dt)

        assert await sim.run(main) == "completed"
        assert log == [("e", 0), ("b", 10), ("d", 10), ("c", 20), ("a", 30), ("f", 30)]

    async def test_spawn_at_and_sleep_until(self):
        """An actor spawned ``at`` a time starts then; sleep_until a past time does not go back."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def late(name: str) -> None:
            log.append((name, sim.now))
            await sim.sleep_until(5)  # already past: continues at once
            log.append((name + " after past sleep_until", sim.now))
            await sim.sleep_until(150)
            log.append((name, sim.now))

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "x"), late, "x", at=100)
            sim.spawn(Actor(sim, "y"), late, "y", at=50)

        assert await sim.run(main) == "completed"
        assert log == [
            ("y", 50), ("y after past sleep_until", 50),
            ("x", 100), ("x after past sleep_until", 100),
            ("y", 150), ("x", 150),  # y slept first at 50, x at 100: FIFO among equals
        ]
        assert sim.now == 150

    async def test_earliest_actor_continues_without_a_switch(self):
        """An actor that is still the earliest after sleeping continues with no trio hand-off at all."""
        sim = Simulator()

        async def busy() -> None:
            for _ in range(1000):
                await sim.sleep(1)

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "solo"), busy)

        assert await sim.run(main) == "completed"
        assert sim.now == 1000
        # One hand-off from the driver to the actor and one back when it ends: none per sleep.
        assert sim.switches == 2

    async def test_interleaved_actors_switch_every_time(self):
        """Two actors whose sleeps interleave hand off at every sleep (and not otherwise)."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def ticker(name: str, dt: int, n: int) -> None:
            for _ in range(n):
                await sim.sleep(dt)
                log.append((name, sim.now))

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "a"), ticker, "a", 10, 3)
            sim.spawn(Actor(sim, "b"), ticker, "b", 15, 2)

        assert await sim.run(main) == "completed"
        assert log == [("a", 10), ("b", 15), ("a", 20), ("b", 30), ("a", 30)]
        # Counted by hand: driver->a; a(0->10)->b; b(0->15)->a; a(10->20)->b; b(15->30)->a;
        # a(20->30)->b (b was due at 30 first); b ends ->a; a ends ->driver.
        assert sim.switches == 8


class TestKill:
    async def test_kill_sleeping_and_blocked_actors_runs_finally_at_kill_instant_in_uid_order(self):
        """Killed actors (sleeping or blocked) unwind at the kill instant, in uid order, after the killer waits."""
        sim = Simulator()
        log: list[tuple[str, int]] = []
        queue = WaitQueue()

        async def sleeper() -> None:
            try:
                await sim.sleep(1_000)
                log.append(("sleeper woke", sim.now))
            finally:
                log.append(("sleeper finally", sim.now))

        async def blocked(me: Actor) -> None:
            try:
                queue.waiters.append(me)
                await sim.block(me, queue)
                log.append(("blocked woke", sim.now))
            finally:
                log.append(("blocked finally", sim.now))

        async def killer(victims: list[Actor]) -> None:
            await sim.sleep(70)
            sim.kill(list(reversed(victims)))  # the order given does not matter: uid order does
            log.append(("killer after kill", sim.now))
            await sim.sleep(5)
            log.append(("killer", sim.now))

        async def main(sim: Simulator) -> None:
            s = sim.spawn(Actor(sim, "sleeper"), sleeper)
            b = Actor(sim, "blocked")
            sim.spawn(b, blocked, b)
            sim.spawn(Actor(sim, "killer"), killer, [s, b])

        assert await sim.run(main) == "completed"
        assert log == [
            ("killer after kill", 70),
            ("sleeper finally", 70),
            ("blocked finally", 70),
            ("killer", 75),
        ]
        assert queue.waiters == []

    async def test_finally_blocks_of_a_killed_actor_run_in_virtual_time(self):
        """A killed actor's cleanup may itself sleep; the sleep takes virtual time and is not cut short."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def victim() -> None:
            try:
                await sim.sleep(1_000)
            finally:
                await sim.sleep(30)
                log.append(("cleanup done", sim.now))

        async def killer(v: Actor) -> None:
            await sim.sleep(10)
            sim.kill([v])
            await sim.sleep(100)
            log.append(("killer", sim.now))

        async def main(sim: Simulator) -> None:
            v = sim.spawn(Actor(sim, "victim"), victim)
            sim.spawn(Actor(sim, "killer"), killer, v)

        assert await sim.run(main) == "completed"
        assert log == [("cleanup done", 40), ("killer", 110)]

    async def test_uninterruptible_section_defers_a_kill_to_its_end(self):
        """A kill during an uninterruptible section lands at the first wait after it, not inside it."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def victim() -> None:
            try:
                with sim.uninterruptible(sim.current):
                    await sim.sleep(50)  # killed at 10: the section goes on
                    log.append(("section done", sim.now))
                await sim.sleep(1_000)  # the deferred kill lands here
                log.append(("not reached", sim.now))
            finally:
                log.append(("unwound", sim.now))

        async def killer(v: Actor) -> None:
            await sim.sleep(10)
            sim.kill([v])
            log.append(("killer", sim.now))

        async def main(sim: Simulator) -> None:
            v = sim.spawn(Actor(sim, "victim"), victim)
            sim.spawn(Actor(sim, "killer"), killer, v)

        assert await sim.run(main) == "completed"
        assert log == [("killer", 10), ("section done", 50), ("unwound", 50)]

    async def test_teardown_waits_for_an_uninterruptible_section(self):
        """The end of a run kills an actor inside an uninterruptible section only after the section."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def victim() -> None:
            await sim.sleep(90)
            try:
                with sim.uninterruptible(sim.current):
                    await sim.sleep(40)
                    log.append(("section done", sim.now))
                await sim.sleep(1_000)
            finally:
                log.append(("unwound", sim.now))

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "victim"), victim)

        assert await sim.run(main, until=100) == "timeout"
        assert log == [("section done", 130), ("unwound", 130)]

    async def test_until_times_out_and_kills_everything(self):
        """A run with ``until`` ends with status timeout at that instant and every actor unwinds there."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def forever(name: str, dt: int) -> None:
            try:
                while True:
                    await sim.sleep(dt)
            finally:
                log.append((name, sim.now))

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "slow"), forever, "slow", 300)
            sim.spawn(Actor(sim, "fast"), forever, "fast", 7)

        assert await sim.run(main, until=1_000) == "timeout"
        assert log == [("slow", 1_000), ("fast", 1_000)]
        assert sim.live_actors == []
        assert sim.failure is None

    async def test_daemons_do_not_keep_the_run_alive(self):
        """The run completes when the last non-daemon actor ends; daemons are then killed."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def daemon() -> None:
            try:
                while True:
                    await sim.sleep(10)
            finally:
                log.append(("daemon killed", sim.now))

        async def worker() -> None:
            await sim.sleep(25)
            log.append(("worker done", sim.now))

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "kswapd0", daemon=True), daemon)
            sim.spawn(Actor(sim, "worker"), worker)

        assert await sim.run(main) == "completed"
        assert log == [("worker done", 25), ("daemon killed", 25)]


class TestRunStatus:
    async def test_actors_stuck_in_their_cleanup_fail_the_run_cleanly(self):
        """Actors whose cleanup blocks on something no one releases fail the run with ModelBug, one by one.

        Both are killed at the ``until`` instant, both block again in their
        ``finally``; the teardown raises ModelBug in the first, then the second,
        each unwinding in virtual time, and the run ends failed (not hung, no
        trio internal error).
        """
        sim = Simulator()
        log: list[tuple[str, int]] = []
        forever = WaitQueue()

        async def stubborn(me: Actor) -> None:
            try:
                await sim.sleep(10_000)
            finally:
                forever.waiters.append(me)
                try:
                    await sim.block(me, forever)
                except ModelBug as e:
                    log.append((f"{me.name}: {e}", sim.now))
                    raise

        async def main(sim: Simulator) -> None:
            for name in ("a", "b"):
                a = Actor(sim, name)
                sim.spawn(a, stubborn, a)

        assert await sim.run(main, until=100) == "failed"
        assert isinstance(sim.failure, ModelBug)
        assert log == [("a: <Actor a #2> is stuck during teardown", 100),
                       ("b: <Actor b #3> is stuck during teardown", 100)]
        assert forever.waiters == [] and sim.live_actors == []


    async def test_exception_fails_the_run_and_keeps_the_error(self):
        """An actor raising gives status failed, the error in ``sim.failure``, and the others are killed."""
        sim = Simulator()
        log: list[tuple[str, int]] = []

        async def bad() -> None:
            await sim.sleep(40)
            raise ValueError("model went wrong")

        async def other() -> None:
            try:
                await sim.sleep(1_000)
            finally:
                log.append(("other killed", sim.now))

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "bad"), bad)
            sim.spawn(Actor(sim, "other"), other)

        assert await sim.run(main) == "failed"
        assert isinstance(sim.failure, ValueError)
        assert str(sim.failure) == "model went wrong"
        assert log == [("other killed", 40)]

    async def test_before_teardown_sees_the_status_before_anything_is_killed(self):
        """``before_teardown(status)`` runs at the end instant while the actors are still alive."""
        sim = Simulator()
        seen: list[tuple[str, int, int]] = []

        async def forever() -> None:
            while True:
                await sim.sleep(100)

        async def main(sim: Simulator) -> None:
            sim.spawn(Actor(sim, "a"), forever)

        status = await sim.run(main, until=250, before_teardown=lambda st: seen.append((st, sim.now, len(sim.live_actors))))
        assert status == "timeout"
        assert seen == [("timeout", 250, 1)]

    async def test_two_threads_blocking_on_each_others_mutex_is_a_deadlock(self):
        """A→B against B→A on two CPUs leaves both asleep with nothing due: status deadlock, named waits."""
        m = Machine(2, costs=CostModel(lock_acquire=0, cacheline_bounce=0, sleep_wakeup=0, context_switch=0))
        m.locks.lockdep.enabled = False  # let the deadlock happen instead of reporting the inversion
        a = Mutex(m, "lock_a")
        b = Mutex(m, "lock_b")
        log: list[tuple[str, int]] = []

        async def take(th, first: Mutex, second: Mutex) -> None:
            await first.acquire(th)
            await th.compute(10)
            try:
                await second.acquire(th)
                log.append((th.comm + " got both", th.sim.now))
            finally:
                log.append((th.comm + " unwinds", th.sim.now))

        def setup(m: Machine) -> None:
            from smpmem.sim import Thread

            m.start_thread(Thread(m, 1, "t1"), take, a, b, cpu=0)
            m.start_thread(Thread(m, 2, "t2"), take, b, a, cpu=1)

        assert await m.run(setup) == "deadlock"
        assert isinstance(m.sim.failure, Deadlock)
        msg = str(m.sim.failure)
        assert "t=10ns" in msg and "t1-1 on <Mutex lock_b>" in msg and "t2-2 on <Mutex lock_a>" in msg
        assert log == [("t1 unwinds", 10), ("t2 unwinds", 10)]
        assert a.owner is None and b.owner is None and not a.waiters and not b.waiters


class TestRandomness:
    async def test_model_never_uses_the_global_random_module(self, monkeypatch):
        """Randomness comes only from ``machine.rng_for`` streams: the global ``random`` functions are never called."""
        from smpmem.sim import SpinLock, Thread

        def forbidden(*_a, **_k):
            raise AssertionError("the model used the global random module")

        state = random.getstate()
        for name in ("random", "randrange", "randint", "choice", "choices", "shuffle", "sample", "uniform",
                     "gauss", "expovariate", "getrandbits", "randbytes", "seed", "triangular", "betavariate"):
            monkeypatch.setattr(random, name, forbidden)

        m = Machine(2, seed=7)
        lock = SpinLock(m, "zone->lock")
        draws: list[int] = []

        async def worker(th: Thread) -> None:
            for _ in range(20):
                d = th.rng.randrange(1, 500)
                draws.append(d)
                await th.compute(d)
                await lock.acquire(th)
                th.charge(th.rng.randrange(1, 100))
                await lock.release(th)

        def setup(m: Machine) -> None:
            for i in range(4):
                m.start_thread(Thread(m, m.alloc_pid(), f"w{i}"), worker)

        assert await m.run(setup) == "completed", m.sim.failure
        assert len(draws) == 80 and len(set(draws)) > 10  # real randomness was drawn, from the streams
        monkeypatch.undo()
        assert random.getstate() == state  # the global generator did not advance

