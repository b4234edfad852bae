"""Nodes and zones: models ``struct zone`` and ``pglist_data`` (include/linux/mmzone.h).

Modelled: the zone types of each layout (x86_64: DMA, DMA32, Normal,
Movable, Device; i386: DMA, Normal, HighMem, Movable — ``enum zone_type``
with Debian's configuration), a zone's spanned/present/managed pages, its
``free_area[NR_PAGE_ORDERS]`` with one free list per migratetype, pageblock
migratetypes, per-CPU pagesets (``struct per_cpu_pages``), watermarks
min/low/high/promo (``__setup_per_zone_wmarks``), ``lowmem_reserve``
(``setup_per_zone_lowmem_reserve``), ``totalreserve_pages``, pcp ``batch`` and
``high`` (``zone_batchsize``, ``zone_highsize``), the vmstat threshold
(``calculate_normal_threshold``), zonelists (``build_zonelists``) and the zone,
NUMA and node counters (``enum zone_stat_item``, ``numa_stat_item``,
``node_stat_item``) other subsystems update with :func:`mod_zone_page_state`
and :func:`mod_node_page_state`.

Simplified: counters are exact (no per-CPU deltas folded at the threshold;
the threshold is shown in zoneinfo only). A free block is one entry in
``Zone.buddy`` (pfn → ``[prev, next, order, migratetype]``): the free lists are
doubly linked through those entries, so list order (``list_add`` at the
head, ``list_add_tail``) is the kernel's and no free frame has an object.
The counter tables follow the live /proc files of the reference
(``shared/reference/live-*.txt``, a 6.18 kernel): 6.12's ``nr_bounce`` and
``nr_writeback_temp`` are gone there and ``nr_free_pages_blocks``,
``pgpromote_candidate_nrl``, ``pgdemote_proactive``, ``nr_hugetlb``,
``nr_balloon_pages`` and ``nr_kernel_file_pages`` are new.

Locking, as in ``struct zone``::

    free_area, buddy, nr_free, pageblock_mt,
    nr_reserved_highatomic, nr_free_highatomic  zone->lock
    per_cpu_pageset[cpu]                        that CPU, irqs and preemption off
    _watermark, lowmem_reserve, pageset_*       written at boot and by sysctl only
    vm_stat, vm_numa_event                      atomics in the kernel: anyone
"""

from __future__ import annotations

from collections import deque
from math import isqrt
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ..trace.gfp import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    MIGRATETYPE_NAMES,
    PAGEBLOCK_ORDER,
)

if TYPE_CHECKING:
    from ..sim import Machine
    from ..sim.locks import SpinLock

# --- orders and pageblocks (include/linux/mmzone.h, pageblock-flags.h) ----------
MAX_PAGE_ORDER = 10
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1
PAGE_ALLOC_COSTLY_ORDER = 3
pageblock_order = PAGEBLOCK_ORDER
pageblock_nr_pages = 1 << pageblock_order
HPAGE_PMD_ORDER = 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER

# --- migratetypes (enum migratetype; no CONFIG_CMA, with CONFIG_MEMORY_ISOLATION) -
MIGRATE_TYPES = 5
MIGRATETYPE_NAME = dict(MIGRATETYPE_NAMES)
__all_mt = (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE)
assert __all_mt == tuple(range(MIGRATE_TYPES))


def migratetype_is_mergeable(mt: int) -> bool:
    return mt < MIGRATE_PCPTYPES


# --- per-CPU lists: one per migratetype and order ≤ PAGE_ALLOC_COSTLY_ORDER, two for THP
NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
NR_PCP_THP = 2
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + NR_PCP_THP
PCPF_PREV_FREE_HIGH_ORDER = 1 << 0
PCPF_FREE_HIGH_BATCH = 1 << 1
CONFIG_PCP_BATCH_SCALE_MAX = 5
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8
BOOT_PAGESET_HIGH = 0
BOOT_PAGESET_BATCH = 1


def order_to_pindex(migratetype: int, order: int) -> int:
    """The pcp list of (migratetype, order): the THP lists come after the low-order ones."""
    if order > PAGE_ALLOC_COSTLY_ORDER:
        assert order == HPAGE_PMD_ORDER, f"order {order} has no pcp list"
        return NR_LOWORDER_PCP_LISTS + (migratetype == MIGRATE_MOVABLE)
    return MIGRATE_PCPTYPES * order + migratetype


