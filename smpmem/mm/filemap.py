"""The page cache: models mm/filemap.c, mm/readahead.c and the page-cache half of mm/truncate.c (Linux 6.12).

Modelled:

- Insertion and removal (``__filemap_add_folio`` with
  ``mm_filemap_add_to_page_cache``, ``__filemap_remove_folio`` with
  ``mm_filemap_delete_from_page_cache``) under ``xa_lock``: NR_FILE_PAGES,
  the cache's page reference, new pages locked and put on the file LRU by
  ``folio_add_lru`` (``PG_swapbacked`` clear).
- Buffered reads (``filemap_read`` → ``filemap_get_pages`` →
  ``filemap_get_read_batch``): a hit costs a lookup, ``folio_mark_accessed``
  (once per page, as ``ra->prev_pos`` tells) and the copy, and no I/O; a
  miss runs synchronous readahead (``page_cache_sync_ra``: the initial
  window of ``get_init_ra_size``, 4 × the request up to ``ra_pages`` = 32,
  or a contiguous-history window; a random miss reads just what was asked),
  a page marked ``PG_readahead`` triggers the next asynchronous window
  (``page_cache_async_ra``, ``get_next_ra_size``: ×4 then ×2 up to 32).
  Readahead pages are allocated with ``__GFP_NORETRY | __GFP_NOWARN``,
  inserted locked and not uptodate, and read by one bio per contiguous run;
  the bio's completion marks them uptodate and unlocks them. A reader that
  finds a page locked waits for the unlock and looks again
  (``filemap_update_page``); a page still not uptodate is read alone
  (``filemap_read_folio``) and an error returns -EIO. Reads stop at
  ``i_size`` (a read past the end returns 0).
- Buffered writes (``generic_perform_write`` under ``i_rwsem``): per page
  ``write_begin`` (find or create the page locked; read it first when the
  write covers part of a page that holds data; allocate disk blocks, -ENOSPC
  if there are none), the copy (the page takes the write's content token),
  ``write_end`` (uptodate, ``folio_mark_dirty``, ``i_size``), then
  ``balance_dirty_pages_ratelimited``.
- ``vfs_fsync`` (``file_write_and_wait_range`` + errseq: a writeback error
  is reported once per open file), ``ksys_sync``.
- Page faults of file mappings (``generic_file_vm_ops``, set by
  ``File.mmap``): ``filemap_fault`` (cache hit, or ``do_sync_mmap_readahead``
  around the fault, a major fault; returns the page uptodate with a
  reference, unlocked: mm/memory.py's fault path does not unlock what
  ``->fault`` returns) and ``filemap_page_mkwrite`` (the first write
  through a shared mapping marks the page dirty); a dirty PTE found at
  unmap dirties the page through ``a_ops->dirty_folio``.
- Content (DESIGN.md §6): each mapping keeps a shadow of the token last
  written at each index (by write(2), and by stores through shared
  mappings, which mm/memory.py records there); a read, a read completion
  and the removal of a clean page check the page against it or against its
  disk block, and a mismatch is a ModelBug (lost data).
- Reclaim's side: ``remove_mapping`` (``__remove_mapping``'s conditions:
  clean, not under writeback, unmapped, buffers released, exactly the
  cache's and the caller's references), ``folio_put`` (the last reference
  takes the page off its LRU and frees it), ``invalidate_mapping_pages`` /
  ``drop_pagecache`` (``echo 1 > drop_caches``).

Simplified: no large folios (order 0 only), no shadow entries or workingset
refault detection, no fault-around (``filemap_map_pages``), no
``mmap_miss`` readahead heuristics, the fault path never drops
``mmap_lock`` for I/O (no VM_FAULT_RETRY), no truncation, no direct I/O,
no stable-page waits, no ``PAGECACHE_TAG_TOWRITE``.

Lock order (the part of mm/filemap.c's header tree that is modelled;
:data:`FILE_LOCK_ORDER` holds it as pairs and boot teaches it to the
lock-order checker, as mm/rmap.py does for its tree)::

    inode->i_rwsem                  (generic_perform_write)
      folio lock (PG_locked, a bit: not a lock class)
        mapping->i_pages            (xa_lock: add, delete, dirty and writeback tags)
        wb->list_lock               (__mark_inode_dirty)
          mapping->i_pages          (__sync_single_inode)
        lruvec->lru_lock            (folio_add_lru, after i_pages is dropped)
        zone->lock                  (page allocation)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sim import ModelBug
from ..trace.events import filemap as fm_events
from .block import (
    EEXIST,
    EINVAL,
    EIO,
    ENOMEM,
    REQ_OP_READ,
    REQ_RAHEAD,
    SECTORS_PER_BLOCK,
    BIO_MAX_PAGES,
    Bio,
    submit_bio,
)
from .fs import File, Inode, file_check_and_advance_wb_err
from .gfp import GFP_HIGHUSER_MOVABLE, __GFP_NORETRY, __GFP_NOWARN, __GFP_WRITE
from .lru import folio_add_lru, folio_mark_accessed, lru_add_drain, lru_del_on_free
from .page import (
    PAGE_SHIFT,
    PAGE_SIZE,
    PG_active,
    PG_dirty,
    PG_locked,
    PG_lru,
    PG_private,
    PG_readahead,
    PG_referenced,
    PG_swapbacked,
    PG_uptodate,
    PG_workingset,
    PG_writeback,
    Page,
)
from .page_alloc import __free_pages, alloc_pages
from .page_writeback import (
    LONG_MAX,
    WB_REASON_SYNC,
    balance_dirty_pages_ratelimited,
    filemap_write_and_wait_range,
    folio_mark_dirty,
    sync_inodes,
    wakeup_flusher_threads,
)
from .pagemap import (
    AddressSpace,
    PageWaitTable,
    folio_lock,
    folio_lock_owner,
    folio_trylock,
    folio_unlock,
    folio_wait_locked,
)
from .zone import NR_FILE_PAGES, NR_SHMEM

if TYPE_CHECKING:
    from ..sim import Thread

FILE_LOCK_ORDER: tuple[tuple[str, str], ...] = (
    ("&inode->i_rwsem", "&mapping->i_pages"),
    ("&inode->i_rwsem", "&wb->list_lock"),
    ("&inode->i_rwsem", "&lruvec->lru_lock"),
    ("&inode->i_rwsem", "&zone->lock"),
    ("&wb->list_lock", "&mapping->i_pages"),
    ("&mapping->i_pages", "&lruvec->lru_lock"),
)

AOP_TRUNCATED_PAGE = 0x80001
VM_READAHEAD_PAGES = 128 * 1024 // PAGE_SIZE  # the default bdi->ra_pages

# vm_fault_t (include/linux/mm_types.h) and enum fault_flag (include/linux/mm_types.h)
VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_LOCKED = 0x000200
VM_FAULT_RETRY = 0x000400
FAULT_FLAG_WRITE = 1 << 0
FAULT_FLAG_MKWRITE = 1 << 1
FAULT_FLAG_TRIED = 1 << 5

_LOCKED = 1 << PG_locked
_UPTODATE = 1 << PG_uptodate
_DIRTY = 1 << PG_dirty
_WRITEBACK = 1 << PG_writeback
_READAHEAD = 1 << PG_readahead


class PageCache:
    """The page cache's global state: ``kernel.pagecache``.

    ``waits`` is ``folio_wait_table``; the tag counters mirror the
    mappings' tags (checked against NR_FILE_DIRTY and NR_WRITEBACK);
    ``nr_pages`` is the pages in every mapping; ``mappings()`` lists the
    live address spaces in creation order. ``next_token`` numbers the
    content written by write(2) (DESIGN.md §6).
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.waits = PageWaitTable(kernel)
        self.nr_dirty_tagged = 0
        self.nr_writeback_tagged = 0
        self.nr_pages = 0
        self._mappings: dict[AddressSpace, None] = {}
        self.next_token = 0
        self.since_sweep = 0
        self.errors: list[tuple[int, str, str, str]] = []  # failed file system calls of programs

    def register(self, mapping: AddressSpace) -> None:
        self._mappings[mapping] = None

    def unregister(self, mapping: AddressSpace) -> None:
        assert not mapping.nrpages, f"{mapping!r} still has pages"
        self._mappings.pop(mapping, None)

    def mappings(self) -> list[AddressSpace]:
        return list(self._mappings)

    def new_token(self) -> int:
        """A new content token, from the counter user stores use too (``kernel.mm_token``)."""
        k = self.kernel
        tok = getattr(k, "mm_token", self.next_token) + 1
        k.mm_token = self.next_token = tok
        return tok


