"""GFP flags as the allocator reads them: models include/linux/gfp.h and mm/internal.h's ALLOC_*.

The bit values and composites live in :mod:`smpmem.trace.gfp` (one table for
the tracer and the model) and are re-exported here. This module adds what
the page allocator derives from them: the highest usable zone
(``gfp_zone`` through ``GFP_ZONE_TABLE``), the migratetype
(``gfp_migratetype``), the internal ``ALLOC_*`` flags and
``gfp_to_alloc_flags``.
"""

from __future__ import annotations

from ..trace.gfp import (  # noqa: F401  (re-exports)
    GFP_ATOMIC as GFP_ATOMIC,
    GFP_DMA as GFP_DMA,
    GFP_DMA32 as GFP_DMA32,
    GFP_HIGHUSER as GFP_HIGHUSER,
    GFP_HIGHUSER_MOVABLE as GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL as GFP_KERNEL,
    GFP_KERNEL_ACCOUNT as GFP_KERNEL_ACCOUNT,
    GFP_NOFS as GFP_NOFS,
    GFP_NOIO as GFP_NOIO,
    GFP_NOWAIT as GFP_NOWAIT,
    GFP_TRANSHUGE as GFP_TRANSHUGE,
    GFP_TRANSHUGE_LIGHT as GFP_TRANSHUGE_LIGHT,
    GFP_USER as GFP_USER,
    GFP_BIT as GFP_BIT,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    __GFP_ACCOUNT as __GFP_ACCOUNT,
    __GFP_COMP as __GFP_COMP,
    __GFP_DIRECT_RECLAIM as __GFP_DIRECT_RECLAIM,
    __GFP_DMA as __GFP_DMA,
    __GFP_DMA32 as __GFP_DMA32,
    __GFP_FS as __GFP_FS,
    __GFP_HARDWALL as __GFP_HARDWALL,
    __GFP_HIGH as __GFP_HIGH,
    __GFP_HIGHMEM as __GFP_HIGHMEM,
    __GFP_IO as __GFP_IO,
    __GFP_KSWAPD_RECLAIM as __GFP_KSWAPD_RECLAIM,
    __GFP_MEMALLOC as __GFP_MEMALLOC,
    __GFP_MOVABLE as __GFP_MOVABLE,
    __GFP_NOFAIL as __GFP_NOFAIL,
    __GFP_NOMEMALLOC as __GFP_NOMEMALLOC,
    __GFP_NORETRY as __GFP_NORETRY,
    __GFP_NOWARN as __GFP_NOWARN,
    __GFP_RECLAIM as __GFP_RECLAIM,
    __GFP_RECLAIMABLE as __GFP_RECLAIMABLE,
    __GFP_RETRY_MAYFAIL as __GFP_RETRY_MAYFAIL,
    __GFP_THISNODE as __GFP_THISNODE,
    __GFP_WRITE as __GFP_WRITE,
    __GFP_ZERO as __GFP_ZERO,
    show_gfp_flags as show_gfp_flags,
)
from .zone import ZoneTypes

GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE
GFP_MOVABLE_MASK = __GFP_RECLAIMABLE | __GFP_MOVABLE
GFP_MOVABLE_SHIFT = 3

# --- ALLOC_* (mm/internal.h) -----------------------------------------------------
ALLOC_WMARK_MIN = 0  # WMARK_MIN
ALLOC_WMARK_LOW = 1  # WMARK_LOW
ALLOC_WMARK_HIGH = 2  # WMARK_HIGH
ALLOC_NO_WATERMARKS = 0x04  # don't check watermarks at all
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08  # an OOM victim: may dip deeper into the reserves
ALLOC_NON_BLOCK = 0x10  # caller cannot block: 25% more of the min reserve
ALLOC_MIN_RESERVE = 0x20  # __GFP_HIGH: 50% of the min reserve
ALLOC_CPUSET = 0x40  # check for correct cpuset (no cpusets modelled)
ALLOC_CMA = 0x80  # allow allocations from CMA areas (no CMA modelled)
ALLOC_NOFRAGMENT = 0x100  # avoid mixing pageblock types (needs CONFIG_ZONE_DMA32)
ALLOC_HIGHATOMIC = 0x200  # allows access to MIGRATE_HIGHATOMIC
ALLOC_KSWAPD = 0x800  # allow waking of kswapd: __GFP_KSWAPD_RECLAIM
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM
assert ALLOC_MIN_RESERVE == __GFP_HIGH and ALLOC_KSWAPD == __GFP_KSWAPD_RECLAIM

