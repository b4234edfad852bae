"""CPUs and threads (smpmem/sim/cpu.py): IPIs against interrupt state, time slices, preemption.

Costs are set explicitly so every time in the logs can be worked out by hand.
"""

from __future__ import annotations

import pytest

from smpmem.sim import CPU, Machine, SpinLock, Thread
from smpmem.sim.costs import CostModel

Log = list[tuple[str, int]]

IPI = CostModel(ipi_send=300, ipi_latency=1_000, ipi_handle=400, context_switch=0,
                lock_acquire=0, cacheline_bounce=0, spin_handoff=0)


def start(m: Machine, comm: str, fn, *args, cpu: int, at: int | None = None) -> Thread:
    return m.start_thread(Thread(m, m.alloc_pid(), comm), fn, *args, cpu=cpu, at=at)


async def shootdown(target: str, irq_off_until: int = 0) -> Log:
    """The sender on CPU0 IPIs CPU1 at 100; CPU1 is idle, busy with irqs on, or has irqs off until a time.

    The IPI is sent at 100 and reaches CPU1 at 100 + ipi_latency = 1100; the
    sender pays ipi_send (300) and then spins until the acknowledgement.
    """
    m = Machine(2, costs=IPI)
    lock = SpinLock(m, "zone->lock")
    log: Log = []

    async def sender(th: Thread) -> None:
        await th.compute(100)
        await m.smp_call_function_many(th, [m.cpus[1]], lambda cpu: None, name="flush_tlb_func")
        log.append(("acked", th.sim.now))

    async def busy(th: Thread) -> None:
        if target == "irqs_on":
            await th.compute(5_000)
        elif target == "irq_disable":
            th.local_irq_disable()
            await th.compute(irq_off_until)
            await th.local_irq_enable()
        elif target == "spin_lock_irqsave":
            await lock.acquire_irqsave(th)
            await th.compute(irq_off_until)
            await lock.release_irqrestore(th)
        await th.compute(0)  # pay what the handler cost this thread
        log.append(("target done", th.sim.now))

    def setup(m: Machine) -> None:
        start(m, "sender", sender, cpu=0)
        if target != "idle":
            start(m, "busy", busy, cpu=1)

    assert await m.run(setup) == "completed", m.sim.failure
    return log


class TestIPI:
    async def test_idle_target_acknowledges_after_latency_and_handling(self):
        """An idle CPU handles the IPI on arrival: acknowledged at 100 + 1000 + 400."""
        assert await shootdown("idle") == [("acked", 1_500)]

    async def test_busy_target_with_irqs_on_handles_on_arrival_and_loses_the_time(self):
        """A busy CPU with interrupts on acknowledges at 1500 too; its thread ends ipi_handle (400) late."""
        assert await shootdown("irqs_on") == [("acked", 1_500), ("target done", 5_400)]

    @pytest.mark.parametrize("how", ["irq_disable", "spin_lock_irqsave"])
    async def test_irq_disabled_target_delays_the_acknowledgement(self, how):
        """Interrupts off on the target until 3000 delay the ack to 3000 + 400: 1900 ns later than with them on."""
        assert await shootdown(how, irq_off_until=3_000) == [("acked", 3_400), ("target done", 3_400)]

    @pytest.mark.parametrize("until", [200, 500])
    async def test_irqs_enabled_before_the_ipi_arrives_change_nothing(self, until):
        """Interrupts back on before the IPI arrives (at 1100): it is handled on arrival, acknowledged at 1500.

        At 200 the target re-enables while the sender is still paying ipi_send
        (100-400): the acknowledgement must not be lost either.
        """
        assert await shootdown("irq_disable", irq_off_until=until) == [("target done", until + 400), ("acked", 1_500)]

    async def test_sender_does_not_ipi_itself(self):
        """smp_call_function_many to every CPU skips the sender's own CPU and pays ipi_send per other CPU."""
        m = Machine(4, costs=CostModel(ipi_send=300, ipi_latency=100, ipi_handle=50, context_switch=0))
        handled: list[int] = []
        log: Log = []

        async def sender(th: Thread) -> None:
            await th.compute(100)
            await m.smp_call_function_many(th, m.cpus, lambda cpu: handled.append(cpu.id))
            log.append(("acked", th.sim.now))

        assert await m.run(lambda m: start(m, "sender", sender, cpu=2)) == "completed"
        assert handled == [0, 1, 3]
        assert [c.nr_ipis_received for c in m.cpus] == [1, 1, 0, 1]
        # 3 sends of 300 after 100: 1000 > the last ack at 100 + 100 + 50.
        assert log == [("acked", 1_000)]


