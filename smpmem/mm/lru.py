"""LRU lists: models ``struct lruvec`` (include/linux/mmzone.h), include/linux/mm_inline.h and the LRU half of mm/swap.c.

Modelled: one lruvec per node (memcg disabled) with the five lists
(inactive/active anon/file, unevictable) under ``lruvec->lru_lock``; per-CPU
``folio_batch`` batching of additions (``folio_add_lru`` puts the page in
this CPU's batch of ``PAGEVEC_SIZE`` = 31 and moves the whole batch under one
``lru_lock`` acquisition when it is full); ``lru_add_drain``;
``folio_mark_accessed`` (referenced → active) through ``folio_activate``
and the per-CPU activate batch (moved under ``lru_lock`` when full or at
``lru_add_drain``, the page keeping its place with PG_lru clear meanwhile);
the ``nr_{zone_,}{in,}active_{anon,file}`` counters. Deactivation is
reclaim's (``shrink_active_list`` in vmscan.py). Simplified: no memcg, no
MGLRU, no mlock; no ``folio_deactivate`` / ``deactivate_file_folio`` /
``lru_move_tail`` batches (the MADV_COLD, invalidation and rotation paths
move a page at once).

A list is an ``OrderedDict`` of pages: the *head* (where the kernel's
``list_add`` puts new pages) is the dict's end, the *tail* (where reclaim
isolates from, ``lru_to_folio``) is its start. ``page.lru`` holds the list
index while the page is on an LRU (and ``PG_lru`` is set).

Lock order: ``lruvec->lru_lock`` is taken inside ``mmap_lock``, ``i_pages``
and the page table locks, never the other way round (mm/rmap.c's tree).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Iterable

from ..sim import SpinLock
from .page import PG_active, PG_lru, PG_referenced, PG_swapbacked, PG_unevictable, Page
from .zone import (
    NR_LRU_BASE,
    NR_ZONE_LRU_BASE,
    mod_node_page_state,
    mod_zone_page_state,
)

if TYPE_CHECKING:
    from ..sim import Thread

# enum lru_list (include/linux/mmzone.h)
LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE, LRU_UNEVICTABLE = range(5)
NR_LRU_LISTS = 5
LRU_BASE_FILE = LRU_INACTIVE_FILE
LRU_NAMES = ("inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable")
PAGEVEC_SIZE = 31  # include/linux/pagevec.h


def folio_is_file_lru(page: Page) -> bool:
    """``folio_is_file_lru``: page cache (not swap-backed) pages go on the file lists."""
    return not page.flags & (1 << PG_swapbacked)


def folio_lru_list(page: Page) -> int:
    """``folio_lru_list``: which list a page belongs on, from its flags."""
    if page.flags & (1 << PG_unevictable):
        return LRU_UNEVICTABLE
    lru = LRU_INACTIVE_FILE if folio_is_file_lru(page) else LRU_INACTIVE_ANON
    if page.flags & (1 << PG_active):
        lru += 1  # LRU_ACTIVE
    return lru


class LruVec:
    """``struct lruvec`` of one node: the lists and the lock protecting them.

    ``lists[lru]`` is protected by ``lru_lock``; the counters are the node's
    and the zones' ``vm_stat`` entries, updated under the same lock.
    """

    def __init__(self, kernel: object, pgdat: object) -> None:
        self.kernel = kernel
        self.pgdat = pgdat
        self.lists: list[OrderedDict[Page, None]] = [OrderedDict() for _ in range(NR_LRU_LISTS)]
        self.lru_lock = SpinLock(kernel, "&lruvec->lru_lock")  # type: ignore[arg-type]
        # Reclaim's state (mm/vmscan.c), under lru_lock: the recent cost of reclaiming
        # each type (lru_note_cost) and the LRUVEC_* congestion flags.
        self.anon_cost = 0
        self.file_cost = 0
        self.flags = 0
        self.nr_pages = [0] * NR_LRU_LISTS  # pages on each list (the invariant check's own count)

    def size(self, lru: int) -> int:
        return len(self.lists[lru])

    # -- include/linux/mm_inline.h: called with lru_lock held ------------------
    def add_folio(self, page: Page) -> None:
        """``lruvec_add_folio``: at the head of its list."""
        lru = folio_lru_list(page)
        self.lists[lru][page] = None
        page.lru = lru
        page.flags |= 1 << PG_lru
        self._account(page, lru, 1)

    def add_folio_tail(self, page: Page) -> None:
        """``lruvec_add_folio_tail``: at the tail (reclaimed first), for rotation."""
        lru = folio_lru_list(page)
        lst = self.lists[lru]
        lst[page] = None
        lst.move_to_end(page, last=False)
        page.lru = lru
        page.flags |= 1 << PG_lru
        self._account(page, lru, 1)

    def del_folio(self, page: Page) -> None:
        """``lruvec_del_folio``: off its list (the caller clears PG_lru when isolating)."""
        lru = page.lru
        del self.lists[lru][page]
        page.lru = None
        self._account(page, lru, -1)

    def _account(self, page: Page, lru: int, sign: int) -> None:
        n = sign << page.order
        self.nr_pages[lru] += n
        mod_node_page_state(page.zone.zone_pgdat, NR_LRU_BASE + lru, n)
        mod_zone_page_state(page.zone, NR_ZONE_LRU_BASE + lru, n)

    def tail(self, lru: int) -> Iterable[Page]:
        """Pages from the tail (oldest) towards the head."""
        return iter(self.lists[lru])


def lruvec_of(page: Page) -> LruVec:
    """``folio_lruvec``: the node's lruvec (no memcg)."""
    return page.zone.zone_pgdat.lruvec


