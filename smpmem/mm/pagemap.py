"""The page cache's structures and the page lock: models include/linux/pagemap.h and the folio wait queues of mm/filemap.c.

Modelled: ``struct address_space`` (``i_pages`` from index to page under
``xa_lock`` = the SpinLock class ``&mapping->i_pages``, ``nrpages``, the
``PAGECACHE_TAG_DIRTY`` / ``PAGECACHE_TAG_WRITEBACK`` marks, the ``AS_EIO``
/ ``AS_ENOSPC`` flags and the ``errseq_t`` ``wb_err``, ``writeback_index``,
``a_ops``); the page lock (``PG_locked``) with ``folio_lock``,
``folio_trylock``, ``folio_unlock`` and waits for a page to be unlocked or
to finish writeback on a per-page wait queue (the kernel hashes pages into
``folio_wait_table``; here each page with waiters has its own entry and
``PG_waiters`` says so). ``folio_unlock`` hands the lock to the first
thread waiting to take it (``folio_lock``'s hand-off since 5.9) and wakes
every thread only waiting for the unlock.

Simplified: the xarray is a dict plus sorted index sets for the marks;
lookups are lock-free (RCU in the kernel) and cost ``pagecache_lookup``;
there is no ``PAGECACHE_TAG_TOWRITE`` (data-integrity writeback takes the
dirty pages it sees when it starts, which is what the TOWRITE tag achieves).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedSet

from ..sim import ModelBug, RWSemaphore, SpinLock
from .page import PG_locked, PG_waiters, PG_writeback, Page

if TYPE_CHECKING:
    from ..sim import Thread

# enum mapping_flags (include/linux/pagemap.h)
AS_EIO = 0
AS_ENOSPC = 1

_LOCKED = 1 << PG_locked
_WAITERS = 1 << PG_waiters
_WRITEBACK = 1 << PG_writeback

# What a waiter waits for on a page's queue.
WAIT_LOCK = 0  # folio_lock: take the lock (exclusive, handed over)
WAIT_UNLOCK = 1  # folio_wait_locked: see it unlocked
WAIT_WRITEBACK = 2  # folio_wait_writeback: see PG_writeback clear


class AddressSpace:
    """``struct address_space`` of one inode (a regular file, or a block device for its buffers).

    Locking, as in include/linux/fs.h:

        i_pages, nrpages, dirty, writeback   xa_lock (``&mapping->i_pages``)
        flags, wb_err                        atomic bitops / errseq (anyone)
        writeback_index                      the writeback caller (range_cyclic)

    ``dirty`` and ``writeback`` hold the indices tagged PAGECACHE_TAG_DIRTY
    and PAGECACHE_TAG_WRITEBACK, sorted for ranged walks.
    """

    __slots__ = ("host", "i_pages", "xa_lock", "nrpages", "dirty", "writeback", "flags", "wb_err_seq",
                 "wb_err", "writeback_index", "a_ops", "gfp_mask", "ra_pages", "nr_blockdev", "i_mmap",
                 "i_mmap_rwsem", "shadow", "can_writeback")

    def __init__(self, kernel: Any, host: Any, a_ops: Any, gfp_mask: int, ra_pages: int = 32,
                 blockdev: bool = False) -> None:
        self.host = host  # the inode
        self.i_pages: dict[int, Page] = {}
        self.xa_lock = SpinLock(kernel, "&mapping->i_pages")
        self.nrpages = 0
        self.dirty: SortedSet = SortedSet()
        self.writeback: SortedSet = SortedSet()
        self.flags = 0  # AS_* bits
        self.wb_err_seq = 0  # errseq_t: a counter bumped by each new error ...
        self.wb_err = 0  # ... and the last error (negative errno)
        self.writeback_index = 0  # where range_cyclic writeback resumes
        self.a_ops = a_ops
        self.gfp_mask = gfp_mask
        self.ra_pages = ra_pages  # bdi->ra_pages: VM_READAHEAD_PAGES (128 KiB)
        self.nr_blockdev = blockdev  # a block device's mapping: its pages are Buffers
        self.i_mmap: dict[int, Any] = {}  # the VMAs mapping this file, by vma uid (mm/rmap.py walks it)
        self.i_mmap_rwsem = RWSemaphore(kernel, "&mapping->i_mmap_rwsem")
        self.shadow = ContentShadow()  # index -> the token the page should hold (DESIGN.md §6)
        self.can_writeback = not blockdev  # mapping_can_writeback: shared writable maps want write notify

    def __repr__(self) -> str:
        return f"<address_space of ino {getattr(self.host, 'i_ino', '?')} nrpages={self.nrpages}>"


class _AnyToken:
    """Equal to every token: the expected content of a page nobody has written yet."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "<any>"


ANY_TOKEN = _AnyToken()


class ContentShadow(dict):
    """The checker's view of a file's content: page index → the token last written there.

    Written by write(2) and by stores through shared mappings (the MMU model
    of mm/memory.py looks for a mapping's ``shadow``); a page never written
    is not checked (``get`` gives a token equal to any).
    """

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        v = dict.get(self, key, ANY_TOKEN)
        return v


def mapping_set_error(mapping: AddressSpace, err: int) -> None:
    """``mapping_set_error``: record a writeback error (errseq_set + AS_EIO / AS_ENOSPC)."""
    if not err:
        return
    mapping.wb_err_seq += 1
    mapping.wb_err = err
    mapping.flags |= 1 << (AS_ENOSPC if err == -28 else AS_EIO)