class TestTimeSlices:
    async def test_two_threads_on_one_cpu_alternate_every_timeslice(self):
        """Two CPU-bound threads on one CPU take turns of one timeslice (3000), each switch costing 100.

        Each thread runs six 1000 ns steps. A runs 0-3000 and is preempted at
        its sync at 3000; B gets the CPU at 3100 and runs to 6100; A again from
        6200, B from 9300, A finishes at 12400 and B, after the last switch,
        at 12500.
        """
        m = Machine(1, costs=CostModel(timeslice=3_000, context_switch=100))
        log: Log = []

        async def worker(th: Thread) -> None:
            for _ in range(6):
                log.append((th.comm, th.sim.now))
                await th.compute(1_000)
            log.append((th.comm + " done", th.sim.now))

        def setup(m: Machine) -> None:
            start(m, "A", worker, cpu=0)
            start(m, "B", worker, cpu=0)

        assert await m.run(setup) == "completed"
        assert log == [
            ("A", 0), ("A", 1_000), ("A", 2_000),
            ("B", 3_100), ("B", 4_100), ("B", 5_100),
            ("A", 6_200), ("A", 7_200), ("A", 8_200),
            ("B", 9_300), ("B", 10_300), ("B", 11_300),
            ("A done", 12_400), ("B done", 12_500),
        ]
        a, b = m.threads
        assert (a.nr_involuntary, b.nr_involuntary, m.cpus[0].nr_switches) == (2, 2, 5)

    async def test_a_thread_holding_a_spinlock_is_not_preempted(self):
        """Preemption waits while a spinlock is held and happens at the first sync after the release."""
        m = Machine(1, costs=CostModel(timeslice=1_000, context_switch=0, lock_acquire=0))
        lock = SpinLock(m, "L")
        log: Log = []

        async def holder(th: Thread) -> None:
            await lock.acquire(th)
            for _ in range(3):
                await th.compute(1_000)
            await lock.release(th)
            log.append(("holder released", th.sim.now))
            await th.compute(500)
            log.append(("holder back", th.sim.now))

        async def other(th: Thread) -> None:
            log.append(("other runs", th.sim.now))
            await th.compute(200)

        def setup(m: Machine) -> None:
            start(m, "holder", holder, cpu=0)
            start(m, "other", other, cpu=0)

        assert await m.run(setup) == "completed"
        assert log == [("holder released", 3_000), ("other runs", 3_500), ("holder back", 3_700)]


class TestKillOffCpu:
    async def test_a_thread_killed_before_it_ever_ran_frees_its_cpu(self):
        """A thread killed while queued for a CPU it never had still leaves the CPU to the threads after it.

        a runs on CPU0 from 0 to 1000 with b then c queued behind it; the killer
        (CPU1) kills b at 100. c gets CPU0 when a ends (1000 + context switch
        100) and d, started on CPU0 at 5000, finds it free.
        """
        m = Machine(2, costs=CostModel(context_switch=100))
        log: Log = []

        async def work(th: Thread, ns: int) -> None:
            log.append((f"{th.comm} runs", th.sim.now))
            await th.compute(ns)

        async def killer(th: Thread, victim: Thread) -> None:
            await th.compute(100)
            th.sim.kill([victim])

        def setup(m: Machine) -> None:
            start(m, "a", work, 1_000, cpu=0)
            b = start(m, "b", work, 10, cpu=0)
            start(m, "c", work, 10, cpu=0)
            start(m, "d", work, 10, cpu=0, at=5_000)
            start(m, "killer", killer, b, cpu=1)

        assert await m.run(setup) == "completed", m.sim.failure
        assert log == [("a runs", 0), ("c runs", 1_100), ("d runs", 5_000)]
        assert m.cpus[0].current is None and not m.cpus[0].runqueue

    async def test_teardown_with_threads_queued_for_cpus(self):
        """A run that times out while threads wait in run queues tears down cleanly (no thread stuck)."""
        m = Machine(1, costs=CostModel(timeslice=1_000, context_switch=100))

        async def spin(th: Thread) -> None:
            while True:
                await th.compute(300)

        def setup(m: Machine) -> None:
            for name in ("a", "b", "c"):
                start(m, name, spin, cpu=0)

        assert await m.run(setup, until=10_000) == "timeout", m.sim.failure
        assert m.sim.failure is None and m.sim.live_actors == []
        assert m.cpus[0].current is None


class TestPlacement:
    async def test_threads_go_to_the_least_loaded_allowed_cpu(self):
        """start_thread without a CPU places on the least loaded allowed CPU, lowest id on ties."""
        m = Machine(3)
        seen: list[tuple[str, int]] = []

        async def where(th: Thread) -> None:
            seen.append((th.comm, th.cpu.id))

        def setup(m: Machine) -> None:
            for name in ("a", "b", "c", "d"):
                m.start_thread(Thread(m, m.alloc_pid(), name), where)
            m.start_thread(Thread(m, m.alloc_pid(), "pinned", allowed=[2]), where)

        assert await m.run(setup) == "completed"
        assert seen == [("a", 0), ("b", 1), ("c", 2), ("d", 0), ("pinned", 2)]
        assert isinstance(m.cpus[0], CPU)