def lru_init(kernel: object) -> None:
    """Give every node its lruvec (called at boot, after the zones exist)."""
    for pgdat in kernel.page_alloc.nodes:  # type: ignore[attr-defined]
        pgdat.lruvec = LruVec(kernel, pgdat)


def _batch(th: "Thread", name: str = "lru_add") -> list[Page]:
    """This CPU's folio batch ``name`` (``cpu_fbatches.lru_add`` or ``.lru_activate``)."""
    b = th.cpu.percpu.get(name)
    if b is None:
        b = th.cpu.percpu[name] = []
    return b


async def folio_add_lru(th: "Thread", page: Page) -> None:
    """``folio_add_lru``: queue a new page for its LRU on this CPU; move the batch when full.

    The page takes a reference while it sits in the batch (``folio_get``),
    dropped when the batch is moved, as mm/swap.c does.
    """
    assert not page.flags & (1 << PG_lru), f"page pfn 0x{page.pfn:x} already on an LRU"
    page._refcount += 1
    b = _batch(th)
    b.append(page)
    th.charge(th.machine.costs.pcp_list_op)
    if len(b) >= PAGEVEC_SIZE or page.order > 0:
        await lru_add_drain(th)


async def lru_add_drain(th: "Thread") -> None:
    """``lru_add_drain`` (``lru_add_drain_cpu``): move this CPU's add and activate batches, one lock round per node."""
    pcpu = th.cpu.percpu
    b = pcpu.get("lru_add")
    if b:
        pages = list(b)
        b.clear()
        await folio_batch_move_lru(th, pages)
    b = pcpu.get("lru_activate")
    if b:
        pages = list(b)
        b.clear()
        await folio_batch_move_lru(th, pages, activate=True)


async def folio_batch_move_lru(th: "Thread", pages: list[Page], activate: bool = False) -> None:
    """``folio_batch_move_lru`` with ``lru_add`` (or ``lru_activate``): each node's lru_lock once, then ``folios_put``.

    Adding puts each page on the list its flags name. Activating moves a page
    that is still inactive (and evictable) to its active list (``pgactivate``,
    ``mm_lru_activate`` in the kernel); either way PG_lru is set again. The
    batch's reference is dropped; a page whose owner let go meanwhile is freed.
    """
    by_node: dict[int, list[Page]] = {}
    for p in pages:
        by_node.setdefault(p.zone.node, []).append(p)
    cost = th.machine.costs.pcp_list_op
    dead: list[Page] = []
    vmstat = th.machine.vmstat  # type: ignore[attr-defined]
    for nid in sorted(by_node):
        lst = by_node[nid]
        lruvec = lst[0].zone.zone_pgdat.lruvec
        await lruvec.lru_lock.acquire_irqsave(th, site="folio_batch_move_lru+0x9c/0x1a0")
        for p in lst:
            p._refcount -= 1  # the batch's reference
            if activate:
                # The page stayed on its list with PG_lru clear: nobody could isolate it.
                if p._refcount <= 0:
                    lruvec.del_folio(p)  # __page_cache_release of the last reference
                    dead.append(p)
                    continue
                if not p.flags & ((1 << PG_active) | (1 << PG_unevictable)):
                    lruvec.del_folio(p)
                    p.flags |= 1 << PG_active
                    lruvec.add_folio(p)
                    vmstat["pgactivate"] += 1
                p.flags |= 1 << PG_lru
                th.charge(cost)
                continue
            if p._refcount <= 0:
                dead.append(p)  # its owner let go while it waited here: folios_put frees it
                continue
            if p.flags & (1 << PG_lru) or p.lru is not None:
                continue  # isolated or already added: nothing to do
            lruvec.add_folio(p)
            th.charge(cost)
        await lruvec.lru_lock.release_irqrestore(th)
    if dead:
        # folios_put(fbatch): the batch held the last reference (the page was unmapped or
        # truncated meanwhile); free_pages_prepare clears an anon page's mapping.
        from .page_alloc import free_unref_folios

        for p in dead:
            p.mapping = None
            p.flags &= ~((1 << PG_unevictable) | (1 << PG_active))
        await free_unref_folios(th.machine.page_alloc, th, dead)  # type: ignore[attr-defined]