def pindex_to_order(pindex: int) -> int:
    return HPAGE_PMD_ORDER if pindex >= NR_LOWORDER_PCP_LISTS else pindex // MIGRATE_PCPTYPES


def pcp_allowed_order(order: int) -> bool:
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER


# --- watermarks (enum zone_watermarks) and zone flags (enum zone_flags) ----------
WMARK_MIN, WMARK_LOW, WMARK_HIGH, WMARK_PROMO = range(4)
NR_WMARK = 4
ZONE_BOOSTED_WATERMARK = 1 << 0
ZONE_RECLAIM_ACTIVE = 1 << 1
ZONE_BELOW_HIGH = 1 << 2
SWAP_CLUSTER_MAX = 32
MAX_RECLAIM_RETRIES = 16

# --- zone types per layout (enum zone_type with Debian's configuration) --------
ZONE_TYPES: dict[str, tuple[str, ...]] = {
    # CONFIG_ZONE_DMA, CONFIG_ZONE_DMA32, ZONE_MOVABLE, CONFIG_ZONE_DEVICE
    "x86_64": ("DMA", "DMA32", "Normal", "Movable", "Device"),
    # CONFIG_ZONE_DMA, CONFIG_HIGHMEM, ZONE_MOVABLE (ZONE_DEVICE needs 64 bit)
    "i386": ("DMA", "Normal", "HighMem", "Movable"),
}
# sysctl_lowmem_reserve_ratio defaults by zone name; the scenario gives DMA, DMA32, Normal, HighMem.
LOWMEM_RESERVE_NAMES = ("DMA", "DMA32", "Normal", "HighMem")


class ZoneTypes:
    """The ``enum zone_type`` of one layout: names, indices and the optional zones' fallbacks."""

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.names = ZONE_TYPES[layout]
        self.MAX_NR_ZONES = len(self.names)
        idx = {n: i for i, n in enumerate(self.names)}
        self.index = idx
        self.ZONE_DMA = idx["DMA"]
        self.ZONE_NORMAL = idx["Normal"]
        self.ZONE_MOVABLE = idx["Movable"]
        self.ZONE_DMA32 = idx.get("DMA32")
        self.ZONE_HIGHMEM = idx.get("HighMem")
        self.ZONE_DEVICE = idx.get("Device")
        # OPT_ZONE_DMA32 / OPT_ZONE_HIGHMEM (include/linux/gfp.h): Normal when not configured.
        self.OPT_ZONE_DMA32 = self.ZONE_DMA32 if self.ZONE_DMA32 is not None else self.ZONE_NORMAL
        self.OPT_ZONE_HIGHMEM = self.ZONE_HIGHMEM if self.ZONE_HIGHMEM is not None else self.ZONE_NORMAL

    def is_highmem_idx(self, idx: int) -> bool:
        return idx == self.ZONE_HIGHMEM


# --- counters: enum zone_stat_item, numa_stat_item, node_stat_item ---------------
ZONE_STAT_ITEMS: tuple[str, ...] = (
    "nr_free_pages", "nr_free_pages_blocks", "nr_zone_inactive_anon", "nr_zone_active_anon",
    "nr_zone_inactive_file", "nr_zone_active_file", "nr_zone_unevictable", "nr_zone_write_pending",
    "nr_mlock", "nr_zspages", "nr_free_cma",
)
(NR_FREE_PAGES, NR_FREE_PAGES_BLOCKS, NR_ZONE_INACTIVE_ANON, NR_ZONE_ACTIVE_ANON, NR_ZONE_INACTIVE_FILE,
 NR_ZONE_ACTIVE_FILE, NR_ZONE_UNEVICTABLE, NR_ZONE_WRITE_PENDING, NR_MLOCK, NR_ZSPAGES,
 NR_FREE_CMA_PAGES) = range(len(ZONE_STAT_ITEMS))
NR_ZONE_LRU_BASE = NR_ZONE_INACTIVE_ANON

NUMA_STAT_ITEMS: tuple[str, ...] = (
    "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other")
NUMA_HIT, NUMA_MISS, NUMA_FOREIGN, NUMA_INTERLEAVE_HIT, NUMA_LOCAL, NUMA_OTHER = range(6)

