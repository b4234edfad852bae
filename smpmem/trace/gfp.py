"""Flag and name tables of the mm tracepoints: models include/trace/events/mmflags.h.

Holds what the kernel's ``TP_printk`` formats print through ``__print_flags``
and ``__print_symbolic``: the GFP bits and composites
(include/linux/gfp_types.h, x86-64 values) with ``show_gfp_flags``, the LRU
list names, the reclaim writeback flags (include/trace/events/vmscan.h), the
TLB flush reasons (include/trace/events/tlb.h), migrate types and zone types
(include/linux/mmzone.h, include/trace/events/mmflags.h), writeback reasons
(include/trace/events/writeback.h) and the rss_stat counters
(include/trace/events/kmem.h). Also the small value helpers the renderers
share: ``page_ptr`` (``%p`` of a ``struct page``), ``sym`` (``%pS``/``%ps``)
and the C integer casts for ``%ld``/``%lu`` of ``unsigned long`` fields.

Configuration assumed: Debian's 6.12 amd64 kernel (CONFIG_ZONE_DMA,
CONFIG_ZONE_DMA32, no HIGHMEM, no CMA, CONFIG_MEMORY_ISOLATION, CONFIG_MEMCG
and so CONFIG_SLAB_OBJ_EXT, no KASAN_HW_TAGS, no LOCKDEP, 4 KiB pages).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from .fmt import hash_ptr, print_flags, print_symbolic

# --- GFP bits: include/linux/gfp_types.h (enum ___GFP_*_BIT, in order) -------
__GFP_DMA = 0x1
__GFP_HIGHMEM = 0x2
__GFP_DMA32 = 0x4
__GFP_MOVABLE = 0x8
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
# 0x200: ___GFP_UNUSED_BIT
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_WRITE = 0x1000
__GFP_NOWARN = 0x2000
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_HARDWALL = 0x100000
__GFP_THISNODE = 0x200000
__GFP_ACCOUNT = 0x400000
__GFP_ZEROTAGS = 0x800000
# The next bit depends on the configuration: with neither KASAN_HW_TAGS nor
# LOCKDEP it is ___GFP_NO_OBJ_EXT_BIT (CONFIG_SLAB_OBJ_EXT). It has no name in
# show_gfp_flags' table and so prints as a leftover ``0x1000000``.
__GFP_NO_OBJ_EXT = 0x1000000
__GFP_SKIP_KASAN = 0  # only with CONFIG_KASAN_HW_TAGS; 0 here, as in the kernel
__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

# ``__GFP_X`` names are mangled inside a class body (``gfp.__GFP_ZERO`` in a
# method reads ``gfp._Class__GFP_ZERO``); there use ``GFP_BIT.ZERO``.
GFP_BIT = SimpleNamespace(**{k[len("__GFP_"):]: v for k, v in dict(globals()).items()
                             if k.startswith("__GFP_") and isinstance(v, int)})

# --- GFP composites: include/linux/gfp_types.h ---------------------------------
GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM                                   # 0x820
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS                                 # 0xcc0
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT                                  # 0x400cc0
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN                                 # 0x2800
GFP_NOIO = __GFP_RECLAIM                                                         # 0xc00
GFP_NOFS = __GFP_RECLAIM | __GFP_IO                                              # 0xc40
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL                  # 0x100cc0
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM                                          # 0x100cc2
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE | __GFP_SKIP_KASAN           # 0x100cca
GFP_TRANSHUGE_LIGHT = ((GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC
                        | __GFP_NOWARN) & ~__GFP_RECLAIM)                        # 0x1c20ca
GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM                       # 0x1c24ca

# show_gfp_flags' table, in the kernel's order (__def_gfpflag_names, mmflags.h):
# composites with most bits first, so GFP_KERNEL|__GFP_ZERO rather than bits.
GFP_FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (GFP_TRANSHUGE, "GFP_TRANSHUGE"),
    (GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"),
    (GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
    (GFP_HIGHUSER, "GFP_HIGHUSER"),
    (GFP_USER, "GFP_USER"),
    (GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"),
    (GFP_KERNEL, "GFP_KERNEL"),
    (GFP_NOFS, "GFP_NOFS"),
    (GFP_ATOMIC, "GFP_ATOMIC"),
    (GFP_NOIO, "GFP_NOIO"),
    (GFP_NOWAIT, "GFP_NOWAIT"),
    (GFP_DMA, "GFP_DMA"),
    (__GFP_HIGHMEM, "__GFP_HIGHMEM"),
    (GFP_DMA32, "GFP_DMA32"),
    (__GFP_HIGH, "__GFP_HIGH"),
    (__GFP_IO, "__GFP_IO"),
    (__GFP_FS, "__GFP_FS"),
    (__GFP_NOWARN, "__GFP_NOWARN"),
    (__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"),
    (__GFP_NOFAIL, "__GFP_NOFAIL"),
    (__GFP_NORETRY, "__GFP_NORETRY"),
    (__GFP_COMP, "__GFP_COMP"),
    (__GFP_ZERO, "__GFP_ZERO"),
    (__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC"),
    (__GFP_MEMALLOC, "__GFP_MEMALLOC"),
    (__GFP_HARDWALL, "__GFP_HARDWALL"),
    (__GFP_THISNODE, "__GFP_THISNODE"),
    (__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"),
    (__GFP_MOVABLE, "__GFP_MOVABLE"),
    (__GFP_ACCOUNT, "__GFP_ACCOUNT"),
    (__GFP_WRITE, "__GFP_WRITE"),
    (__GFP_RECLAIM, "__GFP_RECLAIM"),
    (__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
    (__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
    (__GFP_ZEROTAGS, "__GFP_ZEROTAGS"),
)


def show_gfp_flags(v: int) -> str:
    """``show_gfp_flags`` (mmflags.h): ``__print_flags`` over the table above, ``none`` for 0."""
    return print_flags(v, GFP_FLAG_NAMES) if v else "none"


def parse_flag_names(text: str, table: tuple[tuple[int, str], ...], none: str) -> int:
    """Inverse of ``__print_flags``: ``A|B|0x40`` back to the mask (``none`` → 0)."""
    if text in ("", none):
        return 0
    names = {name: mask for mask, name in table}
    value = 0
    for part in text.split("|"):
        value |= int(part, 16) if part.startswith("0x") else names[part]
    return value


def parse_gfp_flags(text: str) -> int:
    """Inverse of :func:`show_gfp_flags`."""
    return parse_flag_names(text, GFP_FLAG_NAMES, "none")


# --- LRU lists: LRU_NAMES (mmflags.h), enum lru_list (include/linux/mmzone.h) --
LRU_INACTIVE_ANON = 0
LRU_ACTIVE_ANON = 1
LRU_INACTIVE_FILE = 2
LRU_ACTIVE_FILE = 3
LRU_UNEVICTABLE = 4
LRU_NAMES: tuple[tuple[int, str], ...] = (
    (LRU_INACTIVE_ANON, "inactive_anon"),
    (LRU_ACTIVE_ANON, "active_anon"),
    (LRU_INACTIVE_FILE, "inactive_file"),
    (LRU_ACTIVE_FILE, "active_file"),
    (LRU_UNEVICTABLE, "unevictable"),
)

# --- Reclaim writeback flags: include/trace/events/vmscan.h --------------------
RECLAIM_WB_ANON = 0x1
RECLAIM_WB_FILE = 0x2
RECLAIM_WB_MIXED = 0x10
RECLAIM_WB_SYNC = 0x4  # "Unused, all reclaim async"
RECLAIM_WB_ASYNC = 0x8
RECLAIM_WB_LRU = RECLAIM_WB_ANON | RECLAIM_WB_FILE
RECLAIM_FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (RECLAIM_WB_ANON, "RECLAIM_WB_ANON"),
    (RECLAIM_WB_FILE, "RECLAIM_WB_FILE"),
    (RECLAIM_WB_MIXED, "RECLAIM_WB_MIXED"),
    (RECLAIM_WB_SYNC, "RECLAIM_WB_SYNC"),
    (RECLAIM_WB_ASYNC, "RECLAIM_WB_ASYNC"),
)


def trace_reclaim_flags(file: bool) -> int:
    """``trace_reclaim_flags(file)`` (vmscan.h): FILE or ANON, always ASYNC."""
    return (RECLAIM_WB_FILE if file else RECLAIM_WB_ANON) | RECLAIM_WB_ASYNC


def show_reclaim_flags(v: int) -> str:
    """``show_reclaim_flags`` (vmscan.h): ``RECLAIM_WB_NONE`` for 0."""
    return print_flags(v, RECLAIM_FLAG_NAMES) if v else "RECLAIM_WB_NONE"


def parse_reclaim_flags(text: str) -> int:
    """Inverse of :func:`show_reclaim_flags`."""
    return parse_flag_names(text, RECLAIM_FLAG_NAMES, "RECLAIM_WB_NONE")


# --- TLB flush reasons: TLB_FLUSH_REASON (tlb.h), enum tlb_flush_reason -------
TLB_FLUSH_ON_TASK_SWITCH = 0
TLB_REMOTE_SHOOTDOWN = 1
TLB_LOCAL_SHOOTDOWN = 2
TLB_LOCAL_MM_SHOOTDOWN = 3
TLB_REMOTE_SEND_IPI = 4
TLB_FLUSH_ALL = -1  # x86 passes -1UL as the page count of a full flush
TLB_FLUSH_REASON: tuple[tuple[int, str], ...] = (
    (TLB_FLUSH_ON_TASK_SWITCH, "flush on task switch"),
    (TLB_REMOTE_SHOOTDOWN, "remote shootdown"),
    (TLB_LOCAL_SHOOTDOWN, "local shootdown"),
    (TLB_LOCAL_MM_SHOOTDOWN, "local mm shootdown"),
    (TLB_REMOTE_SEND_IPI, "remote ipi send"),
)

# --- Migrate types: enum migratetype (include/linux/mmzone.h), no CONFIG_CMA ---
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3  # the number of types on the pcp lists
MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES
MIGRATE_ISOLATE = 4  # would be 5 with CONFIG_CMA (MIGRATE_CMA = 4)
MIGRATETYPE_NAMES: tuple[tuple[int, str], ...] = (  # migratetype_names[], mm/page_alloc.c
    (MIGRATE_UNMOVABLE, "Unmovable"),
    (MIGRATE_MOVABLE, "Movable"),
    (MIGRATE_RECLAIMABLE, "Reclaimable"),
    (MIGRATE_HIGHATOMIC, "HighAtomic"),
    (MIGRATE_ISOLATE, "Isolate"),
)
PAGEBLOCK_ORDER = 9  # x86-64: min(HPAGE_PMD_ORDER, MAX_PAGE_ORDER)

# --- Zone types: ZONE_TYPE (mmflags.h), configured zones of x86-64 ------------
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
ZONE_TYPE: tuple[tuple[int, str], ...] = (
    (ZONE_DMA, "DMA"),
    (ZONE_DMA32, "DMA32"),
    (ZONE_NORMAL, "Normal"),
    (ZONE_MOVABLE, "Movable"),
)

# --- Writeback reasons: WB_WORK_REASON (include/trace/events/writeback.h) -----
WB_WORK_REASON: tuple[tuple[int, str], ...] = tuple(enumerate((
    "background", "vmscan", "sync", "periodic", "laptop_timer",
    "fs_free_space", "forker_thread", "foreign_flush")))

# --- rss_stat counters: TRACE_MM_PAGES (include/trace/events/kmem.h) ----------
MM_FILEPAGES = 0
MM_ANONPAGES = 1
MM_SWAPENTS = 2
MM_SHMEMPAGES = 3
TRACE_MM_PAGES: tuple[tuple[int, str], ...] = (
    (MM_FILEPAGES, "MM_FILEPAGES"),
    (MM_ANONPAGES, "MM_ANONPAGES"),
    (MM_SWAPENTS, "MM_SWAPENTS"),
    (MM_SHMEMPAGES, "MM_SHMEMPAGES"),
)

# --- x86 page fault error code: arch/x86/include/asm/trap_pf.h ----------------
X86_PF_PROT = 0x1
X86_PF_WRITE = 0x2
X86_PF_USER = 0x4
X86_PF_RSVD = 0x8
X86_PF_INSTR = 0x10
X86_PF_PK = 0x20
X86_PF_SHSTK = 0x40
X86_PF_SGX = 0x8000


def symbolic(v: int, table: tuple[tuple[int, str], ...]) -> str:
    """``__print_symbolic`` over one of the tables above."""
    return print_symbolic(v, table)


def unsymbolic(text: str, table: tuple[tuple[int, str], ...]) -> int:
    """Inverse of ``__print_symbolic``: the name's value, or the ``0x%lx`` fallback."""
    for v, name in table:
        if name == text:
            return v
    return int(text, 16)


