"""Page reclaim: models mm/vmscan.c (Linux 6.12, the classic two-list LRU; MGLRU off).

Modelled, with the kernel's names:

- ``struct scan_control`` (:class:`ScanControl`) and ``struct reclaim_stat``.
- ``isolate_lru_folios``: up to SWAP_CLUSTER_MAX folios from the tail of one
  list under ``lruvec->lru_lock`` (a reference each, PG_lru cleared, folios of
  zones above ``reclaim_idx`` skipped to the head, ``pgskip_*``), the
  ``mm_vmscan_lru_isolate`` event; ``move_folios_to_lru`` puts them back at
  the head of the list their flags name and frees those whose last
  reference went while they were isolated.
- ``shrink_inactive_list`` / ``shrink_folio_list``: trylock, referenced
  checks through rmap (``folio_check_references``: keep once, activate when
  referenced twice or mapped executable file pages), dirty and writeback
  file pages (direct reclaim and kswapd at first sight set PG_reclaim and
  activate; kswapd writes them once PGDAT_DIRTY says the flushers fall behind;
  folios under writeback count as nr_writeback / nr_immediate / nr_congested),
  anonymous pages through ``add_to_swap`` + ``try_to_unmap`` (batched TLB
  flush) + ``pageout`` to swap, clean pages through ``__remove_mapping``
  and freed in one batch after the TLB flush; ``pgscan_*``, ``pgsteal_*``,
  ``pgactivate``, ``mm_vmscan_lru_shrink_inactive``,
  ``mm_vmscan_write_folio``; ``wakeup_flusher_threads`` when every isolated
  file page was dirty and not queued for I/O.
- ``shrink_active_list``: deactivation to the inactive list, referenced
  executable file pages rotated on the active list, ``pgrefill``,
  ``pgdeactivate``, ``mm_vmscan_lru_shrink_active``.
- ``prepare_scan_control`` (``inactive_is_low``, ``cache_trim_mode``,
  ``file_is_tiny``), ``get_scan_count`` (swappiness and the recent reclaim
  cost ``lru_note_cost`` balance anon against file; no free swap: no anon
  scanning; priority 0: equal), ``shrink_lruvec`` (proportional reclaim),
  ``shrink_node`` (with ``shrink_slab`` at the same priority and the
  PGDAT_DIRTY / PGDAT_WRITEBACK / congestion flags), ``shrink_zones``,
  ``do_try_to_free_pages`` (priority 12 … 0, ``allocstall_<zone>``),
  ``try_to_free_pages`` (``mm_vmscan_direct_reclaim_begin``/``_end``; the
  stall is the allocating task's own virtual time, also summed per task in
  :attr:`Vmscan.direct_stall_ns`), ``reclaim_throttle`` and
  ``too_many_isolated``.
- kswapd per node (a daemon kernel thread ``kswapd<nid>`` on the node's
  CPUs, PF_MEMALLOC): ``wakeup_kswapd`` (``mm_vmscan_wakeup_kswapd``, only
  when kswapd waits and the node is not balanced), ``kswapd`` /
  ``kswapd_try_to_sleep`` (a HZ/10 nap, then a full sleep:
  ``kswapd_low_wmark_hit_quickly`` / ``kswapd_high_wmark_hit_quickly``,
  ``mm_vmscan_kswapd_sleep``), ``balance_pgdat`` (``pageoutrun``,
  ``mm_vmscan_kswapd_wake``, priority 12 … 1 until a zone meets its high
  watermark, ``kswapd_failures``), ``kswapd_age_node``,
  ``kswapd_shrink_node``, ``pgdat_balanced``, ``prepare_kswapd_sleep``.

Simplified: no memcg (one lruvec per node), no MGLRU, no compaction (so
``should_continue_reclaim`` never loops and a costly order falls back to
order-0 balancing), no workingset shadow entries or refault detection (the
refault test of ``prepare_scan_control`` never fires), no mlock (VM_LOCKED
mappings make ``try_to_unmap`` fail), no demotion, no lazyfree, no large
folios, no ``throttle_direct_reclaim`` (PFMEMALLOC throttling for network
swap), no ``mm_vmscan_throttled`` event. ``reclaim_throttle`` for writeback
is woken early only by swap writeback completions (file completions are the
writeback module's: the throttled task then waits its HZ/10). kswapd is
created at boot but started by its node's first ``wakeup_kswapd`` (the
model cannot run threads at boot), so that first wake-up skips the attempt
to sleep. The events are logged as the kernel would; the stall of a direct
reclaimer is its own virtual time, nothing is added for it.

Locks: ``lruvec->lru_lock`` (irqsave) around isolation and putback only;
shrink_folio_list holds the page lock (PG_locked, a trylock) of the folio it
works on and nothing else across its waits. A reclaimer killed at any wait
(an OOM victim in direct reclaim, the end of a run) puts every isolated
folio back, unlocks the folio in hand and frees what it had already freed
from its mapping, in its ``finally`` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isqrt
from typing import TYPE_CHECKING, Any

from ..sim import Thread
from ..trace.events import vmscan as ev
from ..trace.gfp import trace_reclaim_flags
from . import gfp as G
from .block import WaitQueue
from .lru import (
    LRU_ACTIVE_ANON,
    LRU_ACTIVE_FILE,
    LRU_INACTIVE_ANON,
    LRU_INACTIVE_FILE,
    LruVec,
    folio_is_file_lru,
    lru_add_drain,
)
from .page import (
    PG_active,
    PG_anon_exclusive,
    PG_dirty,
    PG_locked,
    PG_lru,
    PG_private,
    PG_reclaim,
    PG_referenced,
    PG_swapbacked,
    PG_swapcache,
    PG_unevictable,
    PG_workingset,
    PG_writeback,
    Page,
)
from .gfp import gfp_zone
from .mmap import VM_EXEC, VM_LOCKED
from .page_alloc import free_unref_folios, zone_watermark_ok_safe
from .page_writeback import WB_REASON_VMSCAN, Pageout, wakeup_flusher_threads, writeback_single_page
from .rmap import PageAnon, TlbUbc, folio_referenced, try_to_unmap, try_to_unmap_flush
from .pagemap import AddressSpace, folio_trylock, folio_unlock
from .zone import (
    MAX_RECLAIM_RETRIES,
    NR_ACTIVE_ANON,
    NR_ACTIVE_FILE,
    NR_FREE_PAGES,
    NR_INACTIVE_ANON,
    NR_INACTIVE_FILE,
    NR_ISOLATED_ANON,
    NR_ISOLATED_FILE,
    NR_LRU_BASE,
    NR_VMSCAN_IMMEDIATE,
    NR_VMSCAN_WRITE,
    NR_WRITTEN,
    NR_ZONE_LRU_BASE,
    NR_ZONE_WRITE_PENDING,
    ZONE_RECLAIM_ACTIVE,
    PglistData,
    Zone,
)

if TYPE_CHECKING:
    from .page_alloc import PageAllocator

DEF_PRIORITY = 12
SWAP_CLUSTER_MAX = 32
MAX_SWAPPINESS = 200
HZ = 250
JIFFY_NS = 1_000_000_000 // HZ

# enum scan_balance
SCAN_EQUAL, SCAN_FRACT, SCAN_ANON, SCAN_FILE = range(4)
# sc->may_deactivate bits
DEACTIVATE_ANON, DEACTIVATE_FILE = 1, 2
# enum pgdat_flags (include/linux/mmzone.h)
PGDAT_DIRTY = 1 << 0
PGDAT_WRITEBACK = 1 << 1
PGDAT_RECLAIM_LOCKED = 1 << 2
# enum lruvec_flags
LRUVEC_CGROUP_CONGESTED = 1 << 0
LRUVEC_NODE_CONGESTED = 1 << 1
# enum vmscan_throttle_state
VMSCAN_THROTTLE_WRITEBACK, VMSCAN_THROTTLE_ISOLATED, VMSCAN_THROTTLE_NOPROGRESS, VMSCAN_THROTTLE_CONGESTED = range(4)
NR_VMSCAN_THROTTLE = 4
# enum folio_references
FOLIOREF_RECLAIM, FOLIOREF_RECLAIM_CLEAN, FOLIOREF_KEEP, FOLIOREF_ACTIVATE = range(4)

_LOCKED = 1 << PG_locked
_DIRTY = 1 << PG_dirty
_WRITEBACK = 1 << PG_writeback
_ACTIVE = 1 << PG_active
_LRU = 1 << PG_lru
_RECLAIM = 1 << PG_reclaim
_SWAPCACHE = 1 << PG_swapcache
_SWAPBACKED = 1 << PG_swapbacked
_UNEVICTABLE = 1 << PG_unevictable
_REFERENCED = 1 << PG_referenced
_PRIVATE = 1 << PG_private

_FLAGS_FILE = trace_reclaim_flags(True)
_FLAGS_ANON = trace_reclaim_flags(False)


@dataclass
class ReclaimStat:
    """``struct reclaim_stat``: what one shrink_folio_list pass saw."""

    nr_dirty: int = 0
    nr_unqueued_dirty: int = 0
    nr_congested: int = 0
    nr_writeback: int = 0
    nr_immediate: int = 0
    nr_pageout: int = 0
    nr_activate: list[int] = field(default_factory=lambda: [0, 0])  # [anon, file]
    nr_ref_keep: int = 0
    nr_unmap_fail: int = 0


@dataclass
class ScanNr:
    """``sc->nr``: the shrink_inactive_list totals of one shrink_node pass."""

    dirty: int = 0
    unqueued_dirty: int = 0
    congested: int = 0
    writeback: int = 0
    immediate: int = 0
    file_taken: int = 0
    taken: int = 0


@dataclass
class ScanControl:
    """``struct scan_control``: one reclaim invocation's goal, permissions and progress."""

    nr_to_reclaim: int = 0
    gfp_mask: int = 0
    reclaim_idx: int = 0
    order: int = 0
    priority: int = DEF_PRIORITY
    may_writepage: bool = True
    may_unmap: bool = True
    may_swap: bool = True
    may_deactivate: int = 0
    force_deactivate: bool = False
    skipped_deactivate: bool = False
    cache_trim_mode: bool = False
    cache_trim_mode_failed: bool = False
    no_cache_trim_mode: bool = False
    file_is_tiny: bool = False
    compaction_ready: bool = False
    anon_cost: int = 0
    file_cost: int = 0
    nr_scanned: int = 0
    nr_reclaimed: int = 0
    kswapd: bool = False  # current_is_kswapd()
    nr: ScanNr = field(default_factory=ScanNr)