NODE_STAT_ITEMS: tuple[str, ...] = (
    "nr_inactive_anon", "nr_active_anon", "nr_inactive_file", "nr_active_file", "nr_unevictable",
    "nr_slab_reclaimable", "nr_slab_unreclaimable", "nr_isolated_anon", "nr_isolated_file",
    "workingset_nodes", "workingset_refault_anon", "workingset_refault_file",
    "workingset_activate_anon", "workingset_activate_file", "workingset_restore_anon",
    "workingset_restore_file", "workingset_nodereclaim", "nr_anon_pages", "nr_mapped",
    "nr_file_pages", "nr_dirty", "nr_writeback", "nr_shmem", "nr_shmem_hugepages",
    "nr_shmem_pmdmapped", "nr_file_hugepages", "nr_file_pmdmapped", "nr_anon_transparent_hugepages",
    "nr_vmscan_write", "nr_vmscan_immediate_reclaim", "nr_dirtied", "nr_written",
    "nr_throttled_written", "nr_kernel_misc_reclaimable", "nr_foll_pin_acquired",
    "nr_foll_pin_released", "nr_kernel_stack", "nr_page_table_pages", "nr_sec_page_table_pages",
    "nr_iommu_pages", "nr_swapcached", "pgpromote_success", "pgpromote_candidate",
    "pgpromote_candidate_nrl", "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged",
    "pgdemote_proactive", "nr_hugetlb", "nr_balloon_pages", "nr_kernel_file_pages",
)
(NR_INACTIVE_ANON, NR_ACTIVE_ANON, NR_INACTIVE_FILE, NR_ACTIVE_FILE, NR_UNEVICTABLE,
 NR_SLAB_RECLAIMABLE, NR_SLAB_UNRECLAIMABLE, NR_ISOLATED_ANON, NR_ISOLATED_FILE,
 WORKINGSET_NODES, WORKINGSET_REFAULT_ANON, WORKINGSET_REFAULT_FILE, WORKINGSET_ACTIVATE_ANON,
 WORKINGSET_ACTIVATE_FILE, WORKINGSET_RESTORE_ANON, WORKINGSET_RESTORE_FILE, WORKINGSET_NODERECLAIM,
 NR_ANON_MAPPED, NR_FILE_MAPPED, NR_FILE_PAGES, NR_FILE_DIRTY, NR_WRITEBACK, NR_SHMEM, NR_SHMEM_THPS,
 NR_SHMEM_PMDMAPPED, NR_FILE_THPS, NR_FILE_PMDMAPPED, NR_ANON_THPS, NR_VMSCAN_WRITE,
 NR_VMSCAN_IMMEDIATE, NR_DIRTIED, NR_WRITTEN, NR_THROTTLED_WRITTEN, NR_KERNEL_MISC_RECLAIMABLE,
 NR_FOLL_PIN_ACQUIRED, NR_FOLL_PIN_RELEASED, NR_KERNEL_STACK_KB, NR_PAGETABLE, NR_SECONDARY_PAGETABLE,
 NR_IOMMU_PAGES, NR_SWAPCACHE, PGPROMOTE_SUCCESS, PGPROMOTE_CANDIDATE, PGPROMOTE_CANDIDATE_NRL,
 PGDEMOTE_KSWAPD, PGDEMOTE_DIRECT, PGDEMOTE_KHUGEPAGED, PGDEMOTE_PROACTIVE, NR_HUGETLB,
 NR_BALLOON_PAGES, NR_KERNEL_FILE_PAGES) = range(len(NODE_STAT_ITEMS))
NR_LRU_BASE = NR_INACTIVE_ANON
# Units: every node item counts pages except nr_kernel_stack (KiB). The slab items are
# kept in pages here (the kernel keeps bytes and prints pages). The THP items count
# pages and print in units of HPAGE_PMD_NR (vmstat_item_print_in_thp).
NODE_STAT_IN_THP = frozenset({NR_ANON_THPS, NR_SHMEM_THPS, NR_SHMEM_PMDMAPPED, NR_FILE_THPS,
                              NR_FILE_PMDMAPPED})
ZONE_STAT_INDEX = {n: i for i, n in enumerate(ZONE_STAT_ITEMS)}
NODE_STAT_INDEX = {n: i for i, n in enumerate(NODE_STAT_ITEMS)}


