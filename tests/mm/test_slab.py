"""The slab allocator (smpmem/mm/slab.py): layout, per-CPU arrays, accounting, shrinking, kmalloc, errors, events."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from kalloc_support import boot, free_and_pcp_pages, lock_stat, records, run, run_sync
from smpmem.mm import slab as S
from smpmem.mm.gfp import GFP_ATOMIC, GFP_DMA, GFP_KERNEL
from smpmem.mm.gfp import __GFP_RECLAIMABLE as GFP_RECLAIMABLE_BIT  # __x is mangled inside classes
from smpmem.mm.page_alloc import drain_all_pages
from smpmem.mm.shrinker import SHRINK_EMPTY, DEFAULT_SEEKS, register_shrinker, shrink_slab
from smpmem.mm.zone import NR_SLAB_RECLAIMABLE, NR_SLAB_UNRECLAIMABLE
from smpmem.proc.meminfo import render_meminfo
from smpmem.trace.catalog import lookup


def meminfo_kb(kernel, label: str) -> int:
    for line in render_meminfo(kernel).splitlines():
        if line.startswith(label + ":"):
            return int(line.split()[1])
    raise KeyError(label)


def node_state(cachep: S.KmemCache, nid: int = 0) -> dict[str, int]:
    """The whole per-node and per-CPU state of a cache, for whole-state assertions."""
    n = cachep.node[nid]
    return {"full": len(n.slabs_full), "partial": len(n.slabs_partial), "free": len(n.slabs_free),
            "free_objects": n.free_objects, "array": len(cachep.cpu_cache[0].entry), "inuse": cachep.nr_inuse,
            "pages": cachep.nr_pages, "grown": cachep.grown}


class TestLayout:
    def test_kmalloc_index_classes(self) -> None:
        """Requests map to SLAB's classes: 32 B minimum, 96 and 192 between the powers of two, 128 KiB maximum."""
        k = boot(cpus=1)
        name = lambda size: k.slab.kmalloc_slab(size).name  # noqa: E731
        assert [name(s) for s in (1, 32, 33, 64, 65, 96, 97, 128, 129, 192, 193, 256, 257)] == [
            "kmalloc-32", "kmalloc-32", "kmalloc-64", "kmalloc-64", "kmalloc-96", "kmalloc-96", "kmalloc-128",
            "kmalloc-128", "kmalloc-192", "kmalloc-192", "kmalloc-256", "kmalloc-256", "kmalloc-512"]
        assert [name(s) for s in (1025, 4096, 4097, 65537, 131072)] == [
            "kmalloc-2k", "kmalloc-4k", "kmalloc-8k", "kmalloc-128k", "kmalloc-128k"]
        assert k.slab.kmalloc_slab(131073) is None
        assert k.slab.kmalloc_slab(40, GFP_DMA).name == "dma-kmalloc-64"
        assert k.slab.kmalloc_slab(40, GFP_KERNEL | GFP_RECLAIMABLE_BIT).name == "kmalloc-rcl-64"

    def test_objects_and_pages_per_slab(self) -> None:
        """calculate_slab_order gives SLAB's layouts: freelist in an object, on the slab, order 1 for big objects."""
        k = boot(cpus=4)
        c = k.slab.caches
        got = {n: (c[n].size, c[n].num, c[n].pages_per_slab, c[n].colour) for n in (
            "kmalloc-32", "kmalloc-64", "kmalloc-96", "kmalloc-4k", "kmalloc-8k", "kmalloc-128k", "dentry",
            "task_struct", "anon_vma", "inode_cache")}
        assert got == {
            "kmalloc-32": (32, 124, 1, 0),  # 32 freelist bytes do not fit in one object: on-slab, 4096 / 33
            "kmalloc-64": (64, 64, 1, 0),  # the freelist fits in a free object
            "kmalloc-96": (96, 42, 1, 1),  # 64 bytes left: one colour
            "kmalloc-4k": (4096, 1, 1, 0),
            "kmalloc-8k": (8192, 1, 2, 0),
            "kmalloc-128k": (131072, 1, 32, 0),
            "dentry": (192, 21, 1, 1),  # reclaimable: the first order that fits
            "task_struct": (5888, 1, 2, 36),  # one object per order-1 slab, slab_max_order 1
            "anon_vma": (104, 39, 1, 0),  # a constructor: the freelist goes on the slab
            "inode_cache": (624, 6, 1, 5),
        }
        assert all(cc.flags & S.CFLGS_OBJFREELIST_SLAB for cc in (c["kmalloc-64"], c["dentry"]))
        assert not c["anon_vma"].flags & (S.CFLGS_OBJFREELIST_SLAB | S.CFLGS_OFF_SLAB)

    def test_array_tunables_follow_object_size(self) -> None:
        """enable_cpucache: limit 120/54/24/8/1 by size, batchcount (limit+1)/2, a shared array only on SMP."""
        k = boot(cpus=4)
        c = k.slab.caches
        assert [(c[n].limit, c[n].batchcount, c[n].shared) for n in
                ("kmalloc-256", "kmalloc-512", "kmalloc-2k", "kmalloc-8k", "kmalloc-128k")] == [
            (120, 60, 8), (54, 27, 8), (24, 12, 8), (8, 4, 0), (8, 4, 0)]
        assert c["kmalloc-64"].node[0].shared.limit == 8 * 60
        assert c["kmalloc-64"].node[0].free_limit == (1 + 4) * 60 + 64
        assert boot(cpus=1).slab.caches["kmalloc-64"].node[0].shared is None

    def test_alignment(self) -> None:
        """SLAB_HWCACHE_ALIGN rounds to the cache line, halved while the object fits twice; words otherwise."""
        k = boot(cpus=1)
        a = S.kmem_cache_create(k, "t_hw20", 20, flags=S.SLAB_HWCACHE_ALIGN)
        b = S.kmem_cache_create(k, "t_hw40", 40, flags=S.SLAB_HWCACHE_ALIGN)
        c = S.kmem_cache_create(k, "t_plain13", 13)
        d = S.kmem_cache_create(k, "t_al256", 300, align=256)
        assert (a.size, a.align) == (32, 32)
        assert (b.size, b.align) == (64, 64)
        assert (c.size, c.align) == (16, 8)
        assert (d.size, d.align, d.colour_off) == (512, 256, 256)

    def test_standard_caches(self) -> None:
        """The caches other subsystems allocate from exist at boot; i386 adds pgd_cache."""
        names = set(boot(cpus=1).slab.caches)
        for n in ("task_struct", "mm_struct", "vm_area_struct", "anon_vma", "anon_vma_chain", "dentry",
                  "inode_cache", "buffer_head", "files_cache", "filp", "names_cache", "radix_tree_node",
                  "vmap_area", "kmalloc-32", "kmalloc-128k", "dma-kmalloc-32", "kmalloc-rcl-96"):
            assert n in names, n
        assert "pgd_cache" not in names
        assert "pgd_cache" in boot(cpus=1, layout="i386", ram="512MiB").slab.caches


