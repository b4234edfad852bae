"""Buffer heads on block-device pages: models fs/buffer.c (Linux 6.12), the part metadata reads use.

Modelled: each partition's own page cache (``bd_mapping``, the block
device inode's ``i_data``); ``__bread`` → ``__getblk`` → ``__find_get_block``
(a hit touches the buffer: ``block_touch_buffer`` and
``folio_mark_accessed``) or ``grow_buffers`` (a page of the block device's
mapping, allocated ``GFP_NOFS | __GFP_MOVABLE``, inserted, put on the file
LRU, and split by ``create_empty_buffers`` into ``PAGE_SIZE / size``
``buffer_head``s from the ``buffer_head`` slab cache, attached as the page's
private data under ``i_private_lock``), then ``submit_bh`` of one block
(``REQ_META``) and ``wait_on_buffer``. A read error gives None (``__bread``
returns NULL) and the caller -EIO. ``try_to_free_buffers`` is the block
mapping's ``release_folio``: it frees clean, unlocked, unused buffers so
reclaim (``remove_mapping``) can drop the page. These pages count as
``Buffers`` in /proc/meminfo (``nr_blockdev_pages``), file pages as ``Cached``.

Simplified: no dirty buffers or metadata writeback (the model never writes
metadata), no ``bh_lru`` per-CPU cache of recent lookups, one wait queue
per partition for buffer locks; a page becomes uptodate when all its
buffers are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sim import SpinLock
from ..trace.events import block as block_events
from .block import REQ_META, REQ_OP_READ, SECTOR_SHIFT, Bio, Partition, WaitQueue, submit_bio
from .filemap import AddressSpaceOperations, filemap_add_folio, folio_put, new_mapping
from .fs import Inode, cache_alloc, cache_free
from .gfp import GFP_NOFS, __GFP_MOVABLE
from .lru import folio_mark_accessed
from .page import PAGE_SIZE, PG_private, PG_uptodate, Page
from .page_alloc import alloc_pages
from .pagemap import folio_trylock, folio_unlock

if TYPE_CHECKING:
    from ..sim import Thread

BDEV_GFP = GFP_NOFS | __GFP_MOVABLE  # grow_dev_folio: mapping_gfp_constraint(~__GFP_FS) | __GFP_MOVABLE

# enum bh_state_bits (include/linux/buffer_head.h)
BH_Uptodate = 0
BH_Dirty = 1
BH_Lock = 2
BH_Req = 3
BH_Mapped = 5


class BufferHead:
    """``struct buffer_head``: one block of a block-device page.

    ``b_state`` bits and ``b_count`` are atomic in the kernel; ``b_this_page``
    links the page's buffers in a ring (here a list on the page's private
    ``BufferRing``).
    """

    __slots__ = ("b_state", "b_page", "b_blocknr", "b_size", "b_bdev", "b_count", "slab_obj")

    def __init__(self, page: Page, blocknr: int, size: int, bdev: Partition, slab_obj: Any) -> None:
        self.b_state = 1 << BH_Mapped
        self.b_page = page
        self.b_blocknr = blocknr
        self.b_size = size
        self.b_bdev = bdev
        self.b_count = 0
        self.slab_obj = slab_obj

    @property
    def sector(self) -> int:
        """Absolute disk sector of the block."""
        return self.b_bdev.start + self.b_blocknr * (self.b_size >> SECTOR_SHIFT)

    def __repr__(self) -> str:
        return f"<buffer_head {self.b_bdev.name} block {self.b_blocknr} state {self.b_state:#x} count {self.b_count}>"


class BufferRing:
    """A page's buffers (what ``folio->private`` points to)."""

    __slots__ = ("bhs",)

    def __init__(self, bhs: list[BufferHead]) -> None:
        self.bhs = bhs


class BdevSuperBlock:
    """The block-device pseudo filesystem (``blockdev_superblock``): anonymous dev 0:0, no writeback."""

    s_dev = 0
    s_id = "bdev"
    fs = None
    wb = None


class BdevState:
    """Per partition: its inode, mapping, ``i_private_lock`` and the buffer wait queue."""

    def __init__(self, kernel: Any, part: Partition) -> None:
        self.part = part
        self.inode = Inode(kernel, BdevSuperBlock(), None, part.dev)  # type: ignore[arg-type]
        self.mapping = new_mapping(kernel, self.inode, blockdev=True, a_ops=def_blk_aops)
        self.mapping.gfp_mask = BDEV_GFP
        self.private_lock = SpinLock(kernel, "&mapping->i_private_lock")
        self.wait = WaitQueue(f"{part.name} buffers")
        part.bd_mapping = self.mapping


def _bdev(kernel: Any, part: Partition) -> BdevState:
    return kernel.buffers[part.dev]


async def try_to_free_buffers(th: "Thread", page: Page) -> bool:
    """``try_to_free_buffers``: free a page's buffers if none is dirty, locked or in use."""
    ring: BufferRing = page.private
    if not isinstance(ring, BufferRing):
        return True
    for bh in ring.bhs:
        if bh.b_count or bh.b_state & ((1 << BH_Dirty) | (1 << BH_Lock)):
            return False
    page.private = 0
    page.flags &= ~(1 << PG_private)
    page._refcount -= 1  # folio_detach_private
    th.charge(th.machine.costs.buffer_head_op * len(ring.bhs))
    for bh in ring.bhs:
        await cache_free(th, "buffer_head", bh.slab_obj)
    return True


