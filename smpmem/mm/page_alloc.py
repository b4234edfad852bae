"""Zoned buddy allocator: models mm/page_alloc.c (Linux 6.12) and its boot (mm/mm_init.c, memblock).

Modelled:

- Boot (``mm_core_init``): memblock reserves the first MiB (x86
  ``reserve_real_mode``), the kernel image and each node's ``mem_map``
  (sizeof(struct page) per frame: 64 bytes, 32 on i386; allocated top-down like ``memblock_alloc``); page 0
  is not RAM (``trim_bios_range``). Zones get spanned/present/managed pages
  and everything else is freed to the buddy lists in the largest aligned
  blocks (``memblock_free_all`` → ``__free_pages_core``), every pageblock
  starting MIGRATE_MOVABLE. Then zonelists, pagesets, min_free_kbytes,
  watermarks and lowmem_reserve (``init_per_zone_wmark_min``).
- The buddy lists: ``__free_one_page`` merges while the buddy (pfn ^ 2^order)
  is free with the same order; ``expand`` splits; ``__rmqueue_smallest``;
  fallback between migratetypes with the kernel's ``fallbacks[]`` order
  (``__rmqueue_claim`` claiming whole pageblocks, ``__rmqueue_steal``
  taking single blocks) and ``mm_page_alloc_extfrag``; watermark boosting;
  highatomic reserves.
- Per-CPU pagesets: ``rmqueue_pcplist``/``rmqueue_bulk`` refill under
  ``zone->lock``; ``free_unref_page_commit``/``free_pcppages_bulk`` drain
  when ``count >= high``, with 6.12's auto-tuned ``high`` (``nr_pcp_high``,
  ``nr_pcp_alloc``, ``nr_pcp_free``); ``drain_all_pages``.
- The fast path (``get_page_from_freelist`` with ALLOC_WMARK_LOW and
  ALLOC_NOFRAGMENT) and the slow path (``__alloc_pages_slowpath``): wake
  kswapd, min watermark with the reserves ``gfp_to_alloc_flags`` grants,
  direct reclaim, drain and retry, ``should_reclaim_retry``, the OOM killer,
  ``__GFP_NOFAIL``; failure is ``None`` (ENOMEM), never an exception.

Simplified:

- No compaction, CMA, memory hotplug, page isolation, cpusets, node reclaim,
  KASAN or page poisoning. Costly allocations behave as if compaction ran
  and found nothing.
- ``pcp->lock`` is modelled as the owning CPU running with preemption and
  interrupts off (what kernels before 5.14 did with ``local_irq_save``).
  ``drain_all_pages`` sends IPIs, as kernels up to 4.10 did with
  ``on_each_cpu_mask`` (6.12 drains remote lists directly under
  ``pcp->lock``): the handler runs in interrupt context on each CPU and
  takes that CPU's lists off; the caller then gives them back to the buddy
  lists under ``zone->lock`` (a handler cannot wait for a spinlock in the
  engine). Until then they are counted as ``zone.nr_in_flight``.
- A page's content token and LRU state belong to other subsystems; this
  module only creates and destroys :class:`~smpmem.mm.page.Page` objects.

Use from other subsystems (``th`` is the running :class:`~smpmem.sim.Thread`)::

    page = await alloc_pages(th, GFP_KERNEL, order)   # Page, or None (ENOMEM)
    await free_pages(th, page, order)                  # __free_pages: drops the reference
    await free_unref_folios(kernel.page_alloc, th, pages)  # a batch whose refcounts are already 0
    mod_node_page_state(page.zone.zone_pgdat, NR_ANON_MAPPED, +1)  # counters: smpmem.mm.zone
    kernel.vmstat["pgfault"] += 1                      # vm events, by /proc/vmstat name
    kernel.page_alloc.meminfo_sources.register("total_swap_pages", fn)

``__free_pages`` and the other ``__`` names are mangled inside a class body;
call them from module-level code, or use ``free_pages`` / ``free_pages_``.

Locks: ``zone->lock`` (a :class:`~smpmem.sim.SpinLock`, class ``&zone->lock``,
always taken with the irqsave form) protects every zone field listed in
:mod:`smpmem.mm.zone`; ``oom_lock`` and ``pcpu_drain_mutex`` are mutexes.
Functions whose names start with ``__`` (the buddy core) run with
``zone->lock`` held and never wait; they charge their cost to the thread
that holds the lock, so the hold time in lock_stat includes the work.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..sim import ModelBug, Mutex
from ..trace.events import kmem as kmem_events
from ..trace.events import oom as oom_events
from . import gfp as G
from .gfp import (
    ALLOC_CPUSET,
    ALLOC_HIGHATOMIC,
    ALLOC_KSWAPD,
    ALLOC_MIN_RESERVE,
    ALLOC_NO_WATERMARKS,
    ALLOC_NOFRAGMENT,
    ALLOC_NON_BLOCK,
    ALLOC_OOM,
    ALLOC_RESERVES,
    ALLOC_WMARK_HIGH,
    ALLOC_WMARK_LOW,
    ALLOC_WMARK_MASK,
    ALLOC_WMARK_MIN,
    gfp_migratetype,
    gfp_to_alloc_flags,
    gfp_zone,
    gfp_zone_table,
)
from .page import PG_head, PG_lru, MemMap, Page, STRUCT_PAGE_SIZE, bad_free_page_reason, show_page_flags
from .zone import (
    CONFIG_PCP_BATCH_SCALE_MAX,
    HPAGE_PMD_ORDER,
    MAX_PAGE_ORDER,
    MAX_RECLAIM_RETRIES,
    MIGRATE_TYPES,
    NR_ACTIVE_ANON,
    NR_ACTIVE_FILE,
    NR_FREE_PAGES,
    NR_INACTIVE_ANON,
    NR_INACTIVE_FILE,
    NR_KERNEL_MISC_RECLAIMABLE,
    NR_PAGE_ORDERS,
    NR_PCP_LISTS,
    NR_SLAB_RECLAIMABLE,
    NR_ZONE_ACTIVE_ANON,
    NR_ZONE_ACTIVE_FILE,
    NR_ZONE_INACTIVE_ANON,
    NR_ZONE_INACTIVE_FILE,
    NUMA_FOREIGN,
    NUMA_HIT,
    NUMA_LOCAL,
    NUMA_MISS,
    NUMA_OTHER,
    PAGE_ALLOC_COSTLY_ORDER,
    PCPF_FREE_HIGH_BATCH,
    PCPF_PREV_FREE_HIGH_ORDER,
    ZONE_BELOW_HIGH,
    ZONE_BOOSTED_WATERMARK,
    ZONE_RECLAIM_ACTIVE,
    ZONELIST_FALLBACK,
    ZONELIST_NOFALLBACK,
    PerCpuPages,
    PglistData,
    Zone,
    ZoneTypes,
    all_zones,
    build_zonelists,
    calculate_min_free_kbytes,
    calculate_totalreserve_pages,
    global_node_page_state,
    global_zone_page_state,
    migratetype_is_mergeable,
    order_to_pindex,
    pageblock_nr_pages,
    pageblock_order,
    pcp_allowed_order,
    pindex_to_order,
    refresh_zone_stat_thresholds,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
    zone_set_pageset_high_and_batch,
)
from ..trace.gfp import (
    MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
)

if TYPE_CHECKING:
    from ..sim import CPU, Thread

KiB = 1024
MiB = 1024 * KiB
PAGE_SHIFT = 12
HZ = 250  # Debian's CONFIG_HZ
JIFFY_NS = 1_000_000_000 // HZ

# fallbacks[] (mm/page_alloc.c): the lists a migratetype falls back to, in order.
FALLBACKS: tuple[tuple[int, int], ...] = (
    (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),    # MIGRATE_UNMOVABLE
    (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),  # MIGRATE_MOVABLE
    (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),      # MIGRATE_RECLAIMABLE
)

# enum rmqueue_mode
RMQUEUE_NORMAL, RMQUEUE_CMA, RMQUEUE_CLAIM, RMQUEUE_STEAL = range(4)
FPI_NONE = 0
FPI_TO_TAIL = 1 << 1


class BadPage(ModelBug):
    """``bad_page()``: a page handed to the allocator in a state it must not be in.

    The message follows the kernel's ``BUG: Bad page state in process %s
    pfn:%05lx`` and adds the reason; ``pfn`` is an attribute.
    """

    def __init__(self, comm: str, pfn: int, reason: str) -> None:
        super().__init__(f"BUG: Bad page state in process {comm}  pfn:{pfn:05x}: {reason}")
        self.pfn = pfn
        self.reason = reason


class BootError(ValueError):
    """The machine cannot boot with this memory layout (misuse: a clear message, exit 2 at the CLI)."""


# --- boot-time memory: memblock -------------------------------------------------------

# sizeof(struct page): 64 bytes on x86_64 (STRUCT_PAGE_SIZE), 32 on i386.
STRUCT_PAGE_BYTES = {"x86_64": STRUCT_PAGE_SIZE, "i386": 32}

KERNEL_IMAGE_SIZE = {
    # Resident text + rodata + data + bss of a distribution kernel, rounded (init is freed later).
    "x86_64": 16 * MiB,
    "i386": 8 * MiB,
}


@dataclass(frozen=True)
class BootMem:
    """What memblock reserves before the buddy allocator takes the rest.

    ``Kernel.bootmem`` holds the one a kernel boots with; a test that wants
    a toy machine (every frame free) boots a subclass with ``BootMem.none()``.
    """

    reserve_low: int = 1 * MiB  # reserve_real_mode(): the first 1 MiB is never given out
    trim_first_page: bool = True  # trim_bios_range(): page 0 belongs to the BIOS, not RAM
    kernel_image: int | None = None  # bytes; None = KERNEL_IMAGE_SIZE of the layout
    physical_start: int = 16 * MiB  # CONFIG_PHYSICAL_START
    physical_align: int = 2 * MiB  # CONFIG_PHYSICAL_ALIGN (where a relocated kernel may go)
    memmap: bool = True  # reserve sizeof(struct page) per present frame for mem_map

    @classmethod
    def none(cls) -> "BootMem":
        """No reservations at all: every frame of every zone is free after boot (toy machines)."""
        return cls(reserve_low=0, trim_first_page=False, kernel_image=0, memmap=False)


@dataclass(frozen=True)
class Region:
    """A physical range in pfns, ``[start, end)``, with what it is."""

    start: int
    end: int
    what: str

    @property
    def pages(self) -> int:
        return self.end - self.start


class Memblock:
    """``memblock``: memory ranges and reserved ranges, with top-down allocation (mm/memblock.c)."""

    def __init__(self, memory: list[Region]) -> None:
        self.memory = sorted(memory, key=lambda r: r.start)
        self.reserved: list[Region] = []

    def reserve(self, start: int, end: int, what: str) -> None:
        if end > start:
            self.reserved.append(Region(start, end, what))
            self.reserved.sort(key=lambda r: r.start)

    def is_free(self, start: int, end: int) -> bool:
        """The range is memory and not reserved."""
        if not any(m.start <= start and end <= m.end for m in self.memory):
            return False
        return not any(r.start < end and start < r.end for r in self.reserved)

    def free_ranges(self) -> list[tuple[int, int]]:
        """Memory minus reserved ranges (``for_each_free_mem_range``)."""
        out = []
        for m in self.memory:
            cur = m.start
            for r in self.reserved:
                if r.end <= cur or r.start >= m.end:
                    continue
                if r.start > cur:
                    out.append((cur, r.start))
                cur = max(cur, r.end)
            if cur < m.end:
                out.append((cur, m.end))
        return out

    def alloc_top_down(self, pages: int, lo: int, hi: int, what: str) -> Region | None:
        """``memblock_alloc_range`` top-down: the highest free range of ``pages`` inside [lo, hi)."""
        for start, end in reversed(self.free_ranges()):
            s, e = max(start, lo), min(end, hi)
            if e - s >= pages:
                self.reserve(e - pages, e, what)
                return Region(e - pages, e, what)
        return None

    def reserved_in(self, start: int, end: int) -> int:
        return sum(max(0, min(r.end, end) - max(r.start, start)) for r in self.reserved)


# --- the allocation context -------------------------------------------------------------


class AllocContext:
    """``struct alloc_context``: what one allocation iterates over."""

    __slots__ = ("zonelist", "preferred_zone", "highest_zoneidx", "migratetype", "spread_dirty_pages")

    def __init__(self, zonelist: list[Zone], highest_zoneidx: int, migratetype: int) -> None:
        self.zonelist = zonelist  # eligible zones (idx ≤ highest_zoneidx), preferred first
        self.preferred_zone = zonelist[0] if zonelist else None
        self.highest_zoneidx = highest_zoneidx
        self.migratetype = migratetype
        self.spread_dirty_pages = False


class MemInfoSources:
    """Figures /proc/meminfo and /proc/vmstat need that are not zone or node counters.

    Each figure is a zero-argument callable registered by the subsystem that
    knows it (``kernel.meminfo_sources.register("total_swap_pages", fn)``);
    an unregistered figure is 0. Zone and node counters (LRU lists, slab,
    dirty, writeback, anon, mapped, shmem, kernel stack, page tables) are not
    here: subsystems update them with ``mod_node_page_state`` /
    ``mod_zone_page_state`` and the renderers read them.
    """

    FIGURES: dict[str, str] = {
        "nr_blockdev_pages": "pages of block-device page cache (Buffers)",
        "total_swapcache_pages": "pages in the swap cache (SwapCached)",
        "total_swap_pages": "pages of swap space (SwapTotal)",
        "nr_swap_pages": "free pages of swap space (SwapFree)",
        "zswap_total_pages": "pages the zswap pool uses (Zswap)",
        "zswap_stored_pages": "pages stored compressed in zswap (Zswapped)",
        "vm_committed_as": "pages committed by mappings (Committed_AS)",
        "vmalloc_nr_pages": "pages backing vmalloc areas (VmallocUsed)",
        "pcpu_nr_pages": "pages of the per-CPU allocator (Percpu)",
        "nr_huge_pages": "hugetlb pages (HugePages_Total)",
        "free_huge_pages": "free hugetlb pages (HugePages_Free)",
        "resv_huge_pages": "reserved hugetlb pages (HugePages_Rsvd)",
        "surplus_huge_pages": "surplus hugetlb pages (HugePages_Surp)",
        "nr_memmap_pages": "mem_map pages of hot-added memory (nr_memmap_pages)",
        "dirty_thresholds": "(background, dirty) thresholds in pages; default: global_dirty_limits",
    }

    def __init__(self) -> None:
        self._fns: dict[str, Callable[[], Any]] = {}

    def register(self, name: str, fn: Callable[[], Any]) -> None:
        """Provide figure ``name``; replaces an earlier provider."""
        if name not in self.FIGURES:
            raise KeyError(f"unknown meminfo figure {name!r}; known: {', '.join(self.FIGURES)}")
        self._fns[name] = fn

    def provided(self, name: str) -> bool:
        return name in self._fns

    def get(self, name: str, default: Any = 0) -> Any:
        fn = self._fns.get(name)
        return default if fn is None else fn()


# --- the allocator ------------------------------------------------------------------------


class PageAllocator:
    """The page allocator's global state and functions: ``NODE_DATA``, ``mem_map``, the sysctls.

    One per kernel (``kernel.page_alloc``); built by :func:`page_alloc_init`.
    """

    def __init__(self, kernel: Any, bootmem: BootMem | None = None) -> None:
        self.kernel = kernel
        self.machine = kernel
        self.costs = kernel.costs
        self.tracer = kernel.tracer
        self.vmstat = kernel.tracer.vmstat  # vm_event counters by /proc/vmstat name
        cfg = kernel.config
        self.layout = cfg.layout
        self.types = ZoneTypes(cfg.layout)
        self.bootmem = bootmem or BootMem()
        self.ncpus = len(kernel.cpus)
        self.mem_map = MemMap(MAX_PAGE_ORDER)
        self.nodes: list[PglistData] = []
        self.zones: list[Zone] = []  # every zone of every node, node by node, in zone_type order
        self.populated: list[Zone] = []
        self.gfp_table = gfp_zone_table(self.types)
        self.memblock: Memblock | None = None
        self.kernel_image: Region | None = None
        self.memmap_regions: list[Region] = []
        self.memmap_boot_pages = 0
        self.totalram_pages = 0
        self.totalreserve_pages = 0
        self.page_group_by_mobility_disabled = False
        t = kernel.tunables
        self.user_min_free_kbytes = t.min_free_kbytes
        self.min_free_kbytes = 0
        self.watermark_scale_factor = t.watermark_scale_factor
        self.watermark_boost_factor = 15000  # vm.watermark_boost_factor default
        self.lowmem_reserve_ratio = self._reserve_ratios(t.lowmem_reserve_ratio)
        self.pcp_batch = t.pcp_batch
        self.pcp_high = t.pcp_high
        self.meminfo_sources = MemInfoSources()
        self.oom_lock = Mutex(kernel, "oom_lock")
        self.pcpu_drain_mutex = Mutex(kernel, "pcpu_drain_mutex")
        # Threads running with PF_MEMALLOC (reclaimers) and OOM victims allowed into the reserves.
        self.memalloc_threads: "weakref.WeakSet[Thread]" = weakref.WeakSet()
        self.oom_reserve_threads: "weakref.WeakSet[Thread]" = weakref.WeakSet()
        # zone_reclaimable_pages(zone): file LRU, plus anon LRU when swap has room (mm/vmscan.c).
        self.zone_reclaimable_pages: Callable[[Zone], int] = lambda zone: _zone_reclaimable_pages(self, zone)
        self.nr_alloc_failures = 0
        self.alloc_failures: list[str] = []  # warn_alloc() messages, most recent last (at most 100)
        self._zonelists: dict[tuple[int, bool], list[list[Zone]]] = {}
        self._pgalloc_names: list[str] = []
        self.check_failed = False  # a check has reported a broken invariant (reported once)

    def _reserve_ratios(self, ratios: Sequence[int]) -> list[int]:
        """sysctl_lowmem_reserve_ratio by zone index: the scenario's DMA, DMA32, Normal, HighMem; 0 beyond."""
        by_name = dict(zip(("DMA", "DMA32", "Normal", "HighMem"), ratios))
        return [by_name.get(n, 0) for n in self.types.names]

    # ------------------------------------------------------------------------------------
    # Boot
    # ------------------------------------------------------------------------------------
    def boot(self) -> None:
        """``mm_core_init`` for memory: memblock, free_area_init, memblock_free_all, zonelists, watermarks."""
        kernel = self.kernel
        cfg = kernel.config
        types = self.types
        layout = cfg.zone_layout()
        nnodes = cfg.nodes
        for nid in range(nnodes):
            cpus = [c for c in range(self.ncpus) if c % nnodes == nid]
            self.nodes.append(PglistData(nid, cpus))
        # Memory ranges: the zones (RAM outside every zone is a hole); page 0 is the BIOS's.
        spans: dict[tuple[int, str], tuple[int, int]] = {}
        memory: list[Region] = []
        for z in layout:
            start, end = z.start >> PAGE_SHIFT, z.end >> PAGE_SHIFT
            if start == 0 and self.bootmem.trim_first_page:
                start = 1
            if end <= start:
                raise BootError(f"zone {z.name} of node {z.node} [{z.start:#x}, {z.end:#x}) holds no page "
                                f"once page 0 is left to the BIOS")
            spans[(z.node, z.name)] = (start, end)
            memory.append(Region(start, end, f"node {z.node} {z.name}"))
        mb = self.memblock = Memblock(memory)
        self._reserve_boot_memory(mb, spans)
        # free_area_init: every zone type of every node, empty where the layout has none.
        for p in self.nodes:
            for idx, name in enumerate(types.names):
                start, end = spans.get((p.node_id, name), (0, 0))
                z = Zone(kernel, p, idx, name, start, end - start, self.ncpus,
                         highmem=types.is_highmem_idx(idx), movable=idx == types.ZONE_MOVABLE)
                z.debug = bool(kernel.debug_vm)
                if z.populated():
                    for b in range(len(z.pageblock_mt)):
                        z.pageblock_mt[b] = MIGRATE_MOVABLE  # memmap_init_range
                p.node_zones.append(z)
                self.zones.append(z)
            pop = [z for z in p.node_zones if z.populated()]
            if pop:
                p.node_start_pfn = min(z.zone_start_pfn for z in pop)
                p.node_spanned_pages = max(z.zone_end_pfn for z in pop) - p.node_start_pfn
                p.node_present_pages = sum(z.present_pages for z in pop)
        self.populated = [z for z in self.zones if z.populated()]
        self._pgalloc_names = ["pgalloc_" + ("high" if n == "HighMem" else n.lower()) for n in types.names]
        # memblock_free_all: the free ranges to the buddy lists, zone by zone.
        for z in self.populated:
            for start, end in mb.free_ranges():
                s, e = max(start, z.zone_start_pfn), min(end, z.zone_end_pfn)
                if e > s:
                    self._free_pages_memory(z, s, e)
            reserved = z.present_pages - z.managed_pages
            assert reserved == mb.reserved_in(z.zone_start_pfn, z.zone_end_pfn), z
        self.totalram_pages = sum(z.managed_pages for z in self.zones)
        lowmem = sum(z.managed_pages for z in self.zones if not z.is_highmem and not z.is_movable)
        if lowmem == 0:
            raise BootError("no lowmem page is left for the kernel after the boot reservations "
                            f"({self._reservations_text()})")
        # build_all_zonelists
        build_zonelists(self.nodes)
        vm_total_pages = sum(z.managed_pages for z in self.nodes[0].node_zonelists[ZONELIST_FALLBACK])
        self.page_group_by_mobility_disabled = vm_total_pages < pageblock_nr_pages * MIGRATE_TYPES
        self._build_zonelist_cache()
        # setup_per_cpu_pageset + init_per_zone_wmark_min
        self.init_per_zone_wmark_min()
        if kernel.debug_vm:
            for z in self.populated:
                reason = check_zone_structure(z)
                if reason:
                    raise ModelBug(f"after boot: {reason}")
                z.new_free.clear()
        kernel.add_check("page_alloc:conservation", self.check_conservation)
        kernel.add_check("page_alloc:free-blocks", self.check_new_free_blocks)

    def _reserve_boot_memory(self, mb: Memblock, spans: dict[tuple[int, str], tuple[int, int]]) -> None:
        """The memblock reservations of x86 setup_arch: low memory, the kernel image, then mem_map."""
        bm = self.bootmem
        mb.reserve(0, bm.reserve_low >> PAGE_SHIFT, "real mode and BIOS (first 1 MiB)")
        # Lowmem: what the kernel maps directly (i386: below 896 MiB, i.e. DMA and Normal).
        lowmem_end = max((e for (nid, name), (s, e) in spans.items() if name not in ("HighMem", "Movable")),
                         default=0)
        size = KERNEL_IMAGE_SIZE[self.layout] if bm.kernel_image is None else bm.kernel_image
        pages = -(-size // 4096)
        if pages:
            align = bm.physical_align >> PAGE_SHIFT
            candidates = [bm.physical_start >> PAGE_SHIFT]
            candidates += list(range(max(align, (bm.reserve_low >> PAGE_SHIFT) + align - 1) // align * align,
                                     lowmem_end, align))
            for start in candidates:
                if start + pages <= lowmem_end and mb.is_free(start, start + pages):
                    mb.reserve(start, start + pages, "kernel image")
                    self.kernel_image = Region(start, start + pages, "kernel image")
                    break
            else:
                raise BootError(f"machine.ram is too small for the kernel: its image needs {size // KiB} KiB of "
                                f"lowmem above the first {bm.reserve_low // KiB} KiB "
                                f"(lowmem ends at {lowmem_end * 4} KiB)")
        if bm.memmap:
            for p in self.nodes:
                present = sum(e - s for (nid, name), (s, e) in spans.items() if nid == p.node_id)
                if not present:
                    continue
                pages = -(-present * STRUCT_PAGE_BYTES[self.layout] // 4096)
                lo = min(s for (nid, _), (s, e) in spans.items() if nid == p.node_id)
                hi = max(e for (nid, name), (s, e) in spans.items()
                         if nid == p.node_id and (self.layout != "i386" or name not in ("HighMem", "Movable")))
                hi = max(hi, lo) if any(nid == p.node_id for (nid, _) in spans) else lo
                r = mb.alloc_top_down(pages, lo, hi, f"mem_map of node {p.node_id}")
                if r is None:  # memblock_alloc_try_nid falls back to any node's lowmem
                    r = mb.alloc_top_down(pages, 0, lowmem_end, f"mem_map of node {p.node_id}")
                if r is None:
                    raise BootError(f"node {p.node_id} is too small to hold its mem_map: {present} pages need "
                                    f"{pages} pages ({pages * 4} KiB) of struct page, and no lowmem is left "
                                    f"for it ({self._reservations_text()})")
                self.memmap_regions.append(r)
                self.memmap_boot_pages += pages

    def _reservations_text(self) -> str:
        assert self.memblock is not None
        return "; ".join(f"{r.what}: {r.pages} pages" for r in self.memblock.reserved)

    def _free_pages_memory(self, zone: Zone, start: int, end: int) -> None:
        """``__free_pages_memory``: the largest aligned blocks, each through ``__free_pages_core``."""
        while start < end:
            order = min(MAX_PAGE_ORDER, (start & -start).bit_length() - 1 if start else MAX_PAGE_ORDER)
            while start + (1 << order) > end:
                order -= 1
            zone.managed_pages += 1 << order
            _split_large_buddy(self, None, zone, start, order, FPI_TO_TAIL)
            self.vmstat["pgfree"] += 1 << order
            start += 1 << order

    def _build_zonelist_cache(self) -> None:
        """Per (node, __GFP_THISNODE) and highest zone index: the eligible zones in zonelist order."""
        for p in self.nodes:
            for thisnode in (False, True):
                zl = p.node_zonelists[ZONELIST_NOFALLBACK if thisnode else ZONELIST_FALLBACK]
                self._zonelists[(p.node_id, thisnode)] = [
                    [z for z in zl if z.idx <= hi] for hi in range(self.types.MAX_NR_ZONES)]

    def init_per_zone_wmark_min(self) -> None:
        """``init_per_zone_wmark_min``: min_free_kbytes, watermarks, pcp sizes, thresholds, lowmem_reserve."""
        if self.user_min_free_kbytes is not None:
            self.min_free_kbytes = self.user_min_free_kbytes
        else:
            self.min_free_kbytes = calculate_min_free_kbytes(self.nodes, self.types)
        self.setup_per_zone_wmarks()
        refresh_zone_stat_thresholds(self.nodes, self.ncpus)
        setup_per_zone_lowmem_reserve(self.nodes, self.lowmem_reserve_ratio)
        self.totalreserve_pages = calculate_totalreserve_pages(self.nodes)

    def setup_per_zone_wmarks(self) -> None:
        """``setup_per_zone_wmarks``: watermarks, then the pcp batch and high limits that follow them."""
        setup_per_zone_wmarks(self.nodes, self.min_free_kbytes, self.watermark_scale_factor)
        for z in self.populated:
            zone_set_pageset_high_and_batch(z, self.ncpus, self.pcp_batch, self.pcp_high)
        self.totalreserve_pages = calculate_totalreserve_pages(self.nodes)

    # ------------------------------------------------------------------------------------
    # Queries (show_mem.c, /proc)
    # ------------------------------------------------------------------------------------
    def pfn_to_page(self, pfn: int) -> Page:
        return self.mem_map.pfn_to_page(pfn)

    def page_zone_of(self, pfn: int) -> Zone | None:
        for z in self.populated:
            if z.zone_spans_pfn(pfn):
                return z
        return None

    def nr_free_pages(self) -> int:
        return global_zone_page_state(self.nodes, NR_FREE_PAGES)

    def si_mem_available(self) -> int:
        """``si_mem_available``: free pages above the reserves, plus the reclaimable half of cache and slab."""
        wmark_low = sum(z.low_wmark_pages() for z in self.zones)
        available = global_zone_page_state(self.nodes, NR_FREE_PAGES) - self.totalreserve_pages
        pagecache = global_node_page_state(self.nodes, NR_ACTIVE_FILE) + global_node_page_state(
            self.nodes, NR_INACTIVE_FILE)
        pagecache -= min(pagecache // 2, wmark_low)
        available += pagecache
        reclaimable = global_node_page_state(self.nodes, NR_SLAB_RECLAIMABLE) + global_node_page_state(
            self.nodes, NR_KERNEL_MISC_RECLAIMABLE)
        reclaimable -= min(reclaimable // 2, wmark_low)
        available += reclaimable
        return max(available, 0)

    def totalhigh_pages(self) -> int:
        return sum(z.managed_pages for z in self.zones if z.is_highmem)

    def nr_free_highpages(self) -> int:
        return sum(z.vm_stat[NR_FREE_PAGES] for z in self.zones if z.is_highmem)

    # ------------------------------------------------------------------------------------
    # Invariant checks (registered with kernel.add_check)
    # ------------------------------------------------------------------------------------
    def _once(self, reason: str | None) -> str | None:
        """Report a broken invariant once: the engine runs the checks again while the run stops."""
        if reason is not None:
            if self.check_failed:
                return None
            self.check_failed = True
        return reason

    def check_conservation(self) -> str | None:
        """Per zone: free in the buddy lists + on pcp lists + in flight + allocated == managed."""
        return self._once(self._conservation())

    def _conservation(self) -> str | None:
        for z in self.populated:
            buddy = z.buddy_free_pages()
            pcp = z.pcp_pages()
            total = buddy + pcp + z.nr_in_flight + z.nr_allocated
            if total != z.managed_pages:
                return (f"node {z.node} zone {z.name}: buddy {buddy} + pcp {pcp} + in flight {z.nr_in_flight} + "
                        f"allocated {z.nr_allocated} = {total} != managed {z.managed_pages}")
            if z.vm_stat[NR_FREE_PAGES] != buddy:
                return f"node {z.node} zone {z.name}: NR_FREE_PAGES {z.vm_stat[NR_FREE_PAGES]} != buddy free {buddy}"
            if len(z.buddy) != sum(a.nr_free for a in z.free_area):
                return f"node {z.node} zone {z.name}: {len(z.buddy)} free blocks but nr_free sums to " \
                       f"{sum(a.nr_free for a in z.free_area)}"
        return None

    def check_new_free_blocks(self) -> str | None:
        """Free blocks added since the last check: aligned, inside the zone, overlapping no other free block."""
        return self._once(self._new_free_blocks())

    def _new_free_blocks(self) -> str | None:
        for z in self.populated:
            if not z.new_free:
                continue
            new, z.new_free = z.new_free, []
            for pfn in new:
                e = z.buddy.get(pfn)
                if e is None:
                    continue  # allocated again since
                reason = free_block_reason(z, pfn, e[2])
                if reason is not None:
                    return reason
        return None


# ------------------------------------------------------------------------------------
# The buddy core (zone->lock held; never waits)
# ------------------------------------------------------------------------------------
def _charge(pa: "PageAllocator", th: "Thread | None", ns: int) -> None:
    if th is not None:
        th.pending += ns


def __free_one_page(pa: "PageAllocator", th: "Thread | None", zone: Zone, pfn: int, order: int, mt: int,
                    fpi_flags: int = FPI_NONE) -> None:
    """``__free_one_page``: merge with the buddy while it is free and of the same order."""
    buddy = zone.buddy
    assert not pfn & ((1 << order) - 1), f"pfn 0x{pfn:x} is not aligned to order {order}"
    zone.account_freepages(1 << order, mt)
    buddy_pfn = 0
    merges = 0
    while order < MAX_PAGE_ORDER:
        buddy_pfn = pfn ^ (1 << order)
        e = buddy.get(buddy_pfn)
        if e is None or e[2] != order:  # page_is_buddy
            break
        buddy_mt = mt
        if order >= pageblock_order:
            buddy_mt = zone.get_pageblock_migratetype(buddy_pfn)
            if mt != buddy_mt and (not migratetype_is_mergeable(mt) or not migratetype_is_mergeable(buddy_mt)):
                break
        zone.del_from_free_list(buddy_pfn)
        if buddy_mt != mt:
            zone.change_pageblock_range(buddy_pfn, order, mt)
        pfn &= buddy_pfn
        order += 1
        merges += 1
    if merges and th is not None:
        th.pending += merges * pa.costs.buddy_op
    if fpi_flags & FPI_TO_TAIL:
        to_tail = True
    elif order < MAX_PAGE_ORDER - 1:
        # buddy_merge_likely: is the buddy of the next-higher block free? Then add at the tail.
        higher = buddy_pfn & pfn
        e = buddy.get(higher ^ (1 << (order + 1)))
        to_tail = e is not None and e[2] == order + 1
    else:
        to_tail = False
    zone.add_to_free_list(pfn, order, mt, to_tail)


def _split_large_buddy(pa: "PageAllocator", th: "Thread | None", zone: Zone, pfn: int, order: int, fpi: int) -> None:
    """``split_large_buddy``: free a block larger than a pageblock one pageblock at a time."""
    end = pfn + (1 << order)
    if order > pageblock_order:
        order = pageblock_order
    while True:
        __free_one_page(pa, th, zone, pfn, order, zone.get_pageblock_migratetype(pfn), fpi)
        pfn += 1 << order
        if pfn == end:
            break


def expand(pa: "PageAllocator", th: "Thread | None", zone: Zone, pfn: int, low: int, high: int, mt: int) -> int:
    """``expand``: split a 2^high block down to 2^low, the upper halves back on the free lists."""
    nr_added = 0
    splits = high - low
    while high > low:
        high -= 1
        size = 1 << high
        zone.add_to_free_list(pfn + size, high, mt, False)
        nr_added += size
    if splits and th is not None:
        th.pending += splits * pa.costs.buddy_op
    return nr_added


def page_del_and_expand(pa: "PageAllocator", th: "Thread | None", zone: Zone, pfn: int, low: int, high: int,
                        mt: int) -> None:
    zone.del_from_free_list(pfn)
    nr_pages = (1 << high) - expand(pa, th, zone, pfn, low, high, mt)
    zone.account_freepages(-nr_pages, mt)


def __rmqueue_smallest(pa: "PageAllocator", th: "Thread | None", zone: Zone, order: int, mt: int) -> int | None:
    """``__rmqueue_smallest``: the smallest block of ``mt`` that fits, split down to ``order``."""
    fa = zone.free_area
    for current_order in range(order, NR_PAGE_ORDERS):
        pfn = fa[current_order].head[mt]
        if pfn < 0:
            continue
        page_del_and_expand(pa, th, zone, pfn, order, current_order, mt)
        tr = pa.tracer
        if th is not None and tr.on[kmem_events.mm_page_alloc_zone_locked.id]:
            tr.emit(kmem_events.mm_page_alloc_zone_locked, th, pfn=pfn, order=order, migratetype=mt,
                    percpu_refill=int(pcp_allowed_order(order) and mt < MIGRATE_PCPTYPES))
        return pfn
    return None


def can_steal_fallback(pa: "PageAllocator", order: int, start_mt: int) -> bool:
    """``can_steal_fallback``: whole-block stealing for large or unmovable/reclaimable requests."""
    if order >= pageblock_order:
        return True
    return (order >= pageblock_order // 2 or start_mt == MIGRATE_RECLAIMABLE
            or start_mt == MIGRATE_UNMOVABLE or pa.page_group_by_mobility_disabled)


def find_suitable_fallback(pa: "PageAllocator", zone: Zone, order: int, mt: int, only_stealable: bool) -> tuple[int, bool]:
    """``find_suitable_fallback``: the first fallback list of ``mt`` with a block of ``order``."""
    area = zone.free_area[order]
    if area.nr_free == 0:
        return -1, False
    can_steal = False
    for fallback_mt in FALLBACKS[mt]:
        if area.head[fallback_mt] < 0:
            continue
        if can_steal_fallback(pa, order, mt):
            can_steal = True
        if not only_stealable or can_steal:
            return fallback_mt, can_steal
    return -1, can_steal


def boost_watermark(pa: "PageAllocator", zone: Zone) -> bool:
    """``boost_watermark``: raise the watermarks by a pageblock after a fragmenting fallback."""
    if not pa.watermark_boost_factor:
        return False
    if pageblock_nr_pages * 4 > zone.managed_pages:
        return False
    max_boost = zone._watermark[2] * pa.watermark_boost_factor // 10000
    if not max_boost:
        return False
    max_boost = max(pageblock_nr_pages, max_boost)
    zone.watermark_boost = min(zone.watermark_boost + pageblock_nr_pages, max_boost)
    return True


def prep_move_freepages_block(pa: "PageAllocator", zone: Zone, pfn: int, count: bool) -> tuple[bool, int, int, int]:
    """``prep_move_freepages_block``: the pageblock of ``pfn`` if the zone holds all of it; free and movable pages."""
    start = pfn & ~(pageblock_nr_pages - 1)
    end = start + pageblock_nr_pages
    if not zone.zone_spans_pfn(start) or not zone.zone_spans_pfn(end - 1):
        return False, start, 0, 0
    free = movable = 0
    if count:
        buddy = zone.buddy
        pages = pa.mem_map.pages
        p = start
        while p < end:
            e = buddy.get(p)
            if e is not None:
                free += 1 << e[2]
                p += 1 << e[2]
                continue
            page = pages.get(p)
            if page is not None and type(page.lru) is not Page:
                if page.flags & (1 << PG_lru):
                    movable += 1 << page.order
                p += 1 << page.order
                continue
            p += 1
    return True, start, free, movable


def __move_freepages_block(pa: "PageAllocator", zone: Zone, start_pfn: int, old_mt: int, new_mt: int) -> int:
    """``__move_freepages_block``: every free block of the pageblock to ``new_mt``'s lists, and the type."""
    buddy = zone.buddy
    end = start_pfn + pageblock_nr_pages
    moved = 0
    p = start_pfn
    while p < end:
        e = buddy.get(p)
        if e is None:
            p += 1
            continue
        order = e[2]
        zone.move_to_free_list(p, order, old_mt, new_mt)
        p += 1 << order
        moved += 1 << order
    zone.set_pageblock_migratetype(start_pfn, new_mt)
    return moved


def move_freepages_block(pa: "PageAllocator", zone: Zone, pfn: int, old_mt: int, new_mt: int) -> int:
    ok, start, _, _ = prep_move_freepages_block(pa, zone, pfn, False)
    if not ok:
        return -1
    return __move_freepages_block(pa, zone, start, old_mt, new_mt)


def try_to_steal_block(pa: "PageAllocator", th: "Thread | None", zone: Zone, pfn: int, current_order: int, order: int,
                       start_type: int, alloc_flags: int) -> int | None:
    """``try_to_steal_block``: claim the whole pageblock when enough of it is free or compatible."""
    block_type = zone.get_pageblock_migratetype(pfn)
    if block_type == MIGRATE_HIGHATOMIC:
        return None
    if current_order >= pageblock_order:
        zone.del_from_free_list(pfn)
        zone.account_freepages(-(1 << current_order), block_type)
        zone.change_pageblock_range(pfn, current_order, start_type)
        nr_added = expand(pa, th, zone, pfn, order, current_order, start_type)
        zone.account_freepages(nr_added, start_type)
        return pfn
    if boost_watermark(pa, zone) and alloc_flags & ALLOC_KSWAPD:
        zone.flags |= ZONE_BOOSTED_WATERMARK
    ok, start_pfn, free_pages, movable_pages = prep_move_freepages_block(pa, zone, pfn, True)
    if not ok:
        return None
    if start_type == MIGRATE_MOVABLE:
        alike_pages = movable_pages
    elif block_type == MIGRATE_MOVABLE:
        alike_pages = pageblock_nr_pages - (free_pages + movable_pages)
    else:
        alike_pages = 0
    if free_pages + alike_pages >= (1 << (pageblock_order - 1)) or pa.page_group_by_mobility_disabled:
        __move_freepages_block(pa, zone, start_pfn, block_type, start_type)
        return __rmqueue_smallest(pa, th, zone, order, start_type)
    return None


def _trace_extfrag(pa: "PageAllocator", th: "Thread | None", zone: Zone, pfn: int, order: int, fallback_order: int,
                   start_mt: int, fallback_mt: int) -> None:
    tr = pa.tracer
    if th is not None and tr.on[kmem_events.mm_page_alloc_extfrag.id]:
        tr.emit(kmem_events.mm_page_alloc_extfrag, th, pfn=pfn, alloc_order=order,
                fallback_order=fallback_order, alloc_migratetype=start_mt, fallback_migratetype=fallback_mt,
                change_ownership=int(zone.get_pageblock_migratetype(pfn) == start_mt))


def __rmqueue_claim(pa: "PageAllocator", th: "Thread | None", zone: Zone, order: int, start_mt: int,
                    alloc_flags: int) -> int | None:
    """``__rmqueue_claim``: from the largest fallback block down, claiming its pageblock."""
    min_order = order
    if order < pageblock_order and alloc_flags & ALLOC_NOFRAGMENT:
        min_order = pageblock_order
    for current_order in range(MAX_PAGE_ORDER, min_order - 1, -1):
        fallback_mt, can_steal = find_suitable_fallback(pa, zone, current_order, start_mt, False)
        if fallback_mt == -1:
            continue
        if not can_steal:
            break
        head = zone.free_area[current_order].head[fallback_mt]
        pfn = try_to_steal_block(pa, th, zone, head, current_order, order, start_mt, alloc_flags)
        if pfn is not None:
            _trace_extfrag(pa, th, zone, pfn, order, current_order, start_mt, fallback_mt)
            return pfn
    return None


def __rmqueue_steal(pa: "PageAllocator", th: "Thread | None", zone: Zone, order: int, start_mt: int) -> int | None:
    """``__rmqueue_steal``: one block from a fallback list, its pageblock keeping its type."""
    for current_order in range(order, NR_PAGE_ORDERS):
        fallback_mt, _ = find_suitable_fallback(pa, zone, current_order, start_mt, False)
        if fallback_mt == -1:
            continue
        pfn = zone.free_area[current_order].head[fallback_mt]
        page_del_and_expand(pa, th, zone, pfn, order, current_order, fallback_mt)
        _trace_extfrag(pa, th, zone, pfn, order, current_order, start_mt, fallback_mt)
        return pfn
    return None


def __rmqueue(pa: "PageAllocator", th: "Thread | None", zone: Zone, order: int, mt: int, alloc_flags: int,
              mode: list[int]) -> int | None:
    """``__rmqueue``: the migratetype's own lists, then claiming, then stealing (``mode`` remembers)."""
    m = mode[0]
    if m == RMQUEUE_NORMAL:
        pfn = __rmqueue_smallest(pa, th, zone, order, mt)
        if pfn is not None:
            return pfn
        m = RMQUEUE_CLAIM
    if m <= RMQUEUE_CLAIM:
        pfn = __rmqueue_claim(pa, th, zone, order, mt, alloc_flags)
        if pfn is not None:
            mode[0] = RMQUEUE_NORMAL
            return pfn
    if not alloc_flags & ALLOC_NOFRAGMENT:
        pfn = __rmqueue_steal(pa, th, zone, order, mt)
        if pfn is not None:
            mode[0] = RMQUEUE_STEAL
            return pfn
    return None


def reserve_highatomic_pageblock_locked(pa: "PageAllocator", zone: Zone, pfn: int, order: int) -> None:
    """The locked part of ``reserve_highatomic_pageblock``: up to ~1% of the zone for atomic high orders."""
    max_managed = -(-(zone.managed_pages // 100) // pageblock_nr_pages) * pageblock_nr_pages
    if zone.nr_reserved_highatomic >= max_managed:
        return
    mt = zone.get_pageblock_migratetype(pfn)
    if not migratetype_is_mergeable(mt):
        return
    if order < pageblock_order:
        if move_freepages_block(pa, zone, pfn, mt, MIGRATE_HIGHATOMIC) == -1:
            return
        zone.nr_reserved_highatomic += pageblock_nr_pages
    else:
        zone.change_pageblock_range(pfn, order, MIGRATE_HIGHATOMIC)
        zone.nr_reserved_highatomic += 1 << order


# ------------------------------------------------------------------------------------
# Per-CPU pagesets
# ------------------------------------------------------------------------------------
def nr_pcp_alloc(pa: "PageAllocator", pcp: PerCpuPages, zone: Zone, order: int) -> int:
    """``nr_pcp_alloc``: how many to take from the buddy lists on a refill (batch scaled up by alloc_factor)."""
    base_batch = pcp.batch
    high_min, high_max = pcp.high_min, pcp.high_max
    high = pcp.high = min(max(pcp.high, high_min), high_max)
    if high < base_batch:
        return 1
    batch = base_batch if order else base_batch << pcp.alloc_factor
    if high_min != high_max and not zone.flags & ZONE_BELOW_HIGH:
        high = pcp.high = min(high + batch, high_max)
    if not order:
        max_nr_alloc = max(high - pcp.count - base_batch, base_batch)
        if batch <= max_nr_alloc and pcp.alloc_factor < CONFIG_PCP_BATCH_SCALE_MAX:
            pcp.alloc_factor += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


def nr_pcp_high(pa: "PageAllocator", pcp: PerCpuPages, zone: Zone, batch: int, free_high: bool) -> int:
    """``nr_pcp_high``: the count at which a free drains, tuning ``pcp->high``."""
    high_min, high_max = pcp.high_min, pcp.high_max
    high = pcp.high = min(max(pcp.high, high_min), high_max)
    if not high:
        return 0
    if free_high:
        pcp.high = max(high - (batch << CONFIG_PCP_BATCH_SCALE_MAX), high_min)
        return 0
    if zone.flags & ZONE_RECLAIM_ACTIVE:
        free_count = max(pcp.free_count, batch)
        pcp.high = max(high - free_count, high_min)
        return min(batch << 2, pcp.high)
    if high_min == high_max:
        return high
    if zone.flags & ZONE_BELOW_HIGH:
        free_count = max(pcp.free_count, batch)
        pcp.high = max(high - free_count, high_min)
        high = max(pcp.count, high_min)
    elif pcp.count >= high:
        need_high = pcp.free_count + batch
        if pcp.high < need_high:
            pcp.high = min(max(need_high, high_min), high_max)
    return high


def nr_pcp_free(pcp: PerCpuPages, batch: int, high: int, free_high: bool) -> int:
    """``nr_pcp_free``: how many a drain gives back (more after many frees in a row)."""
    if free_high:
        return min(pcp.count, batch << CONFIG_PCP_BATCH_SCALE_MAX)
    if high < batch:
        return 1
    return min(max(pcp.free_count, batch), high - batch)


async def rmqueue_bulk(pa: "PageAllocator", th: "Thread", zone: Zone, order: int, count: int, lst: Any, mt: int,
                       alloc_flags: int, pcp: PerCpuPages) -> int:
    """``rmqueue_bulk``: ``count`` blocks onto a pcp list under one hold of ``zone->lock``.

    ``pcp->count`` grows with each block added (the kernel adds the total
    after the unlock; only the owning CPU, interrupts off, could tell).
    """
    lock = zone.lock
    await lock.acquire_irqsave(th, "rmqueue_bulk")
    mode = [RMQUEUE_NORMAL]
    op = pa.costs.pcp_list_op
    i = 0
    rmq = __rmqueue
    while i < count:
        pfn = rmq(pa, th, zone, order, mt, alloc_flags, mode)
        if pfn is None:
            break
        lst.append(pfn)  # list_add_tail: physical order
        pcp.count += 1 << order
        th.pending += op
        i += 1
    await lock.release_irqrestore(th)
    return i


async def free_pcppages_bulk(pa: "PageAllocator", th: "Thread", zone: Zone, count: int, pcp: PerCpuPages,
                             pindex: int) -> None:
    """``free_pcppages_bulk``: ``count`` pages back from the pcp lists, round-robin, under ``zone->lock``."""
    count = min(pcp.count, count)
    if count <= 0:
        return
    pindex -= 1
    lock = zone.lock
    await lock.acquire_irqsave(th, "free_pcppages_bulk")
    tr = pa.tracer
    trace = tr.on[kmem_events.mm_page_pcpu_drain.id]
    op = pa.costs.pcp_list_op
    lists = pcp.lists
    free_one = __free_one_page
    while count > 0:
        while True:
            pindex += 1
            if pindex > NR_PCP_LISTS - 1:
                pindex = 0
            lst = lists[pindex]
            if lst:
                break
        order = pindex_to_order(pindex)
        nr_pages = 1 << order
        while True:
            pfn = lst.pop()  # list_last_entry
            mt = zone.get_pageblock_migratetype(pfn)
            count -= nr_pages
            pcp.count -= nr_pages
            th.pending += op
            free_one(pa, th, zone, pfn, order, mt, FPI_NONE)
            if trace:
                tr.emit(kmem_events.mm_page_pcpu_drain, th, pfn=pfn, order=order, migratetype=mt)
            if not (count > 0 and lst):
                break
    await lock.release_irqrestore(th)


def _pcp_lock(pa: "PageAllocator", th: "Thread") -> "CPU":
    """The model's ``pcp_spin_trylock``: preemption and interrupts off on this CPU."""
    cpu = th.cpu
    th.preempt_count += 1
    cpu.irq_depth += 1
    return cpu


def _pcp_unlock(pa: "PageAllocator", th: "Thread", cpu: "CPU") -> None:
    """``pcp_spin_unlock``: interrupts back on (running IPIs that waited), preemption back on."""
    th.preempt_count -= 1
    cpu.irq_depth -= 1
    if cpu.irq_depth == 0 and cpu.inbox:
        pa.machine.handle_pending_ipis(cpu, th)


async def rmqueue_pcplist(pa: "PageAllocator", th: "Thread", preferred: Zone, zone: Zone, order: int, mt: int,
                          alloc_flags: int) -> int | None:
    """``rmqueue_pcplist``: a page off this CPU's list, refilled from the buddy lists when empty."""
    cpu = _pcp_lock(pa, th)
    try:
        pcp = zone.per_cpu_pageset[cpu.id]
        pcp.free_count >>= 1
        lst = pcp.lists[order_to_pindex(mt, order)]
        if not lst:
            batch = nr_pcp_alloc(pa, pcp, zone, order)
            await rmqueue_bulk(pa, th, zone, order, batch, lst, mt, alloc_flags, pcp)
            if not lst:
                return None
        pfn = lst.popleft()  # list_first_entry
        pcp.count -= 1 << order
        zone.nr_allocated += 1 << order  # the caller's from here on
        th.pending += pa.costs.pcp_list_op
    finally:
        _pcp_unlock(pa, th, cpu)
    pa.vmstat[pa._pgalloc_names[zone.idx]] += 1 << order
    zone_statistics(pa, th, preferred, zone, 1)
    return pfn


async def rmqueue_buddy(pa: "PageAllocator", th: "Thread", preferred: Zone, zone: Zone, order: int, alloc_flags: int,
                        mt: int) -> int | None:
    """``rmqueue_buddy``: straight from the buddy lists under ``zone->lock``."""
    lock = zone.lock
    await lock.acquire_irqsave(th, "rmqueue_buddy")
    pfn = None
    if alloc_flags & ALLOC_HIGHATOMIC:
        pfn = __rmqueue_smallest(pa, th, zone, order, MIGRATE_HIGHATOMIC)
    if pfn is None:
        pfn = __rmqueue(pa, th, zone, order, mt, alloc_flags, [RMQUEUE_NORMAL])
        if pfn is None and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
            pfn = __rmqueue_smallest(pa, th, zone, order, MIGRATE_HIGHATOMIC)
    if pfn is not None:
        zone.nr_allocated += 1 << order  # the caller's from here on
    await lock.release_irqrestore(th)
    if pfn is None:
        return None
    pa.vmstat[pa._pgalloc_names[zone.idx]] += 1 << order
    zone_statistics(pa, th, preferred, zone, 1)
    return pfn


def zone_statistics(pa: "PageAllocator", th: "Thread", preferred: Zone, z: Zone, nr: int) -> None:
    """``zone_statistics``: numa_hit/miss/foreign and numa_local/other."""
    ev = z.vm_numa_event
    if z.node == preferred.node:
        ev[NUMA_HIT] += nr
    else:
        ev[NUMA_MISS] += nr
        preferred.vm_numa_event[NUMA_FOREIGN] += nr
    local = th.cpu.id % len(pa.nodes)
    ev[NUMA_LOCAL if z.node == local else NUMA_OTHER] += nr


async def rmqueue(pa: "PageAllocator", th: "Thread", preferred: Zone, zone: Zone, order: int, gfp: int, alloc_flags: int,
                  mt: int) -> int | None:
    """``rmqueue``: through the pcp lists for their orders, else the buddy lists; kick kswapd on a boost."""
    pfn = None
    if order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER:
        pfn = await rmqueue_pcplist(pa, th, preferred, zone, order, mt, alloc_flags)
    if pfn is None:
        pfn = await rmqueue_buddy(pa, th, preferred, zone, order, alloc_flags, mt)
    if alloc_flags & ALLOC_KSWAPD and zone.flags & ZONE_BOOSTED_WATERMARK:
        zone.flags &= ~ZONE_BOOSTED_WATERMARK
        pa.kernel.reclaim.wakeup_kswapd(zone, 0, 0, zone.idx)
    return pfn


async def free_unref_page_commit(pa: "PageAllocator", th: "Thread", zone: Zone, pcp: PerCpuPages, pfn: int, mt: int,
                                 order: int) -> None:
    """``free_unref_page_commit``: onto this CPU's list; drain a batch when ``count >= high``."""
    pcp.alloc_factor >>= 1
    pa.vmstat["pgfree"] += 1 << order
    pindex = order_to_pindex(mt, order)
    pcp.lists[pindex].appendleft(pfn)  # list_add
    pcp.count += 1 << order
    th.pending += pa.costs.pcp_list_op
    batch = pcp.batch
    free_high = False
    if order and order <= PAGE_ALLOC_COSTLY_ORDER:
        free_high = (pcp.free_count >= batch and bool(pcp.flags & PCPF_PREV_FREE_HIGH_ORDER)
                     and (not pcp.flags & PCPF_FREE_HIGH_BATCH or pcp.count >= batch))
        pcp.flags |= PCPF_PREV_FREE_HIGH_ORDER
    elif pcp.flags & PCPF_PREV_FREE_HIGH_ORDER:
        pcp.flags &= ~PCPF_PREV_FREE_HIGH_ORDER
    if pcp.free_count < (batch << CONFIG_PCP_BATCH_SCALE_MAX):
        pcp.free_count += 1 << order
    high = nr_pcp_high(pa, pcp, zone, batch, free_high)
    if pcp.count >= high:
        await free_pcppages_bulk(pa, th, zone, nr_pcp_free(pcp, batch, high, free_high), pcp, pindex)
        if zone.flags & ZONE_BELOW_HIGH and zone_watermark_ok(pa, 
                zone, 0, zone.high_wmark_pages(), pa.types.ZONE_MOVABLE, 0):
            zone.flags &= ~ZONE_BELOW_HIGH


async def free_one_page(pa: "PageAllocator", th: "Thread", zone: Zone, pfn: int, order: int,
                        fpi_flags: int = FPI_NONE) -> None:
    """``free_one_page``: straight to the buddy lists under ``zone->lock``."""
    lock = zone.lock
    zone.nr_in_flight += 1 << order  # off its owner, not yet on a free list
    try:
        await lock.acquire_irqsave(th, "free_one_page")
    except BaseException:
        # Killed while spinning (the end of a run): the block still goes back, so nothing leaks.
        zone.nr_in_flight -= 1 << order
        _split_large_buddy(pa, None, zone, pfn, order, fpi_flags)
        raise
    zone.nr_in_flight -= 1 << order
    _split_large_buddy(pa, th, zone, pfn, order, fpi_flags)
    await lock.release_irqrestore(th)
    pa.vmstat["pgfree"] += 1 << order


async def free_unref_page(pa: "PageAllocator", th: "Thread", zone: Zone, pfn: int, order: int) -> None:
    """``free_unref_page``: through this CPU's pcp list for the pcp orders, else straight to the buddy."""
    if not pcp_allowed_order(order):
        await free_one_page(pa, th, zone, pfn, order)
        return
    mt = zone.get_pageblock_migratetype(pfn)
    if mt >= MIGRATE_PCPTYPES:
        if mt == MIGRATE_ISOLATE:
            await free_one_page(pa, th, zone, pfn, order)
            return
        mt = MIGRATE_MOVABLE
    cpu = _pcp_lock(pa, th)
    try:
        await free_unref_page_commit(pa, th, zone, zone.per_cpu_pageset[cpu.id], pfn, mt, order)
    finally:
        _pcp_unlock(pa, th, cpu)

# -- draining -------------------------------------------------------------------------
async def drain_pages_zone(pa: "PageAllocator", th: "Thread", zone: Zone) -> None:
    """``drain_pages_zone`` for the caller's own CPU (``drain_local_pages(zone)``)."""
    cpu = _pcp_lock(pa, th)
    try:
        pcp = zone.per_cpu_pageset[cpu.id]
        while pcp.count:
            await free_pcppages_bulk(pa, th, zone, min(pcp.count, pcp.batch << CONFIG_PCP_BATCH_SCALE_MAX),
                                          pcp, 0)
    finally:
        _pcp_unlock(pa, th, cpu)


async def drain_local_pages(pa: "PageAllocator", th: "Thread", zone: Zone | None = None) -> None:
    """``drain_local_pages``: this CPU's lists of one zone, or of every populated zone."""
    for z in ([zone] if zone is not None else pa.populated):
        await drain_pages_zone(pa, th, z)


async def __drain_all_pages(pa: "PageAllocator", th: "Thread", zone: Zone | None = None) -> None:
    """``drain_all_pages``: every CPU's pcp lists back to the buddy lists, by IPI.

    The CPUs with pages on their lists (``cpus_with_pcps``) each get an IPI
    whose handler takes its lists off in interrupt context; the caller
    then frees those pages under ``zone->lock``, zone by zone. Only one
    drain of all zones runs at a time (``pcpu_drain_mutex``).
    """
    mutex = pa.pcpu_drain_mutex
    if mutex.owner is not None:
        if zone is None:
            return
    await mutex.acquire(th, "drain_all_pages")
    try:
        zones = [zone] if zone is not None else pa.populated
        zindex = {id(z): i for i, z in enumerate(pa.zones)}
        cpus = [c for c in pa.machine.cpus if any(z.per_cpu_pageset[c.id].count for z in zones)]
        by_zone: dict[int, list[tuple[int, int]]] = {}  # zone index -> detached (pfn, order), in drain order
        op = pa.costs.pcp_list_op

        def drain_local(cpu: "CPU") -> None:
            """The IPI handler: this CPU's lists off, in interrupt context (counted as in flight)."""
            n = 0
            for z in zones:
                pcp = z.per_cpu_pageset[cpu.id]
                if not pcp.count:
                    continue
                blocks = by_zone.setdefault(zindex[id(z)], [])
                for pindex, lst in enumerate(pcp.lists):
                    order = pindex_to_order(pindex)
                    while lst:
                        blocks.append((lst.pop(), order))
                        z.nr_in_flight += 1 << order
                        n += 1
                pcp.count = 0
            cur = cpu.current
            if cur is not None:
                cur.pending += n * op

        tr = pa.tracer
        trace = tr.on[kmem_events.mm_page_pcpu_drain.id]
        try:
            if th.cpu in cpus:  # on_each_cpu_mask runs the function here too, interrupts off
                cpu = _pcp_lock(pa, th)
                drain_local(cpu)
                _pcp_unlock(pa, th, cpu)
            remote = [c for c in cpus if c is not th.cpu]
            if remote:
                await pa.machine.smp_call_function_many(th, remote, drain_local, name="drain_local_pages")
            for zi in sorted(by_zone):
                z = pa.zones[zi]
                await z.lock.acquire_irqsave(th, "drain_all_pages")
                for pfn, order in by_zone.pop(zi):
                    mt = z.get_pageblock_migratetype(pfn)
                    z.nr_in_flight -= 1 << order
                    __free_one_page(pa, th, z, pfn, order, mt, FPI_NONE)
                    if trace:
                        tr.emit(kmem_events.mm_page_pcpu_drain, th, pfn=pfn, order=order, migratetype=mt)
                await z.lock.release_irqrestore(th)
        finally:
            # Killed on the way (the end of a run): what is still detached goes back all the same.
            for zi, blocks in by_zone.items():
                z = pa.zones[zi]
                for pfn, order in blocks:
                    z.nr_in_flight -= 1 << order
                    __free_one_page(pa, None, z, pfn, order, z.get_pageblock_migratetype(pfn), FPI_NONE)
    finally:
        await mutex.release(th)


# ------------------------------------------------------------------------------------
# Watermarks
# ------------------------------------------------------------------------------------
def __zone_watermark_unusable_free(pa: "PageAllocator", z: Zone, order: int, alloc_flags: int) -> int:
    unusable = (1 << order) - 1
    if not alloc_flags & ALLOC_RESERVES:
        unusable += z.nr_free_highatomic
    return unusable


def __zone_watermark_ok(pa: "PageAllocator", z: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int,
                        free_pages: int) -> bool:
    """``__zone_watermark_ok``: free pages above mark + lowmem_reserve, and a block of ``order`` free."""
    m = mark
    free_pages -= __zone_watermark_unusable_free(pa, z, order, alloc_flags)
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            m -= m // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                m -= m // 4
        if alloc_flags & ALLOC_OOM:
            m -= m // 2
    if free_pages <= m + z.lowmem_reserve[highest_zoneidx]:
        return False
    if not order:
        return True
    for o in range(order, NR_PAGE_ORDERS):
        area = z.free_area[o]
        if not area.nr_free:
            continue
        head = area.head
        if head[MIGRATE_UNMOVABLE] >= 0 or head[MIGRATE_MOVABLE] >= 0 or head[MIGRATE_RECLAIMABLE] >= 0:
            return True
        if alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM) and head[MIGRATE_HIGHATOMIC] >= 0:
            return True
    return False


def zone_watermark_ok(pa: "PageAllocator", z: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int) -> bool:
    return __zone_watermark_ok(pa, z, order, mark, highest_zoneidx, alloc_flags, z.vm_stat[NR_FREE_PAGES])


def zone_watermark_fast(pa: "PageAllocator", z: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int) -> bool:
    """``zone_watermark_fast``: the order-0 shortcut, then the full check."""
    free_pages = z.vm_stat[NR_FREE_PAGES]
    if not order:
        reserved = __zone_watermark_unusable_free(pa, z, 0, alloc_flags)
        usable = free_pages - min(free_pages, reserved)
        if usable > mark + z.lowmem_reserve[highest_zoneidx]:
            return True
    if __zone_watermark_ok(pa, z, order, mark, highest_zoneidx, alloc_flags, free_pages):
        return True
    if (not order and alloc_flags & ALLOC_MIN_RESERVE and z.watermark_boost
            and (alloc_flags & ALLOC_WMARK_MASK) == ALLOC_WMARK_MIN):
        return __zone_watermark_ok(pa, z, order, z._watermark[0], highest_zoneidx, alloc_flags, free_pages)
    return False


def zone_watermark_ok_safe(pa: "PageAllocator", z: Zone, order: int, mark: int, highest_zoneidx: int) -> bool:
    return __zone_watermark_ok(pa, z, order, mark, highest_zoneidx, 0, z.vm_stat[NR_FREE_PAGES])


# ------------------------------------------------------------------------------------
# Allocation
# ------------------------------------------------------------------------------------
def alloc_flags_nofragment(pa: "PageAllocator", zone: Zone | None, gfp: int) -> int:
    """``alloc_flags_nofragment``: ALLOC_NOFRAGMENT when Normal is preferred and DMA32 is populated."""
    alloc_flags = gfp & G.__GFP_KSWAPD_RECLAIM
    t = pa.types
    if zone is None or t.ZONE_DMA32 is None or zone.idx != t.ZONE_NORMAL:
        return alloc_flags
    if len(pa.nodes) > 1 and not zone.zone_pgdat.node_zones[t.ZONE_DMA32].populated():
        return alloc_flags
    return alloc_flags | ALLOC_NOFRAGMENT


async def get_page_from_freelist(pa: "PageAllocator", th: "Thread", gfp: int, order: int, alloc_flags: int,
                                 ac: AllocContext) -> Page | None:
    """``get_page_from_freelist``: the first zone of the zonelist whose watermark allows it."""
    check_cost = pa.costs.zone_watermark_check
    while True:
        no_fallback = alloc_flags & ALLOC_NOFRAGMENT
        preferred = ac.preferred_zone
        restart = False
        for zone in ac.zonelist:
            if no_fallback and len(pa.nodes) > 1 and zone is not preferred and zone.node != preferred.node:
                alloc_flags &= ~ALLOC_NOFRAGMENT
                restart = True
                break
            th.pending += check_cost
            ok = False
            if not zone.flags & ZONE_BELOW_HIGH:
                if zone_watermark_fast(pa, zone, order, zone.high_wmark_pages(), ac.highest_zoneidx,
                                            alloc_flags):
                    ok = True
                else:
                    zone.flags |= ZONE_BELOW_HIGH
            if not ok:
                mark = zone.wmark_pages(alloc_flags & ALLOC_WMARK_MASK)
                if not zone_watermark_fast(pa, zone, order, mark, ac.highest_zoneidx, alloc_flags):
                    if not alloc_flags & ALLOC_NO_WATERMARKS:
                        continue  # node_reclaim_mode is 0: no node reclaim
            pfn = await rmqueue(pa, th, preferred, zone, order, gfp, alloc_flags, ac.migratetype)
            if pfn is not None:
                page = prep_new_page(pa, th, zone, pfn, order, gfp)
                if alloc_flags & ALLOC_HIGHATOMIC:
                    await reserve_highatomic_pageblock(pa, th, zone, pfn, order)
                return page
        if restart:
            continue
        if no_fallback:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            continue
        return None


def prep_new_page(pa: "PageAllocator", th: "Thread", zone: Zone, pfn: int, order: int, gfp: int) -> Page:
    """``prep_new_page``: the block's struct page, refcount 1, zeroed with __GFP_ZERO, compound with __GFP_COMP."""
    pages = pa.mem_map.pages
    if pfn in pages:
        raise ModelBug(f"the allocator handed out pfn 0x{pfn:x}, which is already in use by {pages[pfn]!r}")
    page = Page(pfn, zone, order)
    page._refcount = 1
    if order and gfp & G.__GFP_COMP:
        page.flags = 1 << PG_head
    if gfp & G.__GFP_ZERO:
        th.pending += pa.costs.clear_page << order
    pages[pfn] = page
    return page


async def reserve_highatomic_pageblock(pa: "PageAllocator", th: "Thread", zone: Zone, pfn: int, order: int) -> None:
    if zone.managed_pages // 100 < pageblock_nr_pages:
        return
    await zone.lock.acquire_irqsave(th, "reserve_highatomic_pageblock")
    reserve_highatomic_pageblock_locked(pa, zone, pfn, order)
    await zone.lock.release_irqrestore(th)


async def unreserve_highatomic_pageblock(pa: "PageAllocator", th: "Thread", ac: AllocContext, force: bool) -> bool:
    """``unreserve_highatomic_pageblock``: give a highatomic pageblock back before failing or OOM."""
    for zone in ac.zonelist:
        if not force and zone.nr_reserved_highatomic <= pageblock_nr_pages:
            continue
        await zone.lock.acquire_irqsave(th, "unreserve_highatomic_pageblock")
        try:
            for order in range(NR_PAGE_ORDERS):
                pfn = zone.free_area[order].head[MIGRATE_HIGHATOMIC]
                if pfn < 0:
                    continue
                mt = zone.get_pageblock_migratetype(pfn)
                if mt == MIGRATE_HIGHATOMIC:
                    size = min(max(pageblock_nr_pages, 1 << order), zone.nr_reserved_highatomic)
                    zone.nr_reserved_highatomic -= size
                if order < pageblock_order:
                    ret = move_freepages_block(pa, zone, pfn, mt, ac.migratetype)
                else:
                    zone.move_to_free_list(pfn, order, mt, ac.migratetype)
                    zone.change_pageblock_range(pfn, order, ac.migratetype)
                    ret = 1
                if ret > 0:
                    return True
        finally:
            await zone.lock.release_irqrestore(th)
    return False


def prepare_alloc(pa: "PageAllocator", gfp: int, order: int, nid: int) -> AllocContext:
    """``prepare_alloc_pages``: highest zone, zonelist and migratetype of a request."""
    highest = gfp_zone(gfp, pa.gfp_table)
    zonelist = pa._zonelists[(nid, bool(gfp & G.__GFP_THISNODE))][highest]
    return AllocContext(zonelist, highest, gfp_migratetype(gfp, pa.page_group_by_mobility_disabled))


async def __alloc_pages(pa: "PageAllocator", th: "Thread", gfp: int, order: int = 0,
                        nid: int | None = None) -> Page | None:
    """``__alloc_pages``: a block of 2^order pages, or None when the kernel would return NULL.

    ``nid`` is the preferred node (default: the node of the thread's CPU,
    ``numa_node_id()``). Never raises for lack of memory.
    """
    if order > MAX_PAGE_ORDER:
        _warn_alloc(pa, th, gfp, order, "order too large (WARN_ON_ONCE_GFP)")
        return None
    if nid is None:
        nid = th.cpu.id % len(pa.nodes)
    ac = prepare_alloc(pa, gfp, order, nid)
    page = None
    if ac.zonelist:
        alloc_flags = ALLOC_WMARK_LOW | alloc_flags_nofragment(pa, ac.preferred_zone, gfp)
        page = await get_page_from_freelist(pa, th, gfp, order, alloc_flags, ac)
        if page is None:
            page = await __alloc_pages_slowpath(pa, th, gfp, order, ac)
    tr = pa.tracer
    if tr.on[kmem_events.mm_page_alloc.id]:
        tr.emit(kmem_events.mm_page_alloc, th, pfn=page.pfn if page is not None else -1, order=order,
                gfp_flags=gfp, migratetype=ac.migratetype)
    return page

# -- the slow path ----------------------------------------------------------------------
def wake_all_kswapds(pa: "PageAllocator", order: int, gfp: int, ac: AllocContext) -> None:
    """``wake_all_kswapds``: ``wakeup_kswapd`` once per node of the zonelist."""
    last = None
    wake = pa.kernel.reclaim.wakeup_kswapd
    for zone in ac.zonelist:
        if not zone.managed():
            continue
        if zone.zone_pgdat is not last:
            wake(zone, gfp, order, ac.highest_zoneidx)
            last = zone.zone_pgdat


def __gfp_pfmemalloc_flags(pa: "PageAllocator", th: "Thread", gfp: int) -> int:
    """``__gfp_pfmemalloc_flags``: full reserves for PF_MEMALLOC and __GFP_MEMALLOC, OOM reserves for victims."""
    if gfp & G.__GFP_NOMEMALLOC:
        return 0
    if gfp & G.__GFP_MEMALLOC:
        return ALLOC_NO_WATERMARKS
    if th in pa.memalloc_threads:
        return ALLOC_NO_WATERMARKS
    if th in pa.oom_reserve_threads:
        return ALLOC_OOM
    return 0


def _zone_reclaimable_pages(pa: "PageAllocator", zone: Zone) -> int:
    v = zone.vm_stat
    n = v[NR_ZONE_INACTIVE_FILE] + v[NR_ZONE_ACTIVE_FILE]
    if pa.meminfo_sources.get("nr_swap_pages") > 0:
        n += v[NR_ZONE_INACTIVE_ANON] + v[NR_ZONE_ACTIVE_ANON]
    return n


async def should_reclaim_retry(pa: "PageAllocator", th: "Thread", gfp: int, order: int, ac: AllocContext, alloc_flags: int,
                               did_some_progress: bool, no_progress_loops: int) -> tuple[bool, int]:
    """``should_reclaim_retry``: retry while reclaiming everything could still meet the min watermark."""
    if did_some_progress and order <= PAGE_ALLOC_COSTLY_ORDER:
        no_progress_loops = 0
    else:
        no_progress_loops += 1
    ret = False
    if no_progress_loops <= MAX_RECLAIM_RETRIES:
        tr = pa.tracer
        for zone in ac.zonelist:
            reclaimable = pa.zone_reclaimable_pages(zone)
            available = reclaimable + zone.vm_stat[NR_FREE_PAGES]
            min_wmark = zone.min_wmark_pages()
            th.pending += pa.costs.zone_watermark_check
            wmark = __zone_watermark_ok(pa, zone, order, min_wmark, ac.highest_zoneidx, alloc_flags, available)
            if tr.on[oom_events.reclaim_retry_zone.id]:
                tr.emit(oom_events.reclaim_retry_zone, th, node=zone.zone_pgdat.node_id, zone_idx=zone.idx,
                        order=order, reclaimable=reclaimable, available=available, min_wmark=min_wmark,
                        no_progress_loops=no_progress_loops, wmark_check=int(wmark))
            if wmark:
                ret = True
                break
        await th.sync()  # cond_resched()
    if not ret:
        return await unreserve_highatomic_pageblock(pa, th, ac, True), no_progress_loops
    return ret, no_progress_loops


async def __alloc_pages_direct_reclaim(pa: "PageAllocator", th: "Thread", gfp: int, order: int, alloc_flags: int,
                                       ac: AllocContext) -> tuple[Page | None, int]:
    """``__alloc_pages_direct_reclaim``: reclaim (if reclaim is modelled), then retry once more after a drain."""
    hook = pa.kernel.reclaim.try_to_free_pages
    progress = 0
    if hook is not None:
        was = th in pa.memalloc_threads
        pa.memalloc_threads.add(th)  # memalloc_noreclaim_save
        try:
            progress = await hook(th, gfp, order, ac.zonelist)
        finally:
            if not was:
                pa.memalloc_threads.discard(th)
    if not progress:
        return None, 0
    page = await get_page_from_freelist(pa, th, gfp, order, alloc_flags, ac)
    if page is None:
        await unreserve_highatomic_pageblock(pa, th, ac, False)
        await __drain_all_pages(pa, th)
        page = await get_page_from_freelist(pa, th, gfp, order, alloc_flags, ac)
    return page, progress


async def __alloc_pages_may_oom(pa: "PageAllocator", th: "Thread", gfp: int, order: int,
                                ac: AllocContext) -> tuple[Page | None, int]:
    """``__alloc_pages_may_oom``: one more try at the high watermark, then the OOM killer."""
    lock = pa.oom_lock
    if lock.owner is not None:  # mutex_trylock failed: somebody else is making progress for us
        await th.sleep_for(JIFFY_NS)  # schedule_timeout_uninterruptible(1)
        return None, 1
    await lock.acquire(th, "__alloc_pages_may_oom")
    page = None
    progress = 0
    try:
        page = await get_page_from_freelist(pa, th, (gfp | G.__GFP_HARDWALL) & ~G.__GFP_DIRECT_RECLAIM, order,
                                                 ALLOC_WMARK_HIGH | ALLOC_CPUSET, ac)
        if page is not None:
            return page, 0
        if order > PAGE_ALLOC_COSTLY_ORDER:
            return None, 0
        if gfp & (G.__GFP_RETRY_MAYFAIL | G.__GFP_THISNODE):
            return None, 0
        if ac.highest_zoneidx < pa.types.ZONE_NORMAL:
            return None, 0
        hook = pa.kernel.reclaim.out_of_memory
        killed = bool(await hook(th, gfp, order)) if hook is not None else False
        if killed or gfp & G.__GFP_NOFAIL:
            progress = 1
            if gfp & G.__GFP_NOFAIL:
                page = await get_page_from_freelist(pa, th, gfp, order, ALLOC_NO_WATERMARKS, ac)
        return page, progress
    finally:
        await lock.release(th)


async def __alloc_pages_slowpath(pa: "PageAllocator", th: "Thread", gfp: int, order: int, ac: AllocContext) -> Page | None:
    """``__alloc_pages_slowpath``: wake kswapd, dip into reserves, reclaim, retry, OOM; None on failure."""
    can_direct_reclaim = bool(gfp & G.__GFP_DIRECT_RECLAIM)
    can_compact = bool(gfp & G.__GFP_IO)  # gfp_compaction_allowed (compaction finds nothing here)
    nofail = bool(gfp & G.__GFP_NOFAIL)
    costly_order = order > PAGE_ALLOC_COSTLY_ORDER
    no_progress_loops = 0
    alloc_flags = gfp_to_alloc_flags(gfp, order)
    if alloc_flags & ALLOC_KSWAPD:
        wake_all_kswapds(pa, order, gfp, ac)
    page = await get_page_from_freelist(pa, th, gfp, order, alloc_flags, ac)
    if page is not None:
        return page
    if can_direct_reclaim and can_compact and costly_order and gfp & G.__GFP_NORETRY:
        # Costly __GFP_NORETRY requests (THP faults) give up when compaction was skipped.
        return _fail(pa, th, gfp, order)
    while True:
        # retry:
        if alloc_flags & ALLOC_KSWAPD:
            wake_all_kswapds(pa, order, gfp, ac)
        reserve_flags = __gfp_pfmemalloc_flags(pa, th, gfp)
        if reserve_flags:
            alloc_flags = reserve_flags | (alloc_flags & ALLOC_KSWAPD)
        page = await get_page_from_freelist(pa, th, gfp, order, alloc_flags, ac)
        if page is not None:
            return page
        give_up = True
        if can_direct_reclaim and th not in pa.memalloc_threads:
            page, progress = await __alloc_pages_direct_reclaim(pa, th, gfp, order, alloc_flags, ac)
            if page is not None:
                return page
            give_up = False
            if gfp & G.__GFP_NORETRY:
                give_up = True
            elif costly_order and (not can_compact or not gfp & G.__GFP_RETRY_MAYFAIL):
                give_up = True
            else:
                retry, no_progress_loops = await should_reclaim_retry(pa, 
                    th, gfp, order, ac, alloc_flags, progress > 0, no_progress_loops)
                if retry:
                    continue
                page, oom_progress = await __alloc_pages_may_oom(pa, th, gfp, order, ac)
                if page is not None:
                    return page
                if th in pa.oom_reserve_threads and (alloc_flags & ALLOC_OOM or gfp & G.__GFP_NOMEMALLOC):
                    give_up = True
                elif oom_progress:
                    no_progress_loops = 0
                    continue
                else:
                    give_up = True
        # nopage:
        if nofail and can_direct_reclaim:
            page = await get_page_from_freelist(pa, th, gfp, order, ALLOC_MIN_RESERVE, ac)
            if page is not None:
                return page
            # The kernel only does cond_resched() and loops; let a jiffy pass so that
            # virtual time moves and others can free memory.
            await th.sleep_for(JIFFY_NS)
            continue
        assert give_up
        return _fail(pa, th, gfp, order)


def _fail(pa: "PageAllocator", th: "Thread", gfp: int, order: int) -> None:
    _warn_alloc(pa, th, gfp, order, f"page allocation failure: order:{order}")
    return None


def _warn_alloc(pa: "PageAllocator", th: "Thread", gfp: int, order: int, msg: str) -> None:
    """``warn_alloc``: counted, and remembered unless __GFP_NOWARN."""
    pa.nr_alloc_failures += 1
    if not gfp & G.__GFP_NOWARN:
        pa.alloc_failures.append(f"{th.comm}: {msg}, mode:{gfp:#x}({G.show_gfp_flags(gfp)})")
        del pa.alloc_failures[:-100]


# ------------------------------------------------------------------------------------
# Freeing
# ------------------------------------------------------------------------------------
def _bad(pa: "PageAllocator", th: "Thread | None", pfn: int, reason: str) -> BadPage:
    return BadPage(th.comm if th is not None else "swapper", pfn, reason)


def _free_pages_prepare(pa: "PageAllocator", th: "Thread", page: Page | None, zone: Zone, pfn: int, order: int) -> None:
    """``free_pages_prepare``: the trace event, the bad-page checks, and the struct page goes away."""
    tr = pa.tracer
    if tr.on[kmem_events.mm_page_free.id]:
        tr.emit(kmem_events.mm_page_free, th, pfn=pfn, order=order)
    if page is not None:
        page.flags &= ~(1 << PG_head)
        reason = bad_free_page_reason(page)
        if reason is not None:
            raise _bad(pa, th, pfn, f"{reason} (flags: {show_page_flags(page.flags)})")
        pa.mem_map.drop_block(page, order)
    else:
        mm = pa.mem_map
        for p in range(pfn, pfn + (1 << order)):
            t = mm.pages.pop(p, None)
            if t is not None:
                head = t.lru
                if type(head) is Page and head.pfn in mm.tails:
                    mm.tails[head.pfn].remove(p)
    zone.nr_allocated -= 1 << order


def _allocated_block(pa: "PageAllocator", th: "Thread", page: Page, order: int) -> Page:
    """The checks of ``__free_pages`` on a page handed back: allocated, a head, the right order."""
    pfn = page.pfn
    cur = pa.mem_map.pages.get(pfn)
    if cur is not page:
        where = _where_is(pa, page.zone, pfn)
        raise _bad(pa, th, pfn, f"freeing a page that is not allocated ({where}): double free?")
    if type(page.lru) is Page:
        raise _bad(pa, th, pfn, f"freeing a tail page of the block at pfn:{page.lru.pfn:05x}")
    if page._refcount <= 0:
        raise _bad(pa, th, pfn, f"freeing a page with _refcount {page._refcount}: double free?")
    if order != page.order:
        raise _bad(pa, th, pfn, f"freed with order {order} but allocated with order {page.order}")
    return page


def _where_is(pa: "PageAllocator", zone: Zone, pfn: int) -> str:
    """Where a frame that is not allocated is: in a buddy block, on a pcp list, or reserved."""
    for k in range(NR_PAGE_ORDERS):
        head = pfn & ~((1 << k) - 1)
        e = zone.buddy.get(head)
        if e is not None and e[2] >= k:
            return f"it is in the free block of order {e[2]} at pfn:{head:05x}"
    for pcp in zone.per_cpu_pageset:
        for pindex, lst in enumerate(pcp.lists):
            if pfn in lst:
                return f"it is on CPU {pcp.cpu}'s pcp list of order {pindex_to_order(pindex)}"
    return "it is free or was never handed out"


async def free_unref_folios(pa: "PageAllocator", th: "Thread", pages: Iterable[Page]) -> None:
    """``free_unref_folios``: pages whose last reference the caller dropped, freed as one batch.

    Each page must have ``_refcount`` 0 already (``folios_put_refs``);
    emits ``mm_page_free`` and ``mm_page_free_batched`` per page.
    """
    tr = pa.tracer
    batched = tr.on[kmem_events.mm_page_free_batched.id]
    for page in pages:
        pfn, order, zone = page.pfn, page.order, page.zone
        if pa.mem_map.pages.get(pfn) is not page:
            raise _bad(pa, th, pfn, f"freeing a page that is not allocated ({_where_is(pa, zone, pfn)})")
        _free_pages_prepare(pa, th, page, zone, pfn, order)
        if not pcp_allowed_order(order):
            await free_one_page(pa, th, zone, pfn, order)
            continue
        mt = zone.get_pageblock_migratetype(pfn)
        if mt == MIGRATE_ISOLATE:
            await free_one_page(pa, th, zone, pfn, order)
            continue
        if mt >= MIGRATE_PCPTYPES:
            mt = MIGRATE_MOVABLE
        if batched:
            tr.emit(kmem_events.mm_page_free_batched, th, pfn=pfn)
        cpu = _pcp_lock(pa, th)
        try:
            await free_unref_page_commit(pa, th, zone, zone.per_cpu_pageset[cpu.id], pfn, mt, order)
        finally:
            _pcp_unlock(pa, th, cpu)


def free_block_reason(z: Zone, pfn: int, order: int) -> str | None:
    """Why the free block at ``pfn`` is wrong (misaligned, outside the zone, overlapping), or None."""
    size = 1 << order
    where = f"node {z.node} zone {z.name}: free block pfn:{pfn:05x} order {order}"
    if pfn & (size - 1):
        return f"{where} is not aligned to its order"
    if pfn < z.zone_start_pfn or pfn + size > z.zone_end_pfn:
        return f"{where} lies outside the zone [{z.zone_start_pfn:#x}, {z.zone_end_pfn:#x})"
    buddy = z.buddy
    for k in range(1, NR_PAGE_ORDERS):
        head = pfn & ~((1 << k) - 1)
        if head != pfn:
            e = buddy.get(head)
            if e is not None and head + (1 << e[2]) > pfn:
                return f"{where} overlaps the free block pfn:{head:05x} order {e[2]}"
    if order:
        inner = (range(pfn + 1, pfn + size) if size - 1 <= len(buddy)
                 else [p for p in buddy if pfn < p < pfn + size])
        for p in inner:
            e = buddy.get(p)
            if e is not None:
                return f"{where} contains the free block pfn:{p:05x} order {e[2]}"
    return None


def check_zone_structure(z: Zone) -> str | None:
    """A full check of one zone's free lists: links, counts, alignment, no overlap, no unmerged buddies.

    O(free blocks · log); for tests and the end of a run, not every hand-off.
    """
    seen = 0
    counts = [0] * NR_PAGE_ORDERS
    for order, area in enumerate(z.free_area):
        for mt in range(MIGRATE_TYPES):
            prev = -1
            pfn = area.head[mt]
            while pfn >= 0:
                e = z.buddy.get(pfn)
                if e is None:
                    return f"zone {z.name}: pfn:{pfn:05x} is on a free list but not a free block"
                if e[0] != prev or e[2] != order or e[3] != mt:
                    return f"zone {z.name}: free block pfn:{pfn:05x} has entry {e}, expected order {order} mt {mt}"
                if z.get_pageblock_migratetype(pfn) != mt and mt != MIGRATE_ISOLATE:
                    return (f"zone {z.name}: free block pfn:{pfn:05x} is on the {mt} list in a pageblock of type "
                            f"{z.get_pageblock_migratetype(pfn)}")
                seen += 1
                counts[order] += 1
                prev, pfn = pfn, e[1]
            if area.tail[mt] != prev:
                return f"zone {z.name}: order {order} mt {mt} list tail {area.tail[mt]} != last {prev}"
        if counts[order] != area.nr_free:
            return f"zone {z.name}: order {order} nr_free {area.nr_free} but {counts[order]} blocks listed"
    if seen != len(z.buddy):
        return f"zone {z.name}: {len(z.buddy)} free blocks indexed but {seen} on the lists"
    end = -1
    for pfn in sorted(z.buddy):
        order = z.buddy[pfn][2]
        if pfn & ((1 << order) - 1):
            return f"zone {z.name}: free block pfn:{pfn:05x} order {order} is not aligned"
        if pfn < end:
            return f"zone {z.name}: free block pfn:{pfn:05x} overlaps the previous block"
        if pfn < z.zone_start_pfn or pfn + (1 << order) > z.zone_end_pfn:
            return f"zone {z.name}: free block pfn:{pfn:05x} lies outside the zone"
        end = pfn + (1 << order)
        if order < MAX_PAGE_ORDER:
            b = z.buddy.get(pfn ^ (1 << order))
            if b is not None and b[2] == order and (order < pageblock_order or (
                    migratetype_is_mergeable(z.get_pageblock_migratetype(pfn))
                    and migratetype_is_mergeable(z.get_pageblock_migratetype(pfn ^ (1 << order))))):
                return f"zone {z.name}: free buddies pfn:{pfn:05x} and pfn:{pfn ^ (1 << order):05x} of order {order} " \
                       f"were not merged"
    return None


# --- boot and the public API ------------------------------------------------------------


def page_alloc_init(kernel: Any, bootmem: BootMem | None = None) -> PageAllocator:
    """Boot the page allocator of ``kernel`` (called from ``Kernel.boot``)."""
    pa = PageAllocator(kernel, bootmem)
    pa.boot()
    return pa


def _pa(th: "Thread") -> PageAllocator:
    return th.machine.page_alloc  # type: ignore[attr-defined]


async def alloc_pages(th: "Thread", gfp: int, order: int = 0, nid: int | None = None) -> Page | None:
    """``alloc_pages``: 2^order contiguous pages, or None (ENOMEM)."""
    return await __alloc_pages(th.machine.page_alloc, th, gfp, order, nid)  # type: ignore[attr-defined]


async def alloc_page(th: "Thread", gfp: int) -> Page | None:
    """``alloc_page``: one page, or None."""
    return await __alloc_pages(th.machine.page_alloc, th, gfp, 0, None)  # type: ignore[attr-defined]


async def __free_pages(th: "Thread", page: Page, order: int = 0) -> None:
    """``__free_pages``: drop a reference; on the last one the block goes back.

    A non-compound block whose first page is still referenced elsewhere
    keeps that page and frees the rest (``while (order-- > 0)``), as 6.12 does.
    """
    pa = _pa(th)
    _allocated_block(pa, th, page, order)
    page._refcount -= 1
    zone = page.zone
    if page._refcount == 0:
        _free_pages_prepare(pa, th, page, zone, page.pfn, order)
        await free_unref_page(pa, th, zone, page.pfn, order)
    elif not page.flags & (1 << PG_head) and order:
        pfn = page.pfn
        page.order = 0
        while order > 0:
            order -= 1
            sub = pfn + (1 << order)
            _free_pages_prepare(pa, th, None, zone, sub, order)
            await free_unref_page(pa, th, zone, sub, order)


free_pages_ = __free_pages  # the same, under a name that is not mangled inside class bodies


async def free_pages(th: "Thread", page: Page | None, order: int = 0) -> None:
    """``free_pages``: as ``__free_pages``, and freeing None (a 0 address) does nothing."""
    if page is not None:
        await __free_pages(th, page, order)


async def free_page(th: "Thread", page: Page | None) -> None:
    """``free_page``: one page."""
    if page is not None:
        await __free_pages(th, page, 0)


async def __get_free_pages(th: "Thread", gfp: int, order: int = 0) -> Page | None:
    """``__get_free_pages``: never highmem (the kernel returns an address; the model the page)."""
    return await __alloc_pages(_pa(th), th, gfp & ~G.__GFP_HIGHMEM, order)


get_free_pages = __get_free_pages


async def get_zeroed_page(th: "Thread", gfp: int) -> Page | None:
    """``get_zeroed_page``: one lowmem page, cleared (charges ``clear_page``)."""
    return await __alloc_pages(_pa(th), th, (gfp | G.__GFP_ZERO) & ~G.__GFP_HIGHMEM, 0)


async def drain_all_pages(th: "Thread", zone: Zone | None = None) -> None:
    """``drain_all_pages``: every CPU's pcp lists (of one zone, or all) back to the buddy lists."""
    await __drain_all_pages(_pa(th), th, zone)


__all__ = [
    "AllocContext", "BadPage", "BootError", "BootMem", "MemInfoSources", "PageAllocator", "Region",
    "alloc_page", "alloc_pages", "check_zone_structure", "drain_all_pages", "free_block_reason", "free_page",
    "free_pages", "free_pages_", "get_free_pages", "get_zeroed_page", "page_alloc_init",
]