class Vmscan:
    """The reclaim subsystem's global state: ``kernel.vmscan``.

    ``direct_stall_ns`` sums, per pid, the virtual time tasks spent in
    direct reclaim (the kernel's delayacct ``freepages`` figure);
    ``kswapds`` are the daemons by node.
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.kswapds: list[Thread] = []
        self.direct_stall_ns: dict[int, int] = {}
        self.nr_direct_reclaims = 0


# --- helpers ---------------------------------------------------------------------------------------

def _pa(th: Thread) -> "PageAllocator":
    return th.machine.page_alloc  # type: ignore[attr-defined]


def is_file_lru(lru: int) -> bool:
    return lru == LRU_INACTIVE_FILE or lru == LRU_ACTIVE_FILE


def is_active_lru(lru: int) -> bool:
    return lru == LRU_ACTIVE_ANON or lru == LRU_ACTIVE_FILE


def lruvec_page_state(lruvec: LruVec, item: int) -> int:
    return lruvec.pgdat.vm_stat[item]


def lruvec_lru_size(lruvec: LruVec, lru: int, zone_idx: int) -> int:
    """``lruvec_lru_size``: pages of list ``lru`` in the zones up to ``zone_idx``."""
    n = 0
    for z in lruvec.pgdat.node_zones[:zone_idx + 1]:
        if z.managed_pages:
            n += z.vm_stat[NR_ZONE_LRU_BASE + lru]
    return n


def get_nr_swap_pages(k: Any) -> int:
    """``get_nr_swap_pages``: free swap slots (0 without swap)."""
    return int(k.page_alloc.meminfo_sources.get("nr_swap_pages"))


def total_swap_pages(k: Any) -> int:
    return int(k.page_alloc.meminfo_sources.get("total_swap_pages"))


def can_reclaim_anon_pages(k: Any) -> bool:
    """``can_reclaim_anon_pages``: there is free swap to put anonymous pages in."""
    return get_nr_swap_pages(k) > 0


def can_age_anon_pages(k: Any) -> bool:
    """``can_age_anon_pages``: aging the anon lists is worth it when swap exists."""
    return total_swap_pages(k) > 0


def zone_reclaimable_pages(k: Any, zone: Zone) -> int:
    """``zone_reclaimable_pages``: file LRU pages, plus anon ones when swap has room."""
    v = zone.vm_stat
    n = v[NR_ZONE_LRU_BASE + LRU_INACTIVE_FILE] + v[NR_ZONE_LRU_BASE + LRU_ACTIVE_FILE]
    if get_nr_swap_pages(k) > 0:
        n += v[NR_ZONE_LRU_BASE + LRU_INACTIVE_ANON] + v[NR_ZONE_LRU_BASE + LRU_ACTIVE_ANON]
    return n


def folio_mapping(k: Any, page: Page) -> Any:
    """``folio_mapping``: the page cache a page belongs to (the swap cache's space for swap cache pages)."""
    if page.flags & _SWAPCACHE:
        return k.swap.swap_address_space(page.private)
    m = page.mapping
    if isinstance(m, AddressSpace):
        return m
    return None


def _emit(th: Thread, e: Any, **fields: Any) -> None:
    tr = th.machine.tracer
    if tr.on[e.id]:
        tr.emit(e, th, **fields)


def lru_note_cost(lruvec: LruVec, file: bool, nr_io: int, nr_rotated: int) -> None:
    """``lru_note_cost`` (mm/swap.c): reclaim's I/O and rotations make a list more expensive; costs decay."""
    cost = nr_io * SWAP_CLUSTER_MAX + nr_rotated
    if file:
        lruvec.file_cost += cost
    else:
        lruvec.anon_cost += cost
    v = lruvec.pgdat.vm_stat
    lrusize = v[NR_INACTIVE_ANON] + v[NR_ACTIVE_ANON] + v[NR_INACTIVE_FILE] + v[NR_ACTIVE_FILE]
    if lruvec.anon_cost + lruvec.file_cost > lrusize // 4:
        lruvec.anon_cost //= 2
        lruvec.file_cost //= 2


# --- waiting ---------------------------------------------------------------------------------------

async def schedule_timeout(th: Thread, wq: WaitQueue, ns: int) -> int:
    """``prepare_to_wait`` + ``schedule_timeout`` + ``finish_wait``: sleep on ``wq`` for at most ``ns``.

    Returns the time that was left when a waker woke the thread (0: the
    timeout expired). The timer is a wake-up placed in the engine's heap
    before the thread blocks; an earlier ``wake_*`` on the queue supersedes it.
    """
    sim = th.sim
    deadline = sim.now + ns
    wq.waiters.append(th)
    sim.wake(th, deadline)  # the timer
    try:
        await th.sleep_on(wq)
    finally:
        timed_out = th in wq.waiters
        if timed_out:
            wq.waiters.remove(th)
    return 0 if timed_out else max(deadline - sim.now, 1)


async def reclaim_throttle(th: Thread, pgdat: PglistData, reason: int) -> None:
    """``reclaim_throttle``: sleep on the node's queue for ``reason`` (up to HZ/10, HZ/50 or a jiffy)."""
    k = th.machine
    vm: Vmscan = k.vmscan
    is_kswapd = th in vm.kswapds
    if not is_kswapd and th.process is None:
        await th.sync()  # kthreads other than kswapd are not throttled: cond_resched()
        return
    if reason == VMSCAN_THROTTLE_WRITEBACK:
        timeout = HZ // 10
        pgdat.nr_writeback_throttled += 1
        if pgdat.nr_writeback_throttled == 1:
            pgdat.nr_reclaim_start = pgdat.vm_stat[NR_WRITTEN]
    elif reason in (VMSCAN_THROTTLE_CONGESTED, VMSCAN_THROTTLE_NOPROGRESS):
        if skip_throttle_noprogress(k, pgdat):
            await th.sync()
            return
        timeout = 1
    else:
        timeout = HZ // 50
    await th.sync()
    try:
        await schedule_timeout(th, pgdat.reclaim_wait[reason], timeout * JIFFY_NS)
    finally:
        if reason == VMSCAN_THROTTLE_WRITEBACK:
            pgdat.nr_writeback_throttled -= 1


def skip_throttle_noprogress(k: Any, pgdat: PglistData) -> bool:
    """``skip_throttle_noprogress``: no throttling for a hopeless node or one with little write pending."""
    if pgdat.kswapd_failures >= MAX_RECLAIM_RETRIES:
        return True
    reclaimable = write_pending = 0
    for z in pgdat.node_zones:
        if z.managed_pages:
            reclaimable += zone_reclaimable_pages(k, z)
            write_pending += z.vm_stat[NR_ZONE_WRITE_PENDING]
    return 2 * write_pending <= reclaimable


def acct_reclaim_writeback(k: Any, page: Page) -> None:
    """``acct_reclaim_writeback``: a completed write may release tasks throttled on writeback."""
    pgdat = page.zone.zone_pgdat
    n = pgdat.nr_writeback_throttled
    if n:
        written = pgdat.vm_stat[NR_WRITTEN] - pgdat.nr_reclaim_start
        if written > SWAP_CLUSTER_MAX * n:
            pgdat.reclaim_wait[VMSCAN_THROTTLE_WRITEBACK].wake_all(k.sim, k.costs.sleep_wakeup)


def too_many_isolated(pgdat: PglistData, file: bool, sc: ScanControl) -> bool:
    """``too_many_isolated``: direct reclaimers wait when more is isolated than is left on the inactive list."""
    if sc.kswapd:
        return False
    v = pgdat.vm_stat
    if file:
        inactive, isolated = v[NR_INACTIVE_FILE], v[NR_ISOLATED_FILE]
    else:
        inactive, isolated = v[NR_INACTIVE_ANON], v[NR_ISOLATED_ANON]
    if sc.gfp_mask & (G.__GFP_IO | G.__GFP_FS) == (G.__GFP_IO | G.__GFP_FS):
        inactive >>= 3
    too_many = isolated > inactive
    if not too_many:
        wq = pgdat.reclaim_wait[VMSCAN_THROTTLE_ISOLATED]
        if wq:
            k = pgdat.lruvec.kernel
            wq.wake_all(k.sim, k.costs.sleep_wakeup)
    return too_many


# --- isolation and putback (lru_lock held) -----------------------------------------------------------

def isolate_lru_folios(th: Thread, nr_to_scan: int, lruvec: LruVec, sc: ScanControl,
                       lru: int) -> tuple[list[Page], int]:
    """``isolate_lru_folios``: take folios from the tail of ``lru`` (``lruvec->lru_lock`` held).

    Returns the isolated folios (each with a reference and PG_lru clear) and
    the number scanned, skipped folios included (``total_scan``).
    """
    k = th.machine
    src = lruvec.lists[lru]
    dst: list[Page] = []
    skipped_pages: list[Page] = []
    nr_skipped: dict[int, int] = {}
    scan = total_scan = 0
    reclaim_idx = sc.reclaim_idx
    cost = k.costs.lru_isolate
    pgdat = lruvec.pgdat
    zone_counts: dict[Zone, int] = {}
    may_unmap = sc.may_unmap
    while scan < nr_to_scan and src:
        page = next(iter(src))  # lru_to_folio: the tail
        total_scan += 1
        z = page.zone
        if z.idx > reclaim_idx:
            nr_skipped[z.idx] = nr_skipped.get(z.idx, 0) + 1
            del src[page]
            skipped_pages.append(page)
            continue
        scan += 1
        if page._refcount <= 0 or not page.flags & _LRU or (not may_unmap and page._mapcount >= 0):
            # folio_try_get or folio_test_clear_lru failed (freed, or in an activate batch): back to the head
            src.move_to_end(page)
            continue
        # folio_try_get + folio_test_clear_lru
        page._refcount += 1
        page.flags &= ~_LRU
        del src[page]
        page.lru = None
        zone_counts[z] = zone_counts.get(z, 0) + 1
        dst.append(page)
    th.pending += cost * total_scan
    skipped = 0
    if skipped_pages:
        for p in skipped_pages:
            src[p] = None  # list_splice to the head
        for zid in sorted(nr_skipped):
            k.vmstat[f"pgskip_{_zone_event_name(pgdat.node_zones[zid])}"] += nr_skipped[zid]
            skipped += nr_skipped[zid]
    # update_lru_sizes
    n = len(dst)
    if n:
        pgdat.vm_stat[NR_LRU_BASE + lru] -= n
        lruvec.nr_pages[lru] -= n
        for z, c in zone_counts.items():
            z.vm_stat[NR_ZONE_LRU_BASE + lru] -= c
    _emit(th, ev.mm_vmscan_lru_isolate, highest_zoneidx=reclaim_idx, order=sc.order, nr_requested=nr_to_scan,
          nr_scanned=total_scan, nr_skipped=skipped, nr_taken=n, lru=lru)
    return dst, total_scan


def _zone_event_name(z: Zone) -> str:
    return "high" if z.name == "HighMem" else z.name.lower()


def move_folios_to_lru(th: Thread, lruvec: LruVec, folios: list[Page]) -> tuple[int, list[Page]]:
    """``move_folios_to_lru`` (``lru_lock`` held): each folio to the head of its list; drop the isolation reference.

    Returns the pages moved and the folios whose last reference that was
    (to be freed by the caller once the lock is dropped).
    """
    moved = 0
    free: list[Page] = []
    cost = th.machine.costs.lru_isolate
    for page in folios:
        page._refcount -= 1
        if page._refcount <= 0:
            # __folio_clear_lru_flags: the owner let go while reclaim held it.
            page.flags &= ~(_LRU | _ACTIVE | _UNEVICTABLE)
            page.mapping = None
            page._refcount = 0
            free.append(page)
            continue
        lruvec.add_folio(page)
        moved += 1
    th.pending += cost * len(folios)
    return moved, free


async def _lock_lru(th: Thread, lruvec: LruVec, site: str) -> None:
    """``spin_lock_irq(&lruvec->lru_lock)`` for a putback, also on the way out of a killed reclaimer.

    A thread killed while it paid for a critical section still holds the lock
    (and its interrupts are still off): it goes on with it.
    """
    lock = lruvec.lru_lock
    if lock.owner is not th:
        await lock.acquire_irqsave(th, site=site)


async def _unlock_lru(th: Thread, lruvec: LruVec) -> None:
    """``spin_unlock_irq``; a kill while paying for the critical section still releases the lock and irqs.

    Interrupts are re-enabled only if still disabled: at the end of a run the
    cleanup of another thread on this CPU may have enabled them already.
    """
    lock = lruvec.lru_lock
    try:
        await lock.release(th)
    except BaseException:
        if lock.owner is th:
            lock._release(th)
        if th.cpu.irq_depth > 0:
            await th.local_irq_enable()
        raise
    if th.cpu.irq_depth > 0:
        await th.local_irq_enable()


async def _free_folios(th: Thread, pages: list[Page]) -> None:
    """``free_unref_folios`` of folios whose refcount is already 0."""
    if pages:
        await free_unref_folios(_pa(th), th, pages)


async def putback_isolated(th: Thread, lruvec: LruVec, folios: list[Page], file: bool) -> None:
    """Return isolated folios to their lists (``move_folios_to_lru`` under the lock) and free the orphans."""
    if not folios:
        return
    await _lock_lru(th, lruvec, "move_folios_to_lru+0x10f/0x3d0")
    _, free = move_folios_to_lru(th, lruvec, folios)
    await _unlock_lru(th, lruvec)
    await _free_folios(th, free)


# --- shrink_folio_list --------------------------------------------------------------------------------

async def folio_check_references(th: Thread, page: Page, sc: ScanControl) -> int:
    """``folio_check_references``: what the referenced bits in the PTEs and PG_referenced say to do."""

    referenced_ptes, vm_flags = 0, 0
    if page._mapcount >= 0:
        referenced_ptes, vm_flags = await folio_referenced(th, page)
    referenced_folio = bool(page.flags & _REFERENCED)
    page.flags &= ~_REFERENCED
    if vm_flags & VM_LOCKED:
        return FOLIOREF_ACTIVATE
    if referenced_ptes:
        page.flags |= _REFERENCED
        if referenced_folio or referenced_ptes > 1:
            return FOLIOREF_ACTIVATE
        if vm_flags & VM_EXEC and folio_is_file_lru(page):
            return FOLIOREF_ACTIVATE
        return FOLIOREF_KEEP
    if referenced_folio and folio_is_file_lru(page):
        return FOLIOREF_RECLAIM_CLEAN
    return FOLIOREF_RECLAIM


def may_enter_fs(page: Page, gfp: int) -> bool:
    """``may_enter_fs``: __GFP_FS, or __GFP_IO for a swap cache page (swap on a block device)."""
    if gfp & G.__GFP_FS:
        return True
    if not page.flags & _SWAPCACHE or not gfp & G.__GFP_IO:
        return False
    return True


def is_page_cache_freeable(page: Page) -> bool:
    """``is_page_cache_freeable``: only the isolation, the cache and the private data hold it."""
    return page._refcount - (1 if page.flags & _PRIVATE else 0) == 2


async def pageout(th: Thread, page: Page, mapping: Any, sc: ScanControl) -> Pageout:
    """``pageout``: write a dirty folio for reclaim (file: ``writepage``; swap cache: ``swap_writepage``).

    The folio is locked; on ``SUCCESS`` the write is submitted and the folio
    unlocked; the other outcomes leave it locked.
    """
    if not is_page_cache_freeable(page):
        return Pageout.KEEP
    if mapping is None:
        return Pageout.KEEP
    k = th.machine
    file = not page.flags & _SWAPCACHE
    if not file:
        res = await k.swap.swap_writepage(th, page)
        if res == Pageout.SUCCESS:
            page.zone.zone_pgdat.vm_stat[NR_VMSCAN_WRITE] += 1
    else:
        res = await writeback_single_page(th, page, for_reclaim=True)  # counts NR_VMSCAN_WRITE itself
    if res == Pageout.SUCCESS:
        _emit(th, ev.mm_vmscan_write_folio, pfn=page.pfn, reclaim_flags=_FLAGS_FILE if file else _FLAGS_ANON)
    return res


async def __remove_mapping(th: Thread, mapping: Any, page: Page) -> bool:
    """``__remove_mapping`` with ``reclaimed``: out of the page or swap cache; the refcount frozen at 0.

    The folio is locked by ``th`` and holds only the isolation and the
    cache's references (else it is busy: False).
    """
    k = th.machine
    if page.flags & _SWAPCACHE:
        return await k.swap.remove_swapcache_folio(th, page)
    from .filemap import remove_mapping

    if not await remove_mapping(th, mapping, page):
        return False
    page._refcount = 0  # remove_mapping left the caller's reference: the freeze takes it
    return True


class _Cleanup:
    """shrink_folio_list's lists, so that a reclaimer killed mid-pass can undo its work."""

    __slots__ = ("ret", "free", "cur", "locked")

    def __init__(self) -> None:
        self.ret: list[Page] = []  # keep: back to the LRU
        self.free: list[Page] = []  # refcount 0, to be freed after the TLB flush
        self.cur: Page | None = None  # the folio in hand
        self.locked = False  # ... and whether we hold its lock


async def shrink_folio_list(th: Thread, folio_list: list[Page], pgdat: PglistData, sc: ScanControl,
                            stat: ReclaimStat) -> int:
    """``shrink_folio_list``: try to free every isolated folio; returns how many were reclaimed.

    On return ``folio_list`` holds the folios to put back (kept or to be
    activated); freed folios have gone to the page allocator.
    """

    k = th.machine
    costs = k.costs
    wt = k.pagecache.waits
    swap = k.swap
    ubc = TlbUbc()
    c = _Cleanup()
    nr_reclaimed = 0
    todo = folio_list[::-1]  # pop() takes from the front: lru_to_folio
    folio_list.clear()
    is_kswapd = sc.kswapd
    try:
        while todo:
            page = todo.pop()
            c.cur, c.locked = page, False
            th.pending += costs.reclaim_folio
            await th.sync()  # cond_resched()
            if not folio_trylock(wt, page, th):
                c.ret.append(page)
                c.cur = None
                continue
            c.locked = True
            sc.nr_scanned += 1
            outcome = "keep_locked"
            while True:  # one pass of the kernel's gotos; break with an outcome
                f = page.flags
                if f & _UNEVICTABLE:
                    outcome = "activate"
                    break
                if f & _ACTIVE:
                    # marked accessed while isolated (folio_mark_accessed on a non-LRU folio): keep it active
                    outcome = "keep_locked"
                    break
                if not sc.may_unmap and page._mapcount >= 0:
                    break
                # folio_check_dirty_writeback: anon folios are written by reclaim, not the flushers
                file_lru = not f & _SWAPBACKED
                dirty = bool(f & _DIRTY) if file_lru else False
                writeback = bool(f & _WRITEBACK) if file_lru else False
                if dirty or writeback:
                    stat.nr_dirty += 1
                if dirty and not writeback:
                    stat.nr_unqueued_dirty += 1
                if writeback and f & _RECLAIM:
                    stat.nr_congested += 1
                if f & _WRITEBACK:
                    if is_kswapd and f & _RECLAIM and pgdat.flags & PGDAT_WRITEBACK:
                        stat.nr_immediate += 1
                        outcome = "activate"
                        break
                    # case 2: mark for immediate reclaim and move on (writeback throttling is sane)
                    page.flags |= _RECLAIM
                    stat.nr_writeback += 1
                    outcome = "activate"
                    break
                references = await folio_check_references(th, page, sc)
                if references == FOLIOREF_ACTIVATE:
                    outcome = "activate"
                    break
                if references == FOLIOREF_KEEP:
                    stat.nr_ref_keep += 1
                    break
                # Anonymous memory: give it a swap slot.
                if PageAnon(page) and page.flags & _SWAPBACKED and not page.flags & _SWAPCACHE:
                    if not sc.gfp_mask & G.__GFP_IO:
                        break
                    if swap is None or not await swap.add_to_swap(th, page):
                        outcome = "activate"
                        break
                if page._mapcount >= 0:
                    await try_to_unmap(th, page, ubc)
                    if page._mapcount >= 0:
                        stat.nr_unmap_fail += 1
                        outcome = "activate"
                        break
                    if page.flags & _SWAPCACHE:
                        page.flags &= ~(1 << PG_anon_exclusive)  # exclusivity moved into the swap entries
                mapping = folio_mapping(k, page)
                if page.flags & _DIRTY:
                    if folio_is_file_lru(page) and (not is_kswapd or not page.flags & _RECLAIM
                                                    or not pgdat.flags & PGDAT_DIRTY):
                        pgdat.vm_stat[NR_VMSCAN_IMMEDIATE] += 1
                        page.flags |= _RECLAIM
                        outcome = "activate"
                        break
                    if references == FOLIOREF_RECLAIM_CLEAN:
                        break
                    if not may_enter_fs(page, sc.gfp_mask):
                        break
                    if not sc.may_writepage:
                        break
                    await try_to_unmap_flush(th, ubc)  # try_to_unmap_flush_dirty
                    res = await pageout(th, page, mapping, sc)
                    if res == Pageout.KEEP:
                        break
                    if res == Pageout.ACTIVATE:
                        outcome = "activate"
                        break
                    if res == Pageout.SUCCESS:
                        stat.nr_pageout += 1
                        c.locked = False  # pageout unlocked it
                        if page.flags & (_WRITEBACK | _DIRTY):
                            outcome = "keep"
                            break
                        if not folio_trylock(wt, page, th):
                            outcome = "keep"
                            break
                        c.locked = True
                        if page.flags & (_WRITEBACK | _DIRTY):
                            break
                        mapping = folio_mapping(k, page)
                    # PAGE_CLEAN: try to free it below
                if mapping is None:
                    if page._refcount == 1 and not page.flags & _PRIVATE and page._mapcount < 0:
                        # orphaned (its owner freed it while isolated): the isolation reference is the last
                        outcome = "free"
                    break
                if not await __remove_mapping(th, mapping, page):
                    break
                outcome = "free"
                break
            # -- the outcome --------------------------------------------------------------------
            if outcome == "free":
                folio_unlock(wt, page)
                c.locked = False
                page.flags &= ~(_ACTIVE | _LRU | _RECLAIM)
                page.mapping = None
                page._refcount = 0
                c.free.append(page)
                nr_reclaimed += 1
                c.cur = None
                continue
            if outcome == "activate":
                if not page.flags & _UNEVICTABLE:
                    page.flags |= _ACTIVE
                    stat.nr_activate[0 if page.flags & _SWAPBACKED else 1] += 1
            if c.locked:
                folio_unlock(wt, page)
                c.locked = False
            c.ret.append(page)
            c.cur = None
    finally:
        if c.cur is not None:
            if c.cur.flags & _LOCKED and wt.owner.get(c.cur) is th:
                folio_unlock(wt, c.cur)  # killed with it in hand (pageout may have unlocked it already)
            c.ret.append(c.cur)
            c.cur = None
        c.ret.extend(reversed(todo))
        todo.clear()
        folio_list.extend(c.ret)
        free, c.free = c.free, []
        await try_to_unmap_flush(th, ubc)
        await _free_folios(th, free)
        k.vmstat["pgactivate"] += stat.nr_activate[0] + stat.nr_activate[1]
    return nr_reclaimed


# --- the LRU lists ------------------------------------------------------------------------------------

async def shrink_inactive_list(th: Thread, nr_to_scan: int, lruvec: LruVec, sc: ScanControl, lru: int) -> int:
    """``shrink_inactive_list``: isolate a batch from an inactive list, reclaim what can go, put back the rest."""
    k = th.machine
    file = is_file_lru(lru)
    pgdat = lruvec.pgdat
    stalled = False
    while too_many_isolated(pgdat, file, sc):
        if stalled:
            return 0
        stalled = True
        await reclaim_throttle(th, pgdat, VMSCAN_THROTTLE_ISOLATED)
    await lru_add_drain(th)
    lock = lruvec.lru_lock
    await lock.acquire_irqsave(th, site="shrink_inactive_list+0x12b/0x4f0")
    folio_list, nr_scanned = isolate_lru_folios(th, nr_to_scan, lruvec, sc, lru)
    nr_taken = len(folio_list)
    iso = NR_ISOLATED_FILE if file else NR_ISOLATED_ANON
    pgdat.vm_stat[iso] += nr_taken
    vm = k.vmstat
    vm["pgscan_kswapd" if sc.kswapd else "pgscan_direct"] += nr_scanned
    vm["pgscan_file" if file else "pgscan_anon"] += nr_scanned
    try:
        await _unlock_lru(th, lruvec)
    except BaseException:
        pgdat.vm_stat[iso] -= nr_taken
        await putback_isolated(th, lruvec, folio_list, file)
        raise
    if nr_taken == 0:
        return 0
    stat = ReclaimStat()
    nr_reclaimed = 0
    try:
        nr_reclaimed = await shrink_folio_list(th, folio_list, pgdat, sc, stat)
    finally:
        await _lock_lru(th, lruvec, "shrink_inactive_list+0x1e6/0x4f0")
        _, free = move_folios_to_lru(th, lruvec, folio_list)
        folio_list.clear()
        pgdat.vm_stat[iso] -= nr_taken
        vm["pgsteal_kswapd" if sc.kswapd else "pgsteal_direct"] += nr_reclaimed
        vm["pgsteal_file" if file else "pgsteal_anon"] += nr_reclaimed
        await _unlock_lru(th, lruvec)
        await _free_folios(th, free)
    lru_note_cost(lruvec, file, stat.nr_pageout, nr_scanned - nr_reclaimed)
    if stat.nr_unqueued_dirty == nr_taken:
        wakeup_flusher_threads(k, WB_REASON_VMSCAN)
    nr = sc.nr
    nr.dirty += stat.nr_dirty
    nr.congested += stat.nr_congested
    nr.unqueued_dirty += stat.nr_unqueued_dirty
    nr.writeback += stat.nr_writeback
    nr.immediate += stat.nr_immediate
    nr.taken += nr_taken
    if file:
        nr.file_taken += nr_taken
    _emit(th, ev.mm_vmscan_lru_shrink_inactive, nid=pgdat.node_id, nr_scanned=nr_scanned,
          nr_reclaimed=nr_reclaimed, nr_dirty=stat.nr_dirty, nr_writeback=stat.nr_writeback,
          nr_congested=stat.nr_congested, nr_immediate=stat.nr_immediate, nr_activate0=stat.nr_activate[0],
          nr_activate1=stat.nr_activate[1], nr_ref_keep=stat.nr_ref_keep, nr_unmap_fail=stat.nr_unmap_fail,
          priority=sc.priority, reclaim_flags=_FLAGS_FILE if file else _FLAGS_ANON)
    return nr_reclaimed


async def shrink_active_list(th: Thread, nr_to_scan: int, lruvec: LruVec, sc: ScanControl, lru: int) -> None:
    """``shrink_active_list``: move folios from an active list to the inactive one, unless still in use."""
    k = th.machine
    file = is_file_lru(lru)
    pgdat = lruvec.pgdat
    await lru_add_drain(th)
    lock = lruvec.lru_lock
    await lock.acquire_irqsave(th, site="shrink_active_list+0x9a/0x3c0")
    l_hold, nr_scanned = isolate_lru_folios(th, nr_to_scan, lruvec, sc, lru)
    nr_taken = len(l_hold)
    iso = NR_ISOLATED_FILE if file else NR_ISOLATED_ANON
    pgdat.vm_stat[iso] += nr_taken
    k.vmstat["pgrefill"] += nr_scanned
    l_active: list[Page] = []
    l_inactive: list[Page] = []
    nr_rotated = 0
    try:
        await _unlock_lru(th, lruvec)
        while l_hold:
            page = l_hold.pop(0)
            th.pending += k.costs.lru_isolate
            if page.flags & _UNEVICTABLE:
                l_active.append(page)
                continue
            if page._mapcount >= 0:
                referenced, vm_flags = await folio_referenced(th, page)
                if referenced and vm_flags & VM_EXEC and folio_is_file_lru(page):
                    nr_rotated += 1
                    l_active.append(page)
                    continue
            page.flags = (page.flags & ~_ACTIVE) | (1 << PG_workingset)
            l_inactive.append(page)
    finally:
        await _lock_lru(th, lruvec, "shrink_active_list+0x1f4/0x3c0")
        nr_activate, free1 = move_folios_to_lru(th, lruvec, l_active)
        # Folios still in l_hold (a kill interrupted the loop) go back as they were.
        nr_deactivate, free2 = move_folios_to_lru(th, lruvec, l_inactive + l_hold)
        k.vmstat["pgdeactivate"] += len(l_inactive)
        pgdat.vm_stat[iso] -= nr_taken
        await _unlock_lru(th, lruvec)
        await _free_folios(th, free1 + free2)
    if nr_rotated:
        lru_note_cost(lruvec, file, 0, nr_rotated)
    _emit(th, ev.mm_vmscan_lru_shrink_active, nid=pgdat.node_id, nr_taken=nr_taken, nr_active=nr_activate,
          nr_deactivated=nr_deactivate, nr_referenced=nr_rotated, priority=sc.priority,
          reclaim_flags=_FLAGS_FILE if file else _FLAGS_ANON)


async def shrink_list(th: Thread, lru: int, nr_to_scan: int, lruvec: LruVec, sc: ScanControl) -> int:
    """``shrink_list``: active lists are aged only when ``may_deactivate`` allows; inactive ones reclaimed."""
    if is_active_lru(lru):
        if sc.may_deactivate & (DEACTIVATE_FILE if is_file_lru(lru) else DEACTIVATE_ANON):
            await shrink_active_list(th, nr_to_scan, lruvec, sc, lru)
        else:
            sc.skipped_deactivate = True
        return 0
    return await shrink_inactive_list(th, nr_to_scan, lruvec, sc, lru)


def inactive_is_low(lruvec: LruVec, inactive_lru: int) -> bool:
    """``inactive_is_low``: the inactive list is below its target share (``sqrt(10 * GiB)`` : 1)."""
    v = lruvec.pgdat.vm_stat
    inactive = v[NR_LRU_BASE + inactive_lru]
    active = v[NR_LRU_BASE + inactive_lru + 1]
    gb = (inactive + active) >> (30 - 12)
    inactive_ratio = isqrt(10 * gb) if gb else 1
    return inactive * inactive_ratio < active


def prepare_scan_control(k: Any, pgdat: PglistData, sc: ScanControl) -> None:
    """``prepare_scan_control``: cost snapshot, which active lists to age, cache-trim and tiny-file modes."""
    lruvec: LruVec = pgdat.lruvec
    sc.anon_cost = lruvec.anon_cost
    sc.file_cost = lruvec.file_cost
    if not sc.force_deactivate:
        # No workingset refault tracking: the refault test never fires.
        if inactive_is_low(lruvec, LRU_INACTIVE_ANON):
            sc.may_deactivate |= DEACTIVATE_ANON
        else:
            sc.may_deactivate &= ~DEACTIVATE_ANON
        if inactive_is_low(lruvec, LRU_INACTIVE_FILE):
            sc.may_deactivate |= DEACTIVATE_FILE
        else:
            sc.may_deactivate &= ~DEACTIVATE_FILE
    else:
        sc.may_deactivate = DEACTIVATE_ANON | DEACTIVATE_FILE
    v = pgdat.vm_stat
    file = v[NR_INACTIVE_FILE]
    sc.cache_trim_mode = bool(file >> sc.priority and not sc.may_deactivate & DEACTIVATE_FILE
                              and not sc.no_cache_trim_mode)
    free = sum(z.vm_stat[NR_FREE_PAGES] for z in pgdat.node_zones)
    file = v[NR_ACTIVE_FILE] + v[NR_INACTIVE_FILE]
    total_high_wmark = sum(z.high_wmark_pages() for z in pgdat.node_zones if z.managed_pages)
    anon = v[NR_INACTIVE_ANON]
    sc.file_is_tiny = bool(file + free <= total_high_wmark and not sc.may_deactivate & DEACTIVATE_ANON
                           and anon >> sc.priority)


def get_scan_count(k: Any, lruvec: LruVec, sc: ScanControl) -> list[int]:
    """``get_scan_count``: how many folios of each list to scan at this priority.

    nr[0] inactive anon, nr[1] active anon, nr[2] inactive file, nr[3] active file.
    """
    swappiness = k.tunables.swappiness
    fraction = [0, 0]
    denominator = 0
    if not sc.may_swap or not can_reclaim_anon_pages(k):
        balance = SCAN_FILE
    elif not sc.priority and swappiness:
        balance = SCAN_EQUAL
    elif sc.file_is_tiny:
        balance = SCAN_ANON
    elif sc.cache_trim_mode:
        balance = SCAN_FILE
    else:
        balance = SCAN_FRACT
        total_cost = sc.anon_cost + sc.file_cost
        anon_cost = total_cost + sc.anon_cost
        file_cost = total_cost + sc.file_cost
        total_cost = anon_cost + file_cost
        ap = swappiness * (total_cost + 1) // (anon_cost + 1)
        fp = (MAX_SWAPPINESS - swappiness) * (total_cost + 1) // (file_cost + 1)
        fraction = [ap, fp]
        denominator = ap + fp
    nr = [0, 0, 0, 0]
    for lru in (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE):
        file = is_file_lru(lru)
        scan = lruvec_lru_size(lruvec, lru, sc.reclaim_idx) >> sc.priority
        if balance == SCAN_FRACT:
            scan = scan * fraction[file] // denominator if denominator else 0
        elif balance in (SCAN_FILE, SCAN_ANON):
            if (balance == SCAN_FILE) != file:
                scan = 0
        nr[lru] = scan
    return nr


async def shrink_lruvec(th: Thread, lruvec: LruVec, sc: ScanControl) -> None:
    """``shrink_lruvec``: scan the lists in SWAP_CLUSTER_MAX batches, round-robin, until the targets are met."""
    k = th.machine
    nr = get_scan_count(k, lruvec, sc)
    targets = list(nr)
    nr_reclaimed = 0
    nr_to_reclaim = sc.nr_to_reclaim
    proportional_reclaim = not sc.kswapd and sc.priority == DEF_PRIORITY
    while nr[LRU_INACTIVE_ANON] or nr[LRU_ACTIVE_FILE] or nr[LRU_INACTIVE_FILE]:
        for lru in (LRU_INACTIVE_ANON, LRU_ACTIVE_ANON, LRU_INACTIVE_FILE, LRU_ACTIVE_FILE):
            if nr[lru]:
                nr_to_scan = min(nr[lru], SWAP_CLUSTER_MAX)
                nr[lru] -= nr_to_scan
                nr_reclaimed += await shrink_list(th, lru, nr_to_scan, lruvec, sc)
        await th.sync()  # cond_resched_tasks_rcu_qs()
        if nr_reclaimed < nr_to_reclaim or proportional_reclaim:
            continue
        nr_file = nr[LRU_INACTIVE_FILE] + nr[LRU_ACTIVE_FILE]
        nr_anon = nr[LRU_INACTIVE_ANON] + nr[LRU_ACTIVE_ANON]
        if not nr_file or not nr_anon:
            break
        if nr_file > nr_anon:
            scan_target = targets[LRU_INACTIVE_ANON] + targets[LRU_ACTIVE_ANON] + 1
            lru = LRU_INACTIVE_ANON
            percentage = nr_anon * 100 // scan_target
        else:
            scan_target = targets[LRU_INACTIVE_FILE] + targets[LRU_ACTIVE_FILE] + 1
            lru = LRU_INACTIVE_FILE
            percentage = nr_file * 100 // scan_target
        nr[lru] = 0
        nr[lru + 1] = 0
        lru = LRU_INACTIVE_ANON if lru == LRU_INACTIVE_FILE else LRU_INACTIVE_FILE
        for l in (lru, lru + 1):
            nr_scanned = targets[l] - nr[l]
            nr[l] = targets[l] * (100 - percentage) // 100
            nr[l] -= min(nr[l], nr_scanned)
    sc.nr_reclaimed += nr_reclaimed
    if can_age_anon_pages(k) and inactive_is_low(lruvec, LRU_INACTIVE_ANON):
        await shrink_active_list(th, SWAP_CLUSTER_MAX, lruvec, sc, LRU_ACTIVE_ANON)


async def shrink_node(th: Thread, pgdat: PglistData, sc: ScanControl) -> None:
    """``shrink_node``: the node's lruvec, then the shrinkers at the same priority; kswapd's node flags."""
    k = th.machine
    lruvec: LruVec = pgdat.lruvec
    sc.nr = ScanNr()
    nr_reclaimed = sc.nr_reclaimed
    prepare_scan_control(k, pgdat, sc)
    await shrink_lruvec(th, lruvec, sc)
    reg = getattr(k, "shrinkers", None)
    if reg is not None:
        from .shrinker import shrink_slab

        await shrink_slab(th, sc.gfp_mask, pgdat.node_id, sc.priority)
        # flush_reclaim_state: slab pages freed by the shrinkers count as reclaimed
        rs = reg.reclaim_state.get(th.uid)
        if rs is not None and rs.reclaimed:
            sc.nr_reclaimed += rs.reclaimed
            rs.reclaimed = 0
    nr_node_reclaimed = sc.nr_reclaimed - nr_reclaimed
    reclaimable = bool(nr_node_reclaimed)
    nr = sc.nr
    if sc.kswapd:
        if nr.writeback and nr.writeback == nr.taken:
            pgdat.flags |= PGDAT_WRITEBACK
        if nr.unqueued_dirty == nr.file_taken:
            pgdat.flags |= PGDAT_DIRTY
        if nr.immediate:
            await reclaim_throttle(th, pgdat, VMSCAN_THROTTLE_WRITEBACK)
    if nr.dirty and nr.dirty == nr.congested and sc.kswapd:
        lruvec.flags |= LRUVEC_NODE_CONGESTED
    if not sc.kswapd and lruvec.flags & LRUVEC_NODE_CONGESTED:
        await reclaim_throttle(th, pgdat, VMSCAN_THROTTLE_CONGESTED)
    if reclaimable:
        pgdat.kswapd_failures = 0
    elif sc.cache_trim_mode:
        sc.cache_trim_mode_failed = True


async def consider_reclaim_throttle(th: Thread, pgdat: PglistData, sc: ScanControl) -> None:
    """``consider_reclaim_throttle``: wake NOPROGRESS sleepers on progress; throttle a failing direct reclaimer."""
    if sc.nr_reclaimed > sc.nr_scanned >> 3:
        wq = pgdat.reclaim_wait[VMSCAN_THROTTLE_NOPROGRESS]
        if wq:
            wq.wake_one(th.sim, th.machine.costs.sleep_wakeup)
        return
    if sc.kswapd:
        return
    if sc.priority == 1 and not sc.nr_reclaimed:
        await reclaim_throttle(th, pgdat, VMSCAN_THROTTLE_NOPROGRESS)


async def shrink_zones(th: Thread, zonelist: list[Zone], sc: ScanControl) -> None:
    """``shrink_zones``: each node of the zonelist once, through its eligible zones."""
    last = None
    first = None
    for zone in zonelist:
        if zone.idx > sc.reclaim_idx or not zone.managed_pages:
            continue
        pgdat = zone.zone_pgdat
        if first is None:
            first = pgdat
        if pgdat is last:
            continue
        last = pgdat
        await shrink_node(th, pgdat, sc)
    if first is not None:
        await consider_reclaim_throttle(th, first, sc)


async def do_try_to_free_pages(th: Thread, zonelist: list[Zone], sc: ScanControl) -> int:
    """``do_try_to_free_pages``: raise the priority from 12 to 0 until SWAP_CLUSTER_MAX pages are reclaimed."""
    k = th.machine
    initial_priority = sc.priority
    while True:
        zone = _pa(th).types.names[sc.reclaim_idx]
        k.vmstat[f"allocstall_{'high' if zone == 'HighMem' else zone.lower()}"] += 1
        while True:
            sc.nr_scanned = 0
            await shrink_zones(th, zonelist, sc)
            if sc.nr_reclaimed >= sc.nr_to_reclaim:
                break
            if sc.compaction_ready:
                break
            if sc.priority < DEF_PRIORITY - 2:
                sc.may_writepage = True
            sc.priority -= 1
            if sc.priority < 0:
                break
        if sc.nr_reclaimed:
            return sc.nr_reclaimed
        if sc.skipped_deactivate:
            sc.priority = initial_priority
            sc.force_deactivate = True
            sc.skipped_deactivate = False
            continue
        return 0


async def try_to_free_pages(th: Thread, gfp: int, order: int, zonelist: list[Zone]) -> int:
    """``try_to_free_pages``: direct reclaim by the allocating task; the pages it reclaimed.

    The hook of the page allocator's ``__alloc_pages_direct_reclaim``. The
    time spent is the task's own virtual time (it runs the reclaim itself)
    and is added to ``kernel.vmscan.direct_stall_ns[pid]``.
    """
    k = th.machine
    pa = _pa(th)
    sc = ScanControl(nr_to_reclaim=SWAP_CLUSTER_MAX, gfp_mask=gfp, reclaim_idx=gfp_zone(gfp, pa.gfp_table),
                     order=order, priority=DEF_PRIORITY, may_writepage=True, may_unmap=True, may_swap=True)
    vm: Vmscan = k.vmscan
    t0 = th.sim.now + th.pending
    reg = getattr(k, "shrinkers", None)
    if reg is not None:
        from .shrinker import ReclaimState

        reg.reclaim_state[th.uid] = ReclaimState()
    _emit(th, ev.mm_vmscan_direct_reclaim_begin, order=order, gfp_flags=sc.gfp_mask)
    vm.nr_direct_reclaims += 1
    nr_reclaimed = 0
    try:
        nr_reclaimed = await do_try_to_free_pages(th, zonelist, sc)
    finally:
        if reg is not None:
            reg.reclaim_state.pop(th.uid, None)
        await th.sync()
        stall = th.sim.now - t0
        vm.direct_stall_ns[th.pid] = vm.direct_stall_ns.get(th.pid, 0) + stall
        proc = th.process
        if proc is not None:
            proc.__dict__["reclaim_stall_ns"] = proc.__dict__.get("reclaim_stall_ns", 0) + stall
    _emit(th, ev.mm_vmscan_direct_reclaim_end, nr_reclaimed=nr_reclaimed)
    return nr_reclaimed


async def shrink_all_memory(th: Thread, nr_to_reclaim: int) -> int:
    """``shrink_all_memory`` (hibernation): reclaim up to ``nr_to_reclaim`` pages from every zone; pages reclaimed.

    Also what a test uses to push out what reclaim would free under
    pressure (clean page cache, swap cache pages nobody maps).
    """
    pa = _pa(th)
    sc = ScanControl(nr_to_reclaim=nr_to_reclaim, gfp_mask=G.GFP_HIGHUSER_MOVABLE,
                     reclaim_idx=len(pa.types.names) - 1, priority=DEF_PRIORITY, may_writepage=True, may_unmap=True,
                     may_swap=True)
    zonelist = [z for z in reversed(pa.zones) if z.managed_pages]
    was = th in pa.memalloc_threads
    pa.memalloc_threads.add(th)
    try:
        return await do_try_to_free_pages(th, zonelist, sc)
    finally:
        if not was:
            pa.memalloc_threads.discard(th)


# --- kswapd ---------------------------------------------------------------------------------------------

async def kswapd_age_node(th: Thread, pgdat: PglistData, sc: ScanControl) -> None:
    """``kswapd_age_node``: deactivate anon pages in the background when the inactive anon list is low."""
    if not can_age_anon_pages(th.machine):
        return
    lruvec = pgdat.lruvec
    if not inactive_is_low(lruvec, LRU_INACTIVE_ANON):
        return
    await shrink_active_list(th, SWAP_CLUSTER_MAX, lruvec, sc, LRU_ACTIVE_ANON)


def pgdat_watermark_boosted(pgdat: PglistData, highest_zoneidx: int) -> bool:
    """``pgdat_watermark_boosted``."""
    for z in reversed(pgdat.node_zones[:highest_zoneidx + 1]):
        if z.managed_pages and z.watermark_boost:
            return True
    return False


def pgdat_balanced(pa: "PageAllocator", pgdat: PglistData, order: int, highest_zoneidx: int) -> bool:
    """``pgdat_balanced``: some eligible zone meets its high watermark for ``order``."""
    mark = -1
    for z in pgdat.node_zones[:highest_zoneidx + 1]:
        if not z.managed_pages:
            continue
        mark = z.high_wmark_pages()
        if zone_watermark_ok_safe(pa, z, order, mark, highest_zoneidx):
            return True
    return mark == -1


def clear_pgdat_congested(pgdat: PglistData) -> None:
    pgdat.lruvec.flags &= ~(LRUVEC_NODE_CONGESTED | LRUVEC_CGROUP_CONGESTED)
    pgdat.flags &= ~(PGDAT_DIRTY | PGDAT_WRITEBACK)


def prepare_kswapd_sleep(pa: "PageAllocator", pgdat: PglistData, order: int, highest_zoneidx: int) -> bool:
    """``prepare_kswapd_sleep``: may kswapd sleep (the node is balanced, or hopeless)?"""
    k = pa.kernel
    wq = pgdat.pfmemalloc_wait
    if wq:
        wq.wake_all(k.sim, k.costs.sleep_wakeup)
    if pgdat.kswapd_failures >= MAX_RECLAIM_RETRIES:
        return True
    if pgdat_balanced(pa, pgdat, order, highest_zoneidx):
        clear_pgdat_congested(pgdat)
        return True
    return False


async def kswapd_shrink_node(th: Thread, pgdat: PglistData, sc: ScanControl) -> bool:
    """``kswapd_shrink_node``: reclaim the high watermarks' worth; True if enough was scanned."""
    nr_reclaimed = sc.nr_reclaimed
    sc.nr_to_reclaim = 0
    for z in pgdat.node_zones[:sc.reclaim_idx + 1]:
        if z.managed_pages:
            sc.nr_to_reclaim += max(z.high_wmark_pages(), SWAP_CLUSTER_MAX)
    await shrink_node(th, pgdat, sc)
    if sc.order and sc.nr_reclaimed >= 2 << sc.order:  # compact_gap(order)
        sc.order = 0
    return max(sc.nr_scanned, sc.nr_reclaimed - nr_reclaimed) >= sc.nr_to_reclaim


def _set_reclaim_active(pgdat: PglistData, highest_zoneidx: int, active: bool) -> None:
    for z in pgdat.node_zones[:highest_zoneidx + 1]:
        if z.managed_pages:
            if active:
                z.flags |= ZONE_RECLAIM_ACTIVE
            else:
                z.flags &= ~ZONE_RECLAIM_ACTIVE


async def balance_pgdat(th: Thread, pgdat: PglistData, order: int, highest_zoneidx: int) -> int:
    """``balance_pgdat``: kswapd's reclaim until an eligible zone is balanced; the order it finished at."""
    k = th.machine
    pa = _pa(th)
    sc = ScanControl(gfp_mask=G.GFP_KERNEL, order=order, may_unmap=True, kswapd=True)
    reg = getattr(k, "shrinkers", None)
    if reg is not None:
        from .shrinker import ReclaimState

        reg.reclaim_state[th.uid] = ReclaimState()
    k.vmstat["pageoutrun"] += 1
    zone_boosts = [z.watermark_boost if z.managed_pages else 0 for z in pgdat.node_zones[:highest_zoneidx + 1]]
    nr_boost_reclaim = sum(zone_boosts)
    boosted = bool(nr_boost_reclaim)
    try:
        while True:  # restart:
            _set_reclaim_active(pgdat, highest_zoneidx, True)
            sc.priority = DEF_PRIORITY
            restart = False
            while True:
                nr_reclaimed = sc.nr_reclaimed
                raise_priority = True
                sc.reclaim_idx = highest_zoneidx
                balanced = pgdat_balanced(pa, pgdat, sc.order, highest_zoneidx)
                if not balanced and nr_boost_reclaim:
                    nr_boost_reclaim = 0
                    restart = True
                    break
                if not nr_boost_reclaim and balanced:
                    return sc.order
                if nr_boost_reclaim and sc.priority == DEF_PRIORITY - 2:
                    raise_priority = False
                sc.may_writepage = not nr_boost_reclaim
                sc.may_swap = not nr_boost_reclaim
                await kswapd_age_node(th, pgdat, sc)
                if sc.priority < DEF_PRIORITY - 2:
                    sc.may_writepage = True
                sc.nr_scanned = 0
                if await kswapd_shrink_node(th, pgdat, sc):
                    raise_priority = False
                wq = pgdat.pfmemalloc_wait
                if wq:
                    wq.wake_all(th.sim, k.costs.sleep_wakeup)
                nr_reclaimed = sc.nr_reclaimed - nr_reclaimed
                nr_boost_reclaim -= min(nr_boost_reclaim, nr_reclaimed)
                if nr_boost_reclaim and not nr_reclaimed:
                    break
                if raise_priority or not nr_reclaimed:
                    sc.priority -= 1
                if sc.priority < 1:
                    break
            if restart:
                continue
            if (not sc.nr_reclaimed and sc.priority < 1 and not sc.no_cache_trim_mode
                    and sc.cache_trim_mode_failed):
                sc.no_cache_trim_mode = True
                continue
            if not sc.nr_reclaimed:
                pgdat.kswapd_failures += 1
            return sc.order
    finally:
        _set_reclaim_active(pgdat, highest_zoneidx, False)
        if boosted:
            for z, b in zip(pgdat.node_zones, zone_boosts):
                if b:
                    z.watermark_boost -= min(z.watermark_boost, b)
        if reg is not None:
            reg.reclaim_state.pop(th.uid, None)


def kswapd_highest_zoneidx(pgdat: PglistData, prev: int) -> int:
    """``kswapd_highest_zoneidx``: the waker's zone, or the previous one when none asked."""
    cur = pgdat.kswapd_highest_zoneidx
    return prev if cur == pgdat.max_nr_zones else cur


async def kswapd_try_to_sleep(th: Thread, pgdat: PglistData, alloc_order: int, reclaim_order: int,
                              highest_zoneidx: int) -> None:
    """``kswapd_try_to_sleep``: nap HZ/10 when balanced; then sleep until woken if still balanced.

    kswapd is on ``kswapd_wait`` from ``prepare_to_wait`` to ``finish_wait``
    (``waitqueue_active`` for ``wakeup_kswapd``), the nap and the full sleep
    included.
    """
    k = th.machine
    pa = _pa(th)
    wq: WaitQueue = pgdat.kswapd_wait
    sim = th.sim
    remaining = 0
    await th.sync()
    wq.waiters.append(th)  # prepare_to_wait
    try:
        if prepare_kswapd_sleep(pa, pgdat, reclaim_order, highest_zoneidx):
            deadline = sim.now + (HZ // 10) * JIFFY_NS
            sim.wake(th, deadline)  # schedule_timeout(HZ/10): the timer
            await th.sleep_on(wq)
            if th in wq.waiters:
                wq.waiters.remove(th)  # timed out
            else:
                remaining = max(deadline - sim.now, 1)  # woken early
            if remaining:
                pgdat.kswapd_highest_zoneidx = kswapd_highest_zoneidx(pgdat, highest_zoneidx)
                if pgdat.kswapd_order < reclaim_order:
                    pgdat.kswapd_order = reclaim_order
            wq.waiters.append(th)  # finish_wait + prepare_to_wait
        if not remaining and prepare_kswapd_sleep(pa, pgdat, reclaim_order, highest_zoneidx):
            _emit(th, ev.mm_vmscan_kswapd_sleep, nid=pgdat.node_id)
            await th.sleep_on(wq)  # schedule()
        elif remaining:
            k.vmstat["kswapd_low_wmark_hit_quickly"] += 1
        else:
            k.vmstat["kswapd_high_wmark_hit_quickly"] += 1
    finally:
        if th in wq.waiters:
            wq.waiters.remove(th)  # finish_wait


async def kswapd(th: Thread, pgdat: PglistData) -> None:
    """``kswapd``: the node's background reclaim daemon (PF_MEMALLOC | PF_KSWAPD).

    Started by the first ``wakeup_kswapd`` of the node (the model cannot run
    threads at boot), so its first pass skips the attempt to sleep.
    """
    pa = _pa(th)
    pa.memalloc_threads.add(th)
    highest_zoneidx = pgdat.max_nr_zones - 1
    first = True
    while True:
        alloc_order = reclaim_order = pgdat.kswapd_order
        highest_zoneidx = kswapd_highest_zoneidx(pgdat, highest_zoneidx)
        while True:  # kswapd_try_sleep:
            if not first:
                await kswapd_try_to_sleep(th, pgdat, alloc_order, reclaim_order, highest_zoneidx)
            first = False
            alloc_order = pgdat.kswapd_order
            highest_zoneidx = kswapd_highest_zoneidx(pgdat, highest_zoneidx)
            pgdat.kswapd_order = 0
            pgdat.kswapd_highest_zoneidx = pgdat.max_nr_zones
            _emit(th, ev.mm_vmscan_kswapd_wake, nid=pgdat.node_id, zid=highest_zoneidx, order=alloc_order)
            reclaim_order = await balance_pgdat(th, pgdat, alloc_order, highest_zoneidx)
            if reclaim_order < alloc_order:
                continue
            break


def wakeup_kswapd(zone: Zone, gfp: int, order: int, highest_zoneidx: int) -> None:
    """``wakeup_kswapd``: note the request; wake the node's kswapd if it waits and the node is unbalanced.

    The page allocator's hook (``wake_all_kswapds``); the event is logged for
    the allocating task, the thread running now.
    """
    if not zone.managed_pages:
        return
    pgdat = zone.zone_pgdat
    cur = pgdat.kswapd_highest_zoneidx
    if cur == pgdat.max_nr_zones or cur < highest_zoneidx:
        pgdat.kswapd_highest_zoneidx = highest_zoneidx
    if pgdat.kswapd_order < order:
        pgdat.kswapd_order = order
    wq: WaitQueue = pgdat.kswapd_wait
    th = pgdat.kswapd
    started = pgdat.kswapd_started
    if started and not wq:
        return
    k = pgdat.lruvec.kernel
    pa = k.page_alloc
    if pgdat.kswapd_failures >= MAX_RECLAIM_RETRIES or (
            pgdat_balanced(pa, pgdat, order, highest_zoneidx) and not pgdat_watermark_boosted(pgdat, highest_zoneidx)):
        return
    who = k.sim.current
    if isinstance(who, Thread):
        _emit(who, ev.mm_vmscan_wakeup_kswapd, nid=pgdat.node_id, zid=highest_zoneidx, order=order, gfp_flags=gfp)
    if not started:
        pgdat.kswapd_started = True
        k.start_thread(th, kswapd, pgdat, at=k.sim.now + k.costs.sleep_wakeup)
        return
    wq.wake_all(k.sim, k.costs.sleep_wakeup)  # wake_up_interruptible


# --- boot ----------------------------------------------------------------------------------------------

def kswapd_run(kernel: Any, pgdat: PglistData) -> Thread:
    """``kswapd_run``: create ``kswapd<nid>`` for the node's CPUs (it starts at the node's first wake-up)."""
    th = Thread(kernel, kernel.alloc_pid(), f"kswapd{pgdat.node_id}", daemon=True,
                allowed=list(pgdat.cpus) or None)
    pgdat.kswapd = th
    pgdat.kswapd_started = False
    return th


def _init_pgdat(kernel: Any, pgdat: PglistData) -> None:
    pgdat.kswapd_wait = WaitQueue(f"kswapd_wait{pgdat.node_id}")
    pgdat.pfmemalloc_wait = WaitQueue(f"pfmemalloc_wait{pgdat.node_id}")
    pgdat.reclaim_wait = [WaitQueue(f"reclaim_wait{pgdat.node_id}:{i}") for i in range(NR_VMSCAN_THROTTLE)]
    pgdat.flags = 0
    pgdat.nr_writeback_throttled = 0
    pgdat.nr_reclaim_start = 0
    pgdat.max_nr_zones = len(pgdat.node_zones)
    pgdat.kswapd_highest_zoneidx = pgdat.max_nr_zones
    lv = pgdat.lruvec
    lv.anon_cost = 0
    lv.file_cost = 0
    lv.flags = 0


def vmscan_init(kernel: Any) -> Vmscan:
    """Boot reclaim: swap areas, the OOM killer, kswapd per node and the allocator's hooks (``kswapd_init``)."""
    from .oom import oom_init
    from .swap import swap_init

    vm = Vmscan(kernel)
    kernel.vmscan = vm
    swap_init(kernel)
    oom_init(kernel)
    for pgdat in kernel.page_alloc.nodes:
        _init_pgdat(kernel, pgdat)
    pa = kernel.page_alloc
    pa.zone_reclaimable_pages = lambda zone: zone_reclaimable_pages(kernel, zone)
    hooks = kernel.reclaim
    hooks.wakeup_kswapd = wakeup_kswapd
    hooks.try_to_free_pages = try_to_free_pages
    for pgdat in kernel.page_alloc.nodes:
        if any(z.managed_pages for z in pgdat.node_zones):
            vm.kswapds.append(kswapd_run(kernel, pgdat))
    kernel.add_check("vmscan:isolated", lambda: check_isolated(kernel))
    return vm


def check_isolated(kernel: Any) -> str | None:
    """Invariant: NR_ISOLATED_* never goes negative (every putback matches an isolation)."""
    for pgdat in kernel.page_alloc.nodes:
        v = pgdat.vm_stat
        if v[NR_ISOLATED_ANON] < 0 or v[NR_ISOLATED_FILE] < 0:
            return f"node {pgdat.node_id}: nr_isolated anon {v[NR_ISOLATED_ANON]} file {v[NR_ISOLATED_FILE]}"
    return None


__all__ = [
    "DEF_PRIORITY", "ReclaimStat", "SWAP_CLUSTER_MAX", "ScanControl", "Vmscan", "balance_pgdat",
    "folio_check_references", "get_scan_count", "inactive_is_low", "isolate_lru_folios", "kswapd",
    "move_folios_to_lru", "pgdat_balanced", "prepare_scan_control", "shrink_active_list",
    "shrink_all_memory", "shrink_folio_list", "shrink_inactive_list", "shrink_lruvec", "shrink_node", "try_to_free_pages",
    "vmscan_init", "wakeup_kswapd",
]