class TestArrays:
    async def test_refill_grow_and_free_step_by_step(self) -> None:
        """One CPU: the first allocation grows a slab and takes it all into the array; frees stay in the array."""
        k = boot(cpus=1)
        c = S.kmem_cache_create(k, "t512", 512)
        assert (c.num, c.limit, c.batchcount, c.node[0].free_limit) == (8, 54, 27, 62)
        objs: list = []

        async def alloc(th, n):
            for _ in range(n):
                objs.append(await S.kmem_cache_alloc(th, c, GFP_KERNEL))

        await run(k, lambda th: alloc(th, 1))
        assert node_state(c) == {"full": 1, "partial": 0, "free": 0, "free_objects": 0, "array": 7, "inuse": 1,
                                 "pages": 1, "grown": 1}
        assert (c.allochit, c.allocmiss) == (0, 1)
        await run(k, lambda th: alloc(th, 7))
        assert node_state(c) == {"full": 1, "partial": 0, "free": 0, "free_objects": 0, "array": 0, "inuse": 8,
                                 "pages": 1, "grown": 1}
        await run(k, lambda th: alloc(th, 1))
        assert node_state(c) == {"full": 2, "partial": 0, "free": 0, "free_objects": 0, "array": 7, "inuse": 9,
                                 "pages": 2, "grown": 2}
        assert len({o.addr for o in objs}) == 9

        async def free_all(th):
            for o in objs:
                await S.kmem_cache_free(th, c, o)

        await run(k, free_all)
        assert node_state(c) == {"full": 2, "partial": 0, "free": 0, "free_objects": 0, "array": 16, "inuse": 0,
                                 "pages": 2, "grown": 2}
        info = c.slabinfo()
        assert (info.active_objs, info.num_objs, info.active_slabs, info.num_slabs) == (16, 16, 2, 2)
        assert (c.allochit, c.allocmiss, c.freehit, c.freemiss) == (7, 2, 9, 0)
        assert await run(k, lambda th: S.kmem_cache_shrink(th, c)) == [0]
        assert node_state(c) == {"full": 0, "partial": 0, "free": 0, "free_objects": 0, "array": 0, "inuse": 0,
                                 "pages": 0, "grown": 2}
        assert S.check_slab_full(k) is None

    async def test_full_array_flushes_oldest_batch_and_reaps_beyond_free_limit(self) -> None:
        """Frees past the limit flush the oldest batchcount objects; free slabs beyond free_limit go back at once."""
        k = boot(cpus=1)
        c = S.kmem_cache_create(k, "t512b", 512)
        objs: list = []

        async def work(th):
            for _ in range(200):
                objs.append(await S.kmem_cache_alloc(th, c, GFP_KERNEL))
            for o in objs:
                await S.kmem_cache_free(th, c, o)

        await run(k, work)
        n = c.node[0]
        ac = c.cpu_cache[0]
        assert c.freemiss == (200 - 54 + 26) // 27 and len(ac.entry) == 200 - 27 * c.freemiss
        assert ac.entry == objs[27 * c.freemiss:]  # what stays is the most recently freed, in order
        assert n.free_objects <= n.free_limit
        assert n.total_slabs * c.num == n.free_objects + len(ac.entry)
        assert c.nr_pages == n.total_slabs < 25
        assert S.check_slab_full(k) is None

    async def test_fraction_served_from_per_cpu_arrays(self) -> None:
        """With 1 to 8 CPUs, alloc/free pairs and bursts are served from the per-CPU arrays nearly always."""
        ratios = {}
        for ncpus in (1, 2, 4, 8):
            k = boot(cpus=ncpus, debug=False)
            c = k.slab.caches["kmalloc-64"]

            async def pairs(th):
                for _ in range(1000):
                    await S.kfree(th, await S.kmalloc(th, 48, GFP_KERNEL))
                held = [await S.kmalloc(th, 48, GFP_KERNEL) for _ in range(300)]
                for o in held:
                    await S.kfree(th, o)

            await run(k, *[pairs] * ncpus)
            st_ = c.statistics()
            assert st_.allochit + st_.allocmiss == 1300 * ncpus
            ratios[ncpus] = st_.hit_ratio
            # The shared list_lock is taken on misses only (a refill that grows takes it twice).
            assert lock_stat(k, "&n->list_lock").acquisitions <= 2 * st_.allocmiss + st_.freemiss
        assert all(r > 0.97 for r in ratios.values()), ratios
        assert max(ratios.values()) - min(ratios.values()) < 0.01, ratios

    async def test_shared_array_feeds_another_cpu(self) -> None:
        """Objects one CPU frees reach the shared array and refill another CPU's array without growing."""
        k = boot(cpus=2)
        c = S.kmem_cache_create(k, "t64", 64)
        objs: list = []

        async def alloc(th, n):
            objs.extend([await S.kmem_cache_alloc(th, c, GFP_KERNEL) for _ in range(n)])

        async def free(th):
            for o in objs:
                await S.kmem_cache_free(th, c, o)
            objs.clear()

        await run(k, lambda th: alloc(th, 300), cpus=[0])
        grown = c.grown
        assert (grown, len(c.cpu_cache[0].entry)) == (5, 16)  # 16 + 5 refills of 60
        await run(k, free, cpus=[1])
        assert (len(c.cpu_cache[1].entry), len(c.node[0].shared.entry)) == (120, 180)  # 3 batches of 60 flushed
        await run(k, lambda th: alloc(th, 150), cpus=[0])  # 16 in the array + 3 batches from the shared array
        assert c.grown == grown
        assert c.node[0].shared.touched
        assert S.check_slab_full(k) is None

    async def test_remote_node_free_goes_to_its_node(self) -> None:
        """On two nodes, an object freed from the other node's CPU goes straight back to its own node's slabs."""
        k = boot(cpus=2, nodes=2, ram="512MiB")
        c = S.kmem_cache_create(k, "t128", 128)
        objs: list = []

        async def alloc(th):
            objs.extend([await S.kmem_cache_alloc(th, c, GFP_KERNEL) for _ in range(10)])

        async def free(th):
            for o in objs:
                await S.kmem_cache_free(th, c, o)

        await run(k, alloc, cpus=[0])
        assert {o.slab.nid for o in objs} == {0}
        await run(k, free, cpus=[1])
        assert c.node_frees == 10 and c.cpu_cache[1].entry == []
        assert c.node[0].free_objects == c.node[0].total_slabs * c.num - len(c.cpu_cache[0].entry)
        assert S.check_slab_full(k) is None