@dataclass
class AddressSpaceOperations:
    """``struct address_space_operations``: what differs between file and block-device mappings."""

    name: str
    release_folio: Any = None  # async (th, page) -> bool: drop the page's private data (buffer heads)
    dirty_folio: Any = None  # async (th, mapping, page) -> bool: folio_mark_dirty's ->dirty_folio


async def filemap_dirty_folio(th: "Thread", mapping: AddressSpace, page: Page) -> bool:
    """``filemap_dirty_folio``: the ``dirty_folio`` of regular files (rmap's folio_mark_dirty calls it)."""
    return await folio_mark_dirty(th, page)


file_aops = AddressSpaceOperations("ext2_aops", dirty_folio=filemap_dirty_folio)


def mapping_gfp(mapping: AddressSpace) -> int:
    return mapping.gfp_mask


# --- references and freeing --------------------------------------------------------------

async def folio_put(th: "Thread", page: Page) -> None:
    """``folio_put``: drop a reference; the last one takes the page off its LRU and frees it."""
    if page._refcount > 1:
        page._refcount -= 1
        return
    if page.mapping is not None and isinstance(page.mapping, AddressSpace):
        raise ModelBug(f"pfn 0x{page.pfn:x}: last reference dropped while it is in the page cache")
    if page.flags & (_DIRTY | _WRITEBACK):
        raise ModelBug(f"pfn 0x{page.pfn:x}: a dirty or writeback page is being freed")
    if page.flags & (1 << PG_lru):
        lruvec = page.zone.zone_pgdat.lruvec
        await lruvec.lru_lock.acquire_irqsave(th, site="__page_cache_release+0x7f/0x1c0")
        lru_del_on_free(page)
        await lruvec.lru_lock.release_irqrestore(th)
    page.flags &= ~((1 << PG_uptodate) | (1 << PG_referenced) | (1 << PG_workingset) | (1 << PG_active)
                    | _READAHEAD)
    await __free_pages(th, page, 0)


def _get(page: Page) -> None:
    page._refcount += 1


# --- insertion and removal -------------------------------------------------------------------

def _trace_pc(k: Any, ev: Any, who: Any, mapping: AddressSpace, page: Page) -> None:
    tr = k.tracer
    if tr.on[ev.id]:
        host = mapping.host
        tr.emit(ev, who, pfn=page.pfn, i_ino=host.i_ino, index=page.index, s_dev=host.i_sb.s_dev, order=0)


