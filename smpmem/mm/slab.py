"""Slab allocator: models mm/slab.c (the SLAB design of Linux 2.6 … 6.7) behind 6.12's kmalloc interface.

Modelled, after mm/slab.c of Linux 6.7 (the last kernel with SLAB) and the
classic descriptions of it (Bonwick's slab allocator as Linux adapted it):

- ``struct kmem_cache``: object size, alignment (``calculate_alignment``:
  SLAB_HWCACHE_ALIGN, word alignment), objects per slab and pages per slab
  (``calculate_slab_order`` / ``cache_estimate``: the freelist inside an
  object, on the slab or off it; at most ``slab_max_order`` unless one object
  needs more; reclaimable caches take the first order that fits; at most
  ``SLAB_OBJ_MAX_NUM`` objects), cache colouring (``colour``,
  ``colour_off``, ``colour_next``), a constructor run when a slab is built.
- Per node, ``struct kmem_cache_node``: ``slabs_full``, ``slabs_partial``,
  ``slabs_free`` (list order as in the kernel: where ``list_add`` and
  ``list_add_tail`` put a slab matters for which slab is used next),
  ``free_objects``, ``free_limit``, the shared array cache, all under
  ``list_lock`` (a :class:`~smpmem.sim.SpinLock` of class ``&n->list_lock``).
- Per CPU, ``struct array_cache``: ``limit`` and ``batchcount`` from
  ``enable_cpucache``. Allocation and free take no shared lock while the
  array has objects / room (``____cache_alloc`` / ``___cache_free``, the
  STATS ``allochit`` / ``freehit``); ``cache_alloc_refill`` moves up to a
  batch from the shared array or the slabs under ``list_lock``;
  ``cache_flusharray`` gives the oldest batch back; ``free_block`` puts
  objects on their slabs and frees slabs beyond ``free_limit``.
- ``cache_grow_begin`` / ``cache_grow_end``: pages from the buddy allocator
  (interrupts back on for blocking allocations), accounted in
  ``NR_SLAB_RECLAIMABLE`` / ``NR_SLAB_UNRECLAIMABLE`` (meminfo's Slab,
  SReclaimable, SUnreclaim) and given back by ``kmem_freepages``; a slab
  page's ``private`` points at its :class:`Slab` (``PageSlab``).
- ``cache_reap`` (the per-CPU timer, :func:`start_cache_reap`),
  ``drain_freelist``, ``kmem_cache_shrink`` (every CPU's array by IPI),
  ``do_tune_cpucache`` (writing /proc/slabinfo), and a shrinker,
  ``kmem_cache_reap``, through which reclaim's ``shrink_slab`` frees free
  slabs (2.4's reclaim called ``kmem_cache_reap`` itself; 2.6 SLAB left it
  to the timer).
- kmalloc as 6.12 routes it (mm/slab_common.c, include/linux/slab.h):
  ``kmalloc_index`` size classes 32 B … 128 KiB (SLAB's KMALLOC_SHIFT_LOW 5,
  and the 128 KiB top class of the classic texts), ``kmalloc-*``,
  ``kmalloc-rcl-*`` (__GFP_RECLAIMABLE) and ``dma-kmalloc-*`` (__GFP_DMA);
  larger requests go to the page allocator (``__kmalloc_large_node``,
  counted as unreclaimable slab); ``kmalloc(0)`` returns ``ZERO_SIZE_PTR``.
- Tracepoints ``kmalloc``, ``kfree``, ``kmem_cache_alloc``,
  ``kmem_cache_free`` with the kernel's fields (node -1: NUMA_NO_NODE), and
  the STATS figures of ``CONFIG_DEBUG_SLAB`` in :meth:`KmemCache.statistics`.

Simplified:

- No alien caches: freeing an object of another node goes straight to that
  node's lists under its ``list_lock`` (SLAB with ``use_alien_caches = 0``);
  slabs are grown on the local node with the caller's flags (no
  ``fallback_alloc``).
- No freelist randomisation, red zones, poisoning, kmemleak, KASAN, memcg
  (``__GFP_ACCOUNT`` objects come from the normal caches, not
  ``kmalloc-cg-*``) and no RCU delay for SLAB_TYPESAFE_BY_RCU caches.
- The ``kmem_cache`` / ``kmem_cache_node`` structures and the array caches
  are not themselves slab objects (an off-slab freelist is, as in SLAB).
- ``kmem_cache_create`` and ``kmem_cache_destroy`` are instantaneous
  (module init and exit): no ``slab_mutex``; destroy hands the pages to the
  buddy lists at once, charging no one.
- ``drain_cpu_caches``'s IPI handler takes each CPU's objects off its array;
  the caller then frees them under ``list_lock`` (a handler cannot spin in
  the engine). Until then they are counted in ``nr_in_flight``.
- Object sizes of the standard caches are the objsize column of an x86_64
  6.x /proc/slabinfo (used on i386 too).
- 6.12's ``__do_kmalloc_node`` emits the ``kmalloc`` tracepoint twice for a
  large request (once inside ``__kmalloc_large_node_noprof``); the model
  emits it once.

Locks::

    interrupts off on this CPU (per-CPU array caches)
      &n->list_lock            (one class for every cache and node)
        nothing: slab pages are allocated and freed with no list_lock held
        (zone->lock and the pcp lists are taken inside alloc_pages / __free_pages)

Failures: a broken slab invariant is a :class:`~smpmem.sim.ModelBug`;
misuse (a double free, a free to the wrong cache, a zero object size,
destroying a cache that still has objects) raises :class:`SlabError` naming
the cache and the object; running out of memory returns None, as the kernel
returns NULL.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, final

from ..sim import ModelBug
from ..trace.events import kmem as kmem_events
from .gfp import (
    GFP_DMA,
    GFP_DMA32,
    GFP_KERNEL,
    __GFP_ACCOUNT,
    __GFP_COMP,
    __GFP_DIRECT_RECLAIM,
    __GFP_DMA,
    __GFP_DMA32,
    __GFP_FS,
    __GFP_HARDWALL,
    __GFP_HIGH,
    __GFP_HIGHMEM,
    __GFP_IO,
    __GFP_MEMALLOC,
    __GFP_NOFAIL,
    __GFP_NOMEMALLOC,
    __GFP_NORETRY,
    __GFP_NOWARN,
    __GFP_RECLAIM,
    __GFP_RECLAIMABLE,
    __GFP_RETRY_MAYFAIL,
    __GFP_THISNODE,
    __GFP_ZERO,
    show_gfp_flags,
)
from .page import PAGE_SHIFT, PAGE_SIZE, Page
from .page_alloc import HZ, JIFFY_NS, alloc_pages, free_pages_
from .shrinker import DEFAULT_SEEKS, SHRINK_EMPTY, SHRINKER_NUMA_AWARE, ShrinkControl, mm_account_reclaimed_pages, register_shrinker
from .zone import MAX_PAGE_ORDER, NR_SLAB_RECLAIMABLE, NR_SLAB_UNRECLAIMABLE

if TYPE_CHECKING:
    from ..sim import CPU, Thread

# --- slab flags (include/linux/slab.h; the fixed values of Linux <= 6.7) ----------------
SLAB_KMALLOC = 0x00001000
SLAB_HWCACHE_ALIGN = 0x00002000
SLAB_CACHE_DMA = 0x00004000
SLAB_CACHE_DMA32 = 0x00008000
SLAB_PANIC = 0x00040000
SLAB_TYPESAFE_BY_RCU = 0x00080000
SLAB_RECLAIM_ACCOUNT = 0x00020000
SLAB_NOLEAKTRACE = 0x00800000
SLAB_ACCOUNT = 0x04000000
CFLGS_OBJFREELIST_SLAB = 0x40000000  # mm/slab.c: the freelist lives in a free object
CFLGS_OFF_SLAB = 0x80000000  # mm/slab.c: the freelist is allocated from a kmalloc cache

# --- mm/slab.c constants ------------------------------------------------------------------
BATCHREFILL_LIMIT = 16  # a refill of an untouched array takes at most this many
REAPTIMEOUT_AC = 2 * HZ  # jiffies between cache_reap runs on one CPU
REAPTIMEOUT_NODE = 4 * HZ  # jiffies between reaps of one node's shared array and free slabs
SLAB_MAX_ORDER_HI = 1
SLAB_MAX_ORDER_LO = 0
SLAB_OBJ_MIN_SIZE = 16  # KMALLOC_MIN_SIZE < 16 ? KMALLOC_MIN_SIZE : 16
FREELIST_IDX_SIZE = 1  # sizeof(freelist_idx_t): a byte, as PAGE_SIZE >> 8 <= SLAB_OBJ_MIN_SIZE
SLAB_OBJ_MAX_NUM = 1 << 8
CACHE_LINE_SIZE = 64  # cache_line_size() on x86
ARCH_SLAB_MINALIGN = 8  # __alignof__(unsigned long long)
ARCH_KMALLOC_MINALIGN = 8
SHARED_ARRAY_BATCH = 0xBAADF00D  # alloc_arraycache(..., 0xbaadf00d): a shared array has no batchcount

# --- kmalloc (include/linux/slab.h, mm/slab_common.c) ---------------------------------------
KMALLOC_SHIFT_LOW = 5  # SLAB: the smallest class is 32 bytes
KMALLOC_SHIFT_HIGH = 17  # 128 KiB, the largest class (the issue's and the classic texts')
KMALLOC_MIN_SIZE = 1 << KMALLOC_SHIFT_LOW
KMALLOC_MAX_CACHE_SIZE = 1 << KMALLOC_SHIFT_HIGH
KMALLOC_MAX_SIZE = 1 << (MAX_PAGE_ORDER + PAGE_SHIFT)  # 4 MiB: kmalloc_large's limit
KMALLOC_NORMAL, KMALLOC_RECLAIM, KMALLOC_DMA = 0, 1, 2  # enum kmalloc_cache_type (no cgroup caches)
KMALLOC_TYPE_NAMES = ("kmalloc-", "kmalloc-rcl-", "dma-kmalloc-")
KMALLOC_TYPE_FLAGS = (0, SLAB_RECLAIM_ACCOUNT, SLAB_CACHE_DMA)
KMALLOC_NOT_NORMAL_BITS = __GFP_RECLAIMABLE | __GFP_DMA
# kmalloc_info[]: the class sizes and their names, by kmalloc_index.
KMALLOC_INFO: dict[int, tuple[int, str]] = {
    1: (96, "96"), 2: (192, "192"), 5: (32, "32"), 6: (64, "64"), 7: (128, "128"), 8: (256, "256"),
    9: (512, "512"), 10: (1024, "1k"), 11: (2048, "2k"), 12: (4096, "4k"), 13: (8192, "8k"),
    14: (16384, "16k"), 15: (32768, "32k"), 16: (65536, "64k"), 17: (131072, "128k"),
}
# size_index[] after setup_kmalloc_cache_index_table() for KMALLOC_MIN_SIZE 32: (size - 1) / 8 -> index.
SIZE_INDEX = (5, 5, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2)
INDEX_NODE = 7  # kmalloc_index(sizeof(struct kmem_cache_node)): SLAB creates kmalloc-128 first

# mm/internal.h
GFP_RECLAIM_MASK = (__GFP_RECLAIM | __GFP_HIGH | __GFP_IO | __GFP_FS | __GFP_NOWARN | __GFP_RETRY_MAYFAIL
                    | __GFP_NOFAIL | __GFP_NORETRY | __GFP_MEMALLOC | __GFP_NOMEMALLOC)
GFP_CONSTRAINT_MASK = __GFP_HARDWALL | __GFP_THISNODE
GFP_SLAB_BUG_MASK = __GFP_DMA32 | __GFP_HIGHMEM

NUMA_NO_NODE = -1
SLABS_FULL, SLABS_PARTIAL, SLABS_FREE = 0, 1, 2  # which node list a slab is on (-1: none)
_LIST_NAMES = ("slabs_full", "slabs_partial", "slabs_free")

_ev_kmalloc = kmem_events.kmalloc
_ev_kfree = kmem_events.kfree
_ev_kca = kmem_events.kmem_cache_alloc
_ev_kcf = kmem_events.kmem_cache_free


class SlabError(ValueError):
    """Misuse of the slab allocator (double free, wrong cache, bad size …): the message names cache and object."""


def _kernel_ctor(obj: "SlabObj") -> None:
    """Stands for a kernel constructor (``anon_vma_ctor``, ``init_once`` …): it shapes the layout, does nothing."""


# --- objects, slabs, array caches ----------------------------------------------------------


@final
class SlabObj:
    """One object of a slab, known by its address in the direct map.

    ``inuse``: handed out to a caller (False while on its slab's freelist, in
    an array cache, or in flight). ``data``: whatever the allocating
    subsystem attaches (cleared when the object is freed). The same
    :class:`SlabObj` stands for the same memory every time it is allocated
    again, as a pointer does; a freed handle that is freed again is a double
    free.
    """

    __slots__ = ("addr", "slab", "inuse", "data")

    def __init__(self, addr: int, slab: "Slab | None") -> None:
        self.addr = addr
        self.slab = slab
        self.inuse = False
        self.data: Any = None

    @property
    def cache(self) -> "KmemCache | None":
        return self.slab.cache if self.slab is not None else None

    def __repr__(self) -> str:
        name = self.slab.cache.name if self.slab is not None else "kmalloc"
        return f"<{name} object 0x{self.addr:x}{'' if self.inuse else ' (free)'}>"


@final
class LargeObj:
    """A kmalloc of more than ``KMALLOC_MAX_CACHE_SIZE``: a compound block straight from the page allocator."""

    __slots__ = ("addr", "page", "order", "size", "inuse", "data")

    def __init__(self, addr: int, page: Page, order: int, size: int) -> None:
        self.addr = addr
        self.page = page
        self.order = order
        self.size = size
        self.inuse = True
        self.data: Any = None

    cache = None

    def __repr__(self) -> str:
        return f"<kmalloc_large block 0x{self.addr:x} order {self.order}{'' if self.inuse else ' (free)'}>"


ZERO_SIZE_PTR = SlabObj(16, None)  # ((void *)16): what kmalloc(0) returns; kfree of it does nothing
ZERO_SIZE_PTR.inuse = True


@final
class Slab:
    """The management part of one slab (``struct slab`` overlaying the head ``struct page``).

    Fields (``list_lock`` of its node once the slab is on a list):
    ``free``: the objects on the slab's freelist, the next to hand out last
    (``get_free_obj(slab, slab->active)``); ``active``: objects taken off the
    freelist (by callers or array caches); ``list``: which node list it is on.
    """

    __slots__ = ("cache", "page", "nid", "s_mem", "active", "free", "list", "objs", "freelist_obj")

    def __init__(self, cache: "KmemCache", page: Page, s_mem: int) -> None:
        self.cache = cache
        self.page = page
        self.nid = page.zone.node
        self.s_mem = s_mem  # address of the first object (page address + colour offset)
        size = cache.size
        self.objs = [SlabObj(s_mem + i * size, self) for i in range(cache.num)]
        self.free = self.objs[::-1]  # cache_init_objs: index order, object 0 first
        self.active = 0
        self.list = -1
        self.freelist_obj: SlabObj | None = None  # the off-slab freelist, a kmalloc object

    def __repr__(self) -> str:
        return (f"<slab of {self.cache.name} pfn=0x{self.page.pfn:x} active={self.active}/{self.cache.num} "
                f"on {_LIST_NAMES[self.list] if self.list >= 0 else 'no list'}>")


def PageSlab(page: Page) -> bool:
    """``folio_test_slab``: the page heads a slab."""
    return type(page.private) is Slab


@final
class ArrayCache:
    """``struct array_cache``: a LIFO of free objects (``avail`` = ``len(entry)``)."""

    __slots__ = ("entry", "limit", "batchcount", "touched")

    def __init__(self, limit: int, batchcount: int) -> None:
        self.entry: list[SlabObj] = []
        self.limit = limit
        self.batchcount = batchcount
        self.touched = False

    @property
    def avail(self) -> int:
        return len(self.entry)

    def __repr__(self) -> str:
        return f"<array_cache avail={len(self.entry)} limit={self.limit} batchcount={self.batchcount}>"


@final
class KmemCacheNode:
    """``struct kmem_cache_node``: one node's slab lists. Every field but ``list_lock`` is under ``list_lock``."""

    __slots__ = ("nid", "list_lock", "lists", "total_slabs", "free_slabs", "free_objects", "free_limit",
                 "colour_next", "shared", "next_reap", "free_touched")

    def __init__(self, machine: Any, nid: int) -> None:
        from ..sim import SpinLock

        self.nid = nid
        self.list_lock = SpinLock(machine, "&n->list_lock")
        # slabs_full, slabs_partial, slabs_free: insertion-ordered (list_add = move to the front).
        self.lists: tuple[OrderedDict[Slab, None], ...] = (OrderedDict(), OrderedDict(), OrderedDict())
        self.total_slabs = 0
        self.free_slabs = 0
        self.free_objects = 0  # free objects on this node's slabs (not in array caches)
        self.free_limit = 0
        self.colour_next = 0
        self.shared: ArrayCache | None = None
        self.next_reap = 0  # virtual ns
        self.free_touched = False

    @property
    def slabs_full(self) -> "OrderedDict[Slab, None]":
        return self.lists[SLABS_FULL]

    @property
    def slabs_partial(self) -> "OrderedDict[Slab, None]":
        return self.lists[SLABS_PARTIAL]

    @property
    def slabs_free(self) -> "OrderedDict[Slab, None]":
        return self.lists[SLABS_FREE]