def filemap_check_errors(mapping: AddressSpace) -> int:
    """``filemap_check_errors``: test and clear AS_EIO / AS_ENOSPC (the legacy per-mapping report)."""
    ret = 0
    if mapping.flags & (1 << AS_ENOSPC):
        mapping.flags &= ~(1 << AS_ENOSPC)
        ret = -28
    if mapping.flags & (1 << AS_EIO):
        mapping.flags &= ~(1 << AS_EIO)
        ret = -5
    return ret


class PageWaiters:
    """The waiters of one page (its slot of ``folio_wait_table``): ``(thread, what)`` in arrival order."""

    __slots__ = ("q", "page")

    def __init__(self, page: Page) -> None:
        self.page = page
        self.q: deque[tuple[Any, int]] = deque()

    def remove_waiter(self, actor: Any) -> None:
        for e in self.q:
            if e[0] is actor:
                self.q.remove(e)
                break

    def __repr__(self) -> str:
        return f"<page waitqueue pfn 0x{self.page.pfn:x} ({len(self.q)})>"


class PageWaitTable:
    """``folio_wait_table``: the wait queues of pages that have waiters (``PG_waiters`` set)."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.sim = kernel.sim
        self.table: dict[Page, PageWaiters] = {}
        self.owner: dict[Page, Any] = {}  # page -> thread holding PG_locked (None: an I/O holds it)

    def _queue(self, page: Page) -> PageWaiters:
        w = self.table.get(page)
        if w is None:
            w = self.table[page] = PageWaiters(page)
            page.flags |= _WAITERS
        return w

    async def wait(self, th: "Thread", page: Page, what: int) -> None:
        """Sleep on ``page``'s queue until woken for ``what`` (the caller holds a reference)."""
        w = self._queue(page)
        w.q.append((th, what))
        await th.sleep_on(w)

    def wake(self, page: Page, bit: int) -> None:
        """``folio_wake_bit``: after an unlock (bit PG_locked) or the end of writeback (PG_writeback)."""
        w = self.table.get(page)
        if w is None:
            return
        sim = self.sim
        at = sim.now + self.kernel.costs.sleep_wakeup
        keep: deque[tuple[Any, int]] = deque()
        handed = False
        for th, what in w.q:
            if bit == PG_writeback:
                if what == WAIT_WRITEBACK:
                    sim.wake(th, at)
                else:
                    keep.append((th, what))
            elif what == WAIT_UNLOCK:
                sim.wake(th, at)
            elif what == WAIT_LOCK and not handed and not page.flags & _LOCKED:
                page.flags |= _LOCKED  # hand the lock over (folio_lock's WQ_FLAG_CUSTOM)
                self.owner[page] = th
                handed = True
                sim.wake(th, at)
            else:
                keep.append((th, what))
        w.q = keep
        if not keep:
            del self.table[page]
            page.flags &= ~_WAITERS


def folio_trylock(wt: PageWaitTable, page: Page, th: Any) -> bool:
    """``folio_trylock``: take PG_locked if it is clear."""
    if page.flags & _LOCKED:
        return False
    page.flags |= _LOCKED
    wt.owner[page] = th
    return True


async def folio_lock(th: "Thread", page: Page) -> None:
    """``folio_lock``: take the page lock, sleeping (FIFO, handed over at unlock) while another holds it."""
    wt: PageWaitTable = th.machine.pagecache.waits  # type: ignore[attr-defined]
    if not page.flags & _LOCKED:
        page.flags |= _LOCKED
        wt.owner[page] = th
        return
    await wt.wait(th, page, WAIT_LOCK)
    if wt.owner.get(page) is not th:
        raise ModelBug(f"{th.name} woke from folio_lock of pfn 0x{page.pfn:x} without the lock")


def folio_unlock(wt: PageWaitTable, page: Page) -> None:
    """``folio_unlock``: clear PG_locked and wake (hand over to the first locker, wake the others)."""
    if not page.flags & _LOCKED:
        raise ModelBug(f"folio_unlock of an unlocked page pfn 0x{page.pfn:x}")
    page.flags &= ~_LOCKED
    wt.owner.pop(page, None)
    if page.flags & _WAITERS:
        wt.wake(page, PG_locked)


async def folio_wait_locked(th: "Thread", page: Page) -> None:
    """``folio_wait_locked``: sleep until the page is unlocked (without taking the lock)."""
    wt: PageWaitTable = th.machine.pagecache.waits  # type: ignore[attr-defined]
    while page.flags & _LOCKED:
        await wt.wait(th, page, WAIT_UNLOCK)


def folio_lock_owner(wt: PageWaitTable, page: Page) -> Any:
    """The thread that holds ``page``'s lock (None when an I/O holds it or it is unlocked)."""
    return wt.owner.get(page)


__all__ = [
    "AS_EIO", "AS_ENOSPC", "AddressSpace", "PageWaitTable", "PageWaiters", "WAIT_LOCK", "WAIT_UNLOCK",
    "WAIT_WRITEBACK", "filemap_check_errors", "folio_lock", "folio_lock_owner", "folio_trylock",
    "folio_unlock", "folio_wait_locked", "mapping_set_error",
]