def_blk_aops = AddressSpaceOperations("def_blk_aops", release_folio=try_to_free_buffers)


async def grow_buffers(th: "Thread", bs: BdevState, block: int, size: int) -> Page | None:
    """``grow_dev_folio``: a block-device page for ``block`` with ``PAGE_SIZE / size`` buffers attached."""
    k = th.machine
    mapping = bs.mapping
    wt = k.pagecache.waits
    per_page = PAGE_SIZE // size
    index = block // per_page
    page = await alloc_pages(th, mapping.gfp_mask, 0)
    if page is None:
        return None
    folio_trylock(wt, page, th)
    if await filemap_add_folio(th, mapping, page, index):
        folio_unlock(wt, page)
        await folio_put(th, page)
        return mapping.i_pages.get(index)
    bhs = []
    for i in range(per_page):
        obj = await cache_alloc(th, "buffer_head")
        if obj is None:  # ENOMEM: give the ones we got back, leave the page without buffers
            for bh in bhs:
                await cache_free(th, "buffer_head", bh.slab_obj)
            folio_unlock(wt, page)
            page._refcount -= 1
            return page
        bhs.append(BufferHead(page, index * per_page + i, size, bs.part, obj))
    th.charge(k.costs.buffer_head_op * per_page)
    await bs.private_lock.acquire(th, site="create_empty_buffers+0x8c/0x1f0")
    page.private = BufferRing(bhs)
    page.flags |= 1 << PG_private
    page._refcount += 1  # folio_attach_private
    await bs.private_lock.release(th)
    folio_unlock(wt, page)
    page._refcount -= 1  # the allocation reference (the cache and the buffers keep theirs)
    return page


async def __getblk(th: "Thread", part: Partition, block: int, size: int) -> BufferHead | None:
    """``__getblk``: the buffer head of ``block`` with a reference (``b_count``), created if needed."""
    k = th.machine
    bs = _bdev(k, part)
    per_page = PAGE_SIZE // size
    index = block // per_page
    for _ in range(2):
        th.charge(k.costs.pagecache_lookup + k.costs.buffer_head_op)
        page = bs.mapping.i_pages.get(index)
        if page is None:
            page = await grow_buffers(th, bs, block, size)
            if page is None:
                return None
            continue
        ring = page.private
        if not isinstance(ring, BufferRing):
            return None
        bh = ring.bhs[block - index * per_page]
        bh.b_count += 1
        return bh
    return None


def _end_bh_read(bio: Bio) -> None:
    """``end_buffer_read_sync``: uptodate on success, unlock, wake waiters."""
    bh, bs, kernel = bio.private
    if bio.status == 0:
        bh.b_state |= 1 << BH_Uptodate
        page = bh.b_page
        ring = page.private
        if isinstance(ring, BufferRing) and all(b.b_state & (1 << BH_Uptodate) for b in ring.bhs):
            page.flags |= 1 << PG_uptodate
    bh.b_state &= ~(1 << BH_Lock)
    bs.wait.wake_all(kernel.sim, kernel.costs.sleep_wakeup)


async def __bread(th: "Thread", part: Partition, block: int, size: int = 1024) -> BufferHead | None:
    """``__bread``: the buffer of ``block`` read and uptodate, with a reference; None on an I/O error."""
    k = th.machine
    bh = await __getblk(th, part, block, size)
    if bh is None:
        return None
    bs = _bdev(k, part)
    if bh.b_state & (1 << BH_Uptodate):
        tr = k.tracer
        if tr.on[block_events.block_touch_buffer.id]:
            tr.emit(block_events.block_touch_buffer, th, dev=part.disk.dev, sector=bh.sector, size=bh.b_size)
        await folio_mark_accessed(th, bh.b_page)
        return bh
    while bh.b_state & (1 << BH_Lock):  # someone else is reading it: wait_on_buffer
        await bs.wait.wait(th)
    if not bh.b_state & (1 << BH_Uptodate):
        bh.b_state |= (1 << BH_Lock) | (1 << BH_Req)
        sector = bh.sector
        bio = Bio(part.disk, REQ_OP_READ, sector, size >> SECTOR_SHIFT, [(bh.b_page, sector)],
                  end_io=_end_bh_read, flags=REQ_META, private=(bh, bs, k))
        await submit_bio(th, bio)
        while bh.b_state & (1 << BH_Lock):
            await bs.wait.wait(th)
    if not bh.b_state & (1 << BH_Uptodate):
        brelse(bh)
        return None
    return bh


def brelse(bh: BufferHead | None) -> None:
    """``brelse``: drop a buffer reference."""
    if bh is not None:
        assert bh.b_count > 0, f"brelse of an unused {bh!r}"
        bh.b_count -= 1


def nr_blockdev_pages(kernel: Any) -> int:
    """``nr_blockdev_pages``: the pages of every block device's mapping (meminfo Buffers)."""
    return sum(bs.mapping.nrpages for bs in kernel.buffers.values())


def buffer_init(kernel: Any) -> None:
    """A block-device inode and mapping per partition; Buffers in /proc/meminfo."""
    kernel.buffers = {}
    for dev in kernel.block.devices.values():
        for part in dev.partitions:
            kernel.buffers[part.dev] = BdevState(kernel, part)
    kernel.page_alloc.meminfo_sources.register("nr_blockdev_pages", lambda: nr_blockdev_pages(kernel))


__all__ = ["BufferHead", "__bread", "__getblk", "brelse", "buffer_init", "nr_blockdev_pages",
           "try_to_free_buffers", "def_blk_aops"]
