"""The page cache (smpmem/mm/filemap.py): reads, readahead, writes, content tokens, errors, faults, meminfo."""

from __future__ import annotations

import pytest

from filemap_support import disk, evict, fs_kernel, records, run
from smpmem.mm.block import EIO, ENOENT, ENOSPC
from smpmem.mm.dcache import vfs_open
from smpmem.mm.filemap import (
    VM_FAULT_MAJOR,
    VM_FAULT_SIGBUS,
    VmFault,
    drop_pagecache,
    filemap_fault,
    filemap_page_mkwrite,
    folio_put,
    get_init_ra_size,
    get_next_ra_size,
    remove_mapping,
    vfs_fsync,
    vfs_read,
    vfs_write,
)
from smpmem.mm.page import PG_active, PG_dirty, PG_locked, PG_lru, PG_referenced, PG_uptodate
from smpmem.mm.pagemap import folio_lock, folio_unlock
from smpmem.mm.zone import NR_FILE_PAGES
from smpmem.proc.meminfo import render_meminfo
from smpmem.proc.vmstat import vmstat_items
from smpmem.sim import ModelBug

MiB = 1 << 20


def meminfo(k) -> dict[str, int]:
    """/proc/meminfo as {label: kB}."""
    out = {}
    for line in render_meminfo(k).splitlines():
        name, _, rest = line.partition(":")
        out[name] = int(rest.split()[0])
    return out


class _Vma:
    """What filemap_fault reads of a VMA: its file."""

    def __init__(self, file) -> None:
        self.vm_file = file