class TestAccounting:
    async def test_objects_and_pages_match_allocations(self) -> None:
        """After mixed allocations on 4 CPUs, each cache's in-use count and meminfo's Slab lines match exactly."""
        k = boot(cpus=4)
        sizes = [8, 60, 100, 300, 1000, 3000, 9000, 70000]
        held: dict[int, list] = {}

        def worker(i):
            async def w(th):
                mine = []
                for j in range(150):
                    mine.append(await S.kmalloc(th, sizes[(i + j) % len(sizes)], GFP_KERNEL))
                    if j % 3 == 0:
                        mine.append(await S.kmem_cache_alloc(th, k.slab.caches["dentry"], GFP_KERNEL))
                for o in mine[::4]:
                    await S.kfree(th, o)
                held[i] = [o for idx, o in enumerate(mine) if idx % 4]
            return w

        await run(k, *[worker(i) for i in range(4)])
        want: dict[str, int] = {}
        for objs in held.values():
            for o in objs:
                want[o.cache.name] = want.get(o.cache.name, 0) + 1
        got = {c.name: c.nr_inuse for c in k.slab.slab_caches if c.nr_inuse}
        assert got == want
        assert S.check_slab_full(k) is None
        recl = sum(p.vm_stat[NR_SLAB_RECLAIMABLE] for p in k.page_alloc.nodes)
        unrecl = sum(p.vm_stat[NR_SLAB_UNRECLAIMABLE] for p in k.page_alloc.nodes)
        assert recl == k.slab.caches["dentry"].nr_pages > 0
        assert unrecl == sum(c.nr_pages for c in k.slab.slab_caches if not c.reclaimable)
        assert meminfo_kb(k, "SReclaimable") == recl * 4
        assert meminfo_kb(k, "SUnreclaim") == unrecl * 4
        assert meminfo_kb(k, "Slab") == (recl + unrecl) * 4

    async def test_large_kmalloc_goes_to_the_page_allocator(self) -> None:
        """Above 128 KiB kmalloc takes a compound block (unreclaimable slab) and kfree gives it back."""
        k = boot(cpus=1)
        before = sum(p.vm_stat[NR_SLAB_UNRECLAIMABLE] for p in k.page_alloc.nodes)

        async def work(th):
            o = await S.kmalloc(th, 200 * 1024, GFP_KERNEL)
            mid = (o.order, o.page.order, S.ksize(o), sum(p.vm_stat[NR_SLAB_UNRECLAIMABLE] for p in k.page_alloc.nodes))
            assert S.check_slab_full(k) is None
            await S.kfree(th, o)
            return mid

        (mid,) = await run(k, work)
        assert mid == (6, 6, 256 * 1024, before + 64)
        assert sum(p.vm_stat[NR_SLAB_UNRECLAIMABLE] for p in k.page_alloc.nodes) == before
        assert (await run(k, lambda th: S.kmalloc(th, 5 << 20, GFP_KERNEL))) == [None]  # above KMALLOC_MAX_SIZE

    async def test_zero_size_and_special_caches(self) -> None:
        """kmalloc(0) is ZERO_SIZE_PTR; GFP_DMA objects live in ZONE_DMA; reclaimable ones count as SReclaimable."""
        k = boot(cpus=1)

        async def work(th):
            z = await S.kmalloc(th, 0, GFP_KERNEL)
            await S.kfree(th, z)
            await S.kfree(th, None)
            d = await S.kmalloc(th, 100, GFP_KERNEL | GFP_DMA)
            r = await S.kmalloc(th, 100, GFP_KERNEL | GFP_RECLAIMABLE_BIT)
            return z, d, r

        z, d, r = (await run(k, work))[0]
        assert z is S.ZERO_SIZE_PTR and z.addr == 16
        assert d.cache.name == "dma-kmalloc-128" and d.slab.page.zone.name == "DMA"
        assert r.cache.name == "kmalloc-rcl-128" and r.cache.reclaimable
        assert sum(p.vm_stat[NR_SLAB_RECLAIMABLE] for p in k.page_alloc.nodes) == 1

    async def test_object_addresses_are_the_direct_map_of_their_slab(self) -> None:
        """Objects sit in their slab's pages at colour offset + i * size, in the direct map; slab pages say so."""
        k = boot(cpus=1)
        c = k.slab.caches["inode_cache"]  # 6 objects of 624 bytes, 346 bytes left: 5 colours of 64
        objs = (await run(k, lambda th: _alloc_n(th, c, 30)))[0]
        for o in objs:
            page = o.slab.page
            base = 0xFFFF888000000000 + (page.pfn << 12)
            assert base <= o.addr < base + 4096 and (o.addr - o.slab.s_mem) % 624 == 0
            assert S.PageSlab(page) and page.private is o.slab
        slabs = list(dict.fromkeys(o.slab for o in objs))
        assert [s.s_mem & 0xFFF for s in slabs] == [64, 128, 192, 256, 0]  # colour_next is advanced before use