@dataclass(frozen=True, slots=True)
class KmemCacheStatistics:
    """The STATS counters of mm/slab.c (``CONFIG_DEBUG_SLAB``'s /proc/slabinfo columns) plus the model's own."""

    name: str
    allochit: int  # allocations served from this CPU's array
    allocmiss: int  # allocations that had to refill the array
    freehit: int  # frees that found room in the array
    freemiss: int  # frees that flushed a batch first
    num_allocations: int  # objects taken off slabs ("listallocs")
    high_mark: int  # most objects off slabs at once ("maxobjs")
    grown: int  # slabs built
    reaped: int  # slabs freed by cache_reap
    errors: int  # slabs that could not be built (no memory)
    node_frees: int  # objects freed to another node's lists
    nr_inuse: int  # objects held by callers now
    nr_slabs: int
    nr_pages: int

    @property
    def hit_ratio(self) -> float:
        """Fraction of allocations served from a per-CPU array."""
        n = self.allochit + self.allocmiss
        return self.allochit / n if n else 0.0


@final
class KmemCache:
    """``struct kmem_cache`` (SLAB).

    Layout fields are written at creation only; ``limit``, ``batchcount``,
    ``shared`` by ``do_tune_cpucache``. ``cpu_cache[cpu]`` belongs to that CPU
    (interrupts off); ``node[nid]`` is under its ``list_lock``. Statistics
    are plain counters updated where the kernel's STATS macros are.
    """

    __slots__ = (
        "sa", "name", "object_size", "size", "align", "flags", "ctor", "num", "gfporder", "allocflags",
        "colour", "colour_off", "freelist_size", "freelist_cache", "limit", "batchcount", "shared",
        "cpu_cache", "node", "index", "dead",
        "allochit", "allocmiss", "freehit", "freemiss", "num_allocations", "num_active", "high_mark", "grown",
        "reaped", "errors", "node_frees",
        "nr_inuse", "nr_in_flight", "nr_pages", "growing", "dying",
    )

    def __init__(self, sa: "SlabAllocator", name: str, size: int, align: int, flags: int,
                 ctor: Callable[[SlabObj], None] | None) -> None:
        self.sa = sa
        self.name = name
        self.object_size = size
        self.size = size
        self.align = align
        self.flags = flags
        self.ctor = ctor
        self.num = 0
        self.gfporder = 0
        self.allocflags = 0
        self.colour = 0
        self.colour_off = 0
        self.freelist_size = 0
        self.freelist_cache: KmemCache | None = None
        self.limit = 0
        self.batchcount = 0
        self.shared = 0
        self.cpu_cache: list[ArrayCache] = []
        self.node: list[KmemCacheNode] = []
        self.index = 0  # creation order
        self.dead = False
        self.allochit = self.allocmiss = self.freehit = self.freemiss = 0
        self.num_allocations = self.num_active = self.high_mark = 0
        self.grown = self.reaped = self.errors = self.node_frees = 0
        self.nr_inuse = 0  # objects callers hold
        self.nr_in_flight = 0  # freed objects not yet in an array or on a slab (slow frees, drain IPIs)
        self.nr_pages = 0  # pages of this cache's slabs (what NR_SLAB_* counts for it)
        self.growing: list[Slab] = []  # slabs built, not yet on a list (between grow_begin and grow_end)
        self.dying = 0  # slabs taken off the lists, pages not yet freed

    @property
    def pages_per_slab(self) -> int:
        return 1 << self.gfporder

    @property
    def objs_per_slab(self) -> int:
        return self.num

    @property
    def reclaimable(self) -> bool:
        return bool(self.flags & SLAB_RECLAIM_ACCOUNT)

    def statistics(self) -> KmemCacheStatistics:
        return KmemCacheStatistics(
            self.name, self.allochit, self.allocmiss, self.freehit, self.freemiss, self.num_allocations,
            self.high_mark, self.grown, self.reaped, self.errors, self.node_frees, self.nr_inuse,
            sum(n.total_slabs for n in self.node), self.nr_pages)

    def slabinfo(self) -> "SlabInfo":
        """``get_slabinfo``: what /proc/slabinfo prints (objects in array caches count as active)."""
        total_slabs = free_slabs = free_objs = shared_avail = 0
        for n in self.node:
            total_slabs += n.total_slabs
            free_slabs += n.free_slabs
            free_objs += n.free_objects
            if n.shared is not None:
                shared_avail += len(n.shared.entry)
        num_objs = total_slabs * self.num
        return SlabInfo(num_objs - free_objs, num_objs, total_slabs - free_slabs, total_slabs, shared_avail,
                        self.limit, self.batchcount, self.shared, self.num, self.gfporder)

    def __repr__(self) -> str:
        return f"<kmem_cache {self.name} size={self.size} num={self.num} order={self.gfporder}>"


@dataclass(frozen=True, slots=True)
class SlabInfo:
    """``struct slabinfo``."""

    active_objs: int
    num_objs: int
    active_slabs: int
    num_slabs: int
    shared_avail: int
    limit: int
    batchcount: int
    shared: int
    objects_per_slab: int
    cache_order: int


# --- the allocator's global state ----------------------------------------------------------