class TestReads:
    def test_second_read_is_served_from_the_cache(self) -> None:
        """A second read of a file issues no I/O and adds no page; the first one read it from the disk."""
        k = fs_kernel(events="block:block_rq_issue,filemap:*")
        sda = disk(k)

        async def t(th):
            f = await vfs_open(th, "/data")
            n1 = await vfs_read(th, f, 0, MiB)
            reads, pgpgin, nr = sda.reads, k.vmstat["pgpgin"], k.pagecache.nr_pages
            t_hit = th.sim.now
            n2 = await vfs_read(th, f, 0, MiB)
            return n1, n2, reads, pgpgin, nr, th.sim.now - t_hit

        n1, n2, reads, pgpgin, nr, hit_ns = run(k, t)[0]
        assert n1 == n2 == MiB
        assert sda.reads == reads and k.vmstat["pgpgin"] == pgpgin and k.pagecache.nr_pages == nr == 256 + 1
        issues = [r for r in records(k) if r["event"] == "block_rq_issue"]
        assert sum(r["nr_sector"] for r in issues) == 2 + 2048  # the inode block, then the file once
        assert hit_ns < 1_000_000  # 256 page copies, no 100 us disk latency

    def test_second_touch_activates_the_page(self) -> None:
        """folio_mark_accessed on each read: referenced after the first, queued for activation after the
        second (on the activate batch, PG_lru clear, still on the inactive list) and active once the batch
        moves; a read that starts in the page where the previous one ended does not touch it again."""
        from smpmem.mm.lru import LRU_ACTIVE_FILE, LRU_INACTIVE_FILE, lru_add_drain

        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_read(th, f, 0, 8192)
            await lru_add_drain(th)  # the pages reach their LRU
            p = f.f_mapping.i_pages[0]
            first = bool(p.flags & (1 << PG_referenced)), bool(p.flags & (1 << PG_active))
            await vfs_read(th, f, 0, 8192)
            q = f.f_mapping.i_pages[1]
            queued = (p in th.cpu.percpu["lru_activate"], bool(p.flags & (1 << PG_lru)), p.lru)
            await lru_add_drain(th)
            moved = (bool(p.flags & (1 << PG_active)), bool(p.flags & (1 << PG_lru)), p.lru)
            await vfs_read(th, f, 4096, 100)  # starts where the last read ended: no second touch
            return first, queued, moved, bool(q.flags & (1 << PG_active)), k.vmstat["pgactivate"]

        first, queued, moved, q_act, pgactivate = run(k, t)[0]
        assert first == (True, False)
        assert queued == (True, False, LRU_INACTIVE_FILE)
        assert moved == (True, True, LRU_ACTIVE_FILE) and q_act
        assert pgactivate == 2

    def test_reads_stop_at_end_of_file(self) -> None:
        """A read across the end is short, one at or past the end returns 0, a negative offset -EINVAL."""
        k = fs_kernel(files='[[machine.file]]\npath = "/small"\nsize = 10000\n')

        async def t(th):
            f = await vfs_open(th, "/small")
            return [await vfs_read(th, f, 8192, 4096), await vfs_read(th, f, 10000, 10),
                    await vfs_read(th, f, 1 << 30, 1), await vfs_read(th, f, 0, 0), await vfs_read(th, f, -1, 1)]

        assert run(k, t)[0] == [1808, 0, 0, 0, -22]

    def test_readahead_window_ramps_up(self) -> None:
        """Sequential 4 KiB reads: windows of 4, 8, 16, 32, 32 pages, each read by one request."""
        k = fs_kernel(events="block:block_rq_issue")

        async def t(th):
            f = await vfs_open(th, "/data")
            for pos in range(0, 96 * 4096, 4096):
                assert await vfs_read(th, f, pos, 4096) == 4096

        run(k, t)
        sizes = [r["nr_sector"] // 8 for r in records(k) if r["event"] == "block_rq_issue" and r["rwbs"] == "RA"]
        assert sizes[:5] == [4, 8, 16, 32, 32]
        assert get_init_ra_size(1, 32) == 4 and get_next_ra_size(4, 32) == 8 and get_next_ra_size(16, 32) == 32

    def test_random_reads_do_not_read_ahead(self) -> None:
        """A miss far from the last read, with nothing cached before it, reads only what was asked."""
        k = fs_kernel(events="block:block_rq_issue")

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_read(th, f, 0, 4096)
            await vfs_read(th, f, 200 * 4096, 4096)

        run(k, t)
        sizes = [r["nr_sector"] // 8 for r in records(k) if r["event"] == "block_rq_issue" and r["rwbs"] == "RA"]
        assert sizes == [4, 1]

    def test_concurrent_readers_share_one_read(self) -> None:
        """Two threads missing on the same page at once: one I/O; the other waits on the page lock."""
        k = fs_kernel(files='[[machine.file]]\npath = "/data"\nsize = 4096\n')
        sda = disk(k)

        async def t(th):
            f = await vfs_open(th, "/data")
            out: list = []
            assert await vfs_read(th, f, 0, 4096, out) == 4096
            return out[0][1]

        a, b = run(k, t, t)
        assert a == b == sda.platter_token(3072)
        assert sda.reads == 2  # the inode block once, the page once

    def test_meminfo_and_vmstat_after_reads(self) -> None:
        """Cached counts file pages, Buffers the inode-table page, pgpgin the KiB read, nr_file_pages both."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_read(th, f, 0, MiB)
            from smpmem.mm.lru import lru_add_drain

            await lru_add_drain(th)

        run(k, t)
        m = meminfo(k)
        v = dict(vmstat_items(k))
        assert m["Cached"] == 1024 and m["Buffers"] == 4
        assert m["Active(file)"] + m["Inactive(file)"] == 1028
        assert v["nr_file_pages"] == 257 and v["pgpgin"] == 1024 + 1
        assert sum(p.vm_stat[NR_FILE_PAGES] for p in k.page_alloc.nodes) == 257


class TestWrites:
    def test_write_creates_a_missing_file_only_when_asked(self) -> None:
        """Opening a missing file is -ENOENT; with create it exists, empty, and writes extend it."""
        k = fs_kernel()

        async def t(th):
            missing = await vfs_open(th, "/new")
            f = await vfs_open(th, "/new", create=True)
            empty = await vfs_read(th, f, 0, 100)
            n = await vfs_write(th, f, 6000, 100)
            return missing, empty, n, f.f_inode.i_size, await vfs_read(th, f, 0, 10000)

        assert run(k, t)[0] == (-ENOENT, 0, 100, 6100, 6100)

    def test_write_dirties_and_fsync_cleans(self) -> None:
        """write() leaves pages dirty (Dirty, nr_dirty, writeback_dirty_folio); fsync writes and waits."""
        k = fs_kernel(events="writeback:writeback_dirty_folio")

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 3 * 4096)
            dirty = meminfo(k)["Dirty"], dict(vmstat_items(k))["nr_dirty"]
            err = await vfs_fsync(th, f)
            return dirty, err, meminfo(k)["Dirty"], meminfo(k)["Writeback"]

        (dirty, err, after, wb) = run(k, t)[0]
        assert dirty == (12, 3) and err == 0 and after == 0 and wb == 0
        assert [r["index"] for r in records(k)] == [0, 1, 2]
        assert k.vmstat["pgpgout"] == 3 * 8

    def test_partial_write_reads_the_page_first(self) -> None:
        """A write of part of a page that holds data reads that page (read-modify-write); a whole page does not."""
        k = fs_kernel()
        sda = disk(k)

        async def t(th):
            f = await vfs_open(th, "/data")
            r0 = sda.reads
            await vfs_write(th, f, 0, 4096)
            r1 = sda.reads
            await vfs_write(th, f, 8192 + 10, 20)
            return r1 - r0, sda.reads - r1

        assert run(k, t)[0] == (0, 1)

    def test_tokens_survive_writeback_and_eviction(self) -> None:
        """Tokens written by write() are written back, and after the pages are evicted they come back from the disk."""
        k = fs_kernel()
        sda = disk(k)

        async def t(th):
            f = await vfs_open(th, "/data")
            m = f.f_mapping
            await vfs_write(th, f, 0, 2 * 4096, token=111)
            await vfs_write(th, f, 2 * 4096, 2 * 4096, token=222)
            assert await vfs_fsync(th, f) == 0
            for i in range(4):
                assert await evict(th, m, i)
            assert m.nrpages == 0
            reads = sda.reads
            out: list = []
            assert await vfs_read(th, f, 0, 4 * 4096, out) == 4 * 4096
            return out, sda.reads - reads

        out, reads = run(k, t)[0]
        assert out == [(0, 111), (1, 111), (2, 222), (3, 222)] and reads == 1

    def test_dirty_page_cannot_be_removed(self) -> None:
        """remove_mapping refuses a dirty page (and one someone else holds); the data stays cached."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 4096, token=5)
            page = f.f_mapping.i_pages[0]
            page._refcount += 1
            await folio_lock(th, page)
            ok = await remove_mapping(th, f.f_mapping, page)
            folio_unlock(k.pagecache.waits, page)
            await folio_put(th, page)
            return ok, page.flags & (1 << PG_dirty), 0 in f.f_mapping.i_pages

        ok, dirty, cached = run(k, t)[0]
        assert not ok and dirty and cached

    def test_drop_caches_keeps_dirty_pages(self) -> None:
        """drop_pagecache frees clean pages only; the dirty ones stay, with their content."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_read(th, f, 0, 8 * 4096)
            await vfs_write(th, f, 0, 4096, token=9)
            n = await drop_pagecache(th)
            out: list = []
            await vfs_read(th, f, 0, 4096, out)
            return n, sorted(f.f_mapping.i_pages)[:1], out

        n, left, out = run(k, t)[0]
        assert n >= 7 and left == [0] and out == [(0, 9)]

    def test_no_space_left(self) -> None:
        """A write the disk has no blocks for returns -ENOSPC (after what fitted), and nothing is dirtied beyond it."""
        k = fs_kernel(disk='name = "sda"\nsize = "4MiB"', files="")

        async def t(th):
            f = await vfs_open(th, "/fill", create=True)
            n = await vfs_write(th, f, 0, 8 * MiB)
            again = await vfs_write(th, f, 8 * MiB, 4096)
            return n, again, f.f_inode.i_size

        n, again, size = run(k, t)[0]
        assert 0 < n < 8 * MiB and again == -ENOSPC and size == n


class TestErrors:
    def test_injected_eio_surfaces_at_fsync_and_data_stays_dirty(self) -> None:
        """A write error on a sector: fsync returns -EIO, the page stays dirty with its data, a later fsync fails again."""
        k = fs_kernel(disk='name = "sda"\nerror_sectors = [3072]')

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 2 * 4096, token=77)
            e1 = await vfs_fsync(th, f)
            m = f.f_mapping
            p0, p1 = m.i_pages[0], m.i_pages[1]
            state = bool(p0.flags & (1 << PG_dirty)), bool(p1.flags & (1 << PG_dirty)), p0.token
            e2 = await vfs_fsync(th, f)
            out: list = []
            await vfs_read(th, f, 0, 4096, out)
            return e1, state, e2, out, meminfo(k)["Dirty"]

        e1, state, e2, out, dirty_kb = run(k, t)[0]
        assert e1 == -EIO and e2 == -EIO
        assert state == (True, True, 77)  # the whole failed request is redirtied
        assert out == [(0, 77)] and dirty_kb == 8
        assert disk(k).platter_token(3072) == -3073  # nothing reached the bad sector

    def test_read_error_returns_eio(self) -> None:
        """A read of a bad sector returns -EIO (no crash); the bytes before it are returned first."""
        k = fs_kernel(disk='name = "sda"\nerror_sectors = [3080]')

        async def t(th):
            f = await vfs_open(th, "/data")
            return await vfs_read(th, f, 4096, 4096), await vfs_read(th, f, 0, 3 * 4096)

        bad, partial = run(k, t)[0]
        assert bad == -EIO and partial == 4096

    def test_a_failing_device(self) -> None:
        """With every request failing, open returns -EIO (the inode cannot be read) and nothing crashes."""
        k = fs_kernel(disk='name = "sda"\nerror_rate = 1.0')

        async def t(th):
            return await vfs_open(th, "/data")

        assert run(k, t)[0] == -EIO

    def test_wrong_token_on_read_is_data_loss(self) -> None:
        """The read path checks content: a page whose token differs from the last write is a ModelBug."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 4096, token=1)
            f.f_mapping.i_pages[0].token = 2
            await vfs_read(th, f, 0, 4096)

        with pytest.raises(ModelBug, match="last written"):
            run(k, t)


class TestFaults:
    def test_fault_reads_the_page_then_hits(self) -> None:
        """filemap_fault: a major fault reads the page (pgmajfault), the next is a minor one; past EOF SIGBUS."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            vma = _Vma(f)
            v1 = VmFault(vma, 3)
            r1 = await filemap_fault(th, v1)
            v2 = VmFault(vma, 3)
            r2 = await filemap_fault(th, v2)
            r3 = await filemap_fault(th, VmFault(vma, 256))
            p = v1.page
            state = p is v2.page, bool(p.flags & (1 << PG_uptodate)), bool(p.flags & (1 << PG_locked))
            await folio_put(th, p)
            await folio_put(th, p)
            return r1, r2, r3, state

        r1, r2, r3, state = run(k, t)[0]
        assert r1 & VM_FAULT_MAJOR and not r2 & VM_FAULT_MAJOR and r3 == VM_FAULT_SIGBUS
        assert state == (True, True, False)
        assert k.vmstat["pgmajfault"] == 1

    def test_shared_write_through_page_mkwrite_survives_eviction(self) -> None:
        """A store through a shared mapping (page_mkwrite marks the page dirty) is written back and read back after eviction."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            vma = _Vma(f)
            vmf = VmFault(vma, 5, flags=1)
            await filemap_fault(th, vmf)
            page = vmf.page
            assert await filemap_page_mkwrite(th, vmf) == 0
            page.token = 4242  # the store through the PTE
            f.f_mapping.shadow[5] = 4242
            dirty = bool(page.flags & (1 << PG_dirty))
            await folio_put(th, page)  # the mapping goes away
            assert await vfs_fsync(th, f) == 0
            assert await evict(th, f.f_mapping, 5)
            out: list = []
            await vfs_read(th, f, 5 * 4096, 4096, out)
            return dirty, out

        dirty, out = run(k, t)[0]
        assert dirty and out == [(5, 4242)]


class TestSharedMapping:
    @staticmethod
    def _in_a_process(k, body):  # type: ignore[no-untyped-def]
        """Run ``body(th, proc)`` in a user process of ``k`` (with an mm) to the end; its result."""
        from mm_support import run as mm_run, spawn

        out: list = []

        async def wrapped(th, proc):  # type: ignore[no-untyped-def]
            out.append(await body(th, proc))

        mm_run(k, lambda _: spawn(k, wrapped))
        return out[0]

    def test_stores_through_a_shared_mapping_survive_writeback_and_eviction(self) -> None:
        """Stores through a MAP_SHARED mapping (mm/memory.py's MMU) dirty the pages; after munmap, fsync and
        dropping the cache, a new mapping reads the same tokens back from the disk."""
        from smpmem.mm import mmap as M
        from smpmem.mm.memory import access_pages

        k = fs_kernel()
        k.mm_check_every_switch = True
        sda = disk(k)
        n = 16

        async def body(th, proc):
            f = await vfs_open(th, "/data")
            addr = await M.vm_mmap(th, proc.mm, f, 0, n * 4096, M.PROT_READ | M.PROT_WRITE, M.MAP_SHARED, 0)
            vpns = range(addr >> 12, (addr >> 12) + n)
            assert await access_pages(th, proc.mm, vpns, True) == 0
            written = [f.f_mapping.i_pages[i].token for i in range(n)]
            await M.vm_munmap(th, proc.mm, addr, n * 4096)
            dirty = meminfo(k)["Dirty"]
            assert await vfs_fsync(th, f) == 0
            dropped = await drop_pagecache(th)
            reads = sda.reads
            addr = await M.vm_mmap(th, proc.mm, f, 0, n * 4096, M.PROT_READ, M.MAP_SHARED, 0)
            vpns = range(addr >> 12, (addr >> 12) + n)
            assert await access_pages(th, proc.mm, vpns, False) == 0  # checks every token against the shadow
            back = [f.f_mapping.i_pages[i].token for i in range(n)]
            await M.vm_munmap(th, proc.mm, addr, n * 4096)
            return written, dirty, dropped, sda.reads - reads, back

        written, dirty, dropped, reads, back = self._in_a_process(k, body)
        assert dirty == n * 4 and dropped >= n and reads >= 1
        assert back == written and len(set(written)) == n and all(t > 0 for t in written)


    def test_writeback_write_protects_so_later_stores_dirty_again(self) -> None:
        """Writeback write-protects the shared mapping's PTEs (folio_mkclean): stores after an fsync fault,
        dirty the pages again, and the next fsync writes them (none lost to a stale writable translation)."""
        from smpmem.mm import mmap as M
        from smpmem.mm.memory import _PAGE_DIRTY, _PAGE_RW, access_pages, pte_lookup

        k = fs_kernel()
        k.mm_check_every_switch = True
        sda = disk(k)
        n = 8

        async def body(th, proc):
            f = await vfs_open(th, "/data")
            addr = await M.vm_mmap(th, proc.mm, f, 0, n * 4096, M.PROT_READ | M.PROT_WRITE, M.MAP_SHARED, 0)
            vpns = range(addr >> 12, (addr >> 12) + n)
            assert await access_pages(th, proc.mm, vpns, True) == 0
            assert await vfs_fsync(th, f) == 0
            ptes_after_sync = [pte_lookup(proc.mm, v) & (_PAGE_RW | _PAGE_DIRTY) for v in vpns]
            clean = meminfo(k)["Dirty"]
            writes = sda.sectors_written
            assert await access_pages(th, proc.mm, vpns, True) == 0  # faults: wp_page_shared, page_mkwrite
            second = [f.f_mapping.i_pages[i].token for i in range(n)]
            redirtied = meminfo(k)["Dirty"]
            assert await vfs_fsync(th, f) == 0
            rewritten = sda.sectors_written - writes
            await M.vm_munmap(th, proc.mm, addr, n * 4096)
            dropped = await drop_pagecache(th)
            addr = await M.vm_mmap(th, proc.mm, f, 0, n * 4096, M.PROT_READ, M.MAP_SHARED, 0)
            vpns = range(addr >> 12, (addr >> 12) + n)
            assert await access_pages(th, proc.mm, vpns, False) == 0  # checks every token against the shadow
            back = [f.f_mapping.i_pages[i].token for i in range(n)]
            return ptes_after_sync, clean, redirtied, rewritten, dropped, second, back

        ptes_after_sync, clean, redirtied, rewritten, dropped, second, back = self._in_a_process(k, body)
        assert ptes_after_sync == [0] * n  # read-only and clean once written back
        assert clean == 0 and redirtied == n * 4
        assert rewritten == n * 8  # every page written again: 8 sectors of 512 bytes each
        assert dropped >= n and back == second


class TestLockOrder:
    def test_taking_i_pages_before_i_rwsem_is_reported(self) -> None:
        """The file lock order is known at boot: i_rwsem taken inside a mapping's xa_lock is an inversion."""
        from smpmem.sim import LockInversion

        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            m = f.f_mapping
            await m.xa_lock.acquire(th)
            try:
                await f.f_inode.i_rwsem.down_write(th)
            finally:
                await m.xa_lock.release(th)

        with pytest.raises(LockInversion, match="i_rwsem"):
            run(k, t)


class TestContentChecks:
    def test_wrong_data_from_the_disk_is_caught_at_read_completion(self) -> None:
        """A page read back from the disk with another token than the last write there is reported as lost data."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 4096, token=99)
            assert await vfs_fsync(th, f) == 0
            assert await evict(th, f.f_mapping, 0)
            disk(k).platter[3072] = 5  # the block changed behind the page cache's back
            await vfs_read(th, f, 0, 4096)

        with pytest.raises(ModelBug, match="read from sector 3072 holds 5, but 99 was written there last"):
            run(k, t)

    def test_a_clean_page_that_differs_from_its_block_cannot_leave(self) -> None:
        """Evicting a clean page whose content is not on its disk block is reported as lost data."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_read(th, f, 0, 4096)
            f.f_mapping.i_pages[0].token = 1234  # changed without being dirtied
            await evict(th, f.f_mapping, 0)

        with pytest.raises(ModelBug, match="clean page holds 1234"):
            run(k, t)