async def _alloc_n(th, c, n):
    return [await S.kmem_cache_alloc(th, c, GFP_KERNEL) for _ in range(n)]


class TestShrink:
    async def test_memory_returns_to_the_buddy_allocator_after_a_shrink(self) -> None:
        """Allocate 5000 objects on 4 CPUs, free them, kmem_cache_shrink: every page is back in the buddy lists."""
        k = boot(cpus=4)
        c = S.kmem_cache_create(k, "t_shrink", 200)
        await run(k, drain_all_pages)
        free0 = free_and_pcp_pages(k)
        objs: list = []

        async def alloc(th):
            objs.extend(await _alloc_n(th, c, 1250))

        await run(k, *[alloc] * 4)
        assert c.nr_pages >= 5000 // c.num
        assert free_and_pcp_pages(k) == free0 - c.nr_pages

        async def free(th):
            for o in objs[th.cpu.id::4]:
                await S.kmem_cache_free(th, c, o)

        await run(k, *[free] * 4)
        assert c.nr_pages > 0  # arrays, shared arrays and free slabs up to free_limit keep some
        assert await run(k, lambda th: S.kmem_cache_shrink(th, c)) == [0]
        assert c.nr_pages == 0
        assert free_and_pcp_pages(k) == free0
        assert S.check_slab_full(k) is None

    async def test_shrink_slab_frees_free_slabs_through_the_slab_shrinker(self) -> None:
        """Reclaim's shrink_slab reaches kmem_cache_reap, which frees every free slab at priority 0."""
        k = boot(cpus=1, events="vmscan:mm_shrink_slab_*")
        c = S.kmem_cache_create(k, "t_reap", 512)
        objs: list = []

        async def work(th):
            objs.extend(await _alloc_n(th, c, 400))
            for o in objs:
                await S.kmem_cache_free(th, c, o)
            await S.drain_cpu_caches(th, c)
            before = c.node[0].free_slabs
            freed = await shrink_slab(th, GFP_KERNEL, 0, 0)
            return before, freed

        before, freed = (await run(k, work))[0]
        assert before > 0 and freed >= before * c.num
        assert c.node[0].free_slabs == 0 and c.nr_pages == c.node[0].total_slabs
        sh = k.shrinkers["kmem_cache_reap"]
        assert sh.count_objects(S.ShrinkControl(GFP_KERNEL, 0)) == SHRINK_EMPTY or \
            sum(cc.node[0].free_slabs for cc in k.slab.slab_caches) > 0
        start, end = records(k, "mm_shrink_slab_start"), records(k, "mm_shrink_slab_end")
        assert [r["shrink"] for r in start] == ["kmem_cache_reap"] and end[0]["retval"] == freed
        assert k.vmstat["slabs_scanned"] >= before * c.num