async def filemap_add_folio(th: "Thread", mapping: AddressSpace, page: Page, index: int) -> int:
    """``filemap_add_folio``: insert a locked new page at ``index`` and queue it for the file LRU.

    0, or -EEXIST if another page got there first (the caller keeps its page).
    The cache takes its own reference; the caller keeps the allocation's.
    """
    k = th.machine
    assert page.flags & _LOCKED, "filemap_add_folio of an unlocked page"
    assert not page.flags & (1 << PG_swapbacked)
    th.charge(k.costs.pagecache_insert)
    await mapping.xa_lock.acquire_irqsave(th, site="__filemap_add_folio+0x16d/0x4a0")
    if index in mapping.i_pages:
        await mapping.xa_lock.release_irqrestore(th)
        return -EEXIST
    page.mapping = mapping
    page.index = index
    page._refcount += 1
    mapping.i_pages[index] = page
    mapping.nrpages += 1
    page.zone.zone_pgdat.vm_stat[NR_FILE_PAGES] += 1
    k.pagecache.nr_pages += 1
    _trace_pc(k, fm_events.mm_filemap_add_to_page_cache, th, mapping, page)
    await mapping.xa_lock.release_irqrestore(th)
    await folio_add_lru(th, page)
    return 0


def __filemap_remove_folio(k: Any, who: Any, mapping: AddressSpace, page: Page) -> None:
    """``__filemap_remove_folio`` (xa_lock held): out of i_pages, NR_FILE_PAGES, the event.

    A clean, uptodate page of a file must hold what its disk block holds:
    anything else is lost data.
    """
    if page.flags & _DIRTY:
        raise ModelBug(f"ino {mapping.host.i_ino} page {page.index}: a dirty page leaves the page cache")
    if page.flags & _UPTODATE and not mapping.nr_blockdev:
        inode = mapping.host
        sector = inode.i_sb.fs.bmap(inode.disk, page.index)
        if sector is not None:
            ondisk = inode.i_sb.fs.disk.platter_token(sector)
            if ondisk != page.token:
                raise ModelBug(f"ino {inode.i_ino} page {page.index}: clean page holds {page.token!r} but its "
                               f"block (sector {sector}) holds {ondisk!r}: data lost")
    _trace_pc(k, fm_events.mm_filemap_delete_from_page_cache, who, mapping, page)
    del mapping.i_pages[page.index]
    mapping.nrpages -= 1
    page.zone.zone_pgdat.vm_stat[NR_FILE_PAGES] -= 1
    k.pagecache.nr_pages -= 1
    page.mapping = None


async def remove_mapping(th: "Thread", mapping: AddressSpace, page: Page) -> bool:
    """``remove_mapping``: detach a page from its mapping if nobody else uses it.

    The caller holds one reference (reclaim's isolation reference, or its own)
    and normally the page lock; an unlocked page is trylocked here and unlocked
    again. Fails (False) when the page is locked by another, dirty, under
    writeback, mapped, its buffers cannot be released, or anyone else holds a
    reference. On success the page is out of the cache with only the caller's
    reference left (``folio_ref_unfreeze(folio, 1)``), still locked if the
    caller locked it; ``folio_put`` then frees it.
    """
    k = th.machine
    wt: PageWaitTable = k.pagecache.waits
    own_lock = False
    if page.flags & _LOCKED:
        if folio_lock_owner(wt, page) is not th:
            return False
    else:
        folio_trylock(wt, page, th)
        own_lock = True
    try:
        if page.mapping is not mapping:
            return False
        if page.flags & (_DIRTY | _WRITEBACK) or page._mapcount >= 0:
            return False
        if page.flags & (1 << PG_private):
            release = mapping.a_ops.release_folio
            if release is None or not await release(th, page):
                return False
        await mapping.xa_lock.acquire_irqsave(th, site="__remove_mapping+0x5c/0x2a0")
        # folio_ref_freeze(folio, 1 + nr): the cache's reference and the caller's, nobody else's.
        if page._refcount != 2 or page.flags & _DIRTY:
            await mapping.xa_lock.release_irqrestore(th)
            return False
        __filemap_remove_folio(k, th, mapping, page)
        page._refcount = 1  # the cache's reference is gone; the caller's stays
        await mapping.xa_lock.release_irqrestore(th)
        return True
    finally:
        if own_lock:
            folio_unlock(wt, page)


async def mapping_evict_folio(th: "Thread", mapping: AddressSpace, page: Page) -> bool:
    """``mapping_evict_folio`` (mm/truncate.c): drop one clean, unused page of a mapping; True if freed."""
    k = th.machine
    wt = k.pagecache.waits
    if not folio_trylock(wt, page, th):
        return False
    _get(page)
    ok = await remove_mapping(th, mapping, page)
    folio_unlock(wt, page)
    await folio_put(th, page)
    return ok


async def invalidate_mapping_pages(th: "Thread", mapping: AddressSpace, start: int = 0, end: int = LONG_MAX) -> int:
    """``invalidate_mapping_pages``: evict the clean, unlocked, unmapped pages of a range; how many went."""
    await lru_add_drain(th)
    n = 0
    for idx in sorted(i for i in mapping.i_pages if start <= i <= end):
        page = mapping.i_pages.get(idx)
        if page is None or page.flags & (_LOCKED | _DIRTY | _WRITEBACK) or page._mapcount >= 0:
            continue
        if await mapping_evict_folio(th, mapping, page):
            n += 1
    return n


async def drop_pagecache(th: "Thread") -> int:
    """``drop_pagecache_sb`` for every mapping (``echo 1 > /proc/sys/vm/drop_caches``)."""
    k = th.machine
    n = 0
    for m in k.pagecache.mappings():
        n += await invalidate_mapping_pages(th, m)
    k.vmstat["drop_pagecache"] += 1
    return n


# --- reading ---------------------------------------------------------------------------------

def _end_bio_read(bio: Bio) -> None:
    """``mpage_read_end_io`` → ``folio_end_read``: uptodate on success, unlocked either way.

    A page read from the disk must hold the token last written at its file
    offset (the mapping's shadow): anything else is lost data.
    """
    wt: PageWaitTable = bio.private
    ok = bio.status == 0
    for page, sector in bio.vecs:
        if ok:
            want = page.mapping.shadow.get(page.index)
            if want != page.token:
                raise ModelBug(f"ino {page.mapping.host.i_ino} page {page.index} read from sector {sector} holds "
                               f"{page.token!r}, but {want!r} was written there last: data lost")
            page.flags |= _UPTODATE
        folio_unlock(wt, page)


