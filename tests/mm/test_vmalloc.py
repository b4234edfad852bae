"""vmalloc (smpmem/mm/vmalloc.py): areas, guard pages, kernel PTEs, lazy purge with a global flush, errors, meminfo."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from kalloc_support import boot, lock_stat, records, run, run_sync
from smpmem.mm import vmalloc as V
from smpmem.mm.slab import check_slab_full
from smpmem.proc.meminfo import render_meminfo

PAGE = 4096


def meminfo_kb(kernel, label: str) -> int:
    for line in render_meminfo(kernel).splitlines():
        if line.startswith(label + ":"):
            return int(line.split()[1])
    raise KeyError(label)


def mapped_vpns(vs: V.Vmalloc) -> set[int]:
    return set(vs.ptes)


class TestAreas:
    async def test_first_areas_tile_the_range_with_guard_pages(self) -> None:
        """Areas are taken lowest first, each followed by an unmapped guard page; their pages are mapped in order."""
        k = boot(cpus=2, events="vmalloc:*")
        vs = k.vmalloc

        async def work(th):
            a = await V.vmalloc(th, 3 * PAGE + 1)
            b = await V.vmalloc(th, PAGE)
            return a, b

        (a, b), = await run(k, work)
        assert a.addr == vs.VMALLOC_START and (a.size, a.nr_pages, a.area_size) == (5 * PAGE, 4, 4 * PAGE)
        assert b.addr == a.addr + 5 * PAGE and (b.size, b.nr_pages) == (2 * PAGE, 1)
        for i, page in enumerate(a.pages):
            assert vs.vmalloc_to_page(a.addr + i * PAGE) is page
        assert vs.vmalloc_to_page(a.addr + 4 * PAGE) is None  # the guard page
        assert vs.vmalloc_to_page(b.addr + PAGE) is None
        assert a.obj.cache.name == "kmalloc-96" and a.pages_obj.cache.name == "kmalloc-32"
        assert a.va.obj.cache.name == "vmap_area" and a.flags == V.VM_ALLOC
        assert len(vs.pte_pages) == 1
        assert [(r["addr"], r["size"], r["failed"]) for r in records(k, "alloc_vmap_area")] == [
            (a.addr, 5 * PAGE, 0), (b.addr, 2 * PAGE, 0)]
        assert meminfo_kb(k, "VmallocUsed") == 5 * 4
        assert meminfo_kb(k, "VmallocTotal") == 34359738367 and meminfo_kb(k, "VmallocChunk") == 0
        assert V.vmalloc_space_reason(vs) is None

    async def test_vfree_is_lazy_until_the_threshold(self) -> None:
        """vfree gives the pages back at once but keeps the range until a purge; the range is not reused meanwhile."""
        k = boot(cpus=2, events="vmalloc:*")
        vs = k.vmalloc

        async def work(th):
            a = await V.vmalloc(th, 4 * PAGE)
            b = await V.vmalloc(th, PAGE)
            used = k.vmalloc.nr_vmalloc_pages
            await V.vfree(th, a)
            c = await V.vmalloc(th, PAGE)
            return a, b, c, used

        (a, b, c, used), = await run(k, work)
        assert used == 5 and vs.nr_vmalloc_pages == 2
        assert c.addr == b.addr + 2 * PAGE  # not into a's lazily freed range
        assert vs.vmap_lazy_nr == 5 and list(vs.purge) == [a.addr]
        assert not any(vpn in vs.ptes for vpn in range(a.addr >> 12, (a.addr >> 12) + 5))
        assert [(r["va_start"], r["nr_lazy"], r["nr_lazy_max"]) for r in records(k, "free_vmap_area_noflush")] == [
            (a.addr, 5, 2 * 8192)]
        assert vs.nr_purges == 0
        assert V.vmalloc_space_reason(vs) is None

    async def test_purge_flushes_every_cpu_once_and_frees_the_ranges(self) -> None:
        """Past lazy_vfree_threshold_pages a kworker purges: one global TLB flush (IPIs), the ranges reusable."""
        k = boot(cpus=4, tunables="lazy_vfree_threshold_pages = 8", events="vmalloc:*,tlb:*")
        vs = k.vmalloc
        ipis0 = [c.nr_ipis_received for c in k.cpus]

        async def work(th):
            areas = [await V.vmalloc(th, 2 * PAGE) for _ in range(3)]
            for a in areas:
                await V.vfree(th, a)  # 3 + 3 + 3 pages lazy: the third crosses 8
            await th.sleep_for(200_000)  # let the kworker run
            return areas, await V.vmalloc(th, PAGE)

        (areas, again), = await run(k, work)
        assert vs.nr_purges == 1 and vs.nr_flushes == 1 and vs.vmap_lazy_nr == 0 and not vs.purge
        assert sum(c.nr_ipis_received - i for c, i in zip(k.cpus, ipis0)) == 3  # every CPU but the kworker's
        (p,) = records(k, "purge_vmap_area_lazy")
        assert (p["start"], p["end"], p["npurged"]) == (areas[0].addr, areas[2].addr + 3 * PAGE, 1)  # merged
        assert p["comm"].startswith("kworker/u8")
        assert again.addr == vs.VMALLOC_START
        assert V.vmalloc_space_reason(vs) is None and check_slab_full(k) is None

    async def test_big_area_has_a_vmalloced_page_array(self) -> None:
        """3 MiB: 768 pages, whose 6 KiB page array is itself vmalloc'ed; vfree returns both."""
        k = boot(cpus=1)
        vs = k.vmalloc

        async def work(th):
            a = await V.vmalloc(th, 3 << 20)
            mid = (a.nr_pages, vs.nr_vmalloc_pages, type(a.pages_obj).__name__, len(vs.pte_pages))
            await V.vfree(th, a)
            return mid

        (mid,) = await run(k, work)
        assert mid == (768, 768 + 2, "VmStruct", 2)
        assert vs.nr_vmalloc_pages == 0
        assert V.vmalloc_space_reason(vs) is None

    async def test_i386_range_and_highmem_pages(self) -> None:
        """On i386 the range runs from high_memory + 8 MiB to PKMAP_BASE - 2 pages, and pages may be HighMem."""
        k = boot(cpus=2, layout="i386", ram="1GiB")
        vs = k.vmalloc
        assert (vs.VMALLOC_START, vs.VMALLOC_END) == (0xC0000000 + (896 << 20) + (8 << 20), 0xFF800000 - 2 * PAGE)
        assert meminfo_kb(k, "VmallocTotal") == (vs.VMALLOC_END - vs.VMALLOC_START) >> 10
        (a,) = await run(k, lambda th: V.vmalloc(th, 8 * PAGE))
        assert {p.zone.name for p in a.pages} == {"HighMem"}
        assert vs.VMALLOC_START <= a.addr < vs.VMALLOC_END

    async def test_vmap_area_lock_contention_is_visible(self) -> None:
        """Four CPUs allocating and freeing vmalloc areas at once contend on the vmalloc locks."""
        k = boot(cpus=4, debug=False)

        async def work(th):
            for _ in range(40):
                await V.vfree(th, await V.vmalloc(th, PAGE))

        await run(k, *[work] * 4)
        contended = {n: lock_stat(k, n).contentions for n in ("vmap_area_lock", "free_vmap_area_lock")}
        assert lock_stat(k, "vmap_area_lock").acquisitions == 4 * 40 * 2
        assert contended["vmap_area_lock"] > 0, contended


