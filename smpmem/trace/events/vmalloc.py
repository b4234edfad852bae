"""vmalloc address space events: include/trace/events/vmalloc.h (Linux 6.12)."""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define

Rec = Mapping[str, Any]


def _render_alloc_vmap_area(r: Rec) -> str:
    """alloc_vmap_area: note ``va_start: %lu`` in decimal (vmalloc.h)."""
    return (f"va_start: {r['addr']} size={r['size']} align={r['align']} "
            f"vstart=0x{r['vstart']:x} vend=0x{r['vend']:x} failed={r['failed']}")


def _render_purge(r: Rec) -> str:
    """purge_vmap_area_lazy (vmalloc.h)."""
    return f"start=0x{r['start']:x} end=0x{r['end']:x} num_purged={r['npurged']}"


def _render_free_noflush(r: Rec) -> str:
    """free_vmap_area_noflush (vmalloc.h)."""
    return f"va_start=0x{r['va_start']:x} nr_lazy={r['nr_lazy']} nr_lazy_max={r['nr_lazy_max']}"


alloc_vmap_area = define(
    "vmalloc", "alloc_vmap_area", ("addr", "size", "align", "vstart", "vend", "failed"),
    fmt='"va_start: %lu size=%lu align=%lu vstart=0x%lx vend=0x%lx failed=%d"',
    render=_render_alloc_vmap_area,
    doc="A vmap area of `size` bytes was looked for in [vstart, vend) (failed=1: none).",
)
purge_vmap_area_lazy = define(
    "vmalloc", "purge_vmap_area_lazy", ("start", "end", "npurged"),
    fmt='"start=0x%lx end=0x%lx num_purged=%u"', render=_render_purge,
    doc="Lazily freed vmap areas in [start, end) were purged (one TLB flush).",
)
free_vmap_area_noflush = define(
    "vmalloc", "free_vmap_area_noflush", ("va_start", "nr_lazy", "nr_lazy_max"),
    fmt='"va_start=0x%lx nr_lazy=%lu nr_lazy_max=%lu"', render=_render_free_noflush,
    doc="A vmap area was put on the lazy-free list (nr_lazy pages pending).",
)