async def _read_pages(th: "Thread", mapping: AddressSpace, pages: list[Page], flags: int) -> None:
    """``read_pages`` with ``mpage_readahead``: one bio per run of contiguous sectors, submitted async.

    The pages are locked (by the I/O from now on); the allocation references
    the caller held are dropped once the I/O is submitted.
    """
    if not pages:
        return
    k = th.machine
    wt = k.pagecache.waits
    inode = mapping.host
    fs = inode.i_sb.fs
    bio: Bio | None = None
    nxt = -1
    for page in pages:
        wt.owner.pop(page, None)  # the lock now belongs to the I/O
        sector = fs.bmap(inode.disk, page.index)
        if sector is None:  # beyond the allocated blocks: zeros, no I/O
            page.token = 0
            page.flags |= _UPTODATE
            folio_unlock(wt, page)
            continue
        if bio is not None and (sector != nxt or len(bio.vecs) >= BIO_MAX_PAGES):
            await submit_bio(th, bio)
            bio = None
        if bio is None:
            bio = Bio(fs.disk, REQ_OP_READ, sector, 0, [], end_io=_end_bio_read, flags=flags, private=wt)
        bio.vecs.append((page, sector))
        bio.nr_sectors += SECTORS_PER_BLOCK
        nxt = sector + SECTORS_PER_BLOCK
    if bio is not None:
        await submit_bio(th, bio)
    for page in pages:
        page._refcount -= 1  # readahead_folio(): the allocation reference


async def page_cache_ra_unbounded(th: "Thread", file: File, index: int, nr_to_read: int, lookahead: int) -> None:
    """``page_cache_ra_unbounded``: allocate, insert and read the missing pages of a window.

    The page ``lookahead`` pages before the window's end gets PG_readahead.
    An existing page ends the current batch (which is read) and is skipped.
    """
    mapping = file.f_mapping
    k = th.machine
    wt = k.pagecache.waits
    gfp = mapping.gfp_mask | __GFP_NORETRY | __GFP_NOWARN  # readahead_gfp_mask
    mark = nr_to_read - lookahead
    batch: list[Page] = []
    for i in range(nr_to_read):
        idx = index + i
        th.charge(k.costs.pagecache_lookup)
        if idx in mapping.i_pages:
            await _read_pages(th, mapping, batch, REQ_RAHEAD)
            batch = []
            continue
        page = await alloc_pages(th, gfp, 0)
        if page is None:
            break
        folio_trylock(wt, page, th)
        if i == mark:
            page.flags |= _READAHEAD
        if await filemap_add_folio(th, mapping, page, idx):
            folio_unlock(wt, page)
            page.flags &= ~_READAHEAD
            await folio_put(th, page)
            await _read_pages(th, mapping, batch, REQ_RAHEAD)
            batch = []
            continue
        batch.append(page)
    await _read_pages(th, mapping, batch, REQ_RAHEAD)


async def do_page_cache_ra(th: "Thread", file: File, index: int, nr_to_read: int, lookahead: int) -> None:
    """``do_page_cache_ra``: clip the window to the end of the file, then read it."""
    isize = file.f_inode.i_size
    if not isize:
        return
    end_index = (isize - 1) >> PAGE_SHIFT
    if index > end_index:
        return
    nr_to_read = min(nr_to_read, end_index - index + 1)
    await page_cache_ra_unbounded(th, file, index, nr_to_read, lookahead)


def get_init_ra_size(size: int, max_pages: int) -> int:
    """``get_init_ra_size``: the first window: ×4 of a small request, ×2 of a medium one, else max."""
    newsize = 1 << (max(size, 1) - 1).bit_length()
    if newsize <= max_pages // 32:
        return newsize * 4
    if newsize <= max_pages // 4:
        return newsize * 2
    return max_pages


def get_next_ra_size(cur: int, max_pages: int) -> int:
    """``get_next_ra_size``: ramp the window ×4 while small, ×2 up to half, then max."""
    if cur < max_pages // 16:
        return 4 * cur
    if cur <= max_pages // 2:
        return 2 * cur
    return max_pages


def _max_pages(file: File, req_count: int) -> int:
    """``ractl_max_pages``: ra_pages, or a larger request up to the device's io_pages (BIO_MAX_PAGES here)."""
    m = file.f_ra.ra_pages
    if req_count > m:
        m = min(req_count, BIO_MAX_PAGES)
    return m


def page_cache_prev_miss(mapping: AddressSpace, index: int, max_scan: int) -> int:
    """``page_cache_prev_miss``: the first missing index going down from ``index`` (-1 if all down to 0 are there)."""
    pages = mapping.i_pages
    for i in range(max_scan):
        idx = index - i
        if idx < 0:
            return -1
        if idx not in pages:
            return idx
    return index - max_scan


def page_cache_next_miss(mapping: AddressSpace, index: int, max_scan: int) -> int:
    """``page_cache_next_miss``: the first missing index going up from ``index``."""
    pages = mapping.i_pages
    for i in range(max_scan):
        if index + i not in pages:
            return index + i
    return index + max_scan