async def folio_activate(th: "Thread", page: Page) -> None:
    """``folio_activate``: queue a page on an LRU for the active list (this CPU's activate batch).

    The page keeps its place on the inactive list until the batch moves
    (``PAGEVEC_SIZE`` pages, or ``lru_add_drain``), with a reference and PG_lru
    clear meanwhile, so reclaim passes over it and nobody else isolates it.
    """
    if page.flags & ((1 << PG_active) | (1 << PG_unevictable)) or not page.flags & (1 << PG_lru):
        return
    page._refcount += 1  # folio_get
    page.flags &= ~(1 << PG_lru)  # folio_test_clear_lru
    b = _batch(th, "lru_activate")
    b.append(page)
    th.charge(th.machine.costs.pcp_list_op)
    if len(b) >= PAGEVEC_SIZE:
        pages = list(b)
        b.clear()
        await folio_batch_move_lru(th, pages, activate=True)


async def folio_mark_accessed(th: "Thread", page: Page) -> None:
    """``folio_mark_accessed``: inactive,unreferenced → inactive,referenced → active.

    A page on an LRU is queued for activation (:func:`folio_activate`); a page
    still in this CPU's add batch is just marked active, so that it is added
    to the active list (``__lru_cache_activate_folio``); a page elsewhere
    (isolated by reclaim, in another CPU's batch) is left as it is. PG_workingset
    is not set here: reclaim sets it when it deactivates a page.
    """
    f = page.flags
    if not f & (1 << PG_referenced):
        page.flags = f | (1 << PG_referenced)
        return
    if f & ((1 << PG_active) | (1 << PG_unevictable)):
        return
    if f & (1 << PG_lru):
        await folio_activate(th, page)
    elif page in (th.cpu.percpu.get("lru_add") or ()):
        page.flags |= 1 << PG_active
    page.flags &= ~(1 << PG_referenced)


async def folio_isolate_lru(th: "Thread", page: Page) -> bool:
    """``folio_isolate_lru``: take one page off its LRU (PG_lru cleared, a reference taken)."""
    if not page.flags & (1 << PG_lru):
        return False
    lruvec = lruvec_of(page)
    await lruvec.lru_lock.acquire_irqsave(th, site="folio_isolate_lru+0x5c/0x1a0")
    ok = bool(page.flags & (1 << PG_lru))
    if ok:
        page.flags &= ~(1 << PG_lru)
        page._refcount += 1
        lruvec.del_folio(page)
    await lruvec.lru_lock.release_irqrestore(th)
    return ok


def lru_del_on_free(page: Page) -> None:
    """``__page_cache_release``: a page whose last reference goes is taken off its LRU first."""
    if page.flags & (1 << PG_lru):
        lruvec_of(page).del_folio(page)
        page.flags &= ~((1 << PG_lru) | (1 << PG_active))


LRU_CHECK_EVERY = 256  # full walk of the lists every this many hand-offs (it is O(pages on LRUs))


def check_lru_counts(kernel: object) -> str | None:
    """Invariant: every list's pages add up to its node counter; members carry their index, and PG_lru
    unless they wait in a CPU's activate batch.

    Walking every list at every hand-off would make a run quadratic in the
    size of the page cache, so the walk runs every ``LRU_CHECK_EVERY``-th
    call (and at the end of a run, when the checks run once more).
    """
    n = getattr(kernel, "_lru_check_calls", 0) + 1
    kernel._lru_check_calls = n  # type: ignore[attr-defined]
    if n % LRU_CHECK_EVERY and not getattr(kernel, "lru_check_every_switch", False):
        return None
    for pgdat in kernel.page_alloc.nodes:  # type: ignore[attr-defined]
        lv: LruVec | None = getattr(pgdat, "lruvec", None)
        if lv is None:
            continue
        activating = {id(p) for cpu in kernel.cpus for p in cpu.percpu.get("lru_activate") or ()}  # type: ignore[attr-defined]
        for lru, lst in enumerate(lv.lists):
            pages = 0
            for p in lst:
                if p.lru != lru or not (p.flags & (1 << PG_lru) or id(p) in activating):
                    return f"page pfn 0x{p.pfn:x} is on {LRU_NAMES[lru]} but says lru={p.lru!r}, PG_lru={bool(p.flags & (1 << PG_lru))}"
                pages += 1 << p.order
            if pages != pgdat.vm_stat[NR_LRU_BASE + lru]:
                return f"node {pgdat.node_id} {LRU_NAMES[lru]}: {pages} pages listed, counter {pgdat.vm_stat[NR_LRU_BASE + lru]}"
    return None