class TestShrinker:
    async def test_do_shrink_slab_scans_in_batches_and_defers_the_rest(self) -> None:
        """6.12's pressure: delta = (freeable >> priority) * 4 / seeks, batches of 128, the remainder deferred."""
        k = boot(cpus=1, events="vmscan:*")
        calls: list[int] = []

        async def scan(th, sc):
            calls.append(sc.nr_to_scan)
            return sc.nr_to_scan // 2

        s = register_shrinker(k, "fake", lambda sc: 1000, scan, symbol="fake_scan+0x0/0x40")
        assert s.seeks == DEFAULT_SEEKS
        k.shrinkers.shrinker_list.remove(k.shrinkers["kmem_cache_reap"])  # only ours

        freed = await run(k, lambda th: shrink_slab(th, GFP_KERNEL, 0, 2))
        assert calls == [128, 128, 128] and freed == [192] and s.nr_deferred == [116]
        calls.clear()
        await run(k, lambda th: shrink_slab(th, GFP_KERNEL, 0, 2))
        assert calls == [128, 128, 128, 128] and s.nr_deferred == [104]
        r = records(k, "mm_shrink_slab_start")[1]
        assert {f: r[f] for f in ("shrink", "nid", "nr_objects_to_shrink", "cache_items", "delta", "total_scan",
                                  "priority")} == {"shrink": "fake_scan+0x0/0x40", "nid": 0,
                                                   "nr_objects_to_shrink": 116, "cache_items": 1000, "delta": 500,
                                                   "total_scan": 529, "priority": 2}
        assert lookup("mm_shrink_slab_start").body(r).startswith("fake_scan+0x0/0x40 ")
        assert k.vmstat["slabs_scanned"] == 128 * 7

    async def test_linux_4x_proportional_pressure(self) -> None:
        """With no priority, the 4.x formula: 4 * nr_scanned / seeks * freeable / (nr_eligible + 1)."""
        k = boot(cpus=1)
        calls: list[int] = []

        async def scan(th, sc):
            calls.append(sc.nr_to_scan)
            return 0

        s = register_shrinker(k, "fake4", lambda sc: 1000, scan)
        k.shrinkers.shrinker_list.remove(k.shrinkers["kmem_cache_reap"])
        await run(k, lambda th: shrink_slab(th, GFP_KERNEL, 0, None, nr_scanned=100, nr_eligible=999))
        assert calls == [128] and s.nr_deferred == [72]

    def test_registry_errors(self) -> None:
        """A second shrinker of one name, or unregistering a stranger, is refused with its name."""
        k = boot(cpus=1)
        with pytest.raises(ValueError, match="kmem_cache_reap"):
            register_shrinker(k, "kmem_cache_reap", lambda sc: 0, None)  # type: ignore[arg-type]