async def page_cache_sync_readahead(th: "Thread", file: File, index: int, req_count: int) -> None:
    """``page_cache_sync_ra``: a cache miss at ``index`` for ``req_count`` pages."""
    ra = file.f_ra
    if not ra.ra_pages:
        await do_page_cache_ra(th, file, index, 1, 0)  # force_page_cache_ra of one page
        return
    max_pages = _max_pages(file, req_count)
    prev_index = ra.prev_pos >> PAGE_SHIFT if ra.prev_pos >= 0 else None
    if not index or req_count > max_pages or (prev_index is not None and 0 <= index - prev_index <= 1):
        ra.start = index
        ra.size = get_init_ra_size(req_count, max_pages)
        ra.async_size = ra.size - req_count if ra.size > req_count else ra.size >> 1
    else:
        miss = page_cache_prev_miss(file.f_mapping, index - 1, max_pages)
        contig = index - miss - 1
        if contig <= req_count:  # a small random read: read it as is, leave the state alone
            await do_page_cache_ra(th, file, index, req_count, 0)
            return
        if miss == -1:  # cached from the start: a long-running stream
            contig *= 2
        ra.start = index
        ra.size = min(contig + req_count, max_pages)
        ra.async_size = 1
    await do_page_cache_ra(th, file, ra.start, ra.size, ra.async_size)


async def page_cache_async_readahead(th: "Thread", file: File, page: Page, req_count: int) -> None:
    """``page_cache_async_ra``: the reader reached the PG_readahead page: read the next window."""
    ra = file.f_ra
    if not ra.ra_pages or page.flags & _WRITEBACK:
        return
    page.flags &= ~_READAHEAD
    max_pages = _max_pages(file, req_count)
    index = page.index
    if index == ra.start + ra.size - ra.async_size:
        ra.start += ra.size
        ra.size = max(ra.size, get_next_ra_size(ra.size, max_pages))
        ra.async_size = ra.size
    else:
        start = page_cache_next_miss(file.f_mapping, index + 1, max_pages)
        if not start or start - index > max_pages:
            return
        ra.start = start
        ra.size = get_next_ra_size(start - index + req_count, max_pages)
        ra.async_size = ra.size
    await do_page_cache_ra(th, file, ra.start, ra.size, ra.async_size)


def filemap_get_read_batch(th: "Thread", mapping: AddressSpace, index: int, last: int) -> list[Page]:
    """``filemap_get_read_batch``: referenced pages from ``index`` on, stopping after a gap, a page not
    uptodate, or a PG_readahead page (which is included)."""
    pages = mapping.i_pages
    out: list[Page] = []
    lookup = th.machine.costs.pagecache_lookup
    idx = index
    while idx <= last:
        page = pages.get(idx)
        th.pending += lookup
        if page is None:
            break
        page._refcount += 1
        out.append(page)
        if not page.flags & _UPTODATE or page.flags & _READAHEAD:
            break
        idx += 1
    return out


async def filemap_read_folio(th: "Thread", mapping: AddressSpace, page: Page) -> int:
    """``filemap_read_folio``: read one locked page and wait; 0, or -EIO when it is not uptodate after.

    The page is unlocked when the I/O completes (as on return).
    """
    k = th.machine
    inode = mapping.host
    fs = inode.i_sb.fs
    sector = fs.bmap(inode.disk, page.index) if fs is not None else None
    if sector is None:
        page.token = 0
        page.flags |= _UPTODATE
        folio_unlock(k.pagecache.waits, page)
        return 0
    k.pagecache.waits.owner.pop(page, None)
    bio = Bio(fs.disk, REQ_OP_READ, sector, SECTORS_PER_BLOCK, [(page, sector)], end_io=_end_bio_read,
              private=k.pagecache.waits)
    await submit_bio(th, bio)
    await folio_wait_locked(th, page)
    return 0 if page.flags & _UPTODATE else -EIO


async def filemap_update_page(th: "Thread", file: File, page: Page) -> int:
    """``filemap_update_page``: a page that is not uptodate: wait for its I/O, or read it ourselves.

    0 (uptodate), AOP_TRUNCATED_PAGE (look it up again) or -EIO.
    """
    k = th.machine
    wt = k.pagecache.waits
    if not folio_trylock(wt, page, th):
        await folio_wait_locked(th, page)
        return AOP_TRUNCATED_PAGE
    if page.mapping is not file.f_mapping:
        folio_unlock(wt, page)
        return AOP_TRUNCATED_PAGE
    if page.flags & _UPTODATE:
        folio_unlock(wt, page)
        return 0
    return await filemap_read_folio(th, file.f_mapping, page)


async def filemap_create_folio(th: "Thread", file: File, index: int) -> tuple[Page | None, int]:
    """``filemap_create_folio``: allocate, insert and read one page; (page with a reference, 0) or (None, err)."""
    mapping = file.f_mapping
    k = th.machine
    wt = k.pagecache.waits
    page = await alloc_pages(th, mapping.gfp_mask, 0)
    if page is None:
        return None, -ENOMEM
    folio_trylock(wt, page, th)
    err = await filemap_add_folio(th, mapping, page, index)
    if err:
        folio_unlock(wt, page)
        await folio_put(th, page)
        return None, err
    err = await filemap_read_folio(th, mapping, page)
    if err:
        await folio_put(th, page)
        return None, err
    return page, 0


async def filemap_get_pages(th: "Thread", file: File, pos: int, end: int) -> tuple[list[Page], int]:
    """``filemap_get_pages``: referenced, uptodate pages covering ``pos`` (and maybe more), or an error."""
    mapping = file.f_mapping
    index = pos >> PAGE_SHIFT
    last = (end - 1) >> PAGE_SHIFT
    while True:
        batch = filemap_get_read_batch(th, mapping, index, last)
        if not batch:
            await page_cache_sync_readahead(th, file, index, last - index + 1)
            batch = filemap_get_read_batch(th, mapping, index, last)
        if not batch:
            page, err = await filemap_create_folio(th, file, index)
            if err == -EEXIST:
                continue
            if err:
                return [], err
            assert page is not None
            return [page], 0
        page = batch[-1]
        if page.flags & _READAHEAD:
            await page_cache_async_readahead(th, file, page, last + 1 - page.index)
        if not page.flags & _UPTODATE:
            err = await filemap_update_page(th, file, page)
            if err:
                batch.pop()
                await folio_put(th, page)
                if batch:
                    return batch, 0
                if err == AOP_TRUNCATED_PAGE:
                    continue
                return [], err
        return batch, 0