class SlabAllocator:
    """``slab_caches``, ``kmalloc_caches`` and the boot parameters. One per kernel: ``kernel.slab``."""

    def __init__(self, kernel: Any) -> None:
        from .highmem import PAGE_OFFSET

        self.kernel = kernel
        self.costs = kernel.costs
        self.tracer = kernel.tracer
        self.pa = kernel.page_alloc
        self.ncpus = len(kernel.cpus)
        self.nodes = self.pa.nodes
        self.nr_nodes = len(self.nodes)
        self.numa_node = [c % self.nr_nodes for c in range(self.ncpus)]  # cpu_to_node (round-robin)
        self.page_offset = PAGE_OFFSET[kernel.config.layout]
        self.word = 8 if kernel.config.layout == "x86_64" else 4  # BYTES_PER_WORD
        # slab_max_order: SLAB_MAX_ORDER_HI once there is more than 32 MiB of RAM.
        self.slab_max_order = SLAB_MAX_ORDER_HI if self.pa.totalram_pages > (32 << 20) >> PAGE_SHIFT \
            else SLAB_MAX_ORDER_LO
        self.caches: dict[str, KmemCache] = {}
        self.slab_caches: list[KmemCache] = []  # creation order (/proc/slabinfo prints the newest first)
        self.kmalloc_caches: list[list[KmemCache | None]] = [[None] * (KMALLOC_SHIFT_HIGH + 1) for _ in range(3)]
        self.kmalloc_normal = self.kmalloc_caches[KMALLOC_NORMAL]
        self.nr_large_pages = 0  # pages of kmalloc_large blocks (NR_SLAB_UNRECLAIMABLE)
        self.nr_large = 0
        self.fast_cost = self.costs.slab_array_op
        self.debug = bool(kernel.debug_vm)
        self.dirty: dict[KmemCache, None] = {}  # caches whose slow paths ran since the last check
        self.pages_dirty = False
        self.new_slabs: list[Slab] = []  # built since the last check (debug)
        self.gone_slabs: list[Slab] = []  # destroyed since the last check (debug)
        self.warnings: list[str] = []  # pr_warn / WARN messages, most recent last (at most 100)
        self.reap_cursor = 0  # where the kmem_cache_reap shrinker continues
        self._index = 0

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        del self.warnings[:-100]

    def kmalloc_slab(self, size: int, gfp: int = 0) -> KmemCache | None:
        """``kmalloc_slab``: the cache a kmalloc of ``size`` bytes comes from (None above the classes)."""
        if size > KMALLOC_MAX_CACHE_SIZE:
            return None
        t = kmalloc_type(gfp)
        return self.kmalloc_caches[t][kmalloc_index(size)]

    def mark(self, cachep: KmemCache) -> None:
        self.dirty[cachep] = None


def kmalloc_index(size: int) -> int:
    """``kmalloc_index`` (with ``size_index[]`` below 192 bytes): the class index of a request of ``size`` bytes."""
    if size <= 192:
        return SIZE_INDEX[(size - 1) >> 3]
    return (size - 1).bit_length()


def kmalloc_type(gfp: int) -> int:
    """``kmalloc_type``: DMA first, then reclaimable, else normal (no cgroup caches)."""
    if not gfp & KMALLOC_NOT_NORMAL_BITS:
        return KMALLOC_NORMAL
    if gfp & __GFP_DMA:
        return KMALLOC_DMA
    return KMALLOC_RECLAIM


def _align(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


# --- cache creation --------------------------------------------------------------------------


def calculate_alignment(flags: int, align: int, size: int) -> int:
    """``calculate_alignment`` (mm/slab_common.c)."""
    if flags & SLAB_HWCACHE_ALIGN:
        ralign = CACHE_LINE_SIZE
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_SLAB_MINALIGN)
    return _align(align, 8)


def cache_estimate(gfporder: int, buffer_size: int, flags: int) -> tuple[int, int]:
    """``cache_estimate``: (objects per slab, bytes left over) for a slab of 2^gfporder pages."""
    slab_size = PAGE_SIZE << gfporder
    if flags & (CFLGS_OBJFREELIST_SLAB | CFLGS_OFF_SLAB):
        return slab_size // buffer_size, slab_size % buffer_size
    return slab_size // (buffer_size + FREELIST_IDX_SIZE), slab_size % (buffer_size + FREELIST_IDX_SIZE)


def calculate_slab_order(sa: SlabAllocator, cachep: KmemCache, size: int, flags: int) -> int:
    """``calculate_slab_order``: set ``num`` and ``gfporder``; return the bytes left over per slab."""
    left_over = 0
    for gfporder in range(MAX_PAGE_ORDER + 1):
        num, remainder = cache_estimate(gfporder, size, flags)
        if not num:
            continue
        if num > SLAB_OBJ_MAX_NUM:
            break
        if flags & CFLGS_OFF_SLAB:
            freelist_size = num * FREELIST_IDX_SIZE
            freelist_cache = sa.kmalloc_slab(freelist_size)
            if freelist_cache is None or freelist_cache.flags & CFLGS_OFF_SLAB:
                continue  # not there yet at boot, or would loop in cache_grow_begin
            if freelist_cache.size > size // 2:
                continue  # no benefit from going off-slab
        cachep.num = num
        cachep.gfporder = gfporder
        left_over = remainder
        if flags & SLAB_RECLAIM_ACCOUNT:
            break  # reclaimable caches: do not ask for higher orders under GFP_NOFS
        if gfporder >= sa.slab_max_order:
            break
        if left_over * 8 <= PAGE_SIZE << gfporder:
            break  # acceptable internal fragmentation
    return left_over


def _set_objfreelist_slab_cache(sa: SlabAllocator, cachep: KmemCache, size: int, flags: int) -> bool:
    cachep.num = 0
    if cachep.ctor is not None or flags & SLAB_TYPESAFE_BY_RCU:
        return False
    left = calculate_slab_order(sa, cachep, size, flags | CFLGS_OBJFREELIST_SLAB)
    if not cachep.num:
        return False
    if cachep.num * FREELIST_IDX_SIZE > cachep.object_size:
        return False
    cachep.colour = left // cachep.colour_off
    return True


def _set_off_slab_cache(sa: SlabAllocator, cachep: KmemCache, size: int, flags: int) -> bool:
    cachep.num = 0
    if flags & SLAB_NOLEAKTRACE:
        return False
    left = calculate_slab_order(sa, cachep, size, flags | CFLGS_OFF_SLAB)
    if not cachep.num:
        return False
    if left >= cachep.num * FREELIST_IDX_SIZE:
        return False  # the leftover holds the freelist: stay on-slab
    cachep.colour = left // cachep.colour_off
    return True


def _set_on_slab_cache(sa: SlabAllocator, cachep: KmemCache, size: int, flags: int) -> bool:
    cachep.num = 0
    left = calculate_slab_order(sa, cachep, size, flags)
    if not cachep.num:
        return False
    cachep.colour = left // cachep.colour_off
    return True


def __kmem_cache_create(sa: SlabAllocator, cachep: KmemCache) -> None:
    """``__kmem_cache_create`` (SLAB): final size, alignment, colouring and the slab layout."""
    flags = cachep.flags
    size = _align(cachep.object_size, sa.word)
    ralign = sa.word
    if ralign < cachep.align:
        ralign = cachep.align
    cachep.align = ralign
    cachep.colour_off = max(CACHE_LINE_SIZE, cachep.align)
    cachep.allocflags = __GFP_COMP
    if flags & SLAB_CACHE_DMA:
        cachep.allocflags |= GFP_DMA
    if flags & SLAB_CACHE_DMA32:
        cachep.allocflags |= GFP_DMA32
    if flags & SLAB_RECLAIM_ACCOUNT:
        cachep.allocflags |= __GFP_RECLAIMABLE
    size = _align(size, cachep.align)
    if size < SLAB_OBJ_MIN_SIZE:
        size = _align(SLAB_OBJ_MIN_SIZE, cachep.align)
    if _set_objfreelist_slab_cache(sa, cachep, size, flags):
        flags |= CFLGS_OBJFREELIST_SLAB
    elif _set_off_slab_cache(sa, cachep, size, flags):
        flags |= CFLGS_OFF_SLAB
    elif not _set_on_slab_cache(sa, cachep, size, flags):
        raise SlabError(f"kmem_cache_create({cachep.name}): no slab order can hold an object of "
                        f"{cachep.object_size} bytes (E2BIG)")
    cachep.freelist_size = cachep.num * FREELIST_IDX_SIZE
    cachep.flags = flags
    cachep.size = size
    if flags & CFLGS_OFF_SLAB:
        cachep.freelist_cache = sa.kmalloc_slab(cachep.freelist_size)