def fls(x: int) -> int:
    """Find last set bit, 1-based (0 for 0)."""
    return x.bit_length()


# --- the structures ------------------------------------------------------------------

class FreeArea:
    """``struct free_area``: heads of the free lists per migratetype and ``nr_free``.

    The lists are doubly linked through the entries of ``Zone.buddy``; -1 is
    the end of a list.
    """

    __slots__ = ("head", "tail", "nr_free")

    def __init__(self) -> None:
        self.head = [-1] * MIGRATE_TYPES
        self.tail = [-1] * MIGRATE_TYPES
        self.nr_free = 0

    def empty(self, mt: int) -> bool:
        """``free_area_empty``."""
        return self.head[mt] < 0


class PerCpuPages:
    """``struct per_cpu_pages``: one CPU's lists of free pages for one zone.

    Each list is a deque of pfns: ``list_add`` is ``appendleft``, the
    allocation side takes ``list_first_entry`` (``popleft``), ``rmqueue_bulk``
    adds at the tail (``append``) and ``free_pcppages_bulk`` drains from the
    tail (``pop``). Protected by the owning CPU running with preemption and
    interrupts off (the model's ``pcp->lock``).
    """

    __slots__ = ("count", "high", "high_min", "high_max", "batch", "flags", "alloc_factor",
                 "free_count", "lists", "stat_threshold", "cpu")

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.count = 0  # pages on the lists
        self.high = 0  # high watermark for draining, tuned between high_min and high_max
        self.high_min = BOOT_PAGESET_HIGH
        self.high_max = BOOT_PAGESET_HIGH
        self.batch = BOOT_PAGESET_BATCH  # chunk size for buddy add/remove
        self.flags = 0  # PCPF_*
        self.alloc_factor = 0  # batch scaling factor during allocation
        self.free_count = 0  # consecutive frees without allocation
        self.lists: list[deque[int]] = [deque() for _ in range(NR_PCP_LISTS)]
        self.stat_threshold = 0  # per_cpu_zonestat.stat_threshold (shown in zoneinfo)

    def __repr__(self) -> str:
        return f"<pcp cpu{self.cpu} count={self.count} high={self.high} batch={self.batch}>"