ALLOC_FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (ALLOC_NO_WATERMARKS, "ALLOC_NO_WATERMARKS"), (ALLOC_OOM, "ALLOC_OOM"),
    (ALLOC_NON_BLOCK, "ALLOC_NON_BLOCK"), (ALLOC_MIN_RESERVE, "ALLOC_MIN_RESERVE"),
    (ALLOC_CPUSET, "ALLOC_CPUSET"), (ALLOC_CMA, "ALLOC_CMA"), (ALLOC_NOFRAGMENT, "ALLOC_NOFRAGMENT"),
    (ALLOC_HIGHATOMIC, "ALLOC_HIGHATOMIC"), (ALLOC_KSWAPD, "ALLOC_KSWAPD"),
)


class BadGfp(ValueError):
    """A gfp mask naming two zones at once (``GFP_ZONE_BAD``): misuse by the caller."""


def gfp_zone_table(types: ZoneTypes) -> list[int | None]:
    """``GFP_ZONE_TABLE`` for one layout: index = gfp & GFP_ZONEMASK, value = zone index (None: bad)."""
    t: list[int | None] = [None] * 16
    t[0] = types.ZONE_NORMAL
    t[__GFP_DMA] = types.ZONE_DMA
    t[__GFP_HIGHMEM] = types.OPT_ZONE_HIGHMEM
    t[__GFP_DMA32] = types.OPT_ZONE_DMA32
    t[__GFP_MOVABLE] = types.ZONE_NORMAL
    t[__GFP_MOVABLE | __GFP_DMA] = types.ZONE_DMA
    t[__GFP_MOVABLE | __GFP_HIGHMEM] = types.ZONE_MOVABLE
    t[__GFP_MOVABLE | __GFP_DMA32] = types.OPT_ZONE_DMA32
    return t


def gfp_zone(gfp: int, table: list[int | None]) -> int:
    """``gfp_zone``: the highest zone index an allocation with ``gfp`` may use."""
    z = table[gfp & GFP_ZONEMASK]
    if z is None:
        raise BadGfp(f"gfp mask {show_gfp_flags(gfp)} ({gfp:#x}) names more than one zone (GFP_ZONE_BAD)")
    return z


def gfp_migratetype(gfp: int, mobility_disabled: bool = False) -> int:
    """``gfp_migratetype``: MOVABLE, RECLAIMABLE or UNMOVABLE (all UNMOVABLE when grouping is off)."""
    if mobility_disabled:
        return MIGRATE_UNMOVABLE
    return (gfp & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT


def gfpflags_allow_blocking(gfp: int) -> bool:
    return bool(gfp & __GFP_DIRECT_RECLAIM)


def gfp_to_alloc_flags(gfp: int, order: int) -> int:
    """``gfp_to_alloc_flags``: the slow path's flags: min watermark, __GFP_HIGH and non-blocking reserves."""
    alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    alloc_flags |= gfp & (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
    if not gfp & __GFP_DIRECT_RECLAIM:
        if not gfp & __GFP_NOMEMALLOC:
            alloc_flags |= ALLOC_NON_BLOCK
            if order > 0 and alloc_flags & ALLOC_MIN_RESERVE:
                alloc_flags |= ALLOC_HIGHATOMIC
        if alloc_flags & ALLOC_MIN_RESERVE:
            alloc_flags &= ~ALLOC_CPUSET
    return alloc_flags