class TestErrors:
    async def test_double_kfree_names_cache_and_object(self) -> None:
        """Freeing an object twice raises SlabError naming the cache and the address."""
        k = boot(cpus=1)

        async def work(th):
            o = await S.kmalloc(th, 50, GFP_KERNEL)
            await S.kfree(th, o)
            with pytest.raises(S.SlabError, match=rf"double free .* 'kmalloc-64', objp 0x{o.addr:x}"):
                await S.kfree(th, o)
            d = await S.kmem_cache_alloc(th, k.slab.caches["dentry"], GFP_KERNEL)
            await S.kmem_cache_free(th, k.slab.caches["dentry"], d)
            with pytest.raises(S.SlabError, match="double free detected in cache 'dentry'"):
                await S.kmem_cache_free(th, k.slab.caches["dentry"], d)
            big = await S.kmalloc(th, 300000, GFP_KERNEL)
            await S.kfree(th, big)
            with pytest.raises(S.SlabError, match="double free of the kmalloc_large block"):
                await S.kfree(th, big)
            with pytest.raises(S.SlabError, match="not an object"):
                await S.kfree(th, object())  # type: ignore[arg-type]

        await run(k, work)
        assert S.check_slab_full(k) is None

    async def test_free_to_the_wrong_cache(self) -> None:
        """kmem_cache_free with another cache than the object's raises SlabError naming both and the object."""
        k = boot(cpus=1)

        async def work(th):
            o = await S.kmem_cache_alloc(th, k.slab.caches["filp"], GFP_KERNEL)
            with pytest.raises(S.SlabError, match=rf"Wrong slab cache\. dentry but object 0x{o.addr:x} is from filp"):
                await S.kmem_cache_free(th, k.slab.caches["dentry"], o)
            assert o.inuse  # nothing changed
            await S.kmem_cache_free(th, k.slab.caches["filp"], o)

        await run(k, work)
        assert S.check_slab_full(k) is None

    def test_bad_cache_creation(self) -> None:
        """Size 0, a negative or huge size, a bad alignment, a blank or duplicate name are refused by name."""
        k = boot(cpus=1)
        with pytest.raises(S.SlabError, match=r"kmem_cache_create\(zero\): object size 0"):
            S.kmem_cache_create(k, "zero", 0)
        with pytest.raises(S.SlabError, match="object size -5"):
            S.kmem_cache_create(k, "neg", -5)
        with pytest.raises(S.SlabError, match="exceeds KMALLOC_MAX_SIZE"):
            S.kmem_cache_create(k, "huge", 8 << 20)
        with pytest.raises(S.SlabError, match="power of two"):
            S.kmem_cache_create(k, "odd", 64, align=24)
        with pytest.raises(S.SlabError, match="bad cache name"):
            S.kmem_cache_create(k, "two words", 64)
        with pytest.raises(S.SlabError, match="exists already"):
            S.kmem_cache_create(k, "dentry", 64)
        assert "zero" not in k.slab.caches

    async def test_destroy_with_live_objects_and_after(self) -> None:
        """Destroying a cache with objects in use names it and them; once destroyed, its pages are free and it is gone."""
        k = boot(cpus=2)
        c = S.kmem_cache_create(k, "t_destroy", 100)
        await run(k, drain_all_pages)
        free0 = free_and_pcp_pages(k)
        objs = (await run(k, lambda th: _alloc_n(th, c, 50)))[0]
        first = min(o.addr for o in objs)
        with pytest.raises(S.SlabError, match=rf"kmem_cache_destroy t_destroy: Slab cache still has objects: 50 "
                                              rf"in use \(0x{first:x}, "):
            S.kmem_cache_destroy(k, c)

        async def free_some(th):
            for o in objs[:49]:
                await S.kmem_cache_free(th, c, o)

        await run(k, free_some)
        with pytest.raises(S.SlabError, match=rf"1 in use \(0x{objs[49].addr:x}\)"):
            S.kmem_cache_destroy(k, c)
        await run(k, lambda th: S.kmem_cache_free(th, c, objs[49]))
        S.kmem_cache_destroy(k, c)
        assert "t_destroy" not in k.slab.caches and c.dead and c.nr_pages == 0
        assert free_and_pcp_pages(k) == free0
        assert S.check_slab_full(k) is None
        with pytest.raises(S.SlabError, match="destroyed"):
            await run(k, lambda th: S.kmem_cache_alloc(th, c, GFP_KERNEL))
        with pytest.raises(S.SlabError, match="kmalloc cache"):
            S.kmem_cache_destroy(k, k.slab.caches["kmalloc-64"])


class TestEvents:
    async def test_kmalloc_kfree_and_cache_events_carry_the_kernel_fields(self) -> None:
        """kmalloc, kfree, kmem_cache_alloc and kmem_cache_free records have kmem.h's fields and the caller."""
        k = boot(cpus=1, events="kmem:kmalloc,kmem:kfree,kmem:kmem_cache_*")
        dentry = k.slab.caches["dentry"]

        async def caller_fn(th):
            o = await S.kmalloc(th, 100, GFP_ATOMIC)
            await S.kfree(th, o)
            d = await S.kmem_cache_alloc(th, dentry, GFP_KERNEL)
            await S.kmem_cache_free(th, dentry, d)
            return o.addr, d.addr

        (oa, da), = await run(k, caller_fn)
        strip = lambda r: {f: v for f, v in r.items() if f not in ("ts", "cpu", "pid", "comm")}  # noqa: E731
        assert [strip(r) for r in records(k)] == [
            {"event": "kmalloc", "call_site": "caller_fn", "ptr": oa, "bytes_req": 100, "bytes_alloc": 128,
             "gfp_flags": GFP_ATOMIC, "node": -1},
            {"event": "kfree", "call_site": "caller_fn", "ptr": oa},
            {"event": "kmem_cache_alloc", "call_site": "caller_fn", "ptr": da, "bytes_req": 192, "bytes_alloc": 192,
             "gfp_flags": GFP_KERNEL, "node": -1, "accounted": True},
            {"event": "kmem_cache_free", "call_site": "caller_fn", "ptr": da, "name": "dentry"},
        ]
        body = lookup("kmalloc").body(records(k, "kmalloc")[0])
        assert body.endswith("bytes_req=100 bytes_alloc=128 gfp_flags=GFP_ATOMIC node=-1 accounted=false")