class Zone:
    """``struct zone``: one zone of one node (see the module docstring for its locks)."""

    def __init__(self, machine: "Machine | None", pgdat: "PglistData", idx: int, name: str,
                 start_pfn: int, spanned: int, ncpus: int, highmem: bool = False,
                 movable: bool = False) -> None:
        self.zone_pgdat = pgdat
        self.node = pgdat.node_id
        self.idx = idx  # zone_idx(zone)
        self.name = name
        self.is_highmem = highmem
        self.is_movable = movable
        self.zone_start_pfn = start_pfn
        self.spanned_pages = spanned
        self.present_pages = spanned  # no holes inside a zone in the model
        self.managed_pages = 0  # raised as memblock frees pages to the buddy lists
        self._watermark = [0] * NR_WMARK
        self.watermark_boost = 0
        self.lowmem_reserve: list[int] = []
        self.free_area = [FreeArea() for _ in range(NR_PAGE_ORDERS)]
        self.buddy: dict[int, list[int]] = {}  # free block head pfn -> [prev, next, order, mt]
        self.lock: SpinLock | None = None
        if machine is not None and spanned:
            from ..sim import SpinLock
            self.lock = SpinLock(machine, "&zone->lock")
        first_block = start_pfn >> pageblock_order
        nblocks = ((start_pfn + spanned + pageblock_nr_pages - 1) >> pageblock_order) - first_block if spanned else 0
        self.pageblock_base = first_block
        self.pageblock_mt = bytearray(nblocks)  # migratetype per pageblock (pageblock_flags)
        self.per_cpu_pageset = [PerCpuPages(c) for c in range(ncpus)]
        self.pageset_high_min = BOOT_PAGESET_HIGH
        self.pageset_high_max = BOOT_PAGESET_HIGH
        self.pageset_batch = BOOT_PAGESET_BATCH
        self.vm_stat = [0] * len(ZONE_STAT_ITEMS)
        self.vm_numa_event = [0] * len(NUMA_STAT_ITEMS)
        self.flags = 0  # ZONE_* bits
        self.nr_reserved_highatomic = 0
        self.nr_free_highatomic = 0
        self.nr_allocated = 0  # pages handed out and not yet back (the model's conservation count)
        self.nr_in_flight = 0  # pages taken off pcp lists by a drain, not yet in the buddy lists
        self.debug = False
        self.new_free: list[int] = []  # debug: free block heads added since the last check

    # -- sizes ------------------------------------------------------------------------
    @property
    def zone_end_pfn(self) -> int:
        return self.zone_start_pfn + self.spanned_pages

    def zone_spans_pfn(self, pfn: int) -> bool:
        return self.zone_start_pfn <= pfn < self.zone_start_pfn + self.spanned_pages

    def populated(self) -> bool:
        """``populated_zone``: the zone has present pages."""
        return self.present_pages != 0

    def managed(self) -> bool:
        """``managed_zone``: the zone has pages the buddy allocator manages."""
        return self.managed_pages != 0

    # -- watermarks (min_wmark_pages(z) & co include the boost) --------------------------
    def wmark_pages(self, i: int) -> int:
        return self._watermark[i] + self.watermark_boost

    def min_wmark_pages(self) -> int:
        return self._watermark[WMARK_MIN] + self.watermark_boost

    def low_wmark_pages(self) -> int:
        return self._watermark[WMARK_LOW] + self.watermark_boost

    def high_wmark_pages(self) -> int:
        return self._watermark[WMARK_HIGH] + self.watermark_boost

    def promo_wmark_pages(self) -> int:
        return self._watermark[WMARK_PROMO] + self.watermark_boost

    # -- pageblocks ------------------------------------------------------------------
    def get_pageblock_migratetype(self, pfn: int) -> int:
        return self.pageblock_mt[(pfn >> pageblock_order) - self.pageblock_base]

    def set_pageblock_migratetype(self, pfn: int, mt: int) -> None:
        self.pageblock_mt[(pfn >> pageblock_order) - self.pageblock_base] = mt

    def change_pageblock_range(self, pfn: int, start_order: int, mt: int) -> None:
        """``change_pageblock_range``: every pageblock of a block of ``start_order`` ≥ pageblock_order."""
        for i in range(1 << (start_order - pageblock_order)):
            self.set_pageblock_migratetype(pfn + i * pageblock_nr_pages, mt)

    # -- free lists (zone->lock held) --------------------------------------------------
    def add_to_free_list(self, pfn: int, order: int, mt: int, tail: bool = False) -> None:
        """``__add_to_free_list`` + ``set_buddy_order``: ``pfn`` heads a free block of ``order``."""
        buddy = self.buddy
        if pfn in buddy:
            from ..sim import ModelBug
            raise ModelBug(f"{self.name}: free block at pfn 0x{pfn:x} added twice")
        area = self.free_area[order]
        if tail:
            last = area.tail[mt]
            buddy[pfn] = [last, -1, order, mt]
            if last < 0:
                area.head[mt] = pfn
            else:
                buddy[last][1] = pfn
            area.tail[mt] = pfn
        else:
            first = area.head[mt]
            buddy[pfn] = [-1, first, order, mt]
            if first < 0:
                area.tail[mt] = pfn
            else:
                buddy[first][0] = pfn
            area.head[mt] = pfn
        area.nr_free += 1
        if order >= pageblock_order and mt != MIGRATE_ISOLATE:
            self.vm_stat[NR_FREE_PAGES_BLOCKS] += 1 << order
        if self.debug:
            self.new_free.append(pfn)

    def _unlink(self, pfn: int, e: list[int]) -> None:
        prev, nxt, order, mt = e
        area = self.free_area[order]
        buddy = self.buddy
        if prev < 0:
            area.head[mt] = nxt
        else:
            buddy[prev][1] = nxt
        if nxt < 0:
            area.tail[mt] = prev
        else:
            buddy[nxt][0] = prev

    def del_from_free_list(self, pfn: int) -> list[int]:
        """``__del_page_from_free_list``: take the block at ``pfn`` off its list; returns its entry."""
        e = self.buddy.pop(pfn)
        self._unlink(pfn, e)
        order, mt = e[2], e[3]
        self.free_area[order].nr_free -= 1
        if order >= pageblock_order and mt != MIGRATE_ISOLATE:
            self.vm_stat[NR_FREE_PAGES_BLOCKS] -= 1 << order
        return e

    def move_to_free_list(self, pfn: int, order: int, old_mt: int, new_mt: int) -> None:
        """``move_to_free_list``: to the tail of ``new_mt``'s list, with the free-page accounting."""
        e = self.buddy[pfn]
        assert e[2] == order and e[3] == old_mt, f"pfn 0x{pfn:x}: {e} is not order {order} mt {old_mt}"
        self._unlink(pfn, e)
        area = self.free_area[order]
        last = area.tail[new_mt]
        e[0], e[1], e[3] = last, -1, new_mt
        if last < 0:
            area.head[new_mt] = pfn
        else:
            self.buddy[last][1] = pfn
        area.tail[new_mt] = pfn
        if order >= pageblock_order and (old_mt == MIGRATE_ISOLATE) != (new_mt == MIGRATE_ISOLATE):
            self.vm_stat[NR_FREE_PAGES_BLOCKS] += (1 << order) if old_mt == MIGRATE_ISOLATE else -(1 << order)
        self.account_freepages(-(1 << order), old_mt)
        self.account_freepages(1 << order, new_mt)

    def account_freepages(self, nr_pages: int, mt: int) -> None:
        """``account_freepages``: NR_FREE_PAGES and the highatomic count (isolated pages are not free)."""
        if mt == MIGRATE_ISOLATE:
            return
        self.vm_stat[NR_FREE_PAGES] += nr_pages
        if mt == MIGRATE_HIGHATOMIC:
            self.nr_free_highatomic += nr_pages

    def free_list(self, order: int, mt: int) -> list[int]:
        """The pfns on one free list, head first (for /proc, tests and checks)."""
        out = []
        pfn = self.free_area[order].head[mt]
        buddy = self.buddy
        while pfn >= 0:
            out.append(pfn)
            pfn = buddy[pfn][1]
        return out

    def buddy_free_pages(self) -> int:
        """Free pages in the buddy lists, counted from ``nr_free`` (independent of NR_FREE_PAGES)."""
        return sum(a.nr_free << o for o, a in enumerate(self.free_area))

    def pcp_pages(self) -> int:
        """Pages on the pcp lists by ``pcp->count`` (what zoneinfo shows)."""
        return sum(p.count for p in self.per_cpu_pageset)

    def pcp_list_pages(self) -> int:
        """Pages physically on the pcp lists (``pcp->count`` lags during a refill)."""
        return sum(len(lst) << pindex_to_order(i) for p in self.per_cpu_pageset for i, lst in enumerate(p.lists))

    def __repr__(self) -> str:
        return f"<Zone {self.node}:{self.name} pfn 0x{self.zone_start_pfn:x}+{self.spanned_pages}>"