# --- Value helpers shared by the renderers -------------------------------------
_MASK64 = (1 << 64) - 1
VMEMMAP_START = 0xFFFFEA0000000000  # x86-64 vmemmap base (4-level paging, no KASLR)
STRUCT_PAGE_SIZE = 64


def page_ptr(pfn: int) -> str:
    """``%p`` of ``pfn_to_page(pfn)``: the hashed vmemmap address of the struct page."""
    return hash_ptr(VMEMMAP_START + pfn * STRUCT_PAGE_SIZE)


def u64(v: int) -> int:
    """An ``unsigned long`` as C holds it (-1 → 18446744073709551615)."""
    return v & _MASK64


def s64(v: int) -> int:
    """An ``unsigned long`` printed with ``%ld`` (-1UL → -1)."""
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


MINORBITS = 20  # include/linux/kdev_t.h: the kernel-internal dev_t


def mkdev(major: int, minor: int) -> int:
    """``MKDEV(ma, mi)``: a kernel-internal ``dev_t`` (12-bit major, 20-bit minor)."""
    return (major << MINORBITS) | minor


def dev_str(dev: int) -> str:
    """``"%d:%d", MAJOR(dev), MINOR(dev)`` as the writeback and filemap formats print it."""
    return f"{dev >> MINORBITS}:{dev & ((1 << MINORBITS) - 1)}"


def sym(v: Any) -> str:
    """``%pS``/``%ps``: a symbol string as the model supplies it, else ``0x%lx`` (no symbol)."""
    return v if isinstance(v, str) else f"0x{u64(v):x}"


def unsym(text: str) -> Any:
    """Inverse of :func:`sym`: ``0x…`` back to the address, a symbol stays a string."""
    return int(text, 16) if text.startswith("0x") else text