class TestErrors:
    async def test_bad_vfree_and_bad_sizes(self) -> None:
        """vfree of a freed or unknown area raises VmallocError naming the address; size 0 or > RAM returns None."""
        k = boot(cpus=1)
        vs = k.vmalloc

        async def work(th):
            a = await V.vmalloc(th, PAGE)
            await V.vfree(th, a)
            with pytest.raises(V.VmallocError, match=rf"nonexistent vm area \(0x{a.addr:x}\): freed already"):
                await V.vfree(th, a)
            with pytest.raises(V.VmallocError, match=r"nonexistent vm area \(0x1000\)"):
                await V.vfree(th, 0x1000)
            await V.vfree(th, None)
            return await V.vmalloc(th, 0), await V.vmalloc(th, 1 << 40)

        assert (await run(k, work))[0] == (None, None)
        assert any("exceeds total pages" in w for w in vs.warnings)
        assert V.vmalloc_space_reason(vs) is None

    async def test_exhausted_range_purges_then_fails(self) -> None:
        """When no range fits, alloc_vmap_area purges and retries once, then fails with a warning and NULL."""
        k = boot(cpus=1, layout="i386", ram="1GiB", events="vmalloc:*")
        vs = k.vmalloc
        total = vs.VMALLOC_END - vs.VMALLOC_START

        async def work(th):
            a = await V.vmalloc(th, total // 2)
            await V.vfree(th, a)  # lazy: the range is still taken
            b = await V.vmalloc(th, total // 2)  # fits only after the purge
            c = await V.vmalloc(th, total // 2)
            return a, b, c

        (a, b, c), = await run(k, work)
        assert b is not None and b.addr == a.addr and c is None
        assert vs.nr_purges >= 2  # c's retry; b's retry or the kworker (a's vfree passed lazy_max_pages)
        big = [r["failed"] for r in records(k, "alloc_vmap_area") if r["size"] == total // 2 + PAGE]
        assert big[0] == 0 and big[-2:] == [1, 1]  # c: fails, purges, fails again
        assert any("Address range restricted" in w for w in vs.warnings)


class TestLockOrder:
    async def test_list_lock_then_free_vmap_area_lock_is_reported(self) -> None:
        """Taking a slab list_lock and then free_vmap_area_lock (the wrong way round) is a reported inversion."""
        from smpmem.sim import LockInversion

        k = boot(cpus=1)
        vs = k.vmalloc
        n = k.slab.caches["vmap_area"].node[0]

        async def wrong(th):
            await n.list_lock.acquire(th)
            with pytest.raises(LockInversion, match="free_vmap_area_lock.*&n->list_lock"):
                await vs.free_vmap_area_lock.acquire(th)
            await n.list_lock.release(th)

        await run(k, wrong)


class VmallocMachine(RuleBasedStateMachine):
    """Hypothesis: vmalloc/vfree/sleep on 2 CPUs; areas never overlap and keep unmapped guard pages."""

    areas = Bundle("areas")

    def __init__(self) -> None:
        super().__init__()
        self.k = boot(cpus=2, ram="64MiB", tunables="lazy_vfree_threshold_pages = 24")
        self.vs = self.k.vmalloc
        self.live: list[V.VmStruct] = []

    @rule(target=areas, pages=st.integers(1, 12), extra=st.integers(0, PAGE - 1), cpu=st.integers(0, 1))
    def alloc(self, pages, extra, cpu):
        size = (pages - 1) * PAGE + extra + 1
        a = run_sync(self.k, lambda th: V.vmalloc(th, size), cpus=[cpu])[0]
        assert a is not None and a.nr_pages == pages
        self.live.append(a)
        return a

    @rule(a=consumes(areas), cpu=st.integers(0, 1))
    def free(self, a, cpu):
        run_sync(self.k, lambda th: V.vfree(th, a), cpus=[cpu])
        self.live.remove(a)

    @rule()
    def wait(self):
        run_sync(self.k, lambda th: th.sleep_for(100_000))

    @invariant()
    def no_overlap_and_guards(self):
        vs = self.vs
        assert V.vmalloc_space_reason(vs) is None
        spans = sorted((a.addr, a.addr + a.size, a) for a in self.live)
        for (s0, e0, a0), (s1, _e1, _a1) in zip(spans, spans[1:]):
            assert e0 <= s1, f"{a0!r} overlaps the next area"
        mapped = mapped_vpns(vs)
        want = {(a.addr >> 12) + i for a in self.live for i in range(a.nr_pages)}
        assert mapped == want
        for a in self.live:
            assert (a.addr + a.size - PAGE) >> 12 not in mapped  # the guard page stays unmapped
            assert all(vs.vmalloc_to_page(a.addr + i * PAGE) is p for i, p in enumerate(a.pages))
        assert vs.nr_vmalloc_pages == sum(a.nr_pages for a in self.live)


TestVmallocMachine = VmallocMachine.TestCase
TestVmallocMachine.settings = settings(max_examples=30, stateful_step_count=25, deadline=None, derandomize=True,
                                       suppress_health_check=[HealthCheck.too_slow])