def zone_idx(zone: Zone) -> int:
    return zone.idx


class PglistData:
    """``pglist_data`` (``pg_data_t``): one NUMA node, its zones, zonelists and node counters.

    ``kswapd_*`` fields are for the reclaim subsystem (mm/vmscan.c).
    """

    def __init__(self, node_id: int, cpus: Sequence[int]) -> None:
        self.node_id = node_id
        self.node_zones: list[Zone] = []
        self.node_zonelists: list[list[Zone]] = [[], []]  # ZONELIST_FALLBACK, ZONELIST_NOFALLBACK
        self.node_start_pfn = 0
        self.node_spanned_pages = 0
        self.node_present_pages = 0
        self.cpus = list(cpus)  # cpumask_of_node
        self.vm_stat = [0] * len(NODE_STAT_ITEMS)
        self.totalreserve_pages = 0
        self.kswapd: Any = None
        self.kswapd_order = 0
        self.kswapd_highest_zoneidx = 0
        self.kswapd_failures = 0

    def populated_zones(self) -> Iterator[Zone]:
        return (z for z in self.node_zones if z.populated())

    def __repr__(self) -> str:
        return f"<Node {self.node_id}>"


ZONELIST_FALLBACK = 0
ZONELIST_NOFALLBACK = 1


# --- counters ----------------------------------------------------------------------

def mod_zone_page_state(zone: Zone, item: int, delta: int) -> None:
    """``mod_zone_page_state``: add ``delta`` to zone counter ``item`` (an index of ZONE_STAT_ITEMS)."""
    zone.vm_stat[item] += delta


