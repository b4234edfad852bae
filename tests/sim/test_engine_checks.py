"""The debug hook at every hand-off: a broken invariant fails the run cleanly."""

import trio

from smpmem.sim import Machine, Thread


async def test_a_check_failing_mid_run_ends_it_as_failed_without_hanging():
    """An on_switch check that raises stops the run with status "failed" and the error kept."""
    m = Machine(2)
    calls = []

    def check() -> None:
        calls.append(m.sim.now)
        if m.sim.now >= 5_000:
            raise AssertionError("invariant broken at 5 us")

    m.sim.on_switch = check

    async def worker(th: Thread) -> None:
        for _ in range(100):
            await th.sleep_for(1_000)

    def setup(mach: Machine) -> None:
        for c in range(2):
            mach.start_thread(Thread(mach, mach.alloc_pid(), f"w{c}"), worker, cpu=c)

    with trio.fail_after(10):
        status = await m.run(setup, until=1_000_000)
    assert status == "failed"
    assert isinstance(m.sim.failure, AssertionError)
    assert "invariant broken" in str(m.sim.failure)
    assert m.sim.now < 10_000