async def filemap_read(th: "Thread", file: File, pos: int, count: int, out: list | None = None) -> int:
    """``filemap_read``: copy ``count`` bytes from ``pos`` through the page cache; bytes read or -errno.

    Stops at ``i_size`` (0 at or past the end). ``out`` collects
    ``(index, token)`` of every page copied from, for content checks.
    """
    if pos < 0 or count < 0:
        return -EINVAL
    inode = file.f_inode
    k = th.machine
    isize = inode.i_size
    if pos >= isize or not count:
        return 0
    end = min(pos + count, isize)
    ra = file.f_ra
    copied = 0
    err = 0
    costs = k.costs
    expected = inode.expected
    last_pos = ra.prev_pos
    while pos < end:
        batch, err = await filemap_get_pages(th, file, pos, end)
        if err:
            break
        # When a read accesses the same page several times, only the first marks it accessed.
        if last_pos < 1 or (pos >> PAGE_SHIFT) != ((last_pos - 1) >> PAGE_SHIFT):
            await folio_mark_accessed(th, batch[0])
        for i, page in enumerate(batch):
            start = page.index << PAGE_SHIFT
            if start >= end or pos < start:
                break
            if i:
                await folio_mark_accessed(th, page)
            n = min(PAGE_SIZE - (pos - start), end - pos)
            want = expected.get(page.index)
            if want is not None and want != page.token:
                raise ModelBug(f"ino {inode.i_ino} page {page.index}: read {page.token!r}, last written {want!r}")
            if out is not None:
                out.append((page.index, page.token))
            th.pending += costs.copy_user_page * n // PAGE_SIZE
            pos += n
            copied += n
            last_pos = pos
        for page in batch:
            await folio_put(th, page)
    ra.prev_pos = last_pos
    await th.sync()
    return copied if copied or not err else err


# --- writing ---------------------------------------------------------------------------------

async def write_begin(th: "Thread", file: File, pos: int, n: int) -> tuple[Page | None, int]:
    """``write_begin`` (``__filemap_get_folio(FGP_WRITEBEGIN)`` + ``block_write_begin``): the locked page for a write.

    Reads the page first when the write covers only part of a page that
    holds data; allocates the disk blocks the write needs (-ENOSPC).
    """
    k = th.machine
    wt = k.pagecache.waits
    mapping = file.f_mapping
    inode = file.f_inode
    index = pos >> PAGE_SHIFT
    while True:
        th.pending += k.costs.pagecache_lookup
        page = mapping.i_pages.get(index)
        if page is not None:
            _get(page)
            await folio_lock(th, page)
            if page.mapping is not mapping:
                folio_unlock(wt, page)
                await folio_put(th, page)
                continue
        else:
            page = await alloc_pages(th, mapping.gfp_mask | __GFP_WRITE, 0)
            if page is None:
                return None, -ENOMEM
            folio_trylock(wt, page, th)
            if await filemap_add_folio(th, mapping, page, index):
                folio_unlock(wt, page)
                await folio_put(th, page)
                continue
        break
    end = pos + n
    disk = inode.disk
    if disk.nr_blocks * PAGE_SIZE < end:
        err = inode.i_sb.fs.extend(disk, max(end, disk.size))
        if err:
            folio_unlock(wt, page)
            await folio_put(th, page)
            return None, err
    if not page.flags & _UPTODATE:
        start = index << PAGE_SHIFT
        if n != PAGE_SIZE and start < inode.i_size:
            err = await filemap_read_folio(th, mapping, page)  # unlocks at completion
            await folio_lock(th, page)
            if err or page.mapping is not mapping:
                folio_unlock(wt, page)
                await folio_put(th, page)
                return None, err or -EIO
        else:
            page.token = 0  # zero the parts the write does not cover (folio_zero_new_buffers)
    return page, 0


async def write_end(th: "Thread", file: File, pos: int, n: int, page: Page) -> None:
    """``generic_write_end``: uptodate, dirty, extend i_size, unlock and release the page."""
    k = th.machine
    inode = file.f_inode
    page.flags |= _UPTODATE
    await folio_mark_dirty(th, page)
    if pos + n > inode.i_size:
        inode.i_size = pos + n
        inode.disk.size = max(inode.disk.size, inode.i_size)
    folio_unlock(k.pagecache.waits, page)
    await folio_put(th, page)


async def generic_perform_write(th: "Thread", file: File, pos: int, count: int, token: Any) -> int:
    """``generic_perform_write``: page by page, write_begin, copy, write_end, balance_dirty_pages_ratelimited."""
    k = th.machine
    mapping = file.f_mapping
    inode = file.f_inode
    written = 0
    costs = k.costs
    while count > 0:
        offset = pos & (PAGE_SIZE - 1)
        n = min(PAGE_SIZE - offset, count)
        page, err = await write_begin(th, file, pos, n)
        if err:
            return written if written else err
        assert page is not None
        page.token = token  # copy_page_from_iter_atomic
        inode.expected[page.index] = token
        th.pending += costs.copy_user_page * n // PAGE_SIZE
        await write_end(th, file, pos, n, page)
        pos += n
        count -= n
        written += n
        await balance_dirty_pages_ratelimited(th, mapping)
    return written


async def vfs_write(th: "Thread", file: File, pos: int, count: int, token: Any = None) -> int:
    """``pwrite``: a buffered write of ``count`` bytes at ``pos`` under ``i_rwsem``; bytes written or -errno.

    Every page written takes ``token`` (a new one from the page cache's
    counter when None) as its content.
    """
    if pos < 0 or count < 0:
        return -EINVAL
    if not count:
        return 0
    k = th.machine
    if token is None:
        token = k.pagecache.new_token()
    th.charge(k.costs.syscall_entry)
    inode = file.f_inode
    await inode.i_rwsem.down_write(th, site="ext2_file_write_iter+0x2c/0x90")
    try:
        ret = await generic_perform_write(th, file, pos, count, token)
    finally:
        await inode.i_rwsem.up_write(th)
    return ret