def mod_node_page_state(pgdat: PglistData, item: int, delta: int) -> None:
    """``mod_node_page_state``: add ``delta`` to node counter ``item`` (an index of NODE_STAT_ITEMS)."""
    pgdat.vm_stat[item] += delta


def zone_page_state(zone: Zone, item: int) -> int:
    return zone.vm_stat[item]


def node_page_state(pgdat: PglistData, item: int) -> int:
    return pgdat.vm_stat[item]


def global_zone_page_state(nodes: Iterable[PglistData], item: int) -> int:
    return sum(z.vm_stat[item] for p in nodes for z in p.node_zones)


def global_node_page_state(nodes: Iterable[PglistData], item: int) -> int:
    return sum(p.vm_stat[item] for p in nodes)


def zone_reclaimable_pages(zone: Zone) -> int:
    """``zone_reclaimable_pages`` (mm/vmscan.c): file LRU pages, plus anon ones when swap could take them.

    Swap is not modelled yet, so anon pages count only when a caller says so.
    """
    v = zone.vm_stat
    return v[NR_ZONE_INACTIVE_FILE] + v[NR_ZONE_ACTIVE_FILE]


# --- boot-time and sysctl-time settings (mm/page_alloc.c) -------------------------

def all_zones(nodes: Iterable[PglistData]) -> Iterator[Zone]:
    """``for_each_zone``: every zone of every node, populated or not."""
    for p in nodes:
        yield from p.node_zones


def build_zonelists(nodes: Sequence[PglistData]) -> None:
    """``build_zonelists``: per node, its own populated zones highest first, then the other nodes'.

    Node order is the kernel's ``find_next_best_node`` with equal distances:
    the local node, then the following nodes, wrapping. The NOFALLBACK list
    (``__GFP_THISNODE``) holds only the local node's zones.
    """
    n = len(nodes)
    for p in nodes:
        order = [nodes[(p.node_id + i) % n] for i in range(n)]
        fallback: list[Zone] = []
        for q in order:
            fallback.extend(z for z in reversed(q.node_zones) if z.populated())
        p.node_zonelists[ZONELIST_FALLBACK] = fallback
        p.node_zonelists[ZONELIST_NOFALLBACK] = [z for z in reversed(p.node_zones) if z.populated()]


def nr_free_buffer_pages(nodes: Sequence[PglistData], types: ZoneTypes) -> int:
    """``nr_free_buffer_pages``: managed pages above the high watermark in zones ≤ gfp_zone(GFP_USER)."""
    total = 0
    for z in nodes[0].node_zonelists[ZONELIST_FALLBACK]:
        if z.idx <= types.ZONE_NORMAL:
            high = z.high_wmark_pages()
            if z.managed_pages > high:
                total += z.managed_pages - high
    return total


def calculate_min_free_kbytes(nodes: Sequence[PglistData], types: ZoneTypes) -> int:
    """``calculate_min_free_kbytes``: sqrt(lowmem KiB × 16), clamped to 128 … 262144."""
    lowmem_kbytes = nr_free_buffer_pages(nodes, types) * 4
    return min(max(isqrt(lowmem_kbytes * 16), 128), 262144)


