"""kmap and kmap_atomic (smpmem/mm/highmem.py): the pkmap pool, its global flushes and waits, per-CPU slots."""

from __future__ import annotations

import pytest

from kalloc_support import boot, lock_stat, records, run
from smpmem.mm import highmem as H
from smpmem.mm.gfp import GFP_HIGHUSER, GFP_KERNEL
from smpmem.mm.page_alloc import alloc_pages, free_pages_


async def highpages(th, n):
    return [await alloc_pages(th, GFP_HIGHUSER, 0) for _ in range(n)]


def i386(cpus: int = 4, events: str | None = None, debug: bool = True):
    return boot(cpus=cpus, layout="i386", ram="1GiB", events=events, debug=debug)


class TestLowmem:
    async def test_x86_64_kmap_is_page_address_without_lock_or_cost(self) -> None:
        """On x86_64 kmap and kmap_atomic return the direct map address; no lock is taken and no time passes."""
        k = boot(cpus=2)

        async def work(th):
            page = await alloc_pages(th, GFP_KERNEL, 0)
            await th.sync()
            t0, p0 = th.sim.now, th.pending
            a = await H.kmap(th, page)
            await H.kunmap(th, page)
            b = H.kmap_atomic(th, page)
            inside = th.preempt_count
            H.kunmap_atomic(th, b)
            return page, a, b, inside, th.preempt_count, th.sim.now - t0, th.pending - p0

        page, a, b, inside, after, dt, dp = (await run(k, work))[0]
        assert a == b == 0xFFFF888000000000 + (page.pfn << 12) == H.page_address(k, page)
        assert (inside, after, dt, dp) == (1, 0, 0, 0)
        assert lock_stat(k, "kmap_lock").acquisitions == 0

    async def test_i386_lowmem_page_needs_no_pool(self) -> None:
        """On i386 a lowmem page is mapped already: kmap is its 0xC0000000-based address."""
        k = i386(cpus=1)

        async def work(th):
            page = await alloc_pages(th, GFP_KERNEL, 0)
            return page, await H.kmap(th, page)

        page, a = (await run(k, work))[0]
        assert page.zone.name != "HighMem" and a == 0xC0000000 + (page.pfn << 12)
        assert k.highmem.nr_kmap_high == 0


class TestPool:
    async def test_kmap_shares_an_entry_and_counts_users(self) -> None:
        """kmap of a highmem page takes pkmap entry 1 first; a second kmap shares it; kunmap leaves it mapped at 1."""
        k = i386(cpus=1, events="highmem:*")
        hm = k.highmem
        assert (hm.LAST_PKMAP, H.PKMAP_BASE) == (512, 0xFF800000)

        async def work(th):
            page, = await highpages(th, 1)
            a = await H.kmap(th, page)
            b = await H.kmap(th, page)
            mid = hm.pkmap_count[1]
            await H.kunmap(th, page)
            await H.kunmap(th, page)
            with pytest.raises(H.HighmemError, match=rf"pfn 0x{page.pfn:x} \(pkmap entry 1\) has no kmap user"):
                await H.kunmap(th, page)
            return page, a, b, mid

        page, a, b, mid = (await run(k, work))[0]
        assert a == b == 0xFF800000 + 4096 and mid == 3
        assert hm.pkmap_count[1] == 1 and hm.page_address(page) == a  # mapped, unused, not yet flushed
        assert [(r["event"], r["nr"], r["count"]) for r in records(k)] == [
            ("kmap_high", 1, 2), ("kmap_high", 1, 3), ("kunmap_high", 1, 2), ("kunmap_high", 1, 1)]
        assert H.pkmap_reason(hm) is None

    async def test_wrapping_the_pool_flushes_every_cpu(self) -> None:
        """The 512th new mapping wraps: flush_all_zero_pkmaps unmaps the unused entries and IPIs every CPU once."""
        k = i386(cpus=4, events="highmem:flush_all_zero_pkmaps")
        hm = k.highmem
        ipis0 = [c.nr_ipis_received for c in k.cpus]

        async def work(th):
            for page in await highpages(th, 600):
                await H.kmap(th, page)
                await H.kunmap(th, page)

        await run(k, work, cpus=[0])
        assert (hm.nr_new_mappings, hm.nr_flush_all_zero, hm.nr_global_flushes) == (600, 1, 1)
        assert [r["nr_freed"] for r in records(k)] == [511]
        assert [c.nr_ipis_received - i for c, i in zip(k.cpus, ipis0)] == [0, 1, 1, 1]
        assert sum(hm.pkmap_count) == 600 - 511  # the entries mapped since the wrap, at count 1
        assert H.pkmap_reason(hm) is None

    async def test_full_pool_sleeps_until_a_kunmap(self) -> None:
        """With every entry in use, kmap sleeps on pkmap_map_wait and gets an entry after the next kunmap."""
        k = i386(cpus=2, events="highmem:*")
        hm = H.kmap_init(k, last_pkmap=8)
        pages: list = []
        times: dict[str, int] = {}

        async def holder(th):
            pages.extend(await highpages(th, 9))
            for p in pages[:8]:
                await H.kmap(th, p)
            await th.sleep_for(50_000)
            times["kunmap"] = th.sim.now
            await H.kunmap(th, pages[0])

        async def waiter(th):
            await th.sleep_for(20_000)
            a = await H.kmap(th, pages[8])
            times["kmap"] = th.sim.now
            return a

        _, a = await run(k, holder, waiter, cpus=[0, 1])
        assert hm.nr_waits == 1 and times["kmap"] > times["kunmap"]
        assert hm.page_address(pages[8]) == a and hm.page_address(pages[0]) is None  # its entry was reused
        ev = [r["event"] for r in records(k)]
        assert ev.count("kmap_high_wait") == 1 and ev.index("kmap_high_wait") < ev.index("kunmap_high")
        assert H.pkmap_reason(hm) is None