def enable_cpucache(sa: SlabAllocator, cachep: KmemCache) -> None:
    """``enable_cpucache``: array limits by object size, a shared array on SMP for objects up to a page."""
    size = cachep.size
    if size > 131072:
        limit = 1
    elif size > PAGE_SIZE:
        limit = 8
    elif size > 1024:
        limit = 24
    elif size > 256:
        limit = 54
    else:
        limit = 120
    shared = 8 if size <= PAGE_SIZE and sa.ncpus > 1 else 0
    _tune_arrays(sa, cachep, limit, (limit + 1) // 2, shared)


def _tune_arrays(sa: SlabAllocator, cachep: KmemCache, limit: int, batchcount: int, shared: int) -> None:
    """The part of ``do_tune_cpucache`` / ``setup_kmem_cache_nodes`` that sets the arrays (they must be empty)."""
    cachep.limit, cachep.batchcount, cachep.shared = limit, batchcount, shared
    cachep.cpu_cache = [ArrayCache(limit, batchcount) for _ in range(sa.ncpus)]
    if not cachep.node:
        cachep.node = [KmemCacheNode(sa.kernel, p.node_id) for p in sa.nodes]
        for n in cachep.node:
            # n->next_reap = jiffies + REAPTIMEOUT_NODE + ((unsigned long)cachep) % REAPTIMEOUT_NODE
            n.next_reap = (REAPTIMEOUT_NODE + cachep.index % REAPTIMEOUT_NODE) * JIFFY_NS
    for n in cachep.node:
        ncpus_node = len(sa.nodes[n.nid].cpus)
        n.shared = ArrayCache(shared * batchcount, SHARED_ARRAY_BATCH) if shared else None
        n.free_limit = (1 + ncpus_node) * batchcount + cachep.num


def _create_cache(sa: SlabAllocator, name: str, size: int, align: int, flags: int,
                  ctor: Callable[[SlabObj], None] | None) -> KmemCache:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise SlabError(f"kmem_cache_create: bad cache name {name!r} (a non-empty word: /proc/slabinfo splits on blanks)")
    if name in sa.caches:
        raise SlabError(f"kmem_cache_create({name}): a cache of that name exists already")
    if not isinstance(size, int) or isinstance(size, bool):
        raise SlabError(f"kmem_cache_create({name}): object size must be an integer number of bytes, got {size!r}")
    if size <= 0:
        raise SlabError(f"kmem_cache_create({name}): object size {size}: a slab cache needs objects of at least 1 byte")
    if size > KMALLOC_MAX_SIZE:
        raise SlabError(f"kmem_cache_create({name}): object size {size} exceeds KMALLOC_MAX_SIZE ({KMALLOC_MAX_SIZE})")
    if align < 0 or (align & (align - 1)):
        raise SlabError(f"kmem_cache_create({name}): alignment {align} is not 0 or a power of two")
    cachep = KmemCache(sa, name, size, calculate_alignment(flags, align, size), flags, ctor)
    cachep.index = sa._index
    sa._index += 1
    __kmem_cache_create(sa, cachep)
    enable_cpucache(sa, cachep)
    sa.caches[name] = cachep
    sa.slab_caches.append(cachep)
    return cachep


def kmem_cache_create(kernel: Any, name: str, size: int, align: int = 0, flags: int = 0,
                      ctor: Callable[[SlabObj], None] | None = None) -> KmemCache:
    """``kmem_cache_create``: a cache of ``size``-byte objects, visible in ``kernel.slab.caches[name]``.

    ``ctor(obj)``, if given, runs on each object when its slab is built (not
    at every allocation), as SLAB's constructors did. Raises
    :class:`SlabError` for a bad name, a duplicate, a size of 0, a size above
    KMALLOC_MAX_SIZE or an alignment that is not a power of two.
    """
    return _create_cache(kernel.slab, name, size, align, flags, ctor)


def create_kmalloc_caches(sa: SlabAllocator) -> None:
    """``kmem_cache_init`` + ``create_kmalloc_caches``: kmalloc-128 (for kmem_cache_node) first, then every type."""

    def new_kmalloc_cache(idx: int, t: int) -> None:
        if sa.kmalloc_caches[t][idx] is not None:
            return
        size, name = KMALLOC_INFO[idx]
        flags = KMALLOC_TYPE_FLAGS[t] | SLAB_KMALLOC
        align = ARCH_KMALLOC_MINALIGN
        if size & (size - 1) == 0:
            align = max(align, size)  # create_boot_cache: power-of-two objects are naturally aligned
        sa.kmalloc_caches[t][idx] = _create_cache(sa, KMALLOC_TYPE_NAMES[t] + name, size, align, flags, None)

    new_kmalloc_cache(INDEX_NODE, KMALLOC_NORMAL)
    for t in (KMALLOC_NORMAL, KMALLOC_RECLAIM, KMALLOC_DMA):
        new_kmalloc_cache(1, t)
        new_kmalloc_cache(2, t)
        for i in range(KMALLOC_SHIFT_LOW, KMALLOC_SHIFT_HIGH + 1):
            new_kmalloc_cache(i, t)


# name, object size (x86_64), align, flags, has a constructor: the caches start_kernel creates, in about its order.
STANDARD_CACHES: tuple[tuple[str, int, int, int, bool], ...] = (
    ("vmap_area", 72, 0, SLAB_PANIC, False),  # vmalloc_init (mm_core_init)
    ("radix_tree_node", 576, 0, SLAB_PANIC | SLAB_RECLAIM_ACCOUNT, True),  # radix_tree_init (xarray nodes)
    ("maple_node", 256, 256, SLAB_PANIC, False),  # maple_tree_init
    ("pid", 192, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_ACCOUNT, False),  # pid_idr_init
    ("anon_vma", 104, 0, SLAB_TYPESAFE_BY_RCU | SLAB_PANIC | SLAB_ACCOUNT, True),  # anon_vma_init
    ("anon_vma_chain", 64, 0, SLAB_PANIC | SLAB_ACCOUNT, False),
    ("cred_jar", 192, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_ACCOUNT, False),  # cred_init
    ("task_struct", 5888, 64, SLAB_PANIC | SLAB_ACCOUNT, False),  # fork_init
    ("sighand_cache", 2112, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_TYPESAFE_BY_RCU | SLAB_ACCOUNT, True),
    ("signal_cache", 1152, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_ACCOUNT, False),  # proc_caches_init
    ("files_cache", 704, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_ACCOUNT, False),
    ("fs_cache", 64, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_ACCOUNT, False),
    ("mm_struct", 1600, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_ACCOUNT, False),
    ("vm_area_struct", 192, 0, SLAB_PANIC | SLAB_ACCOUNT, False),
    ("names_cache", 4096, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC, False),  # vfs_caches_init
    ("dentry", 192, 64, SLAB_RECLAIM_ACCOUNT | SLAB_PANIC | SLAB_ACCOUNT, False),  # dcache_init
    ("inode_cache", 624, 0, SLAB_RECLAIM_ACCOUNT | SLAB_PANIC | SLAB_ACCOUNT, True),  # inode_init
    ("filp", 192, 0, SLAB_HWCACHE_ALIGN | SLAB_PANIC | SLAB_ACCOUNT | SLAB_TYPESAFE_BY_RCU, False),  # files_init
    ("buffer_head", 104, 0, SLAB_RECLAIM_ACCOUNT | SLAB_PANIC, False),  # buffer_init
)
# i386 with PAE: the 32-byte pgd comes from a cache (arch/x86/mm/pgtable.c pgtable_cache_init).
I386_CACHES: tuple[tuple[str, int, int, int, bool], ...] = (("pgd_cache", 32, 32, SLAB_PANIC, False),)


# --- interrupts off on this CPU (the array caches) -----------------------------------------


def _irq_save(th: "Thread") -> "CPU":
    """``local_irq_save``: no IPI handling and no preemption on this CPU until restored."""
    cpu = th.cpu
    th.preempt_count += 1
    cpu.irq_depth += 1
    return cpu


def _irq_restore(th: "Thread", cpu: "CPU") -> None:
    """``local_irq_restore``: IPIs that arrived meanwhile run now."""
    th.preempt_count -= 1
    cpu.irq_depth -= 1
    if cpu.irq_depth == 0 and cpu.inbox:
        th.machine.handle_pending_ipis(cpu, th)


def _caller() -> str:
    """The call site for the tracepoints (``_RET_IP_``): the model function that called the API."""
    return sys._getframe(2).f_code.co_name


# --- slab lists (list_lock held) -------------------------------------------------------------


def _list_del(n: KmemCacheNode, slab: Slab) -> None:
    del n.lists[slab.list][slab]
    slab.list = -1


def _list_add(n: KmemCacheNode, which: int, slab: Slab) -> None:
    """``list_add``: at the head."""
    od = n.lists[which]
    od[slab] = None
    od.move_to_end(slab, last=False)
    slab.list = which


def _list_add_tail(n: KmemCacheNode, which: int, slab: Slab) -> None:
    n.lists[which][slab] = None
    slab.list = which


def get_first_slab(n: KmemCacheNode) -> Slab | None:
    """``get_first_slab``: the first partial slab, else the first free one."""
    partial = n.lists[SLABS_PARTIAL]
    if partial:
        return next(iter(partial))
    n.free_touched = True
    free = n.lists[SLABS_FREE]
    if free:
        n.free_slabs -= 1
        return next(iter(free))
    return None


def fixup_slab_list(cachep: KmemCache, n: KmemCacheNode, slab: Slab) -> None:
    """``fixup_slab_list``: a slab whose objects were taken goes to the head of full or partial."""
    if slab.list >= 0:
        _list_del(n, slab)
    _list_add(n, SLABS_FULL if slab.active == cachep.num else SLABS_PARTIAL, slab)


def alloc_block(th: "Thread", cachep: KmemCache, ac: ArrayCache, slab: Slab, batchcount: int) -> int:
    """``alloc_block``: up to ``batchcount`` objects of ``slab`` into ``ac``; what is left of the batch."""
    free = slab.free
    take = min(len(free), batchcount)
    if take <= 0:
        raise ModelBug(f"alloc_block on {slab!r} with batchcount {batchcount}")
    entry = ac.entry
    for _ in range(take):
        entry.append(free.pop())
    slab.active += take
    cachep.num_allocations += take
    cachep.num_active += take
    if cachep.num_active > cachep.high_mark:
        cachep.high_mark = cachep.num_active
    th.pending += cachep.sa.costs.slab_obj_move * take
    if take < batchcount:
        return batchcount - take
    return 0 if not free else -1


def free_block(th: "Thread", cachep: KmemCache, objs: list[SlabObj], n: KmemCacheNode,
               to_destroy: list[Slab]) -> None:
    """``free_block``: objects back on their slabs (``list_lock`` of ``n`` held); surplus free slabs to ``to_destroy``."""
    n.free_objects += len(objs)
    lists = n.lists
    for obj in objs:
        slab = obj.slab
        if slab.nid != n.nid or slab.cache is not cachep:
            raise ModelBug(f"free_block: {obj!r} of {slab!r} freed to {cachep.name} node {n.nid}")
        if slab.list < 0:
            raise ModelBug(f"free_block: {obj!r} belongs to {slab!r}, which is on no list")
        del lists[slab.list][slab]
        slab.free.append(obj)
        slab.active -= 1
        cachep.num_active -= 1
        if slab.active == 0:
            _list_add(n, SLABS_FREE, slab)
            n.free_slabs += 1
        else:
            _list_add_tail(n, SLABS_PARTIAL, slab)  # the tail: most time for its other objects to come back
    th.pending += cachep.sa.costs.slab_obj_move * len(objs)
    free = lists[SLABS_FREE]
    while n.free_objects > n.free_limit and free:
        n.free_objects -= cachep.num
        slab = next(reversed(free))
        _list_del(n, slab)
        n.free_slabs -= 1
        n.total_slabs -= 1
        cachep.dying += 1
        to_destroy.append(slab)


def transfer_objects(to: ArrayCache, frm: ArrayCache, mx: int) -> int:
    """``transfer_objects``: the most recent objects of ``frm``, in order, onto ``to``."""
    nr = min(len(frm.entry), mx, to.limit - len(to.entry))
    if nr <= 0:
        return 0
    to.entry.extend(frm.entry[-nr:])
    del frm.entry[-nr:]
    return nr


# --- pages -----------------------------------------------------------------------------------


async def kmem_getpages(th: "Thread", cachep: KmemCache, flags: int, nid: int) -> Page | None:
    """``kmem_getpages``: 2^gfporder pages for a slab, accounted as (un)reclaimable slab."""
    sa = cachep.sa
    page = await alloc_pages(th, flags | cachep.allocflags, cachep.gfporder, nid)
    if page is None:
        cachep.errors += 1
        if not flags & __GFP_NOWARN:
            sa.warn(f"SLAB: Unable to allocate memory on node {nid}, gfp={show_gfp_flags(flags)} "
                    f"cache: {cachep.name}, object size: {cachep.size}, order: {cachep.gfporder}")
        return None
    nr = 1 << cachep.gfporder
    pgdat = sa.nodes[page.zone.node]
    pgdat.vm_stat[NR_SLAB_RECLAIMABLE if cachep.flags & SLAB_RECLAIM_ACCOUNT else NR_SLAB_UNRECLAIMABLE] += nr
    cachep.nr_pages += nr
    sa.pages_dirty = True
    return page


async def kmem_freepages(th: "Thread", cachep: KmemCache, slab: Slab) -> None:
    """``kmem_freepages``: unaccount a dying slab and give its pages back; credit a reclaimer."""
    sa = cachep.sa
    page = slab.page
    nr = 1 << cachep.gfporder
    if page.private is not slab:
        raise ModelBug(f"kmem_freepages: pfn 0x{page.pfn:x} is not the page of {slab!r}")
    page.private = 0
    mm_account_reclaimed_pages(th, nr)
    sa.nodes[page.zone.node].vm_stat[NR_SLAB_RECLAIMABLE if cachep.flags & SLAB_RECLAIM_ACCOUNT
                                     else NR_SLAB_UNRECLAIMABLE] -= nr
    cachep.nr_pages -= nr
    cachep.dying -= 1  # with nr_pages: the slab no longer counts anywhere
    sa.pages_dirty = True
    await free_pages_(th, page, cachep.gfporder)
    if sa.debug:
        sa.gone_slabs.append(slab)


async def slab_destroy(th: "Thread", cachep: KmemCache, slab: Slab) -> None:
    """``slab_destroy``: the slab's pages go back, then its off-slab freelist (the slab counts as dying on entry)."""
    freelist = slab.freelist_obj
    await kmem_freepages(th, cachep, slab)
    if freelist is not None and cachep.freelist_cache is not None:
        slab.freelist_obj = None
        await kmem_cache_free(th, cachep.freelist_cache, freelist)


async def slabs_destroy(th: "Thread", cachep: KmemCache, lst: list[Slab]) -> None:
    """``slabs_destroy``: every slab ``free_block`` set aside, after ``list_lock`` was dropped."""
    for slab in lst:
        await slab_destroy(th, cachep, slab)


async def cache_grow_begin(th: "Thread", cachep: KmemCache, flags: int, nid: int, cpu: "CPU") -> Slab | None:
    """``cache_grow_begin``: pages, colour, freelist and constructed objects for a new slab (interrupts off on entry).

    Interrupts are re-enabled for a blocking allocation, so the caller's
    array cache may have changed when this returns.
    """
    sa = cachep.sa
    if flags & GFP_SLAB_BUG_MASK:
        bad = flags & GFP_SLAB_BUG_MASK
        flags &= ~GFP_SLAB_BUG_MASK
        sa.warn(f"Unexpected gfp: {bad:#x} ({show_gfp_flags(bad)}). Fixing up to gfp: {flags:#x} "
                f"({show_gfp_flags(flags)}). Fix your code!")
    local_flags = flags & (GFP_CONSTRAINT_MASK | GFP_RECLAIM_MASK)
    blocking = bool(local_flags & __GFP_DIRECT_RECLAIM)
    if blocking:
        _irq_restore(th, cpu)  # local_irq_enable
    try:
        page = await kmem_getpages(th, cachep, local_flags, nid)
        if page is None:
            return None
        n = cachep.node[page.zone.node]
        n.colour_next += 1
        if n.colour_next >= cachep.colour:
            n.colour_next = 0
        offset = n.colour_next if n.colour_next < cachep.colour else 0
        offset *= cachep.colour_off
        slab = Slab(cachep, page, sa.page_offset + (page.pfn << PAGE_SHIFT) + offset)
        page.private = slab  # __folio_set_slab; slab->slab_cache = cachep
        cachep.growing.append(slab)
        if sa.debug:
            sa.new_slabs.append(slab)
        costs = sa.costs
        th.pending += costs.slab_grow + costs.slab_init_obj * cachep.num
        if cachep.flags & CFLGS_OFF_SLAB:
            assert cachep.freelist_cache is not None
            fl = await kmem_cache_alloc(th, cachep.freelist_cache, local_flags & ~GFP_CONSTRAINT_MASK)
            if fl is None:
                cachep.growing.remove(slab)
                cachep.dying += 1
                await slab_destroy(th, cachep, slab)
                return None
            slab.freelist_obj = fl
        ctor = cachep.ctor
        if ctor is not None:
            for obj in slab.objs:
                ctor(obj)
        return slab
    finally:
        if blocking:
            th.preempt_count += 1  # local_irq_disable (the CPU is the thread's: threads do not migrate)
            th.cpu.irq_depth += 1


async def cache_grow_end(th: "Thread", cachep: KmemCache, slab: Slab | None) -> None:
    """``cache_grow_end``: the new slab onto its node's lists."""
    if slab is None:
        return
    n = cachep.node[slab.nid]
    await n.list_lock.acquire(th, "cache_grow_end")
    cachep.growing.remove(slab)
    n.total_slabs += 1
    if not slab.active:
        _list_add_tail(n, SLABS_FREE, slab)
        n.free_slabs += 1
    else:
        fixup_slab_list(cachep, n, slab)
    cachep.grown += 1
    n.free_objects += cachep.num - slab.active
    await n.list_lock.release(th)


# --- allocation --------------------------------------------------------------------------------


async def cache_alloc_refill(th: "Thread", cachep: KmemCache, flags: int, cpu: "CPU") -> SlabObj | None:
    """``cache_alloc_refill``: refill this CPU's empty array from the shared array, the slabs, or a new slab."""
    sa = cachep.sa
    sa.dirty[cachep] = None
    nid = sa.numa_node[cpu.id]
    ac = cachep.cpu_cache[cpu.id]
    batchcount = ac.batchcount
    if not ac.touched and batchcount > BATCHREFILL_LIMIT:
        batchcount = BATCHREFILL_LIMIT  # little recent activity: a partial refill
    n = cachep.node[nid]
    if ac.entry:
        raise ModelBug(f"cache_alloc_refill of {cachep.name} on CPU{cpu.id} with {len(ac.entry)} objects in the array")
    shared = n.shared
    if n.free_objects or (shared is not None and shared.entry):
        await n.list_lock.acquire(th, "cache_alloc_refill")
        shared = n.shared
        nr = transfer_objects(ac, shared, batchcount) if shared is not None else 0
        if nr:
            shared.touched = True  # type: ignore[union-attr]
            th.pending += sa.costs.mem_access * nr
        else:
            while batchcount > 0:
                slab = get_first_slab(n)
                if slab is None:
                    break
                batchcount = alloc_block(th, cachep, ac, slab, batchcount)
                fixup_slab_list(cachep, n, slab)
            n.free_objects -= len(ac.entry)  # must_grow:
        await n.list_lock.release(th)
    if not ac.entry:
        slab = await cache_grow_begin(th, cachep, flags, nid, cpu)
        ac = cachep.cpu_cache[th.cpu.id]
        if not ac.entry and slab is not None:
            alloc_block(th, cachep, ac, slab, batchcount)
        await cache_grow_end(th, cachep, slab)
        if not ac.entry:
            return None
    ac.touched = True
    return ac.entry.pop()


async def _cache_alloc_slow(th: "Thread", cachep: KmemCache, gfp: int) -> SlabObj | None:
    """The array was empty: ``cache_alloc_refill`` with interrupts off."""
    if cachep.dead:
        raise SlabError(f"kmem_cache_alloc: cache {cachep.name} has been destroyed")
    cachep.allocmiss += 1
    cpu = _irq_save(th)
    try:
        return await cache_alloc_refill(th, cachep, gfp, cpu)
    finally:
        _irq_restore(th, cpu)


async def kmem_cache_alloc(th: "Thread", cachep: KmemCache, gfp: int, call_site: str | None = None) -> SlabObj | None:
    """``kmem_cache_alloc``: an object of ``cachep``, or None when no slab could be grown (NULL).

    The fast path (an object in this CPU's array) takes no lock and does not
    wait: it charges ``slab_array_op`` to the thread's pending time.
    ``__GFP_ZERO`` charges clearing the object.
    """
    ac = cachep.cpu_cache[th.cpu.id]
    entry = ac.entry
    if entry:
        ac.touched = True
        obj = entry.pop()
        cachep.allochit += 1
        th.pending += cachep.sa.fast_cost
    else:
        obj = await _cache_alloc_slow(th, cachep, gfp)
    tr = cachep.sa.tracer
    if obj is None:
        if tr.on[_ev_kca.id]:
            tr.emit(_ev_kca, th, call_site=call_site or _caller(), ptr=0, bytes_req=cachep.object_size,
                    bytes_alloc=cachep.size, gfp_flags=gfp, node=NUMA_NO_NODE, accounted=False)
        return None
    obj.inuse = True
    cachep.nr_inuse += 1
    if gfp & __GFP_ZERO:
        th.pending += (cachep.object_size * cachep.sa.costs.clear_page) >> PAGE_SHIFT
    if tr.on[_ev_kca.id]:
        tr.emit(_ev_kca, th, call_site=call_site or _caller(), ptr=obj.addr, bytes_req=cachep.object_size,
                bytes_alloc=cachep.size, gfp_flags=gfp, node=NUMA_NO_NODE,
                accounted=bool(cachep.flags & SLAB_ACCOUNT or gfp & __GFP_ACCOUNT))
    return obj


async def kmem_cache_zalloc(th: "Thread", cachep: KmemCache, gfp: int, call_site: str | None = None) -> SlabObj | None:
    """``kmem_cache_zalloc``: ``kmem_cache_alloc`` with ``__GFP_ZERO``."""
    if call_site is None and cachep.sa.tracer.on[_ev_kca.id]:
        call_site = _caller()
    return await kmem_cache_alloc(th, cachep, gfp | __GFP_ZERO, call_site)


async def _kmalloc_large(th: "Thread", sa: SlabAllocator, size: int, gfp: int) -> LargeObj | None:
    """``___kmalloc_large_node``: a compound block from the page allocator, counted as unreclaimable slab."""
    order = max((size - 1) >> PAGE_SHIFT, 0).bit_length()  # get_order
    if gfp & GFP_SLAB_BUG_MASK:
        gfp &= ~GFP_SLAB_BUG_MASK
    page = await alloc_pages(th, gfp | __GFP_COMP, order)
    if page is None:
        return None
    nr = 1 << order
    sa.nodes[page.zone.node].vm_stat[NR_SLAB_UNRECLAIMABLE] += nr
    sa.nr_large_pages += nr
    sa.nr_large += 1
    sa.pages_dirty = True
    obj = LargeObj(sa.page_offset + (page.pfn << PAGE_SHIFT), page, order, size)
    page.private = obj
    return obj


async def kmalloc(th: "Thread", size: int, gfp: int = GFP_KERNEL, call_site: str | None = None) -> "SlabObj | LargeObj | None":
    """``kmalloc``: ``size`` bytes from the matching kmalloc class (or the page allocator above 128 KiB); None on failure.

    ``kmalloc(0)`` returns :data:`ZERO_SIZE_PTR`; a negative size is a
    :class:`SlabError`.
    """
    sa: SlabAllocator = th.machine.slab  # type: ignore[attr-defined]
    tr = sa.tracer
    if size > KMALLOC_MAX_CACHE_SIZE:
        obj = await _kmalloc_large(th, sa, size, gfp)
        if tr.on[_ev_kmalloc.id]:
            order = max((size - 1) >> PAGE_SHIFT, 0).bit_length()
            tr.emit(_ev_kmalloc, th, call_site=call_site or _caller(), ptr=obj.addr if obj is not None else 0,
                    bytes_req=size, bytes_alloc=PAGE_SIZE << order, gfp_flags=gfp, node=NUMA_NO_NODE)
        return obj
    if size <= 0:
        if size == 0:
            return ZERO_SIZE_PTR
        raise SlabError(f"kmalloc: negative size {size}")
    if gfp & KMALLOC_NOT_NORMAL_BITS:
        cachep = sa.kmalloc_caches[kmalloc_type(gfp)][kmalloc_index(size)]
    else:
        cachep = sa.kmalloc_normal[SIZE_INDEX[(size - 1) >> 3] if size <= 192 else (size - 1).bit_length()]
    ac = cachep.cpu_cache[th.cpu.id]  # type: ignore[union-attr]
    entry = ac.entry
    if entry:
        ac.touched = True
        obj = entry.pop()
        cachep.allochit += 1  # type: ignore[union-attr]
        th.pending += sa.fast_cost
    else:
        obj = await _cache_alloc_slow(th, cachep, gfp)  # type: ignore[arg-type]
    if obj is not None:
        obj.inuse = True
        cachep.nr_inuse += 1  # type: ignore[union-attr]
        if gfp & __GFP_ZERO:
            th.pending += (size * sa.costs.clear_page) >> PAGE_SHIFT
    if tr.on[_ev_kmalloc.id]:
        tr.emit(_ev_kmalloc, th, call_site=call_site or _caller(), ptr=obj.addr if obj is not None else 0,
                bytes_req=size, bytes_alloc=cachep.size, gfp_flags=gfp, node=NUMA_NO_NODE)  # type: ignore[union-attr]
    return obj


async def kzalloc(th: "Thread", size: int, gfp: int = GFP_KERNEL, call_site: str | None = None) -> "SlabObj | LargeObj | None":
    """``kzalloc``: ``kmalloc`` with ``__GFP_ZERO``."""
    if call_site is None and th.machine.tracer.on[_ev_kmalloc.id]:  # type: ignore[attr-defined]
        call_site = _caller()
    return await kmalloc(th, size, gfp | __GFP_ZERO, call_site)


def ksize(obj: "SlabObj | LargeObj") -> int:
    """``ksize``: the bytes really reserved for an object."""
    if type(obj) is LargeObj:
        return PAGE_SIZE << obj.order
    if obj is ZERO_SIZE_PTR:
        return 0
    return obj.slab.cache.size  # type: ignore[union-attr]


# --- free ------------------------------------------------------------------------------------------


async def cache_flusharray(th: "Thread", cachep: KmemCache, ac: ArrayCache, cpu: "CPU") -> None:
    """``cache_flusharray``: the oldest batch of a full array to the shared array, or back to the slabs."""
    sa = cachep.sa
    sa.dirty[cachep] = None
    batchcount = ac.batchcount
    n = cachep.node[sa.numa_node[cpu.id]]
    to_destroy: list[Slab] = []
    await n.list_lock.acquire(th, "cache_flusharray")
    shared = n.shared
    mx = shared.limit - len(shared.entry) if shared is not None else 0
    if mx:
        batchcount = min(batchcount, mx)
        shared.entry.extend(ac.entry[:batchcount])  # type: ignore[union-attr]
        th.pending += sa.costs.mem_access * batchcount
    else:
        free_block(th, cachep, ac.entry[:batchcount], n, to_destroy)
    # The kernel moves the rest of the array down after unlocking; here it is done under
    # the lock so that an object is never counted both in the array and on its slab.
    del ac.entry[:batchcount]
    await n.list_lock.release(th)
    await slabs_destroy(th, cachep, to_destroy)


async def _cache_free_alien(th: "Thread", cachep: KmemCache, obj: SlabObj) -> None:
    """An object of another node: straight to that node's lists (SLAB without alien caches)."""
    n = cachep.node[obj.slab.nid]  # type: ignore[union-attr]
    cachep.node_frees += 1
    cachep.sa.dirty[cachep] = None
    cachep.nr_inuse -= 1
    cachep.nr_in_flight += 1  # freed, not yet on its slab
    cpu = _irq_save(th)
    try:
        to_destroy: list[Slab] = []
        await n.list_lock.acquire(th, "cache_free_alien")
        cachep.nr_in_flight -= 1
        free_block(th, cachep, [obj], n, to_destroy)
        await n.list_lock.release(th)
        await slabs_destroy(th, cachep, to_destroy)
    finally:
        _irq_restore(th, cpu)


async def _cache_free_slow(th: "Thread", cachep: KmemCache, obj: SlabObj) -> None:
    """The array was full: flush a batch with interrupts off, then keep the object."""
    cachep.freemiss += 1
    cachep.nr_inuse -= 1
    cachep.nr_in_flight += 1  # freed, not yet in the array
    cpu = _irq_save(th)
    try:
        ac = cachep.cpu_cache[cpu.id]
        await cache_flusharray(th, cachep, ac, cpu)
        ac.entry.append(obj)
        cachep.nr_in_flight -= 1
        th.pending += cachep.sa.fast_cost
    finally:
        _irq_restore(th, cpu)


async def __cache_free(th: "Thread", cachep: KmemCache, obj: SlabObj) -> None:
    """``___cache_free``: into this CPU's array if it has room (no lock), else flush a batch first."""
    obj.inuse = False
    obj.data = None
    sa = cachep.sa
    if sa.nr_nodes > 1 and obj.slab.nid != sa.numa_node[th.cpu.id]:  # type: ignore[union-attr]
        await _cache_free_alien(th, cachep, obj)
        return
    ac = cachep.cpu_cache[th.cpu.id]
    entry = ac.entry
    if len(entry) < ac.limit:
        cachep.freehit += 1
        entry.append(obj)
        cachep.nr_inuse -= 1
        th.pending += sa.fast_cost
        return
    await _cache_free_slow(th, cachep, obj)


cache_free = __cache_free  # the same, under a name that is not mangled inside class bodies


def _double_free(cachep: KmemCache, obj: SlabObj) -> SlabError:
    return SlabError(f"slab: double free detected in cache '{cachep.name}', objp 0x{obj.addr:x}")


async def kmem_cache_free(th: "Thread", cachep: KmemCache, obj: SlabObj, call_site: str | None = None) -> None:
    """``kmem_cache_free``: give an object back to ``cachep``.

    Raises :class:`SlabError` for an object of another cache ("Wrong slab
    cache"), a double free, or something that is not a slab object.
    """
    if type(obj) is not SlabObj or obj.slab is None:
        raise SlabError(f"kmem_cache_free({cachep.name}): {obj!r} is not an object of a slab cache")
    real = obj.slab.cache
    if real is not cachep:
        raise SlabError(f"kmem_cache_free: Wrong slab cache. {cachep.name} but object 0x{obj.addr:x} is from {real.name}")
    if not obj.inuse:
        raise _double_free(cachep, obj)
    sa = cachep.sa
    tr = sa.tracer
    if tr.on[_ev_kcf.id]:
        tr.emit(_ev_kcf, th, call_site=call_site or _caller(), ptr=obj.addr, name=cachep.name)
    if sa.nr_nodes > 1:
        await __cache_free(th, cachep, obj)
        return
    obj.inuse = False
    obj.data = None
    ac = cachep.cpu_cache[th.cpu.id]
    entry = ac.entry
    if len(entry) < ac.limit:  # ___cache_free's fast path, inline
        cachep.freehit += 1
        entry.append(obj)
        cachep.nr_inuse -= 1
        th.pending += sa.fast_cost
        return
    await _cache_free_slow(th, cachep, obj)


async def kfree(th: "Thread", obj: "SlabObj | LargeObj | None", call_site: str | None = None) -> None:
    """``kfree``: free what ``kmalloc`` (or any slab cache) returned; None and ZERO_SIZE_PTR are ignored."""
    sa: SlabAllocator = th.machine.slab  # type: ignore[attr-defined]
    tr = sa.tracer
    if tr.on[_ev_kfree.id]:
        tr.emit(_ev_kfree, th, call_site=call_site or _caller(), ptr=obj.addr if obj is not None else 0)
    if obj is None or obj is ZERO_SIZE_PTR:
        return
    t = type(obj)
    if t is SlabObj:
        slab = obj.slab  # type: ignore[union-attr]
        cachep = slab.cache
        if not obj.inuse:
            raise _double_free(cachep, obj)  # type: ignore[arg-type]
        obj.inuse = False
        obj.data = None
        if sa.nr_nodes == 1:
            ac = cachep.cpu_cache[th.cpu.id]
            entry = ac.entry
            if len(entry) < ac.limit:
                cachep.freehit += 1
                entry.append(obj)
                cachep.nr_inuse -= 1
                th.pending += sa.fast_cost
                return
            await _cache_free_slow(th, cachep, obj)  # type: ignore[arg-type]
            return
        await __cache_free(th, cachep, obj)  # type: ignore[arg-type]
        return
    if t is LargeObj:
        if not obj.inuse:
            raise SlabError(f"kfree: double free of the kmalloc_large block 0x{obj.addr:x} "
                            f"(pfn 0x{obj.page.pfn:x}, order {obj.order})")  # type: ignore[union-attr]
        obj.inuse = False
        obj.data = None
        page = obj.page  # type: ignore[union-attr]
        nr = 1 << obj.order  # type: ignore[union-attr]
        page.private = 0
        sa.nodes[page.zone.node].vm_stat[NR_SLAB_UNRECLAIMABLE] -= nr
        sa.nr_large_pages -= nr
        sa.nr_large -= 1
        sa.pages_dirty = True
        await free_pages_(th, page, obj.order)  # type: ignore[union-attr]
        return
    raise SlabError(f"kfree: {obj!r} is not an object from kmalloc or a slab cache")


# --- draining, shrinking, reaping --------------------------------------------------------------


def drain_array_locked(th: "Thread", cachep: KmemCache, ac: ArrayCache, n: KmemCacheNode, free_all: bool,
                       to_destroy: list[Slab]) -> None:
    """``drain_array_locked``: a fifth of the limit (or half of what is there, or all) back to the slabs."""
    avail = len(ac.entry)
    if not avail:
        return
    tofree = avail if free_all else (ac.limit + 4) // 5
    if tofree > avail:
        tofree = (avail + 1) // 2
    free_block(th, cachep, ac.entry[:tofree], n, to_destroy)
    del ac.entry[:tofree]


async def drain_array(th: "Thread", cachep: KmemCache, n: KmemCacheNode, ac: ArrayCache | None) -> None:
    """``drain_array``: an untouched array gives some objects back; a touched one is only marked untouched."""
    if ac is None or not ac.entry:
        return
    if ac.touched:
        ac.touched = False
        return
    cachep.sa.dirty[cachep] = None
    to_destroy: list[Slab] = []
    await n.list_lock.acquire_irqsave(th, "drain_array")
    drain_array_locked(th, cachep, ac, n, False, to_destroy)
    await n.list_lock.release_irqrestore(th)
    await slabs_destroy(th, cachep, to_destroy)


async def drain_freelist(th: "Thread", cachep: KmemCache, n: KmemCacheNode, tofree: int) -> int:
    """``drain_freelist``: up to ``tofree`` free slabs of one node back to the buddy allocator; how many."""
    nr_freed = 0
    free = n.lists[SLABS_FREE]
    while nr_freed < tofree and free:
        cachep.sa.dirty[cachep] = None
        await n.list_lock.acquire_irqsave(th, "drain_freelist")
        if not free:
            await n.list_lock.release_irqrestore(th)
            break
        slab = next(reversed(free))
        _list_del(n, slab)
        n.free_slabs -= 1
        n.total_slabs -= 1
        n.free_objects -= cachep.num
        cachep.dying += 1
        await n.list_lock.release_irqrestore(th)
        await slab_destroy(th, cachep, slab)
        nr_freed += 1
        await th.sync()  # cond_resched()
    return nr_freed


async def drain_cpu_caches(th: "Thread", cachep: KmemCache) -> None:
    """``drain_cpu_caches``: every CPU's array (``on_each_cpu(do_drain)``) and every shared array back to the slabs."""
    sa = cachep.sa
    sa.dirty[cachep] = None
    taken: list[SlabObj] = []

    def do_drain(cpu: "CPU") -> None:
        ac = cachep.cpu_cache[cpu.id]
        if ac.entry:
            taken.extend(ac.entry)
            cachep.nr_in_flight += len(ac.entry)
            ac.entry.clear()

    cpu = _irq_save(th)
    do_drain(th.cpu)  # on_each_cpu runs it here too
    _irq_restore(th, cpu)
    kernel = sa.kernel
    await kernel.smp_call_function_many(th, list(kernel.cpus), do_drain, name="do_drain")
    for n in cachep.node:
        mine = [o for o in taken if o.slab.nid == n.nid]  # type: ignore[union-attr]
        to_destroy: list[Slab] = []
        await n.list_lock.acquire_irqsave(th, "do_drain")
        if mine:
            cachep.nr_in_flight -= len(mine)
            free_block(th, cachep, mine, n, to_destroy)
        if n.shared is not None:
            drain_array_locked(th, cachep, n.shared, n, True, to_destroy)
        await n.list_lock.release_irqrestore(th)
        await slabs_destroy(th, cachep, to_destroy)


async def kmem_cache_shrink(th: "Thread", cachep: KmemCache) -> int:
    """``kmem_cache_shrink`` (``__kmem_cache_shrink``): drain every array, free every free slab; 1 if slabs remain."""
    if cachep.dead:
        raise SlabError(f"kmem_cache_shrink: cache {cachep.name} has been destroyed")
    await drain_cpu_caches(th, cachep)
    ret = 0
    for n in cachep.node:
        await drain_freelist(th, cachep, n, 1 << 62)
        if n.lists[SLABS_FULL] or n.lists[SLABS_PARTIAL]:
            ret = 1
    return ret


async def kmem_cache_shrink_all(th: "Thread") -> int:
    """``drop_slab``-like: ``kmem_cache_shrink`` on every cache; pages given back to the buddy allocator."""
    sa: SlabAllocator = th.machine.slab  # type: ignore[attr-defined]
    before = sum(c.nr_pages for c in sa.slab_caches)
    for cachep in list(reversed(sa.slab_caches)):
        if not cachep.dead:
            await kmem_cache_shrink(th, cachep)
    return before - sum(c.nr_pages for c in sa.slab_caches)


async def cache_reap(th: "Thread") -> None:
    """``cache_reap``: this CPU's periodic work on every cache (drain untouched arrays, free some free slabs)."""
    sa: SlabAllocator = th.machine.slab  # type: ignore[attr-defined]
    cpu_id = th.cpu.id
    nid = sa.numa_node[cpu_id]
    now = th.sim.now
    for cachep in list(reversed(sa.slab_caches)):  # list_for_each_entry(slab_caches): the newest first
        if cachep.dead:
            continue
        n = cachep.node[nid]
        await drain_array(th, cachep, n, cachep.cpu_cache[cpu_id])
        if n.next_reap > now:
            continue
        n.next_reap = now + REAPTIMEOUT_NODE * JIFFY_NS
        await drain_array(th, cachep, n, n.shared)
        if n.free_touched:
            n.free_touched = False
        else:
            freed = await drain_freelist(th, cachep, n, (n.free_limit + 5 * cachep.num - 1) // (5 * cachep.num))
            cachep.reaped += freed
        await th.sync()  # cond_resched()


def start_cache_reap(kernel: Any) -> list[Any]:
    """``start_cpu_timer`` on every CPU: a pinned ``kworker/N:1`` that runs :func:`cache_reap` every REAPTIMEOUT_AC.

    Call from a scenario's setup (the simulation must be running); the
    threads are daemons. Returns them.
    """
    threads = []
    for cpu in kernel.cpus:
        th = kernel.kernel_thread(f"kworker/{cpu.id}:1", cpu=cpu.id)

        async def reap_work(t: "Thread") -> None:
            await t.sleep_for(HZ * JIFFY_NS)  # __round_jiffies_relative(HZ, cpu)
            while True:
                await cache_reap(t)
                await t.sleep_for(REAPTIMEOUT_AC * JIFFY_NS)

        threads.append(kernel.start_thread(th, reap_work, cpu=cpu.id))
    return threads


async def do_tune_cpucache(th: "Thread", cachep: KmemCache, limit: int, batchcount: int, shared: int) -> None:
    """``do_tune_cpucache`` (writing ``name limit batchcount shared`` to /proc/slabinfo).

    New arrays replace the old ones (taken off every CPU by IPI); the old
    arrays' objects go back to the slabs. Bad values raise :class:`SlabError`
    (the kernel's -EINVAL).
    """
    if limit < 1 or batchcount < 1 or batchcount > limit or shared < 0:
        raise SlabError(f"slabinfo write to {cachep.name}: limit {limit}, batchcount {batchcount}, shared {shared}: "
                        "need 1 <= batchcount <= limit and shared >= 0")
    await drain_cpu_caches(th, cachep)
    sa = cachep.sa
    kernel = sa.kernel
    taken: list[SlabObj] = []

    def swap(cpu: "CPU") -> None:
        old = cachep.cpu_cache[cpu.id]
        if old.entry:
            taken.extend(old.entry)
            cachep.nr_in_flight += len(old.entry)
            old.entry.clear()
        old.limit, old.batchcount = limit, batchcount

    cpu = _irq_save(th)
    swap(th.cpu)
    _irq_restore(th, cpu)
    await kernel.smp_call_function_many(th, list(kernel.cpus), swap, name="do_ccupdate_local")
    cachep.limit, cachep.batchcount, cachep.shared = limit, batchcount, shared
    for n in cachep.node:
        mine = [o for o in taken if o.slab.nid == n.nid]  # type: ignore[union-attr]
        to_destroy: list[Slab] = []
        await n.list_lock.acquire_irqsave(th, "do_tune_cpucache")
        if mine:
            cachep.nr_in_flight -= len(mine)
            free_block(th, cachep, mine, n, to_destroy)
        if n.shared is not None:
            drain_array_locked(th, cachep, n.shared, n, True, to_destroy)
        n.shared = ArrayCache(shared * batchcount, SHARED_ARRAY_BATCH) if shared else None
        n.free_limit = (1 + len(sa.nodes[n.nid].cpus)) * batchcount + cachep.num
        await n.list_lock.release_irqrestore(th)
        await slabs_destroy(th, cachep, to_destroy)


# --- destroy ------------------------------------------------------------------------------------


class _BootCtx:
    """Who frees pages outside any thread (kmem_cache_destroy): swapper on CPU 0, charged to no one."""

    __slots__ = ("log", "comm", "pending", "cpu", "runtime_ns")

    def __init__(self, kernel: Any) -> None:
        self.cpu = kernel.cpus[0]
        self.log = self.cpu.idle_log
        self.comm = "swapper/0"
        self.pending = 0
        self.runtime_ns = 0


def _free_pages_now(kernel: Any, page: Page, order: int) -> None:
    """Give a block straight back to the buddy lists (the work of ``free_one_page``, with no time and no lock)."""
    from . import page_alloc as PA

    pa = kernel.page_alloc
    ctx = _BootCtx(kernel)
    PA._allocated_block(pa, ctx, page, order)  # type: ignore[arg-type]
    page._refcount -= 1
    if page._refcount:
        raise ModelBug(f"kmem_cache_destroy: slab page pfn 0x{page.pfn:x} still has {page._refcount} references")
    PA._free_pages_prepare(pa, ctx, page, page.zone, page.pfn, order)  # type: ignore[arg-type]
    PA._split_large_buddy(pa, ctx, page.zone, page.pfn, order, PA.FPI_NONE)  # type: ignore[arg-type]
    pa.vmstat["pgfree"] += 1 << order


def kmem_cache_destroy(kernel: Any, cachep: KmemCache | None) -> None:
    """``kmem_cache_destroy``: a cache with no object in use goes away, its pages back to the buddy allocator.

    Raises :class:`SlabError` naming the cache and some live objects if any
    object is still allocated (the kernel's "Slab cache still has objects"),
    or if the cache was destroyed already. Instantaneous: see the module
    docstring.
    """
    if cachep is None:
        return
    sa: SlabAllocator = kernel.slab
    if cachep.dead:
        raise SlabError(f"kmem_cache_destroy: cache {cachep.name} has been destroyed already")
    if cachep.flags & SLAB_KMALLOC:
        raise SlabError(f"kmem_cache_destroy: {cachep.name} is a kmalloc cache, which lives as long as the kernel")
    if cachep.nr_inuse or cachep.nr_in_flight or cachep.growing or cachep.dying:
        live = [o for n in cachep.node for lst in n.lists for s in lst for o in s.objs if o.inuse]
        live += [o for s in cachep.growing for o in s.objs if o.inuse]
        live.sort(key=lambda o: o.addr)
        shown = ", ".join(f"0x{o.addr:x}" for o in live[:5]) + (", …" if len(live) > 5 else "")
        raise SlabError(f"kmem_cache_destroy {cachep.name}: Slab cache still has objects: "
                        f"{cachep.nr_inuse} in use ({shown})"
                        + (f", {cachep.nr_in_flight + len(cachep.growing) + cachep.dying} busy" if
                           cachep.nr_in_flight or cachep.growing or cachep.dying else ""))
    for other in sa.slab_caches:
        if other.freelist_cache is cachep and not other.dead and other is not cachep:
            raise SlabError(f"kmem_cache_destroy {cachep.name}: cache {other.name} keeps its freelists there")
    ctx = _BootCtx(kernel)
    pending_freelists: list[SlabObj] = []
    for n in cachep.node:
        objs = [o for ac in cachep.cpu_cache for o in ac.entry if o.slab.nid == n.nid]  # type: ignore[union-attr]
        if n.shared is not None:
            objs += n.shared.entry
        to_destroy: list[Slab] = []
        n.free_limit = 0  # free_block keeps no free slab
        free_block(ctx, cachep, objs, n, to_destroy)  # type: ignore[arg-type]
        if n.shared is not None:
            n.shared.entry.clear()
        for slab in list(n.lists[SLABS_FREE]):
            _list_del(n, slab)
            n.free_slabs -= 1
            n.total_slabs -= 1
            n.free_objects -= cachep.num
            to_destroy.append(slab)
            cachep.dying += 1
        for slab in to_destroy:
            page = slab.page
            page.private = 0
            nr = 1 << cachep.gfporder
            sa.nodes[page.zone.node].vm_stat[NR_SLAB_RECLAIMABLE if cachep.flags & SLAB_RECLAIM_ACCOUNT
                                             else NR_SLAB_UNRECLAIMABLE] -= nr
            cachep.nr_pages -= nr
            cachep.dying -= 1
            if sa.debug:
                sa.gone_slabs.append(slab)
            _free_pages_now(kernel, page, cachep.gfporder)
            if slab.freelist_obj is not None:
                pending_freelists.append(slab.freelist_obj)
        if n.total_slabs or n.free_objects:
            raise ModelBug(f"kmem_cache_destroy {cachep.name}: node {n.nid} keeps {n.total_slabs} slabs, "
                           f"{n.free_objects} free objects")
    for ac in cachep.cpu_cache:
        ac.entry.clear()
    sa.pages_dirty = True
    cachep.dead = True
    del sa.caches[cachep.name]
    sa.slab_caches.remove(cachep)
    sa.dirty.pop(cachep, None)
    _return_freelists(sa, pending_freelists)


def _return_freelists(sa: SlabAllocator, objs: list[SlabObj]) -> None:
    """The off-slab freelists of destroyed slabs back onto their kmalloc slabs (no lock: destroy is instantaneous)."""
    ctx = _BootCtx(sa.kernel)
    for fl in objs:
        fc = fl.slab.cache  # type: ignore[union-attr]
        n = fc.node[fl.slab.nid]  # type: ignore[union-attr]
        fl.inuse = False
        fc.nr_inuse -= 1
        sa.dirty[fc] = None
        to_destroy: list[Slab] = []
        free_block(ctx, fc, [fl], n, to_destroy)  # type: ignore[arg-type]
        for slab in to_destroy:
            slab.page.private = 0
            nr = 1 << fc.gfporder
            sa.nodes[slab.page.zone.node].vm_stat[NR_SLAB_RECLAIMABLE if fc.flags & SLAB_RECLAIM_ACCOUNT
                                                  else NR_SLAB_UNRECLAIMABLE] -= nr
            fc.nr_pages -= nr
            fc.dying -= 1
            if sa.debug:
                sa.gone_slabs.append(slab)
            _free_pages_now(sa.kernel, slab.page, fc.gfporder)


# --- the slab shrinker -------------------------------------------------------------------------


def _reap_count(sa: SlabAllocator, sc: ShrinkControl) -> int:
    """kmem_cache_reap's ``count_objects``: objects on the node's free slabs, in every cache."""
    nid = sc.nid if sc.nid < sa.nr_nodes else 0
    n = sum(c.node[nid].free_slabs * c.num for c in sa.slab_caches)
    return n if n else SHRINK_EMPTY


async def _reap_scan(sa: SlabAllocator, th: "Thread", sc: ShrinkControl) -> int:
    """kmem_cache_reap's ``scan_objects``: free whole free slabs, cache after cache, until nr_to_scan objects."""
    nid = sc.nid if sc.nid < sa.nr_nodes else 0
    caches = list(sa.slab_caches)
    if not caches:
        return 0
    want = sc.nr_to_scan
    freed = scanned = 0
    for i in range(len(caches)):
        if scanned >= want:
            break
        cachep = caches[(sa.reap_cursor + i) % len(caches)]
        n = cachep.node[nid]
        if cachep.dead or not n.free_slabs:
            continue
        tofree = min(n.free_slabs, -(-(want - scanned) // cachep.num))
        got = await drain_freelist(th, cachep, n, tofree)
        cachep.reaped += got
        freed += got * cachep.num
        scanned += max(got, tofree) * cachep.num
    sa.reap_cursor = (sa.reap_cursor + 1) % max(len(caches), 1)
    sc.nr_scanned = max(scanned, 1)
    return freed


# --- invariants ------------------------------------------------------------------------------------


def cache_accounting_reason(cachep: KmemCache) -> str | None:
    """Objects of one cache: in use + free on slabs + in arrays + in flight = objects on its slabs; pages match."""
    total_slabs = free_objs = 0
    for n in cachep.node:
        lens = [len(lst) for lst in n.lists]
        if lens[SLABS_FREE] != n.free_slabs:
            return f"{cachep.name} node {n.nid}: {lens[SLABS_FREE]} slabs on slabs_free but free_slabs = {n.free_slabs}"
        if sum(lens) != n.total_slabs:
            return f"{cachep.name} node {n.nid}: {sum(lens)} slabs on the lists but total_slabs = {n.total_slabs}"
        total_slabs += n.total_slabs
        free_objs += n.free_objects
    growing = cachep.growing
    total = (total_slabs + len(growing)) * cachep.num
    free_objs += sum(len(s.free) for s in growing)
    in_arrays = sum(len(ac.entry) for ac in cachep.cpu_cache)
    in_arrays += sum(len(n.shared.entry) for n in cachep.node if n.shared is not None)
    accounted = cachep.nr_inuse + free_objs + in_arrays + cachep.nr_in_flight
    if accounted != total:
        return (f"{cachep.name}: {cachep.nr_inuse} in use + {free_objs} free on slabs + {in_arrays} in arrays + "
                f"{cachep.nr_in_flight} in flight = {accounted} != {total} objects on "
                f"{total_slabs + len(growing)} slabs")
    pages = (total_slabs + len(growing) + cachep.dying) << cachep.gfporder
    if pages != cachep.nr_pages:
        return (f"{cachep.name}: {total_slabs} slabs + {len(growing)} growing + {cachep.dying} dying of "
                f"{cachep.pages_per_slab} pages = {pages} pages, but nr_pages = {cachep.nr_pages}")
    return None


def check_slab(sa: SlabAllocator) -> str | None:
    """The debug check: the caches whose slow paths ran, the slab page counters, new and freed slab pages."""
    if sa.dirty:
        dirty, sa.dirty = sa.dirty, {}
        for cachep in dirty:
            if cachep.dead:
                continue
            reason = cache_accounting_reason(cachep)
            if reason is not None:
                return reason
    if sa.pages_dirty:
        sa.pages_dirty = False
        reason = slab_pages_reason(sa)
        if reason is not None:
            return reason
    if sa.new_slabs or sa.gone_slabs:
        pages = sa.pa.mem_map.pages
        new, sa.new_slabs = sa.new_slabs, []
        gone, sa.gone_slabs = sa.gone_slabs, []
        for slab in new:
            if slab.page.private is not slab:
                continue  # freed again since
            reason = slab_page_reason(pages, slab)
            if reason is not None:
                return reason
        for slab in gone:
            if pages.get(slab.page.pfn) is slab.page:
                return f"{slab!r} was destroyed but the page allocator still has pfn 0x{slab.page.pfn:x} allocated"
    return None


def slab_page_reason(pages: dict[int, Page], slab: Slab) -> str | None:
    """A slab's pages as the page allocator sees them: allocated, of the cache's order, pointing at the slab."""
    page = slab.page
    if pages.get(page.pfn) is not page:
        return f"{slab!r}: pfn 0x{page.pfn:x} is not allocated in the page allocator's mem_map"
    if page.order != slab.cache.gfporder:
        return f"{slab!r}: its block has order {page.order}, the cache uses order {slab.cache.gfporder}"
    if page.private is not slab:
        return f"{slab!r}: page->private of pfn 0x{page.pfn:x} is {page.private!r}"
    if page._refcount != 1:
        return f"{slab!r}: pfn 0x{page.pfn:x} has refcount {page._refcount}"
    return None


def slab_pages_reason(sa: SlabAllocator) -> str | None:
    """NR_SLAB_RECLAIMABLE + NR_SLAB_UNRECLAIMABLE = pages of every cache's slabs + kmalloc_large pages."""
    recl = sum(p.vm_stat[NR_SLAB_RECLAIMABLE] for p in sa.nodes)
    unrecl = sum(p.vm_stat[NR_SLAB_UNRECLAIMABLE] for p in sa.nodes)
    want_r = sum(c.nr_pages for c in sa.slab_caches if c.flags & SLAB_RECLAIM_ACCOUNT)
    want_u = sum(c.nr_pages for c in sa.slab_caches if not c.flags & SLAB_RECLAIM_ACCOUNT) + sa.nr_large_pages
    if recl != want_r or unrecl != want_u:
        return (f"slab page counters: nr_slab_reclaimable {recl} (caches hold {want_r}), "
                f"nr_slab_unreclaimable {unrecl} (caches hold {want_u - sa.nr_large_pages} + "
                f"kmalloc_large {sa.nr_large_pages})")
    return None


def check_slab_full(kernel: Any) -> str | None:
    """Everything, slab by slab (tests; the end of a run): lists, counters, object states, pages."""
    sa: SlabAllocator = kernel.slab
    pages = sa.pa.mem_map.pages
    for cachep in sa.slab_caches:
        reason = cache_accounting_reason(cachep)
        if reason is not None:
            return reason
        in_arrays = {id(o) for ac in cachep.cpu_cache for o in ac.entry}
        for n in cachep.node:
            if n.shared is not None:
                in_arrays.update(id(o) for o in n.shared.entry)
        inuse = 0
        for n in cachep.node:
            free_objects = 0
            for which, lst in enumerate(n.lists):
                for slab in lst:
                    if slab.list != which or slab.nid != n.nid:
                        return f"{slab!r} is on {_LIST_NAMES[which]} of node {n.nid}"
                    if slab.active + len(slab.free) != cachep.num:
                        return f"{slab!r}: {slab.active} active + {len(slab.free)} free != {cachep.num}"
                    want = SLABS_FULL if slab.active == cachep.num else SLABS_FREE if slab.active == 0 else SLABS_PARTIAL
                    if which != want:
                        return f"{slab!r} should be on {_LIST_NAMES[want]}"
                    free_objects += len(slab.free)
                    for o in slab.free:
                        if o.inuse:
                            return f"{o!r} is on its slab's freelist but marked in use"
                    for o in slab.objs:
                        if o.inuse:
                            inuse += 1
                            if id(o) in in_arrays:
                                return f"{o!r} is in an array cache but marked in use"
                    reason = slab_page_reason(pages, slab)
                    if reason is not None:
                        return reason
            if free_objects != n.free_objects:
                return f"{cachep.name} node {n.nid}: free_objects {n.free_objects}, the slabs hold {free_objects}"
        inuse += sum(1 for s in cachep.growing for o in s.objs if o.inuse)
        if inuse != cachep.nr_inuse:
            return f"{cachep.name}: {inuse} objects marked in use, nr_inuse = {cachep.nr_inuse}"
    return slab_pages_reason(sa)


# --- boot ----------------------------------------------------------------------------------------


def slab_init(kernel: Any) -> SlabAllocator:
    """``kmem_cache_init`` and the caches of start_kernel: ``kernel.slab``, its checks and its shrinker."""
    sa = SlabAllocator(kernel)
    kernel.slab = sa
    create_kmalloc_caches(sa)
    caches = STANDARD_CACHES + (I386_CACHES if kernel.config.layout == "i386" else ())
    for name, size, align, flags, has_ctor in caches:
        _create_cache(sa, name, size, align, flags, _kernel_ctor if has_ctor else None)
    kernel.add_check("slab:accounting", lambda: check_slab(sa))

    def count(sc: ShrinkControl) -> int:
        return _reap_count(sa, sc)

    async def kmem_cache_reap(th: "Thread", sc: ShrinkControl) -> int:
        return await _reap_scan(sa, th, sc)

    register_shrinker(kernel, "kmem_cache_reap", count, kmem_cache_reap, seeks=DEFAULT_SEEKS, flags=SHRINKER_NUMA_AWARE,
                      symbol="kmem_cache_reap")
    return sa


__all__ = [
    "ArrayCache", "KMALLOC_MAX_CACHE_SIZE", "KMALLOC_MIN_SIZE", "KmemCache", "KmemCacheNode",
    "KmemCacheStatistics", "LargeObj", "PageSlab", "SLAB_ACCOUNT", "SLAB_CACHE_DMA", "SLAB_HWCACHE_ALIGN",
    "SLAB_PANIC", "SLAB_RECLAIM_ACCOUNT", "SLAB_TYPESAFE_BY_RCU", "Slab", "SlabAllocator", "SlabError", "SlabInfo",
    "SlabObj", "ZERO_SIZE_PTR", "cache_reap", "check_slab", "check_slab_full", "do_tune_cpucache",
    "kfree", "kmalloc", "kmalloc_index", "kmem_cache_alloc", "kmem_cache_create", "kmem_cache_destroy",
    "kmem_cache_free", "kmem_cache_shrink", "kmem_cache_shrink_all", "kmem_cache_zalloc", "ksize", "kzalloc",
    "slab_init", "start_cache_reap",
]