def setup_per_zone_wmarks(nodes: Sequence[PglistData], min_free_kbytes: int, watermark_scale_factor: int) -> None:
    """``__setup_per_zone_wmarks``: min in proportion to each lowmem zone's size, low/high/promo above it.

    Highmem and Movable zones get a small capped min (they rarely serve the
    reserves) but the full kswapd distances.
    """
    pages_min = min_free_kbytes >> 2
    lowmem_pages = sum(z.managed_pages for z in all_zones(nodes) if not z.is_highmem and not z.is_movable)
    for z in all_zones(nodes):
        tmp = pages_min * z.managed_pages // lowmem_pages if lowmem_pages else 0
        if z.is_highmem or z.is_movable:
            z._watermark[WMARK_MIN] = min(max(z.managed_pages // 1024, SWAP_CLUSTER_MAX), 128)
        else:
            z._watermark[WMARK_MIN] = tmp
        tmp = max(tmp >> 2, z.managed_pages * watermark_scale_factor // 10000)
        z.watermark_boost = 0
        z._watermark[WMARK_LOW] = z._watermark[WMARK_MIN] + tmp
        z._watermark[WMARK_HIGH] = z._watermark[WMARK_LOW] + tmp
        z._watermark[WMARK_PROMO] = z._watermark[WMARK_HIGH] + tmp
    calculate_totalreserve_pages(nodes)


def setup_per_zone_lowmem_reserve(nodes: Sequence[PglistData], ratios: Sequence[int]) -> None:
    """``setup_per_zone_lowmem_reserve``: lowmem_reserve[j] = managed pages of zones i+1 … j / ratio[i]."""
    for p in nodes:
        nz = len(p.node_zones)
        for i, z in enumerate(p.node_zones):
            z.lowmem_reserve = [0] * nz
            if i == nz - 1:
                continue
            ratio = ratios[i]
            clear = not ratio or not z.managed_pages
            managed = 0
            for j in range(i + 1, nz):
                managed += p.node_zones[j].managed_pages
                z.lowmem_reserve[j] = 0 if clear else managed // ratio
    calculate_totalreserve_pages(nodes)


def calculate_totalreserve_pages(nodes: Sequence[PglistData]) -> int:
    """``calculate_totalreserve_pages``: per zone the largest lowmem_reserve plus the high watermark."""
    total = 0
    for p in nodes:
        p.totalreserve_pages = 0
        for i, z in enumerate(p.node_zones):
            m = max(z.lowmem_reserve[i:], default=0) if z.lowmem_reserve else 0
            m += z.high_wmark_pages()
            m = min(m, z.managed_pages)
            p.totalreserve_pages += m
            total += m
    return total


def rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n > 0 else 0


def zone_batchsize(zone: Zone) -> int:
    """``zone_batchsize``: ~0.1% of the zone or 1 MiB, quartered, rounded to 2^n - 1."""
    batch = min(zone.managed_pages >> 10, (1 << 20) // 4096)
    batch //= 4
    if batch < 1:
        batch = 1
    return rounddown_pow_of_two(batch + batch // 2) - 1


def zone_highsize(zone: Zone, batch: int, cpu_online: int, high_fraction: int, ncpus: int) -> int:
    """``zone_highsize``: the low watermark (or managed / fraction) shared among the node's CPUs, ≥ 4 × batch."""
    if not high_fraction:
        total_pages = zone.low_wmark_pages()
    else:
        total_pages = zone.managed_pages // high_fraction
    nr_split_cpus = len(zone.zone_pgdat.cpus) + cpu_online
    if not nr_split_cpus:
        nr_split_cpus = ncpus
    high = total_pages // nr_split_cpus
    return max(high, batch << 2)


def zone_set_pageset_high_and_batch(zone: Zone, ncpus: int, batch_override: int | None = None,
                                    high_override: int | None = None) -> None:
    """``zone_set_pageset_high_and_batch``: new batch, high_min, high_max for every CPU's pageset.

    ``batch_override`` is the scenario's ``pcp_batch``; ``high_override``
    (``pcp_high``) fixes high_min = high_max as ``percpu_pagelist_high_fraction``
    does, which disables the auto-tuning of ``pcp->high``.
    """
    new_batch = batch_override if batch_override is not None else max(1, zone_batchsize(zone))
    if high_override is not None:
        high_min = high_max = high_override
    else:
        high_min = zone_highsize(zone, new_batch, 0, 0, ncpus)
        high_max = zone_highsize(zone, new_batch, 0, MIN_PERCPU_PAGELIST_HIGH_FRACTION, ncpus)
    zone.pageset_high_min = high_min
    zone.pageset_high_max = high_max
    zone.pageset_batch = new_batch
    for pcp in zone.per_cpu_pageset:
        pcp.batch = new_batch
        pcp.high_min = high_min
        pcp.high_max = high_max


def calculate_normal_threshold(zone: Zone, ncpus: int) -> int:
    """``calculate_normal_threshold`` (mm/vmstat.c): the per-CPU counter drift allowed."""
    mem = zone.managed_pages >> (27 - 12)
    return min(125, 2 * fls(ncpus) * (1 + fls(mem)))


def refresh_zone_stat_thresholds(nodes: Sequence[PglistData], ncpus: int) -> None:
    for z in all_zones(nodes):
        if z.populated():
            t = calculate_normal_threshold(z, ncpus)
            for pcp in z.per_cpu_pageset:
                pcp.stat_threshold = t