class TestDeterminism:
    def test_same_seed_same_addresses(self) -> None:
        """Two runs of the same concurrent workload hand out the same objects at the same addresses."""
        def once():
            k = boot(cpus=4, debug=False)

            async def w(th):
                out = []
                for i in range(200):
                    o = await S.kmalloc(th, 30 + i % 500, GFP_KERNEL)
                    out.append(o.addr)
                    if i % 3:
                        await S.kfree(th, o)
                return out
            return run_sync(k, w, w, w, w)
        assert once() == once()


class SlabMachine(RuleBasedStateMachine):
    """Hypothesis: random alloc/free/shrink on 3 CPUs against a reference set of live objects."""

    objs = Bundle("objs")

    def __init__(self) -> None:
        super().__init__()
        self.k = boot(cpus=3, ram="64MiB")
        self.caches = [self.k.slab.caches[n] for n in ("kmalloc-32", "kmalloc-512", "dentry", "kmalloc-8k")]
        self.live: dict[int, S.SlabObj] = {}

    @rule(target=objs, which=st.integers(0, 3), cpu=st.integers(0, 2), n=st.integers(1, 40))
    def alloc(self, which, cpu, n):
        c = self.caches[which]
        got = run_sync(self.k, lambda th: _alloc_n(th, c, n), cpus=[cpu])[0]
        for o in got:
            assert o.addr not in self.live, f"{o!r} handed out twice"
            self.live[o.addr] = o
        return got

    @rule(batch=consumes(objs), cpu=st.integers(0, 2))
    def free(self, batch, cpu):
        async def f(th):
            for o in batch:
                await S.kmem_cache_free(th, o.cache, o)
        run_sync(self.k, f, cpus=[cpu])
        for o in batch:
            del self.live[o.addr]

    @rule(which=st.integers(0, 3), cpu=st.integers(0, 2))
    def shrink(self, which, cpu):
        run_sync(self.k, lambda th: S.kmem_cache_shrink(th, self.caches[which]), cpus=[cpu])

    @invariant()
    def consistent(self):
        assert S.check_slab_full(self.k) is None
        assert sum(c.nr_inuse for c in self.caches) == len(self.live)
        for o in self.live.values():
            assert o.inuse and o.slab.page.private is o.slab


TestSlabMachine = SlabMachine.TestCase
TestSlabMachine.settings = settings(max_examples=25, stateful_step_count=20, deadline=None, derandomize=True,
                                    suppress_health_check=[HealthCheck.too_slow])


# --- /proc/slabinfo ---------------------------------------------------------------------------

import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

from smpmem.proc.slabinfo import render_slabinfo  # noqa: E402

LIVE = Path("/work/shared/reference/live-slabinfo.txt")
LINE = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+) : tunables\s+(\d+)\s+(\d+)\s+(\d+)"
                  r" : slabdata\s+(\d+)\s+(\d+)\s+(\d+)$")


def cache_show(name: str, *v: int) -> str:
    """mm/slab_common.c cache_show's three seq_printf formats, written out independently of the renderer."""
    return (f"{name:<17} {v[0]:6d} {v[1]:6d} {v[2]:6d} {v[3]:4d} {v[4]:4d}" + f" : tunables {v[5]:4d} {v[6]:4d} {v[7]:4d}"
            + f" : slabdata {v[8]:6d} {v[9]:6d} {v[10]:6d}")