async def vfs_read(th: "Thread", file: File, pos: int, count: int, out: list | None = None) -> int:
    """``pread``: a buffered read; bytes read, 0 at or past the end of file, or -errno."""
    th.charge(th.machine.costs.syscall_entry)
    return await filemap_read(th, file, pos, count, out)


async def vfs_fsync(th: "Thread", file: File) -> int:
    """``vfs_fsync`` → ``file_write_and_wait_range``: write and wait; a writeback error once per file."""
    th.charge(th.machine.costs.syscall_entry)
    mapping = file.f_mapping
    ret = await filemap_write_and_wait_range(th, mapping, 0, LONG_MAX)
    err = file_check_and_advance_wb_err(file)
    return ret if ret else err


async def ksys_sync(th: "Thread") -> int:
    """``ksys_sync``: wake the flushers, then write and wait for every dirty inode (WB_SYNC_ALL)."""
    k = th.machine
    th.charge(k.costs.syscall_entry)
    wakeup_flusher_threads(k, WB_REASON_SYNC)
    await sync_inodes(th)
    return 0


# --- page faults on file mappings ---------------------------------------------------------------

@dataclass(eq=False)
class VmFault:
    """``struct vm_fault`` as far as the file fault handlers use it (a caller may pass its own object)."""

    vma: Any
    pgoff: int
    address: int = 0
    flags: int = 0
    page: Page | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def do_sync_mmap_readahead(th: "Thread", file: File, index: int) -> None:
    """``do_sync_mmap_readahead``: read ``ra_pages`` around the faulting page (``VM_READAHEAD`` default)."""
    ra = file.f_ra
    if not ra.ra_pages:
        return
    ra.start = max(0, index - ra.ra_pages // 2)
    ra.size = ra.ra_pages
    ra.async_size = ra.ra_pages // 4
    await do_page_cache_ra(th, file, ra.start, ra.size, ra.async_size)


async def filemap_fault(th: "Thread", vmf: Any) -> int:
    """``filemap_fault``: the page at ``vmf.pgoff`` of ``vmf.vma.vm_file``, uptodate and referenced, in ``vmf.page``.

    Returns 0 (| ``VM_FAULT_MAJOR`` when it had to be read: ``pgmajfault``),
    ``VM_FAULT_SIGBUS`` beyond the end of the file or on a read error,
    ``VM_FAULT_OOM`` when no page could be allocated. The page is locked
    while it is found and checked, and returned *unlocked* without
    ``VM_FAULT_LOCKED`` (allowed by ``__do_fault``), because the fault path
    of mm/memory.py does not unlock what ``->fault`` returns.
    """
    file: File = vmf.vma.vm_file
    mapping = file.f_mapping
    inode = file.f_inode
    k = th.machine
    wt = k.pagecache.waits
    index = vmf.pgoff
    if index >= -(-inode.i_size // PAGE_SIZE):
        return VM_FAULT_SIGBUS
    tr = k.tracer
    if tr.on[fm_events.mm_filemap_fault.id]:
        tr.emit(fm_events.mm_filemap_fault, th, i_ino=inode.i_ino, s_dev=inode.i_sb.s_dev, index=index)
    ret = 0
    th.pending += k.costs.pagecache_lookup
    page = mapping.i_pages.get(index)
    if page is not None:
        _get(page)
        if page.flags & _READAHEAD:
            await page_cache_async_readahead(th, file, page, 1)
    else:
        k.vmstat["pgmajfault"] += 1
        ret = VM_FAULT_MAJOR
        await do_sync_mmap_readahead(th, file, index)
    while True:
        if page is None:
            page = mapping.i_pages.get(index)
            if page is not None:
                _get(page)
            else:
                page = await alloc_pages(th, mapping.gfp_mask, 0)
                if page is None:
                    return VM_FAULT_OOM
                folio_trylock(wt, page, th)
                if await filemap_add_folio(th, mapping, page, index):
                    folio_unlock(wt, page)
                    await folio_put(th, page)
                    page = None
                    continue
                folio_unlock(wt, page)
        await folio_lock(th, page)
        if page.mapping is not mapping:
            folio_unlock(wt, page)
            await folio_put(th, page)
            page = None
            continue
        if not page.flags & _UPTODATE:
            err = await filemap_read_folio(th, mapping, page)  # unlocked when the read completes
            if err:
                await folio_put(th, page)
                return VM_FAULT_SIGBUS
            continue
        break
    folio_unlock(wt, page)
    if index >= -(-inode.i_size // PAGE_SIZE):
        await folio_put(th, page)
        return VM_FAULT_SIGBUS
    vmf.page = page
    return ret


async def filemap_page_mkwrite(th: "Thread", vmf: Any) -> int:
    """``filemap_page_mkwrite``: the first write through a shared mapping: lock the page, mark it dirty.

    Returns 0 with the page unlocked (the kernel's returns ``VM_FAULT_LOCKED``
    and ``fault_dirty_shared_page`` unlocks; mm/memory.py's does not), or
    ``VM_FAULT_NOPAGE`` if the page left the mapping meanwhile. From now on
    the page's content comes from stores through the mapping.
    """
    k = th.machine
    page: Page = vmf.page
    file: File = vmf.vma.vm_file
    mapping = file.f_mapping
    th.charge(k.costs.syscall_entry)  # sb_start_pagefault + file_update_time
    await folio_lock(th, page)
    if page.mapping is not mapping:
        folio_unlock(k.pagecache.waits, page)
        return VM_FAULT_NOPAGE
    await folio_mark_dirty(th, page)
    folio_unlock(k.pagecache.waits, page)
    return 0


async def fault_dirty_shared_page(th: "Thread", page: Page, locked: bool = False) -> None:
    """``fault_dirty_shared_page``: after a shared write fault, mark dirty, unlock (if ``locked``), throttle."""
    k = th.machine
    await folio_mark_dirty(th, page)
    mapping = page.mapping
    if locked:
        folio_unlock(k.pagecache.waits, page)
    if isinstance(mapping, AddressSpace):
        await balance_dirty_pages_ratelimited(th, mapping)


class VmOperations:
    """``struct vm_operations_struct`` of a file mapping."""

    def __init__(self, name: str, fault: Any, page_mkwrite: Any, map_pages: Any = None) -> None:
        self.name = name
        self.fault = fault
        self.page_mkwrite = page_mkwrite
        self.map_pages = map_pages

    def __repr__(self) -> str:
        return f"<vm_operations_struct {self.name}>"


generic_file_vm_ops = VmOperations("generic_file_vm_ops", filemap_fault, filemap_page_mkwrite)


# --- boot and invariants -------------------------------------------------------------------------

def new_mapping(kernel: Any, host: Inode, blockdev: bool = False, a_ops: Any = None) -> AddressSpace:
    """An inode's ``i_data``, registered with the page cache."""
    m = AddressSpace(kernel, host, a_ops if a_ops is not None else file_aops,
                     GFP_HIGHUSER_MOVABLE, VM_READAHEAD_PAGES, blockdev=blockdev)
    host.i_mapping = m
    host.expected = m.shadow
    kernel.pagecache.register(m)
    return m


def check_page_cache(kernel: Any, full: bool = False) -> str | None:
    """Invariant: page counts agree with NR_FILE_PAGES; every cached page is consistent with its mapping.

    The walk of every page is amortised: it runs when the number of checks
    since the last walk reaches a 16th of the cached pages (or ``full``).
    """
    pc: PageCache = kernel.pagecache
    pa = kernel.page_alloc
    file_pages = sum(p.vm_stat[NR_FILE_PAGES] for p in pa.nodes)
    others = sum(p.vm_stat[NR_SHMEM] for p in pa.nodes) + int(pa.meminfo_sources.get("total_swapcache_pages"))
    if file_pages != pc.nr_pages + others:
        return f"NR_FILE_PAGES {file_pages} but the mappings hold {pc.nr_pages} (+ {others} shmem/swap cache)"
    pc.since_sweep += 1
    if not full and pc.since_sweep < max(64, pc.nr_pages // 16):
        return None
    pc.since_sweep = 0
    mem = pa.mem_map.pages
    total = 0
    for m in pc.mappings():
        if len(m.i_pages) != m.nrpages:
            return f"{m!r}: nrpages {m.nrpages} but {len(m.i_pages)} pages in i_pages"
        total += m.nrpages
        for idx, page in m.i_pages.items():
            if page.mapping is not m or page.index != idx:
                return f"{m!r}: page pfn 0x{page.pfn:x} at index {idx} says mapping {page.mapping!r} index {page.index}"
            if mem.get(page.pfn) is not page:
                return f"{m!r}: page pfn 0x{page.pfn:x} at index {idx} has been freed"
            if page._refcount < 1:
                return f"{m!r}: page pfn 0x{page.pfn:x} at index {idx} has refcount {page._refcount}"
            if bool(page.flags & _DIRTY) != (idx in m.dirty):
                return f"{m!r}: page {idx} PG_dirty and the dirty tag disagree"
            if bool(page.flags & _WRITEBACK) != (idx in m.writeback):
                return f"{m!r}: page {idx} PG_writeback and the writeback tag disagree"
        for idx in m.dirty:
            if idx not in m.i_pages:
                return f"{m!r}: index {idx} tagged dirty but not cached"
    if total != pc.nr_pages:
        return f"the mappings hold {total} pages but the page cache counts {pc.nr_pages}"
    return None


def filemap_init(kernel: Any) -> None:
    """Boot the file side of the memory model: disks, page cache, writeback, buffers, dcache and icache."""
    from .block import block_init, check_block_layer
    from .buffer import buffer_init
    from .dcache import dcache_init
    from .page_writeback import check_writeback_counts, page_writeback_init, writeback_start

    after = kernel.locks.lockdep.after
    for outer, inner in FILE_LOCK_ORDER:
        after.setdefault((outer, 0), {}).setdefault((inner, 0), (outer,))
    kernel.block = block_init(kernel)
    kernel.pagecache = PageCache(kernel)
    page_writeback_init(kernel)
    buffer_init(kernel)
    dcache_init(kernel)
    writeback_start(kernel)
    kernel.add_check("block_layer", lambda: check_block_layer(kernel.block))
    kernel.add_check("writeback_counts", lambda: check_writeback_counts(kernel))
    kernel.add_check("page_cache", lambda: check_page_cache(kernel))


__all__ = [
    "AOP_TRUNCATED_PAGE", "AddressSpaceOperations", "PageCache", "VM_FAULT_LOCKED", "VM_FAULT_MAJOR",
    "VM_FAULT_NOPAGE", "VM_FAULT_OOM", "VM_FAULT_SIGBUS", "VmFault", "VmOperations", "check_page_cache",
    "drop_pagecache", "fault_dirty_shared_page", "filemap_add_folio", "filemap_fault", "filemap_init",
    "filemap_page_mkwrite", "filemap_read", "folio_put", "generic_file_vm_ops", "generic_perform_write",
    "invalidate_mapping_pages", "ksys_sync", "mapping_evict_folio", "remove_mapping", "vfs_fsync", "vfs_read",
    "vfs_write",
]
