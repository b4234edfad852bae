"""Swap: models mm/swapfile.c, mm/swap_state.c and mm/page_io.c (Linux 6.12).

Modelled:

- Swap areas (``struct swap_info_struct``) from ``[[machine.swap]]``, each a
  partition (a sector range of a block device) or a swap file (a file of the
  disk's filesystem, its pages mapped to sectors by swap extents):
  :class:`smpmem.mm.block.SwapArea`; enabled at boot
  as by ``swapon`` (header page at offset 0, ``SwapTotal``), with their
  priorities: ``get_swap_pages`` walks the available areas highest priority
  first and round-robins among equal ones (``plist_requeue``), under
  ``swap_avail_lock``; ``sys_swapoff`` (``try_to_unuse``: every swap PTE of
  the area swapped in and mapped again, the swap cache emptied).
- Slot allocation in clusters of SWAPFILE_CLUSTER = 256 slots under
  ``si->lock`` (``cluster_alloc_swap_entry`` for order 0): a per-CPU current
  cluster, then a free cluster, then a partly used one, then any free slot
  (fragmented). ``swap_map[offset]`` holds the PTE references plus
  SWAP_HAS_CACHE; ``swap_duplicate``, ``swap_free``, ``put_swap_folio``,
  ``swapcache_prepare``, ``free_swap_and_cache`` and the slot going back
  (``swap_entry_range_free``: ``nr_swap_pages``) when the last reference goes.
- The swap cache (``swapper_spaces``: one address space per area, offset →
  folio under ``&mapping->i_pages``): ``add_to_swap`` (slot + cache +
  PG_dirty), ``add_to_swap_cache`` / ``__delete_from_swap_cache`` (a
  reference, PG_swapcache, ``folio->swap`` in ``private``, NR_FILE_PAGES and
  NR_SWAPCACHE, ``SwapCached``), ``swap_cache_get_folio``,
  ``folio_free_swap``, and reclaim's ``__remove_mapping`` of a swap cache
  folio. A concurrent fault finds a folio being swapped out in the cache and
  waits for its lock.
- I/O (mm/page_io.c): ``swap_writepage`` (``folio_free_swap`` first, then
  one bio per folio, PG_writeback, NR_WRITEBACK, ``pswpout``;
  ``end_swap_bio_write`` redirties the folio on an I/O error, rotates it to
  the inactive tail when PG_reclaim asks) and ``swap_read_folio`` (``pswpin``;
  on an error the folio is not uptodate and the fault gets SIGBUS). The
  content token travels with the bio: written at submission, read back at
  completion (DESIGN.md §6).
- ``do_swap_page`` (mm/memory.c), the fault path's hook: the swap cache or
  a new folio read in (``__read_swap_cache_async``, a major fault,
  ``pgmajfault``), ``swapin_readahead`` (``swap_ra`` / ``swap_ra_hit``):
  ``swap_vma_readahead`` of the swap PTEs around the fault (the default,
  window per VMA in ``swap_readahead_info``) or ``swap_cluster_readahead``
  of the slots around the entry (``vma_ra_enabled = false``, or a swap area
  on a rotating disk: ``nr_rotate_swap``), both windows sized by
  ``__swapin_nr_pages`` from the readahead hits, up to 2^``page_cluster``;
  the page lock, the PTE
  checked again under its lock, ``swap_free``, ``MM_SWAPENTS`` →
  ``MM_ANONPAGES``, exclusivity (only this PTE referenced the entry) for a
  writable mapping, ``should_try_to_free_swap``, ``do_wp_page`` for a write
  to a shared folio.

Simplified: no zswap, no frontswap, no SSD discard, no large folios (no THP
swap, no mTHP orders), one lock per area (``si->lock``; the kernel also has
a lock per cluster), no swap cgroup accounting, no mempolicy interleave of
readahead pages; a swap file's extents are fixed at boot (the file steps
cannot open it).

Lock order (with :mod:`smpmem.mm.rmap`'s tree): ``ptl`` → ``&p->lock``
(``swap_duplicate`` / ``swap_free`` under the page table lock);
``&mapping->i_pages`` of the swap cache is released before ``&p->lock`` is
taken; ``swap_avail_lock`` is taken alone, except inside ``swap_lock`` in
``swapoff`` (as in the kernel: ``swap_lock`` → ``swap_avail_lock``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..sim import ModelBug, SpinLock, Thread
from ..trace.gfp import MM_ANONPAGES, MM_SWAPENTS
from . import gfp as G
from .block import REQ_OP_READ, REQ_OP_WRITE, SECTORS_PER_BLOCK, Bio, submit_bio
from .page import (
    PAGE_SHIFT,
    PG_anon_exclusive,
    PG_dirty,
    PG_locked,
    PG_readahead,
    PG_reclaim,
    PG_swapbacked,
    PG_swapcache,
    PG_uptodate,
    PG_writeback,
    Page,
)
from .lru import folio_add_lru
from .memory import (FAULT_FLAG_DEFAULT, FAULT_FLAG_WRITE, VM_FAULT_MAJOR, VM_FAULT_OOM, VM_FAULT_SIGBUS, VmFault,
                     _mk_pte, do_wp_page, is_swap_pte, live_mms, pte_alloc, pte_to_swp_entry, put_page, set_pte)
from .mmap import VM_LOCKED, VM_WRITE, add_mm_counter, find_vma
from .page_alloc import alloc_pages, free_pages_
from .page_writeback import Pageout, folio_rotate_reclaimable, folio_wait_writeback
from .pagemap import folio_lock, folio_trylock, folio_unlock
from .rmap import _mod_mapped, linear_page_index
from .vmscan import acct_reclaim_writeback
from .zone import NR_ANON_MAPPED, NR_FILE_PAGES, NR_FREE_PAGES, NR_SWAPCACHE, NR_WRITEBACK, NR_WRITTEN, NR_ZONE_WRITE_PENDING

SWP_TYPE_SHIFT = 50  # swp_entry(type, offset): the type above the offset (x86 packs 5 type bits)
SWP_OFFSET_MASK = (1 << SWP_TYPE_SHIFT) - 1
MAX_SWAPFILES = 32
SWAP_HAS_CACHE = 0x40  # swap_map: a folio is in the swap cache for this slot
SWAP_MAP_MAX = 0x3E  # references a slot can count without continuation pages
SWAP_MAP_BAD = 0x3F  # a slot that cannot be used (beyond the end of the area)
SWAPFILE_CLUSTER = 256
# swap_info_struct.flags
SWP_USED = 1 << 0
SWP_WRITEOK = 1 << 1
# cluster states (swap_cluster_info.flags)
CLUSTER_FLAG_FREE, CLUSTER_FLAG_NONFULL, CLUSTER_FLAG_FRAG, CLUSTER_FLAG_FULL = 1, 2, 4, 8

_LOCKED = 1 << PG_locked
_DIRTY = 1 << PG_dirty
_WRITEBACK = 1 << PG_writeback
_SWAPCACHE = 1 << PG_swapcache
_RECLAIM = 1 << PG_reclaim
_UPTODATE = 1 << PG_uptodate
_READAHEAD = 1 << PG_readahead

EIO, ENOENT, EEXIST, ENOMEM, EINVAL, EBUSY = 5, 2, 17, 12, 22, 16
HZ = 250
JIFFY_NS = 1_000_000_000 // HZ


def swp_entry(type_: int, offset: int) -> int:
    return (type_ << SWP_TYPE_SHIFT) | offset


def swp_type(entry: int) -> int:
    return entry >> SWP_TYPE_SHIFT


def swp_offset(entry: int) -> int:
    return entry & SWP_OFFSET_MASK


class SwapCluster:
    """``struct swap_cluster_info``: slots in use (bad ones included) and which list it is on."""

    __slots__ = ("idx", "count", "flags", "percpu")

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.count = 0
        self.flags = CLUSTER_FLAG_FREE
        self.percpu = -1  # the CPU whose current cluster this is (-1: none)


class SwapSpace:
    """One of ``swapper_spaces``: the swap cache of one area (offset → folio under ``xa_lock``)."""

    __slots__ = ("si", "i_pages", "xa_lock", "nrpages")

    def __init__(self, kernel: Any, si: "SwapInfo") -> None:
        self.si = si
        self.i_pages: dict[int, Page] = {}
        self.xa_lock = SpinLock(kernel, "&mapping->i_pages")
        self.nrpages = 0

    def __repr__(self) -> str:
        return f"<swapper_space {self.si.name} nrpages={self.nrpages}>"


class SwapInfo:
    """``struct swap_info_struct``: one swap area.

    Locking: ``swap_map``, ``clusters``, the cluster lists, ``percpu_next``,
    ``inuse_pages`` under ``lock`` (``&p->lock``); ``flags`` and ``prio``
    under ``swap_lock`` (changed only by swapon/swapoff).
    """

    def __init__(self, kernel: Any, type_: int, name: str, prio: int, area: Any) -> None:
        self.type = type_
        self.name = name
        self.prio = prio
        self.flags = 0
        self.area = area  # block.SwapArea: a partition's sector range or a swap file's extents
        self.bdev = area.bdev
        self.max = area.nr_sectors // SECTORS_PER_BLOCK  # pages, the header included
        self.pages = self.max - 1  # usable slots (offset 0 is the header)
        self.inuse_pages = 0
        self.swap_map = bytearray(self.max)
        self.swap_map[0] = SWAP_MAP_BAD  # the header page
        nclusters = (self.max + SWAPFILE_CLUSTER - 1) // SWAPFILE_CLUSTER
        self.clusters = [SwapCluster(i) for i in range(nclusters)]
        self.clusters[0].count = 1
        for off in range(self.max, nclusters * SWAPFILE_CLUSTER):
            self.clusters[-1].count += 1  # slots past the end: never allocated
        self.free_clusters: deque[int] = deque()
        self.nonfull_clusters: deque[int] = deque()
        for c in self.clusters:
            if c.count == 0:
                c.flags = CLUSTER_FLAG_FREE
                self.free_clusters.append(c.idx)
            elif c.count < SWAPFILE_CLUSTER:
                c.flags = CLUSTER_FLAG_NONFULL
                self.nonfull_clusters.append(c.idx)
            else:
                c.flags = CLUSTER_FLAG_FULL
        self.percpu_cluster = [-1] * len(kernel.cpus)  # each CPU's current cluster (percpu_cluster)
        self.percpu_next = [-1] * len(kernel.cpus)  # ... and where its next scan starts
        self.lock = SpinLock(kernel, "&p->lock")
        self.space = SwapSpace(kernel, self)
        self.nr_write_errors = 0
        self.nr_read_errors = 0

    def sector_of(self, offset: int) -> int:
        return self.area.sector_of(offset)

    @property
    def is_file(self) -> bool:
        """A swap file (``/proc/swaps`` Type ``file``), not a partition (no SWP_BLKDEV)."""
        return bool(self.area.is_file)

    def __repr__(self) -> str:
        return f"<swap_info {self.name} type {self.type} prio {self.prio} {self.inuse_pages}/{self.pages}>"


class SwapState:
    """The swap subsystem's globals: ``kernel.swap``.

    ``swap_info`` by type; ``avail`` is ``swap_avail_head`` (areas that
    can give slots, highest priority first); ``nr_swap_pages`` and
    ``total_swap_pages`` are the kernel's atomics; ``nr_swapcache`` is
    ``total_swapcache_pages``; ``nr_writeback`` the swap cache folios under
    writeback (part of NR_WRITEBACK).
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.swap_info: list[SwapInfo | None] = []
        self.avail: list[SwapInfo] = []
        self.swap_lock = SpinLock(kernel, "swap_lock")
        self.swap_avail_lock = SpinLock(kernel, "swap_avail_lock")
        self.nr_swap_pages = 0
        self.total_swap_pages = 0
        self.nr_swapcache = 0
        self.nr_writeback = 0
        self.errors: list[str] = []  # pr_alert messages (write/read errors), at most 100
        # swapin_nr_pages's statics (swap_cluster_readahead) and nr_rotate_swap (areas on rotating disks)
        self.ra_hits = 0  # swapin_readahead_hits
        self.ra_prev_offset = 0
        self.ra_last_pages = 0  # last_readahead_pages
        self.nr_rotate_swap = 0

    # -- lookups ------------------------------------------------------------------------------
    def si_of(self, entry: int) -> SwapInfo | None:
        t = swp_type(entry)
        if t >= len(self.swap_info):
            return None
        si = self.swap_info[t]
        if si is None or not si.flags & SWP_USED or not 0 < swp_offset(entry) < si.max:
            return None
        return si

    def swap_address_space(self, entry: int) -> SwapSpace | None:
        si = self.si_of(entry)
        return si.space if si is not None else None

    def _alert(self, msg: str) -> None:
        self.errors.append(msg)
        del self.errors[:-100]

    # -- what vmscan calls --------------------------------------------------------------------------
    async def add_to_swap(self, th: Thread, page: Page) -> bool:
        return await add_to_swap(th, page)

    async def swap_writepage(self, th: Thread, page: Page) -> Pageout:
        return await swap_writepage(th, page)

    async def remove_swapcache_folio(self, th: Thread, page: Page) -> bool:
        return await remove_swapcache_folio(th, page)


