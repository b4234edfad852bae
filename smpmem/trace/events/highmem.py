"""kmap events: smpmem's own, named in the kernel's style (mm/highmem.c has no tracepoints).

``kmap_high`` / ``kunmap_high`` bracket a use of the pkmap pool (``nr`` the
pool entry, ``count`` its ``pkmap_count`` afterwards: 1 = mapped but unused,
n+1 = n users); ``kmap_high_wait`` is a task going to sleep because every
entry is in use; ``flush_all_zero_pkmaps`` is the pool wrapping around
(``nr_freed`` entries unmapped, then one global TLB flush);
``kmap_atomic`` / ``kunmap_atomic`` use this CPU's fixmap slot ``idx``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define

Rec = Mapping[str, Any]

kmap_high = define(
    "highmem", "kmap_high", ("pfn", "vaddr", "nr", "count"),
    fmt='"pfn=0x%lx vaddr=0x%lx nr=%u count=%d"',
    render=lambda r: f"pfn=0x{r['pfn']:x} vaddr=0x{r['vaddr']:x} nr={r['nr']} count={r['count']}",
    doc="kmap() of a highmem page through pkmap entry nr (count: pkmap_count[nr] afterwards).", kernel=False,
)
kunmap_high = define(
    "highmem", "kunmap_high", ("pfn", "vaddr", "nr", "count"),
    fmt='"pfn=0x%lx vaddr=0x%lx nr=%u count=%d"',
    render=lambda r: f"pfn=0x{r['pfn']:x} vaddr=0x{r['vaddr']:x} nr={r['nr']} count={r['count']}",
    doc="kunmap() of a highmem page (count 1: the entry is free to be flushed and reused).", kernel=False,
)
kmap_high_wait = define(
    "highmem", "kmap_high_wait", ("pfn",),
    fmt='"pfn=0x%lx"',
    render=lambda r: f"pfn=0x{r['pfn']:x}",
    doc="kmap() found every pkmap entry in use and sleeps on pkmap_map_wait.", kernel=False,
)
flush_all_zero_pkmaps = define(
    "highmem", "flush_all_zero_pkmaps", ("nr_freed",),
    fmt='"nr_freed=%u"',
    render=lambda r: f"nr_freed={r['nr_freed']}",
    doc="The pkmap pool wrapped: nr_freed unused entries unmapped, then a global TLB flush if any.", kernel=False,
)
kmap_atomic = define(
    "highmem", "kmap_atomic", ("pfn", "vaddr", "idx"),
    fmt='"pfn=0x%lx vaddr=0x%lx idx=%d"',
    render=lambda r: f"pfn=0x{r['pfn']:x} vaddr=0x{r['vaddr']:x} idx={r['idx']}",
    doc="kmap_atomic() of a highmem page in this CPU's fixmap slot idx (no lock).", kernel=False,
)
kunmap_atomic = define(
    "highmem", "kunmap_atomic", ("vaddr", "idx"),
    fmt='"vaddr=0x%lx idx=%d"',
    render=lambda r: f"vaddr=0x{r['vaddr']:x} idx={r['idx']}",
    doc="kunmap_atomic(): the slot's PTE cleared and flushed on this CPU only.", kernel=False,
)
