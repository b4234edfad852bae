"""Buffer heads on block-device pages (smpmem/mm/buffer.py) and the dentry/inode caches with their shrinker (smpmem/mm/dcache.py)."""

from __future__ import annotations

from filemap_support import fs_kernel, records, run
from smpmem.mm.block import ENOENT
from smpmem.mm import buffer
from smpmem.mm.buffer import BufferRing, brelse, try_to_free_buffers
from smpmem.mm.dcache import ShrinkControl, fput, super_cache_count, super_cache_scan, vfs_open
from smpmem.mm.filemap import vfs_read
from smpmem.mm.page import PG_private

bread = getattr(buffer, "__bread")  # not mangled inside class bodies
FILES = "".join(f'[[machine.file]]\npath = "/f{i}"\nsize = "16KiB"\n' for i in range(8))


def sbc(k):
    return next(iter(k.dcache.caches.values()))


class TestBuffers:
    def test_inode_blocks_are_read_through_buffer_heads(self) -> None:
        """Opening 8 files (inodes 12-19) reads 3 inode-table blocks on 2 block-device pages of 4 buffer heads each."""
        k = fs_kernel(files=FILES, events="block:block_rq_issue,block:block_touch_buffer,kmem:kmem_cache_alloc")

        async def t(th):
            for i in range(8):
                f = await vfs_open(th, f"/f{i}")
                assert not isinstance(f, int)

        run(k, t)
        bd = next(iter(k.buffers.values())).mapping
        assert bd.nrpages == 2
        ring = bd.i_pages[1].private
        assert isinstance(ring, BufferRing) and len(ring.bhs) == 4
        assert bd.i_pages[1].flags & (1 << PG_private)
        recs = records(k)
        meta = [r for r in recs if r["event"] == "block_rq_issue"]
        assert [(r["sector"], r["nr_sector"], r["rwbs"]) for r in meta] == [(2060, 2, "RM"), (2062, 2, "RM"), (2064, 2, "RM")]
        assert sum(r["event"] == "block_touch_buffer" for r in recs) == 5  # 8 inodes, 3 blocks read
        bh_allocs = [r for r in recs if r["event"] == "kmem_cache_alloc" and r["bytes_req"] == 104]
        assert len(bh_allocs) in (0, 8)  # 8 buffer heads when the slab allocator is present
        assert k.page_alloc.meminfo_sources.get("nr_blockdev_pages") == 2

    def test_buffers_are_freed_only_when_unused(self) -> None:
        """try_to_free_buffers refuses while a buffer is held (b_count) and frees them all once released."""
        k = fs_kernel()

        async def t(th):
            part = k.block.devices["sda"].partitions[0]
            bh = await bread(th, part, 6)
            page = bh.b_page
            held = await try_to_free_buffers(th, page)
            brelse(bh)
            freed = await try_to_free_buffers(th, page)
            return held, freed, page.private, bool(page.flags & (1 << PG_private))

        assert run(k, t)[0] == (False, True, 0, False)


class TestDcache:
    def test_negative_dentries_and_lookup_hits(self) -> None:
        """A missing name leaves a negative dentry (-ENOENT again, no disk read); an existing name is a hash hit."""
        k = fs_kernel()
        sda = k.block.devices["sda"]

        async def t(th):
            a = await vfs_open(th, "/nope")
            reads = sda.reads
            b = await vfs_open(th, "/nope")
            f = await vfs_open(th, "/data")
            reads2 = sda.reads
            g = await vfs_open(th, "/data")
            return a, b, reads, sda.reads - reads2, f.f_dentry is g.f_dentry, f.f_dentry.d_count

        a, b, reads, more, same, count = run(k, t)[0]
        assert a == b == -ENOENT and reads == 0 and more == 0 and same and count == 2
        assert k.dcache.hashtable["/nope"].d_inode is None

    def test_unused_objects_go_on_the_lrus_and_count_for_the_shrinker(self) -> None:
        """Closed files leave their dentries on the sb's LRU; count_objects scales them by vfs_cache_pressure."""
        def count(pressure: int) -> tuple[int, int]:
            k = fs_kernel(files=FILES, tunables=f"vfs_cache_pressure = {pressure}")

            async def t(th):
                for i in range(8):
                    fput(th, await vfs_open(th, f"/f{i}"))

            run(k, t)
            c = sbc(k)
            return len(c.dentry_lru), super_cache_count(k, c)

        assert count(100) == (8, 8)
        assert count(200) == (8, 16)
        assert count(0) == (8, 0)

    def test_shrinker_frees_dentries_then_inodes(self) -> None:
        """super_cache_scan: referenced dentries get a second pass, freed ones drop their inodes; an inode
        with cached pages has them invalidated (pginodesteal) and is evicted on a later scan."""
        k = fs_kernel(files=FILES)

        async def t(th):
            for i in range(8):
                f = await vfs_open(th, f"/f{i}")
                if i < 2:
                    await vfs_read(th, f, 0, 4096)
                fput(th, f)
            c = sbc(k)
            rounds = []
            for _ in range(4):
                freed = await super_cache_scan(th, c, ShrinkControl(64))
                rounds.append((freed, len(c.dentry_lru), len(c.inode_lru), len(k.dcache.hashtable)))
            return rounds

        rounds = run(k, t)[0]
        assert rounds[0][0] == 0  # every dentry was referenced: one more pass
        assert rounds[-1][1:] == (0, 0, 0)
        assert sum(r[0] for r in rounds) == 16  # 8 dentries + 8 inodes
        assert k.vmstat["pginodesteal"] >= 2
        assert k.dcache.nr_inodes == 0 and k.dcache.nr_dentry == 0

    def test_the_shrinker_is_registered(self) -> None:
        """The super block's shrinker is in the shrinker registry (sb-ext2) when there is one."""
        k = fs_kernel()
        names = [name for name, _c, _s in k.dcache.shrinkers]
        assert names == ["sb-ext2"]
        reg = getattr(k, "shrinkers", None)
        if reg is not None:
            assert "sb-ext2" in [s.name for s in reg.shrinker_list]


class TestChecks:
    def test_full_checks_pass_after_a_mixed_workload(self) -> None:
        """After opens, reads, writes, a shrink and a sync, the full dcache and page cache walks find nothing wrong."""
        from smpmem.mm.dcache import check_dcache
        from smpmem.mm.filemap import check_page_cache, ksys_sync, vfs_write

        k = fs_kernel(files=FILES)

        async def t(th):
            for i in range(8):
                f = await vfs_open(th, f"/f{i}")
                await vfs_read(th, f, 0, 8192)
                await vfs_write(th, f, 4096, 100)
                fput(th, f)
            await super_cache_scan(th, sbc(k), ShrinkControl(8))
            await ksys_sync(th)

        run(k, t)
        assert check_dcache(k, full=True) is None
        assert check_page_cache(k, full=True) is None
        k.dcache.nr_inodes += 1
        assert "nr_inodes" in check_dcache(k)
