"""TLB shootdowns: IPIs to the CPUs of mm_cpumask, the flush ceiling, the checker on a skipped shootdown (x86 tlb.c)."""

from __future__ import annotations

import pytest

from smpmem.scenario import parse_scenario
from smpmem.sim import ModelBug
from smpmem.trace.catalog import lookup

from mm_support import run

IPI = lookup("ipi_send_cpu")


def threaded(tunables: str = "", threads: int = 16, cpus: int = 16, extra: str = ""):
    """A kernel running one process whose threads all touch a shared region, then thread 0 munmaps it."""
    from smpmem.kernel import Kernel
    from smpmem.workload import start_processes

    prog = ('[{op = "mmap", name = "a", size = "64KiB"}, {op = "touch", region = "a", write = true},'
            ' {op = "spawn_threads", count = %d, program = [{op = "touch", region = "a", count = 64},'
            ' {op = "compute", ns = "200us"}]}, {op = "compute", ns = "50us"}, %s'
            ' {op = "munmap", region = "a"}]' % (threads - 1, extra))
    k = Kernel(parse_scenario(f'[machine]\ncpus = {cpus}\nram = "512MiB"\n[tunables]\n{tunables}\n'
                              f'[run]\nduration = "1s"\n[[process]]\nname = "p"\nprogram = {prog}\n'))
    seen: dict = {}

    from smpmem.mm import memory as mem
    orig = mem.unmap_region

    async def spy(th, mm, vmas, floor, ceiling):
        seen["mask"] = set(mm.cpumask)
        seen["cpu"] = th.cpu.id
        seen["ipis"] = sum(c.nr_ipis_received for c in k.cpus)
        await orig(th, mm, vmas, floor, ceiling)
        seen["ipis"] = sum(c.nr_ipis_received for c in k.cpus) - seen["ipis"]
        seen["per_cpu"] = {c.id for c in k.cpus}

    mem.unmap_region = spy
    try:
        run(k, start_processes)
    finally:
        mem.unmap_region = orig
    return k, seen


class TestShootdown:
    def test_munmap_ipis_exactly_the_mm_cpumask(self) -> None:
        """munmap in a 16-thread process interrupts exactly the other CPUs of mm_cpumask, once each."""
        k, seen = threaded()
        assert len(seen["mask"]) == 16
        assert seen["ipis"] == len(seen["mask"] - {seen["cpu"]}) == 15
        assert k.vmstat["nr_tlb_remote_flush"] >= 1
        assert k.vmstat["nr_tlb_remote_flush_received"] >= 15

    def test_no_ipis_to_cpus_outside_the_mask(self) -> None:
        """With 4 threads on a 16-CPU machine only the 3 other CPUs that ran the mm get an IPI."""
        k, seen = threaded(threads=4)
        assert len(seen["mask"]) == 4 and seen["ipis"] == 3

    def test_skipped_shootdown_is_caught(self) -> None:
        """With the shootdown deliberately skipped, the checker reports the stale translation (ModelBug)."""
        with pytest.raises(ModelBug, match="stale TLB entry"):
            threaded("tlb_skip_shootdown = true", threads=4)

    def test_skip_switch_attribute(self) -> None:
        """The debug attribute kernel.tlb_skip_shootdown alone (no tunable) is caught the same way."""
        from smpmem.kernel import Kernel
        from smpmem.mm import tlb

        orig = tlb.tlb_init

        def init(kernel):
            orig(kernel)
            kernel.tlb_skip_shootdown = True

        tlb.tlb_init = init
        try:
            with pytest.raises(ModelBug, match="stale TLB entry"):
                threaded(threads=2, cpus=2)
        finally:
            tlb.tlb_init = orig


class TestFlushEvents:
    def _events(self, pages: int):
        import io

        import orjson

        from smpmem.kernel import Kernel
        from smpmem.sim import Tracer
        from smpmem.workload import start_processes

        buf = io.BytesIO()
        sc = parse_scenario('[machine]\ncpus = 2\nram = "128MiB"\n[run]\nduration = "1s"\n[[process]]\nname = "p"\n'
                            'program = [{op = "mmap", name = "a", size = "%dKiB"}, {op = "touch", region = "a", write = true},'
                            ' {op = "mprotect", region = "a", prot = "r"}]\n' % (4 * pages))
        tr = Tracer(None, buf, events="tlb:*")
        k = Kernel(sc, tr)
        run(k, start_processes)
        tr.flush()
        return [orjson.loads(l) for l in buf.getvalue().splitlines()], k

    def test_small_range_flushes_pages(self) -> None:
        """mprotect of 8 pages flushes them one by one (local mm shootdown, pages:8)."""
        ev, k = self._events(8)
        assert {"reason": 3, "pages": 8} in [{"reason": e["reason"], "pages": e["pages"]} for e in ev]
        assert k.vmstat["nr_tlb_local_flush_one"] == 8

    def test_above_ceiling_flushes_all(self) -> None:
        """More than tlb_single_page_flush_ceiling (33) pages become a full flush (pages:-1)."""
        ev, k = self._events(34)
        assert {"reason": 3, "pages": -1} in [{"reason": e["reason"], "pages": e["pages"]} for e in ev]
        assert k.vmstat["nr_tlb_local_flush_all"] >= 1