def _sw(th: Thread) -> SwapState:
    return th.machine.swap  # type: ignore[attr-defined]


# --- locking discipline --------------------------------------------------------------------------
# A thread can be killed at any wait (the engine's cancellation). So that a kill never leaves
# a half-done update, every critical section here pays its cost *before* it changes anything
# (the waits, where a kill arrives, all come first) and unlocks without waiting.

async def _lock(th: Thread, lock: SpinLock, site: str, cost: int = 0) -> None:
    """Take ``lock`` and pay ``cost`` for the work to be done under it (the kill points come first)."""
    await lock.acquire(th, site=site)
    th.pending += cost
    await th.sync()


def _unlock(th: Thread, lock: SpinLock) -> None:
    """Release without a wait: what was done under the lock is never interrupted half-way."""
    lock._release(th)


# --- slot allocation (mm/swapfile.c) -------------------------------------------------------------

def _cluster_inc(si: SwapInfo, offset: int) -> None:
    """A slot of a cluster is now in use: it leaves the free list, or the partly-used one when full."""
    c = si.clusters[offset // SWAPFILE_CLUSTER]
    c.count += 1
    if c.percpu >= 0:
        return  # a CPU's current cluster is on no list
    if c.flags == CLUSTER_FLAG_FREE:
        si.free_clusters.remove(c.idx)
        c.flags = CLUSTER_FLAG_NONFULL
        si.nonfull_clusters.append(c.idx)
    if c.count >= SWAPFILE_CLUSTER and c.flags == CLUSTER_FLAG_NONFULL:
        si.nonfull_clusters.remove(c.idx)
        c.flags = CLUSTER_FLAG_FULL


def _cluster_dec(si: SwapInfo, offset: int) -> None:
    """``swap_range_free`` for one slot: a full cluster becomes partly used, an empty one free."""
    c = si.clusters[offset // SWAPFILE_CLUSTER]
    c.count -= 1
    if c.percpu >= 0:
        return
    if c.flags == CLUSTER_FLAG_FULL:
        c.flags = CLUSTER_FLAG_NONFULL
        si.nonfull_clusters.append(c.idx)
    if c.count == 0 and c.flags == CLUSTER_FLAG_NONFULL:
        si.nonfull_clusters.remove(c.idx)
        c.flags = CLUSTER_FLAG_FREE
        si.free_clusters.append(c.idx)


def _release_percpu_cluster(si: SwapInfo, cpu: int) -> None:
    """The CPU lets go of its current cluster: it goes on the list its use says."""
    cidx = si.percpu_cluster[cpu]
    si.percpu_cluster[cpu] = si.percpu_next[cpu] = -1
    if cidx < 0:
        return
    c = si.clusters[cidx]
    c.percpu = -1
    if c.count == 0:
        c.flags = CLUSTER_FLAG_FREE
        si.free_clusters.append(cidx)
    elif c.count < SWAPFILE_CLUSTER:
        c.flags = CLUSTER_FLAG_NONFULL
        si.nonfull_clusters.append(cidx)
    else:
        c.flags = CLUSTER_FLAG_FULL


def _take_cluster(si: SwapInfo, cpu: int) -> int:
    """A new current cluster for ``cpu``: a free one, else a partly used one; its index or -1."""
    if si.free_clusters:
        cidx = si.free_clusters.popleft()
    elif si.nonfull_clusters:
        cidx = si.nonfull_clusters.popleft()
    else:
        return -1
    c = si.clusters[cidx]
    c.percpu = cpu
    c.flags = CLUSTER_FLAG_FRAG
    si.percpu_cluster[cpu] = cidx
    si.percpu_next[cpu] = cidx * SWAPFILE_CLUSTER
    return cidx


def scan_swap_map_slots(si: SwapInfo, cpu: int, usage: int) -> int:
    """``cluster_alloc_swap_entry`` for one order-0 slot (``si->lock`` held); 0 when the area is full.

    The CPU's current cluster from where it left off; when that is used up, a
    free cluster, then a partly used one; failing those, any free slot.
    """
    m = si.swap_map
    off = -1
    for _ in range(2):
        cidx = si.percpu_cluster[cpu]
        if cidx < 0:
            cidx = _take_cluster(si, cpu)
            if cidx < 0:
                break
        nxt = si.percpu_next[cpu]
        end = min((cidx + 1) * SWAPFILE_CLUSTER, si.max)
        off = m.find(0, nxt, end) if nxt < end else -1
        if off > 0:
            break
        _release_percpu_cluster(si, cpu)
        off = -1
    if off <= 0:
        off = m.find(0, 1)  # fragmented: any free slot of the area
    if off <= 0:
        return 0
    m[off] = usage
    _cluster_inc(si, off)
    si.inuse_pages += 1
    if si.percpu_cluster[cpu] == off // SWAPFILE_CLUSTER:
        si.percpu_next[cpu] = off + 1
    return off


def _add_to_avail(sw: SwapState, si: SwapInfo) -> None:
    """``add_to_avail_list``: by priority, after the areas of equal priority."""
    if si in sw.avail or not si.flags & SWP_WRITEOK or si.inuse_pages >= si.pages:
        return
    i = 0
    while i < len(sw.avail) and sw.avail[i].prio >= si.prio:
        i += 1
    sw.avail.insert(i, si)


def _entry_free_locked(sw: SwapState, si: SwapInfo, offset: int) -> None:
    """``swap_entry_range_free`` for one slot (``si->lock`` held): back to the area and to ``nr_swap_pages``."""
    si.swap_map[offset] = 0
    _cluster_dec(si, offset)
    si.inuse_pages -= 1
    sw.nr_swap_pages += 1
    if si not in sw.avail:
        _add_to_avail(sw, si)  # the kernel takes swap_avail_lock here, never nested with another lock


async def get_swap_pages(th: Thread) -> int:
    """``get_swap_pages`` for one slot, with SWAP_HAS_CACHE: an entry, or 0 when swap is full.

    The areas are tried by priority (``swap_avail_head`` under
    ``swap_avail_lock``; equal priorities take turns, ``plist_requeue``),
    the slot taken under the area's ``si->lock``.
    """
    sw = _sw(th)
    k = th.machine
    if sw.nr_swap_pages <= 0:
        return 0
    tried: list[SwapInfo] = []
    while True:
        await _lock(th, sw.swap_avail_lock, "get_swap_pages+0x6f/0x2c0")
        cand = next((s for s in sw.avail if s not in tried), None)
        if cand is not None:
            same = [i for i, s in enumerate(sw.avail) if s.prio == cand.prio]
            if len(same) > 1:
                sw.avail.remove(cand)
                sw.avail.insert(same[-1], cand)
        _unlock(th, sw.swap_avail_lock)
        if cand is None:
            return 0
        tried.append(cand)
        await _lock(th, cand.lock, "get_swap_pages+0x10a/0x2c0", k.costs.swap_slot_op)
        off = 0
        if cand.flags & SWP_WRITEOK and sw.nr_swap_pages > 0:
            off = scan_swap_map_slots(cand, th.cpu.id, SWAP_HAS_CACHE)
            if off:
                sw.nr_swap_pages -= 1
                if cand.inuse_pages >= cand.pages and cand in sw.avail:
                    sw.avail.remove(cand)  # del_from_avail_list
        _unlock(th, cand.lock)
        if off:
            return swp_entry(cand.type, off)


async def swap_duplicate(th: Thread, entry: int) -> bool:
    """``swap_duplicate``: one more PTE references the slot (fork, ``try_to_unmap``)."""
    sw = _sw(th)
    si = sw.si_of(entry)
    if si is None:
        raise ModelBug(f"swap_duplicate of a bad entry 0x{entry:x}")
    off = swp_offset(entry)
    await _lock(th, si.lock, "__swap_duplicate+0x3d/0x1a0", th.machine.costs.swap_slot_op)
    v = si.swap_map[off]
    if v == 0 or v == SWAP_MAP_BAD or (v & ~SWAP_HAS_CACHE) >= SWAP_MAP_MAX:
        _unlock(th, si.lock)
        raise ModelBug(f"swap_duplicate of {si.name} offset {off} with swap_map 0x{v:x}")
    si.swap_map[off] = v + 1
    _unlock(th, si.lock)
    return True


def _swap_free_locked(sw: SwapState, si: SwapInfo, off: int) -> int:
    """``__swap_entry_free_locked`` for one PTE reference (``si->lock`` held); the value left."""
    v = si.swap_map[off]
    if not v & ~SWAP_HAS_CACHE or v == SWAP_MAP_BAD:
        raise ModelBug(f"swap_free of {si.name} offset {off}: no reference left (swap_map 0x{v:x})")
    v -= 1
    si.swap_map[off] = v
    if v == 0:
        _entry_free_locked(sw, si, off)
    return v


async def swap_free(th: Thread, entry: int) -> int:
    """``swap_free``: a PTE's reference to the slot goes (the slot is freed with the last); the value left."""
    sw = _sw(th)
    si = sw.si_of(entry)
    if si is None:
        raise ModelBug(f"swap_free of a bad entry 0x{entry:x}")
    await _lock(th, si.lock, "swap_free_nr+0x5b/0x130", th.machine.costs.swap_slot_op)
    try:
        return _swap_free_locked(sw, si, swp_offset(entry))
    finally:
        _unlock(th, si.lock)


async def put_swap_folio(th: Thread, entry: int) -> None:
    """``put_swap_folio``: the swap cache lets go of the slot (SWAP_HAS_CACHE cleared; freed if unused)."""
    sw = _sw(th)
    si = sw.si_of(entry)
    if si is None:
        raise ModelBug(f"put_swap_folio of a bad entry 0x{entry:x}")
    off = swp_offset(entry)
    await _lock(th, si.lock, "put_swap_folio+0x7e/0x1f0", th.machine.costs.swap_slot_op)
    v = si.swap_map[off]
    if not v & SWAP_HAS_CACHE:
        _unlock(th, si.lock)
        raise ModelBug(f"put_swap_folio: {si.name} offset {off} has no SWAP_HAS_CACHE (0x{v:x})")
    v &= ~SWAP_HAS_CACHE
    si.swap_map[off] = v
    if v == 0:
        _entry_free_locked(sw, si, off)
    _unlock(th, si.lock)


async def swapcache_prepare(th: Thread, entry: int) -> int:
    """``swapcache_prepare``: claim SWAP_HAS_CACHE before reading a slot in: 0, -EEXIST or -ENOENT."""
    sw = _sw(th)
    si = sw.si_of(entry)
    if si is None:
        return -ENOENT
    off = swp_offset(entry)
    await _lock(th, si.lock, "__swap_duplicate+0x3d/0x1a0", th.machine.costs.swap_slot_op)
    v = si.swap_map[off]
    if v & SWAP_HAS_CACHE:
        err = -EEXIST
    elif not v:
        err = -ENOENT
    else:
        si.swap_map[off] = v | SWAP_HAS_CACHE
        err = 0
    _unlock(th, si.lock)
    return err


def __swap_count(sw: SwapState, entry: int) -> int:
    """``__swap_count``: the PTE references to the slot (SWAP_HAS_CACHE not counted)."""
    si = sw.si_of(entry)
    if si is None:
        return 0
    return si.swap_map[swp_offset(entry)] & ~SWAP_HAS_CACHE


def vm_swap_full(sw: SwapState) -> bool:
    """``vm_swap_full``: more than half the swap space is in use."""
    return sw.nr_swap_pages * 2 < sw.total_swap_pages


# --- the swap cache (mm/swap_state.c) ------------------------------------------------------------

async def add_to_swap_cache(th: Thread, page: Page, entry: int) -> int:
    """``add_to_swap_cache``: the folio (locked, swap-backed) becomes the cache's copy of ``entry``; 0 or -errno."""
    sw = _sw(th)
    si = sw.si_of(entry)
    if si is None:
        return -ENOENT
    space = si.space
    off = swp_offset(entry)
    await _lock(th, space.xa_lock, "add_to_swap_cache+0x1a6/0x3e0", th.machine.costs.pagecache_insert)
    if off in space.i_pages:
        _unlock(th, space.xa_lock)
        return -EEXIST
    space.i_pages[off] = page
    space.nrpages += 1
    page._refcount += 1
    page.flags |= _SWAPCACHE
    page.private = entry
    pgdat = page.zone.zone_pgdat
    pgdat.vm_stat[NR_FILE_PAGES] += 1
    pgdat.vm_stat[NR_SWAPCACHE] += 1
    sw.nr_swapcache += 1
    _unlock(th, space.xa_lock)
    return 0


def __delete_from_swap_cache(sw: SwapState, page: Page, entry: int) -> None:
    """``__delete_from_swap_cache`` (the cache's ``xa_lock`` held): out of the cache; the caller drops the reference."""
    si = sw.si_of(entry)
    if si is None or si.space.i_pages.get(swp_offset(entry)) is not page:
        raise ModelBug(f"pfn 0x{page.pfn:x} is not in the swap cache at 0x{entry:x}")
    space = si.space
    del space.i_pages[swp_offset(entry)]
    space.nrpages -= 1
    page.flags &= ~_SWAPCACHE
    page.private = 0
    pgdat = page.zone.zone_pgdat
    pgdat.vm_stat[NR_FILE_PAGES] -= 1
    pgdat.vm_stat[NR_SWAPCACHE] -= 1
    sw.nr_swapcache -= 1


async def _put_swap_folio_surely(th: Thread, entry: int) -> None:
    """``put_swap_folio`` that completes even if the thread is killed while it waits for ``si->lock``."""
    try:
        await put_swap_folio(th, entry)
    except BaseException:
        await put_swap_folio(th, entry)  # dying: this wait cannot be interrupted again
        raise


async def delete_from_swap_cache(th: Thread, page: Page) -> None:
    """``delete_from_swap_cache``: out of the cache; the slot's and the page's cache references go."""
    sw = _sw(th)
    entry = page.private
    si = sw.si_of(entry)
    if si is None:
        raise ModelBug(f"delete_from_swap_cache: pfn 0x{page.pfn:x} has a bad entry 0x{entry:x}")
    await _lock(th, si.space.xa_lock, "delete_from_swap_cache+0x52/0xf0", th.machine.costs.pagecache_insert)
    __delete_from_swap_cache(sw, page, entry)
    page._refcount -= 1
    _unlock(th, si.space.xa_lock)
    if page._refcount <= 0:
        raise ModelBug(f"delete_from_swap_cache dropped the last reference of pfn 0x{page.pfn:x}")
    await _put_swap_folio_surely(th, entry)


def swap_cache_get_folio(sw: SwapState, entry: int) -> Page | None:
    """``swap_cache_get_folio``: the cached folio for ``entry`` with a reference taken, or None."""
    si = sw.si_of(entry)
    if si is None:
        return None
    page = si.space.i_pages.get(swp_offset(entry))
    if page is not None:
        page._refcount += 1
    return page


async def add_to_swap(th: Thread, page: Page) -> bool:
    """``add_to_swap``: give a locked anonymous folio a swap slot and put it in the swap cache, dirty."""
    if not page.flags & _LOCKED or page.flags & _SWAPCACHE:
        raise ModelBug(f"add_to_swap of {page!r}: must be locked and not in the swap cache")
    entry = await folio_alloc_swap(th, page)
    if not entry:
        return False
    try:
        err = await add_to_swap_cache(th, page, entry)
    except BaseException:
        if not page.flags & _SWAPCACHE:
            await put_swap_folio(th, entry)
        raise
    if err:
        await _put_swap_folio_surely(th, entry)
        return False
    page.flags |= _DIRTY  # folio_mark_dirty: the slot holds nothing until the folio is written
    return True


async def folio_alloc_swap(th: Thread, page: Page) -> int:
    """``folio_alloc_swap``: a slot for an order-0 folio (``get_swap_pages``), or 0."""
    return await get_swap_pages(th)


def folio_swapcache_freeable(page: Page) -> bool:
    return bool(page.flags & _SWAPCACHE) and not page.flags & _WRITEBACK


async def folio_free_swap(th: Thread, page: Page) -> bool:
    """``folio_free_swap``: drop the swap copy of a locked folio whose slot no PTE references.

    The folio becomes dirty: its only copy is in memory now.
    """
    if not folio_swapcache_freeable(page):
        return False
    sw = _sw(th)
    if __swap_count(sw, page.private):
        return False
    await delete_from_swap_cache(th, page)
    page.flags |= _DIRTY
    return True


async def _hook_folio_free_swap(th: Thread, page: Page) -> bool:
    """The fault path's ``folio_free_swap`` (``do_wp_page`` reusing a swap cache folio): trylocks the folio."""
    wt = th.machine.pagecache.waits
    if not folio_trylock(wt, page, th):
        return False
    try:
        return await folio_free_swap(th, page)
    finally:
        folio_unlock(wt, page)


async def free_swap_and_cache(th: Thread, entry: int) -> None:
    """``free_swap_and_cache``: a zapped PTE's reference goes; a cached folio nobody maps leaves the cache."""
    sw = _sw(th)
    si = sw.si_of(entry)
    if si is None:
        return
    v = await swap_free(th, entry)
    if v != SWAP_HAS_CACHE:
        return
    # __try_to_reclaim_swap(si, offset, TTRS_UNMAPPED | TTRS_FULL)
    page = swap_cache_get_folio(sw, entry)
    if page is None:
        return
    wt = th.machine.pagecache.waits
    try:
        if folio_trylock(wt, page, th):
            try:
                if page._mapcount < 0 and page.private == entry:
                    await folio_free_swap(th, page)
            finally:
                folio_unlock(wt, page)
    finally:
        await put_page(th, page)


async def remove_swapcache_folio(th: Thread, page: Page) -> bool:
    """``__remove_mapping`` of a locked swap cache folio held only by the cache and the caller: refcount → 0."""
    sw = _sw(th)
    entry = page.private
    si = sw.si_of(entry)
    if si is None:
        return False
    space = si.space
    await _lock(th, space.xa_lock, "__remove_mapping+0x5c/0x2a0", th.machine.costs.pagecache_insert)
    if page._refcount != 2 or page.flags & _DIRTY or not page.flags & _SWAPCACHE:
        _unlock(th, space.xa_lock)
        return False
    __delete_from_swap_cache(sw, page, entry)
    page._refcount = 0  # folio_ref_freeze(folio, 2): the cache's and the caller's references
    _unlock(th, space.xa_lock)
    await _put_swap_folio_surely(th, entry)
    return True


# --- I/O (mm/page_io.c) ---------------------------------------------------------------------------

async def swap_writepage(th: Thread, page: Page) -> Pageout:
    """``pageout`` → ``swap_writepage``: write a locked, dirty swap cache folio; unlocks it on SUCCESS."""
    wt = th.machine.pagecache.waits
    if await folio_free_swap(th, page):
        # Nobody references the slot any more: nothing to write (the folio is dirty again).
        folio_unlock(wt, page)
        return Pageout.SUCCESS
    if not page.flags & _DIRTY:  # folio_clear_dirty_for_io
        return Pageout.CLEAN
    page.flags = (page.flags & ~_DIRTY) | _RECLAIM  # folio_set_reclaim in pageout()
    await __swap_writepage(th, page)
    return Pageout.SUCCESS


async def __swap_writepage(th: Thread, page: Page) -> None:
    """``__swap_writepage`` → ``swap_writepage_bdev_async``: start writeback, unlock, submit one bio."""
    k = th.machine
    sw = _sw(th)
    entry = page.private
    si = sw.si_of(entry)
    if si is None:
        raise ModelBug(f"swap_writepage of pfn 0x{page.pfn:x} with a bad entry 0x{entry:x}")
    th.charge(k.costs.writepage)
    # folio_start_writeback (the swap cache has no writeback tags)
    page.flags |= _WRITEBACK
    page.zone.zone_pgdat.vm_stat[NR_WRITEBACK] += 1
    page.zone.vm_stat[NR_ZONE_WRITE_PENDING] += 1
    sw.nr_writeback += 1
    folio_unlock(k.pagecache.waits, page)
    sector = si.sector_of(swp_offset(entry))
    bio = Bio(si.bdev, REQ_OP_WRITE, sector, SECTORS_PER_BLOCK, [(page, sector)], end_io=end_swap_bio_write,
              private=(k, si))
    k.vmstat["pswpout"] += 1
    await _submit(th, bio)


async def _submit(th: Thread, bio: Bio) -> None:
    """``submit_bio``; a thread killed before the request was queued completes it as failed (nothing is lost)."""
    try:
        await submit_bio(th, bio)
    except BaseException:
        if bio.cpu is None and not bio.done:
            bio.status = -EIO
            bio.done = True
            bio.cpu = th.cpu
            if bio.end_io is not None:
                bio.end_io(bio)
        raise


def end_swap_bio_write(bio: Bio) -> None:
    """``end_swap_bio_write`` (interrupt context): an error redirties the folio; then ``folio_end_writeback``."""
    k, si = bio.private
    sw: SwapState = k.swap
    page: Page = bio.vecs[0][0]
    if bio.status:
        page.flags |= _DIRTY
        page.flags &= ~_RECLAIM
        si.nr_write_errors += 1
        sw._alert(f"Write-error on swap-device ({si.area.major}:{si.area.minor}:{bio.sector})")
    page.flags &= ~_WRITEBACK
    pgdat = page.zone.zone_pgdat
    pgdat.vm_stat[NR_WRITEBACK] -= 1
    page.zone.vm_stat[NR_ZONE_WRITE_PENDING] -= 1
    pgdat.vm_stat[NR_WRITTEN] += 1
    sw.nr_writeback -= 1
    if page.flags & _RECLAIM:
        page.flags &= ~_RECLAIM
        folio_rotate_reclaimable(k, page)
    k.pagecache.waits.wake(page, PG_writeback)
    acct_reclaim_writeback(k, page)


async def swap_read_folio(th: Thread, page: Page) -> None:
    """``swap_read_folio``: read a locked swap cache folio; the completion marks it uptodate and unlocks it."""
    k = th.machine
    sw = _sw(th)
    entry = page.private
    si = sw.si_of(entry)
    if si is None:
        raise ModelBug(f"swap_read_folio of pfn 0x{page.pfn:x} with a bad entry 0x{entry:x}")
    sector = si.sector_of(swp_offset(entry))
    bio = Bio(si.bdev, REQ_OP_READ, sector, SECTORS_PER_BLOCK, [(page, sector)], end_io=end_swap_bio_read,
              private=(k, si))
    k.vmstat["pswpin"] += 1
    await _submit(th, bio)


def end_swap_bio_read(bio: Bio) -> None:
    """``end_swap_bio_read``: uptodate on success (an error leaves it not uptodate), then unlock."""
    k, si = bio.private
    for page, _sector in bio.vecs:
        if bio.status:
            si.nr_read_errors += 1
            k.swap._alert(f"Read-error on swap-device ({si.area.major}:{si.area.minor}:{bio.sector})")
        else:
            page.flags |= _UPTODATE
        folio_unlock(k.pagecache.waits, page)


# --- reading in (mm/swap_state.c) -----------------------------------------------------------------

async def __read_swap_cache_async(th: Thread, entry: int, gfp: int) -> tuple[Page | None, bool]:
    """``__read_swap_cache_async``: the cached folio (a reference taken), or a new one added to the cache.

    Returns ``(folio, allocated)``; ``(None, False)`` when the slot is no
    longer in use or no memory could be had. A new folio is locked and not
    uptodate: the caller reads it.
    """
    sw = _sw(th)
    k = th.machine
    while True:
        th.charge(k.costs.pagecache_lookup)
        page = swap_cache_get_folio(sw, entry)
        if page is not None:
            return page, False
        si = sw.si_of(entry)
        if si is None or not si.swap_map[swp_offset(entry)]:
            return None, False
        new = await alloc_pages(th, gfp, 0)
        if new is None:
            return None, False
        try:
            err = await swapcache_prepare(th, entry)
        except BaseException:
            await free_pages_(th, new, 0)
            raise
        if err == -EEXIST:
            # Another task is adding this slot to the swap cache: let it finish and look again.
            await free_pages_(th, new, 0)
            await th.sleep_for(JIFFY_NS)  # schedule_timeout_uninterruptible(1)
            continue
        if err:
            await free_pages_(th, new, 0)
            return None, False
        new.flags |= _LOCKED | (1 << PG_swapbacked)
        k.pagecache.waits.owner[new] = th
        try:
            err = await add_to_swap_cache(th, new, entry)
        except BaseException:
            if not new.flags & _SWAPCACHE:
                new.flags &= ~_LOCKED
                k.pagecache.waits.owner.pop(new, None)
                await free_pages_(th, new, 0)
                await put_swap_folio(th, entry)
            raise
        if err:
            raise ModelBug(f"add_to_swap_cache of 0x{entry:x} after swapcache_prepare: {err}")
        # In the cache and locked: whatever happens now, the cache keeps it; the read may still fail.
        await folio_add_lru(th, new)
        return new, True


SWAP_RA_ORDER_CEILING = 5  # mm/swap_state.c: at most 32 pages of VMA readahead
SWAP_RA_HITS_MAX = (1 << (PAGE_SHIFT // 2)) - 1  # SWAP_RA_HITS_MASK: the hits share a word with the window


def _solidstate(k: Any, si: SwapInfo) -> bool:
    """SWP_SOLIDSTATE: ``bdev_nonrot`` of the area's disk (a disk of preset "hdd" rotates)."""
    disk = next((d for d in k.config.disk if d.name == si.bdev.name), None)
    return disk is None or disk.preset != "hdd"


def swap_use_vma_readahead(k: Any) -> bool:
    """``swap_use_vma_readahead``: /sys/kernel/mm/swap/vma_ra_enabled, and no swap area on a rotating disk."""
    return bool(k.tunables.vma_ra_enabled) and not k.swap.nr_rotate_swap


def __swapin_nr_pages(prev_offset: int, offset: int, hits: int, max_pages: int, prev_win: int) -> int:
    """``__swapin_nr_pages``: the next readahead window from the hits since the last one.

    hits + 2 rounded up to a power of two (at least 4); with no hits, 2 when
    the access is next to the previous one, else 1; at most ``max_pages``,
    and never below half the previous window ("don't shrink readahead too fast").
    """
    pages = hits + 2
    if pages == 2:
        if offset != prev_offset + 1 and offset != prev_offset - 1:
            pages = 1
    else:
        roundup = 4
        while roundup < pages:
            roundup <<= 1
        pages = roundup
    if pages > max_pages:
        pages = max_pages
    last_ra = prev_win // 2
    if pages < last_ra:
        pages = last_ra
    return pages


def swapin_nr_pages(k: Any, offset: int) -> int:
    """``swapin_nr_pages``: the cluster readahead window (a power of two up to 2^page_cluster)."""
    sw = k.swap
    max_pages = 1 << k.tunables.page_cluster
    if max_pages <= 1:
        return 1
    hits, sw.ra_hits = sw.ra_hits, 0
    pages = __swapin_nr_pages(sw.ra_prev_offset, offset, hits, max_pages, sw.ra_last_pages)
    if not hits:
        sw.ra_prev_offset = offset
    sw.ra_last_pages = pages
    return pages


async def _readahead_one(th: Thread, entry: int, gfp: int) -> None:
    """Read one neighbour into the swap cache (PG_readahead, ``swap_ra``) unless it is cached or free."""
    page, allocated = await __read_swap_cache_async(th, entry, gfp | G.__GFP_NORETRY | G.__GFP_NOWARN)
    if page is None:
        return
    try:
        if allocated:
            page.flags |= _READAHEAD
            th.machine.vmstat["swap_ra"] += 1
            await swap_read_folio(th, page)
    finally:
        page._refcount -= 1  # the cache keeps it


async def swap_cluster_readahead(th: Thread, entry: int, gfp: int) -> tuple[Page | None, bool]:
    """``swap_cluster_readahead``: the aligned window of ``swapin_nr_pages`` slots around ``entry``.

    The neighbours in use and not cached are read too (PG_readahead,
    ``swap_ra``); then the target through ``__read_swap_cache_async``.
    Returns the target as that does.
    """
    sw = _sw(th)
    si = sw.si_of(entry)
    if si is not None:
        off = swp_offset(entry)
        mask = swapin_nr_pages(th.machine, off) - 1
        if mask:
            for o in range(max(off & ~mask, 1), min((off | mask) + 1, si.max)):
                v = si.swap_map[o]
                if o == off or not v or v & SWAP_HAS_CACHE or v == SWAP_MAP_BAD:
                    continue
                await _readahead_one(th, swp_entry(si.type, o), gfp)
    page, allocated = await __read_swap_cache_async(th, entry, gfp)
    if page is not None and allocated:
        await swap_read_folio(th, page)
    return page, allocated


def swap_vma_ra_win(k: Any, vmf: "VmFault") -> tuple[int, int, int]:
    """``swap_vma_ra_win``: (window, first vpn, end vpn) of VMA readahead around the faulting address.

    The window comes from the VMA's ``swap_readahead_info`` (last fault
    address, window, hits) by ``__swapin_nr_pages``, at most
    2^min(page_cluster, SWAP_RA_ORDER_CEILING) pages: ahead of a forward run
    of faults, behind a backward one, centred otherwise; clipped to the VMA
    and to the faulting address's page table (one PMD).
    """
    vma = vmf.vma
    max_win = 1 << min(k.tunables.page_cluster, SWAP_RA_ORDER_CEILING)
    if max_win == 1:
        return 1, 0, 0
    fvpn = vmf.vpn
    prev_vpn, prev_win, hits = vma.swap_readahead_info
    win = __swapin_nr_pages(prev_vpn, fvpn, hits, max_win, prev_win)
    vma.swap_readahead_info = (fvpn, win, 0)
    if win == 1:
        return 1, 0, 0
    if fvpn == prev_vpn + 1:
        left = fvpn
    elif prev_vpn == fvpn + 1:
        left = fvpn - win + 1
    else:
        left = fvpn - (win - 1) // 2
    right = left + win
    pmd = fvpn & ~511
    start = max(left, 0, vma.vm_start >> PAGE_SHIFT, pmd)
    end = min(right, vma.vm_end >> PAGE_SHIFT, pmd + 512)
    return win, start, end


async def swap_vma_readahead(th: Thread, entry: int, gfp: int, vmf: "VmFault") -> tuple[Page | None, bool]:
    """``swap_vma_readahead``: read the swap entries of the PTEs around the fault, then the target.

    The neighbours are found from the page table, not from the swap slots:
    pages that were neighbours in the address space come back together
    wherever they were written in swap.
    """
    win, start, end = swap_vma_ra_win(th.machine, vmf)
    if win > 1:
        ptes = vmf.ptp.ptes
        for vpn in range(start, end):
            if vpn == vmf.vpn:
                continue
            pte = ptes.get(vpn, 0)  # ptep_get_lockless
            if not pte or not is_swap_pte(pte):
                continue
            await _readahead_one(th, pte_to_swp_entry(pte), gfp)
    page, allocated = await __read_swap_cache_async(th, entry, gfp)
    if page is not None and allocated:
        await swap_read_folio(th, page)
    return page, allocated


async def swapin_readahead(th: Thread, entry: int, gfp: int, vmf: "VmFault") -> tuple[Page | None, bool]:
    """``swapin_readahead``: by the VMA's page table when ``swap_use_vma_readahead``, else by swap slot."""
    if swap_use_vma_readahead(th.machine):
        return await swap_vma_readahead(th, entry, gfp, vmf)
    return await swap_cluster_readahead(th, entry, gfp)


# --- the fault (mm/memory.c do_swap_page) ----------------------------------------------------------

def folio_add_anon_rmap_pte(page: Page, vma: Any, addr: int, exclusive: bool) -> None:
    """``folio_add_anon_rmap_pte`` (mm/rmap.c): one more PTE maps an anonymous folio.

    A folio read in by swap readahead is not anonymous yet (no mapping): it
    gets the VMA's anon_vma (its root when it may be shared), as
    ``__folio_set_anon`` does.
    """
    if page.mapping is None:
        av = vma.anon_vma
        if av is None:
            raise ModelBug(f"swap-in into {vma!r}, which has no anon_vma")
        page.mapping = av if exclusive else av.root
        page.index = linear_page_index(vma, addr)
    page._mapcount += 1
    if page._mapcount == 0:
        _mod_mapped(page, NR_ANON_MAPPED, 1)
    if exclusive:
        page.flags |= 1 << PG_anon_exclusive
    else:
        page.flags &= ~(1 << PG_anon_exclusive)


async def do_swap_page(th: Thread, vmf: "VmFault", orig_pte: int) -> int:
    """``do_swap_page``: bring back the page of a swap-entry PTE and map it; VM_FAULT_* bits.

    Called with ``mmap_lock`` (or the VMA lock) held for read and no page
    table lock; may return with the page table lock held (the caller
    unlocks it).
    """
    k = th.machine
    sw = _sw(th)
    vma = vmf.vma
    mm = vma.vm_mm
    entry = pte_to_swp_entry(orig_pte)
    si = sw.si_of(entry)
    if si is None:
        sw._alert(f"Bad swap file entry {entry:#x}")
        return VM_FAULT_SIGBUS
    ret = 0
    th.charge(k.costs.pagecache_lookup)
    page = swap_cache_get_folio(sw, entry)
    if page is not None:
        # swap_cache_get_folio's readahead bookkeeping: per VMA, or the global hits of cluster readahead
        readahead = bool(page.flags & _READAHEAD)
        page.flags &= ~_READAHEAD
        vma_ra = swap_use_vma_readahead(k)
        if vma_ra:
            _vpn, win, hits = vma.swap_readahead_info
            vma.swap_readahead_info = (vmf.vpn, win, min(hits + 1, SWAP_RA_HITS_MAX) if readahead else hits)
        if readahead:
            k.vmstat["swap_ra_hit"] += 1
            if not vma_ra:
                sw.ra_hits += 1
    else:
        page, _allocated = await swapin_readahead(th, entry, G.GFP_HIGHUSER_MOVABLE, vmf)
        if page is None:
            await vmf.lock(th, "do_swap_page")
            if vmf.ptp.ptes.get(vmf.vpn, 0) == orig_pte:
                return VM_FAULT_OOM
            return 0
        ret = VM_FAULT_MAJOR
        k.vmstat["pgmajfault"] += 1
    wt = k.pagecache.waits
    locked = mapped = False
    try:
        await folio_lock(th, page)  # waits for the read, or for reclaim's pageout to submit
        locked = True
        if not page.flags & _SWAPCACHE or page.private != entry:
            return ret  # reclaimed and the slot freed meanwhile: the access retries
        await vmf.lock(th, "do_swap_page")
        if vmf.ptp.ptes.get(vmf.vpn, 0) != orig_pte:
            return ret  # another thread of this mm faulted it in
        if not page.flags & _UPTODATE:
            return VM_FAULT_SIGBUS  # the read failed
        write = bool(vmf.flags & FAULT_FLAG_WRITE)
        # swap_free + the new PTE in one step under si->lock (nested in the ptl)
        await _lock(th, si.lock, "swap_free_nr+0x5b/0x130", k.costs.swap_slot_op + k.costs.pte_op)
        exclusive = __swap_count(sw, entry) == 1 and page._mapcount < 0
        _swap_free_locked(sw, si, swp_offset(entry))
        add_mm_counter(th, mm, MM_ANONPAGES, 1)
        add_mm_counter(th, mm, MM_SWAPENTS, -1)
        folio_add_anon_rmap_pte(page, vma, vmf.address, exclusive)
        writable = write and exclusive and bool(vma.vm_flags & VM_WRITE)
        pte = _mk_pte(page.pfn, vma, writable)
        set_pte(mm, vmf.ptp, vmf.vpn, pte)
        mapped = True  # the mapping keeps our reference
        _unlock(th, si.lock)
        vmf.orig_pte = pte
        # should_try_to_free_swap
        if page.flags & _SWAPCACHE and (vm_swap_full(sw) or vma.vm_flags & VM_LOCKED
                                         or (write and page._refcount == 2)):
            await folio_free_swap(th, page)
        folio_unlock(wt, page)
        locked = False
        if write and not writable:
            ret |= await do_wp_page(th, vmf)
        return ret
    finally:
        if locked:
            folio_unlock(wt, page)
        if not mapped:
            await put_page(th, page)


# --- swapon / swapoff (mm/swapfile.c) ---------------------------------------------------------------

def _swapon(sw: SwapState, si: SwapInfo) -> None:
    """``enable_swap_info``: usable from now on (SWP_WRITEOK, the avail list, SwapTotal/SwapFree).

    An area on a rotating disk (preset "hdd": no SWP_SOLIDSTATE) counts in
    ``nr_rotate_swap``, which turns VMA-based swap readahead off.
    """
    if not _solidstate(sw.kernel, si):
        sw.nr_rotate_swap += 1
    si.flags |= SWP_USED | SWP_WRITEOK
    sw.total_swap_pages += si.pages
    sw.nr_swap_pages += si.pages - si.inuse_pages
    _add_to_avail(sw, si)


async def sys_swapon(th: Thread, name: str, prio: int | None = None) -> int:
    """``swapon(2)`` of a ``[[machine.swap]]`` area that is off: 0, -EINVAL (unknown) or -EBUSY (on)."""
    k = th.machine
    sw = _sw(th)
    area = k.block.swap_areas.get(name)
    if area is None:
        return -EINVAL
    await _lock(th, sw.swap_lock, "sys_swapon+0x3b5/0x1180")
    try:
        for si in sw.swap_info:
            if si is not None and si.name == name and si.flags & SWP_USED:
                return -EBUSY
        si = _new_swap_info(k, sw, name, prio, area)
        _swapon(sw, si)
    finally:
        _unlock(th, sw.swap_lock)
    return 0


def _new_swap_info(k: Any, sw: SwapState, name: str, prio: int | None, area: Any) -> SwapInfo:
    """``alloc_swap_info``: the lowest free type; an automatic priority counts down from -2."""
    if prio is None:
        used = [s.prio for s in sw.swap_info if s is not None and s.flags & SWP_USED and s.prio < 0]
        prio = min(used + [-1]) - 1
    t = next((i for i, s in enumerate(sw.swap_info) if s is None or not s.flags & SWP_USED), len(sw.swap_info))
    if t >= MAX_SWAPFILES:
        raise ModelBug("more than MAX_SWAPFILES swap areas")
    si = SwapInfo(k, t, name, prio, area)
    if t == len(sw.swap_info):
        sw.swap_info.append(si)
    else:
        sw.swap_info[t] = si
    return si


async def sys_swapoff(th: Thread, name: str) -> int:
    """``swapoff(2)``: take the area out of use and bring every page in it back (``try_to_unuse``).

    0, -EINVAL (not an active area) or -ENOMEM (not enough free memory for
    its pages; the area is re-enabled, as the kernel does).
    """
    k = th.machine
    sw = _sw(th)
    si = next((s for s in sw.swap_info if s is not None and s.name == name and s.flags & SWP_WRITEOK), None)
    if si is None:
        return -EINVAL
    free = sum(z.vm_stat[NR_FREE_PAGES] for z in k.page_alloc.populated)
    if si.inuse_pages > free + sum(k.page_alloc.zone_reclaimable_pages(z) for z in k.page_alloc.populated):
        return -ENOMEM
    await _lock(th, sw.swap_lock, "__do_sys_swapoff+0x16d/0xa60")
    await _lock(th, sw.swap_avail_lock, "del_from_avail_list+0x1d/0x60")
    if si in sw.avail:
        sw.avail.remove(si)
    _unlock(th, sw.swap_avail_lock)
    si.flags &= ~SWP_WRITEOK
    sw.total_swap_pages -= si.pages
    sw.nr_swap_pages -= si.pages  # the slots in use are added back as try_to_unuse frees them
    _unlock(th, sw.swap_lock)
    err = await try_to_unuse(th, si)
    if err:
        # reinsert_swap_info
        await _lock(th, sw.swap_lock, "__do_sys_swapoff+0x2f0/0xa60")
        si.flags |= SWP_WRITEOK
        sw.total_swap_pages += si.pages
        sw.nr_swap_pages += si.pages
        _add_to_avail(sw, si)
        _unlock(th, sw.swap_lock)
        return err
    await _lock(th, sw.swap_lock, "__do_sys_swapoff+0x3a1/0xa60")
    si.flags &= ~SWP_USED
    if not _solidstate(k, si):
        sw.nr_rotate_swap -= 1
    _unlock(th, sw.swap_lock)
    return 0


async def try_to_unuse(th: Thread, si: SwapInfo) -> int:
    """``try_to_unuse``: swap in every PTE of every mm that points into ``si``, then empty its cache."""

    k = th.machine
    sw = _sw(th)
    for _pass in range(4):
        for mm in live_mms(k):
            await mm.mmap_lock.down_read(th, site="unuse_mm+0x3c/0x180")
            try:
                todo = sorted(vpn for ptp in mm.ptes.values() for vpn, pte in ptp.ptes.items()
                              if is_swap_pte(pte) and swp_type(pte >> 12) == si.type)
                for vpn in todo:
                    vma = find_vma(mm, vpn << 12)
                    if vma is None or vma.vm_start > vpn << 12:
                        continue
                    ptp = await pte_alloc(th, mm, vpn)
                    if ptp is None:
                        return -ENOMEM
                    pte = ptp.ptes.get(vpn, 0)
                    if not is_swap_pte(pte) or swp_type(pte >> 12) != si.type:
                        continue
                    vmf = VmFault(vma, vpn << 12, FAULT_FLAG_DEFAULT, ptp)
                    try:
                        r = await do_swap_page(th, vmf, pte)  # unuse_pte: the same work, read-only mapping
                    finally:
                        await vmf.unlock(th)
                    if r & 0x1:  # VM_FAULT_OOM
                        return -ENOMEM
            finally:
                await mm.mmap_lock.up_read(th)
        # What is left in the cache is referenced by no PTE: free it.
        for off in sorted(si.space.i_pages):
            page = si.space.i_pages.get(off)
            if page is None:
                continue
            wt = k.pagecache.waits
            page._refcount += 1
            try:
                await folio_wait_writeback(th, page)
                await folio_lock(th, page)
                if page.flags & _SWAPCACHE and swp_type(page.private) == si.type:
                    await folio_free_swap(th, page)
            finally:
                if page.flags & _LOCKED and wt.owner.get(page) is th:
                    folio_unlock(wt, page)
                await put_page(th, page)
        if si.inuse_pages == 0:
            return 0
    return -EBUSY if si.inuse_pages else 0


# --- boot and invariants ------------------------------------------------------------------------------

def swap_init(kernel: Any) -> SwapState:
    """Boot swap: the ``[[machine.swap]]`` areas enabled in order (``swapon`` at boot), the hooks, the figures."""
    sw = SwapState(kernel)
    kernel.swap = sw
    cfg = kernel.config
    prios = cfg.swap_priorities()
    for spec, prio in zip(cfg.swap, prios):
        area = kernel.block.swap_areas[spec.name]
        si = _new_swap_info(kernel, sw, spec.name, prio, area)
        _swapon(sw, si)
    src = kernel.page_alloc.meminfo_sources
    src.register("total_swap_pages", lambda: sw.total_swap_pages)
    src.register("nr_swap_pages", lambda: sw.nr_swap_pages)
    src.register("total_swapcache_pages", lambda: sw.nr_swapcache)
    hooks = kernel.mm_hooks
    hooks.do_swap_page = do_swap_page
    hooks.swap_duplicate = swap_duplicate
    hooks.free_swap_and_cache = free_swap_and_cache
    hooks.folio_free_swap = _hook_folio_free_swap
    kernel.add_check("swap", lambda: check_swap(kernel))
    return sw


def check_swap(kernel: Any) -> str | None:
    """Invariants: the counters agree (always); slots, clusters and the swap cache agree (every 512th hand-off)."""
    sw: SwapState = kernel.swap
    cached = sum(si.space.nrpages for si in sw.swap_info if si is not None)
    if cached != sw.nr_swapcache:
        return f"total_swapcache_pages {sw.nr_swapcache} but the caches hold {cached}"
    nr = sum(p.vm_stat[NR_SWAPCACHE] for p in kernel.page_alloc.nodes)
    if nr != cached:
        return f"NR_SWAPCACHE {nr} but the swap caches hold {cached}"
    if kernel.sim.switches & 511 and not getattr(kernel, "swap_check_every_switch", False):
        return None
    return check_swap_full(kernel)


def check_swap_full(kernel: Any) -> str | None:
    """The walk of every area: swap_map against inuse_pages and the clusters, every cached folio."""
    sw: SwapState = kernel.swap
    free = 0
    for si in sw.swap_info:
        if si is None or not si.flags & SWP_USED:
            continue
        used = si.max - si.swap_map.count(0) - 1  # the header is not a slot in use
        if used != si.inuse_pages:
            return f"{si.name}: {used} slots in use in swap_map but inuse_pages {si.inuse_pages}"
        for c in si.clusters:
            lo, hi = c.idx * SWAPFILE_CLUSTER, (c.idx + 1) * SWAPFILE_CLUSTER
            n = sum(1 for v in si.swap_map[lo:hi] if v) + max(0, hi - max(si.max, lo))
            if n != c.count:
                return f"{si.name}: cluster {c.idx} counts {c.count} slots in use, swap_map has {n}"
        free += si.pages - si.inuse_pages if si.flags & SWP_WRITEOK else -si.inuse_pages  # swapoff took all
        if len(si.space.i_pages) != si.space.nrpages:
            return f"{si.name}: swap cache nrpages {si.space.nrpages} but {len(si.space.i_pages)} folios"
        for off, page in si.space.i_pages.items():
            if not si.swap_map[off] & SWAP_HAS_CACHE:
                return f"{si.name}: offset {off} cached by pfn 0x{page.pfn:x} without SWAP_HAS_CACHE"
            if page.private != swp_entry(si.type, off) or not page.flags & _SWAPCACHE:
                return f"{si.name}: offset {off} cached by {page!r}, whose swap entry is 0x{page.private:x}"
    if free != sw.nr_swap_pages:
        return f"nr_swap_pages {sw.nr_swap_pages} but the areas have {free} free slots"
    return None


__all__ = [
    "SwapInfo", "SwapState", "add_to_swap", "add_to_swap_cache", "delete_from_swap_cache", "do_swap_page",
    "folio_free_swap", "free_swap_and_cache", "get_swap_pages", "put_swap_folio", "swap_cache_get_folio",
    "swap_duplicate", "swap_free", "swap_init", "swap_read_folio", "swap_writepage", "swapcache_prepare",
    "swp_entry", "swp_offset", "swp_type", "sys_swapoff", "sys_swapon", "vm_swap_full",
]