class TestContention:
    async def _copy(self, atomic: bool):
        """Four CPUs map 64 highmem pages at a time, 8 rounds each, with kmap or kmap_atomic."""
        k = i386(cpus=4, debug=False)
        hm = k.highmem
        ipis0 = sum(c.nr_ipis_received for c in k.cpus)

        async def copier(th):
            pages = await highpages(th, 64 * 8)
            for r in range(8):
                batch = pages[r * 64:(r + 1) * 64]
                if atomic:
                    for p in batch:
                        addr = H.kmap_atomic(th, p)
                        th.charge(200)
                        H.kunmap_atomic(th, addr)
                        await th.sync()
                else:
                    for p in batch:
                        await H.kmap(th, p)
                    th.charge(200 * 64)
                    for p in batch:
                        await H.kunmap(th, p)
            for p in pages:
                await free_pages_(th, p, 0)

        await run(k, *[copier] * 4)
        return k, hm, sum(c.nr_ipis_received for c in k.cpus) - ipis0

    async def test_kmap_heavy_cpus_contend_and_flush_globally(self) -> None:
        """kmap on 4 CPUs: kmap_lock contention, pool wraps with global flushes by IPI."""
        k, hm, ipis = await self._copy(atomic=False)
        st_ = lock_stat(k, "kmap_lock")
        assert st_.acquisitions == 2 * 4 * 64 * 8 and st_.contentions > 0
        assert hm.nr_global_flushes >= 3 and ipis >= 3 * hm.nr_global_flushes

    async def test_kmap_atomic_takes_no_lock_and_flushes_locally(self) -> None:
        """The same work with kmap_atomic: no kmap_lock, no global flush, no IPI; one slot per CPU in use at a time."""
        k, hm, ipis = await self._copy(atomic=True)
        assert lock_stat(k, "kmap_lock").acquisitions == 0
        assert (hm.nr_global_flushes, ipis, hm.nr_kmap_atomic) == (0, 0, 4 * 64 * 8)
        assert all(c.percpu["kmap_atomic"].stack == [] for c in k.cpus)


class TestAtomicSlots:
    async def test_nesting_lifo_and_limits(self) -> None:
        """Slots nest up to KM_MAX_IDX per CPU and are released in reverse order; misuse raises HighmemError."""
        k = i386(cpus=2)

        async def work(th):
            pages = await highpages(th, 17)
            addrs = [H.kmap_atomic(th, p) for p in pages[:16]]
            with pytest.raises(H.HighmemError, match="16 nested kmap_atomic slots"):
                H.kmap_atomic(th, pages[16])
            with pytest.raises(H.HighmemError, match="out of order"):
                H.kunmap_atomic(th, addrs[0])
            for a in reversed(addrs):
                H.kunmap_atomic(th, a)
            with pytest.raises(H.HighmemError, match="without a kmap_atomic"):
                H.kunmap_atomic(th, addrs[0])
            return addrs, th.preempt_count

        addrs, pc = (await run(k, work, cpus=[1]))[0]
        assert pc == 0 and len(set(addrs)) == 16
        assert addrs == [k.highmem.kmap_atomic_addr(1, i) for i in range(16)]
        assert addrs[0] - addrs[1] == 4096  # fixmap slots grow downwards
        assert max(addrs) < min(k.highmem.kmap_atomic_addr(0, i) for i in range(16))  # CPU1's slots below CPU0's


class TestEvents:
    def test_bodies(self) -> None:
        """The highmem events render in the kernel's key=value style."""
        from smpmem.trace.catalog import lookup

        assert lookup("kmap_high").body({"pfn": 0x3a000, "vaddr": 0xFF801000, "nr": 1, "count": 2}) == \
            "pfn=0x3a000 vaddr=0xff801000 nr=1 count=2"
        assert lookup("flush_all_zero_pkmaps").body({"nr_freed": 511}) == "nr_freed=511"
        assert lookup("kunmap_atomic").body({"vaddr": 0xFFF7B000, "idx": 0}) == "vaddr=0xfff7b000 idx=0"
        assert not lookup("kmap_high").kernel
