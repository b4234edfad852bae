"""A small randomised model run as a separate process by test_sim_determinism.py.

Usage: ``python determinism_model.py SEED OUT.jsonl``. Six threads on three
CPUs with think and hold times drawn from their own ``rng`` streams contend on
a spinlock (some with irqs off), an rwsem taken both ways, and a mutex, while
one thread sends IPIs; every event is written to OUT.jsonl.
"""

from __future__ import annotations

import sys

import trio

from smpmem.sim import Machine, Mutex, RWSemaphore, SpinLock, Thread, Tracer


def build(seed: int, out) -> Machine:
    tracer = Tracer(None, out=out, events="*")
    m = Machine(3, seed=seed, tracer=tracer)
    spin = SpinLock(m, "zone->lock")
    sem = RWSemaphore(m, "mm->mmap_lock")
    mutex = Mutex(m, "inode->i_rwsem")

    async def worker(th: Thread) -> None:
        rng = th.rng
        for _ in range(80):
            await th.compute(rng.randrange(50, 3_000))
            what = rng.random()
            if what < 0.4:
                if rng.random() < 0.3:
                    await spin.acquire_irqsave(th, site="free_one_page")
                    th.charge(rng.randrange(10, 400))
                    await spin.release_irqrestore(th)
                else:
                    await spin.acquire(th, site="rmqueue_bulk")
                    th.charge(rng.randrange(10, 400))
                    await spin.release(th)
            elif what < 0.8:
                if rng.random() < 0.25:
                    await sem.down_write(th, site="do_mmap")
                    await th.compute(rng.randrange(100, 2_000))
                    await sem.up_write(th)
                else:
                    await sem.down_read(th, site="do_user_addr_fault")
                    await th.compute(rng.randrange(100, 2_000))
                    await sem.up_read(th)
            else:
                await mutex.acquire(th, site="generic_perform_write")
                await th.sleep_for(rng.randrange(500, 5_000))
                await mutex.release(th)

    async def shooter(th: Thread) -> None:
        for _ in range(10):
            await th.sleep_for(th.rng.randrange(1_000, 20_000))
            await m.smp_call_function_many(th, m.cpus, lambda cpu: None, name="flush_tlb_func")

    def setup(m: Machine) -> None:
        for i in range(6):
            m.start_thread(Thread(m, m.alloc_pid(), f"worker{i}"), worker)
        m.start_thread(Thread(m, m.alloc_pid(), "shooter"), shooter)

    m._setup = setup  # type: ignore[attr-defined]
    return m


def main() -> None:
    seed, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "wb") as out:
        m = build(seed, out)
        status = trio.run(m.run, m._setup)  # type: ignore[attr-defined]
        m.tracer.flush()
    if status != "completed":
        raise SystemExit(f"run ended {status}: {m.sim.failure!r}")


if __name__ == "__main__":
    main()