def parse(text: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in text.splitlines()[2:]:
        m = LINE.match(line)
        assert m, line
        out[m.group(1)] = tuple(int(x) for x in m.groups()[1:])
    return out


async def _busy_kernel():
    k = boot(cpus=2)

    async def work(th):
        held = [await S.kmalloc(th, 40 + (i * 37) % 3000, GFP_KERNEL) for i in range(500)]
        held += [await S.kmem_cache_alloc(th, k.slab.caches["dentry"], GFP_KERNEL) for _ in range(100)]
        for o in held[::3]:
            await S.kfree(th, o)

    await run(k, work, work)
    return k


class TestSlabinfo:
    async def test_layout_is_the_kernels(self) -> None:
        """Version 2.1 header lines, then one cache_show line per cache, newest cache first, as the live file."""
        k = await _busy_kernel()
        text = render_slabinfo(k)
        live = LIVE.read_text().splitlines()
        lines = text.splitlines()
        assert lines[:2] == live[:2]
        for line in live[2:]:  # the independent formatter reproduces the real kernel's lines…
            m = LINE.match(line)
            assert m and cache_show(m.group(1), *(int(x) for x in m.groups()[1:])) == line
        rows = parse(text)
        for line in lines[2:]:  # …and the renderer's
            name = line.split()[0]
            assert cache_show(name, *rows[name]) == line
        names = [ln.split()[0] for ln in lines[2:]]
        assert names[0] == "buffer_head" and names[-1] == "kmalloc-128"  # list_add: newest first
        assert len(names) == len(k.slab.caches)

    async def test_columns_are_get_slabinfo(self) -> None:
        """active_objs counts objects in array caches; tunables and slabdata are the cache's; the sums hold."""
        k = await _busy_kernel()
        rows = parse(render_slabinfo(k))
        for c in k.slab.slab_caches:
            active, num, size, per, pages, limit, batch, shared, aslabs, nslabs, savail = rows[c.name]
            n = c.node[0]
            assert (size, per, pages, limit, batch, shared) == (c.size, c.num, 1 << c.gfporder, c.limit,
                                                                 c.batchcount, c.shared)
            assert (num, nslabs, aslabs) == (n.total_slabs * c.num, n.total_slabs, n.total_slabs - n.free_slabs)
            in_arrays = sum(len(ac.entry) for ac in c.cpu_cache) + (len(n.shared.entry) if n.shared else 0)
            assert active == c.nr_inuse + in_arrays and savail == (len(n.shared.entry) if n.shared else 0)
        pages = sum(r[9] * r[4] for r in rows.values())
        assert pages * 4 == meminfo_kb(k, "Slab")

    @pytest.mark.skipif(shutil.which("slabtop") is None or shutil.which("unshare") is None,
                        reason="needs procps' slabtop and util-linux's unshare")
    async def test_slabtop_and_vmstat_read_it(self, tmp_path: Path) -> None:
        """slabtop -o and vmstat -m, given the rendered file as /proc/slabinfo (private mount namespace), agree."""
        k = await _busy_kernel()
        f = tmp_path / "slabinfo"
        f.write_text(render_slabinfo(k))
        rows = parse(f.read_text())

        def inside(cmd: str) -> str:
            r = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {f} /proc/slabinfo && {cmd}"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                pytest.skip(f"cannot bind-mount over /proc/slabinfo here: {r.stderr.strip()}")
            return r.stdout

        top = inside("slabtop -o -s c")
        m = re.search(r"Active / Total Objects \(% used\)\s*:\s*(\d+) / (\d+)", top)
        assert m and (int(m.group(1)), int(m.group(2))) == (sum(r[0] for r in rows.values()),
                                                          sum(r[1] for r in rows.values()))
        m = re.search(r"Active / Total Caches \(% used\)\s*:\s*(\d+) / (\d+)", top)
        assert m and int(m.group(2)) == len(rows)
        assert "kmalloc-64" in top and "dentry" in top
        vm = {ln.split()[0]: ln.split()[1:] for ln in inside("vmstat -m").splitlines()[1:]}
        r = rows["dentry"]
        assert vm["dentry"] == [str(r[0]), str(r[1]), str(r[2]), str(r[3])]


class TestTuningAndReap:
    async def test_do_tune_cpucache_resizes_the_arrays(self) -> None:
        """Writing limit/batchcount/shared (do_tune_cpucache) empties the old arrays and shows in /proc/slabinfo."""
        k = boot(cpus=2)
        c = S.kmem_cache_create(k, "t_tune", 64)

        async def work(th):
            objs = await _alloc_n(th, c, 100)
            for o in objs:
                await S.kmem_cache_free(th, c, o)
            before = len(c.cpu_cache[th.cpu.id].entry)
            await S.do_tune_cpucache(th, c, 10, 5, 0)
            with pytest.raises(S.SlabError, match="need 1 <= batchcount <= limit"):
                await S.do_tune_cpucache(th, c, 4, 5, 0)
            objs = await _alloc_n(th, c, 30)
            for o in objs:
                await S.kmem_cache_free(th, c, o)
            return before

        before, = await run(k, work)
        assert before > 10
        assert (c.limit, c.batchcount, c.shared, c.node[0].shared) == (10, 5, 0, None)
        assert all(ac.limit == 10 and len(ac.entry) <= 10 for ac in c.cpu_cache)
        assert parse(render_slabinfo(k))["t_tune"][5:8] == (10, 5, 0)
        assert S.check_slab_full(k) is None

    async def test_cache_reap_drains_idle_arrays_and_free_slabs(self) -> None:
        """With the per-CPU reap timers running, an idle cache's arrays and free slabs go back over a few seconds."""
        k = boot(cpus=2)
        c = S.kmem_cache_create(k, "t_reaped", 256)

        async def work(th):
            S.start_cache_reap(k)
            objs = await _alloc_n(th, c, 600)
            for o in objs:
                await S.kmem_cache_free(th, c, o)
            held = len(c.cpu_cache[0].entry), c.nr_pages
            await th.sleep_for(20 * 10**9)  # 20 s of virtual time, idle
            return held

        (arr0, pages0), = await run(k, work, cpus=[0])
        assert arr0 > 0 and c.cpu_cache[0].entry == [] and c.nr_pages < pages0 and c.reaped > 0
        assert S.check_slab_full(k) is None
