"""Slab and page allocator events: include/trace/events/kmem.h (Linux 6.12).

Field names and order are ``TP_STRUCT__entry``'s. ``%pS`` call sites are
strings the model supplies (``alloc_pipe_info+0x9a/0x1f0``); ``%p`` object
pointers are integer addresses hashed at render time; ``page=%p`` is derived
from ``pfn`` as ``pfn_to_page`` would (:func:`page_ptr`). Values the kernel
computes inside ``TP_printk`` (``accounted`` of kmalloc, ``pageblock_order``
and ``fragmenting`` of extfrag) are computed here too, not stored.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..fmt import hash_ptr
from ..gfp import (
    PAGEBLOCK_ORDER,
    TRACE_MM_PAGES,
    __GFP_ACCOUNT,
    page_ptr as page_ptr,
    show_gfp_flags,
    symbolic,
    sym,
    u64,
)

Rec = Mapping[str, Any]
_NO_PFN = (1 << 64) - 1  # -1UL: mm_page_alloc's pfn when the allocation failed


def _page_or_null(pfn: int) -> tuple[str, int]:
    """``pfn != -1UL ? pfn_to_page(pfn) : NULL`` and ``pfn != -1UL ? pfn : 0`` (kmem.h)."""
    if u64(pfn) == _NO_PFN:
        return hash_ptr(0), 0
    return page_ptr(pfn), pfn


def _slab_alloc(r: Rec, accounted: bool) -> str:
    """Body shared by kmalloc and kmem_cache_alloc (kmem.h)."""
    return (f"call_site={sym(r['call_site'])} ptr={hash_ptr(r['ptr'])} "
            f"bytes_req={r['bytes_req']} bytes_alloc={r['bytes_alloc']} "
            f"gfp_flags={show_gfp_flags(r['gfp_flags'])} node={r['node']} "
            f"accounted={'true' if accounted else 'false'}")


def _render_kmalloc(r: Rec) -> str:
    """kmalloc: ``accounted`` is ``gfp_flags & __GFP_ACCOUNT`` at print time (CONFIG_MEMCG)."""
    return _slab_alloc(r, bool(r["gfp_flags"] & __GFP_ACCOUNT))


def _render_kmem_cache_alloc(r: Rec) -> str:
    """kmem_cache_alloc: ``accounted`` is a stored field."""
    return _slab_alloc(r, bool(r["accounted"]))


def _render_kfree(r: Rec) -> str:
    """kfree (kmem.h)."""
    return f"call_site={sym(r['call_site'])} ptr={hash_ptr(r['ptr'])}"


def _render_kmem_cache_free(r: Rec) -> str:
    """kmem_cache_free (kmem.h)."""
    return f"call_site={sym(r['call_site'])} ptr={hash_ptr(r['ptr'])} name={r['name']}"


def _render_page_free(r: Rec) -> str:
    """mm_page_free (kmem.h)."""
    return f"page={page_ptr(r['pfn'])} pfn=0x{r['pfn']:x} order={r['order']}"


def _render_page_free_batched(r: Rec) -> str:
    """mm_page_free_batched: order is the literal 0 (kmem.h)."""
    return f"page={page_ptr(r['pfn'])} pfn=0x{r['pfn']:x} order=0"


def _render_page_alloc(r: Rec) -> str:
    """mm_page_alloc: a failed allocation (pfn -1UL) prints a NULL page and pfn=0x0 (kmem.h)."""
    page, pfn = _page_or_null(r["pfn"])
    return (f"page={page} pfn=0x{pfn:x} order={r['order']} migratetype={r['migratetype']} "
            f"gfp_flags={show_gfp_flags(r['gfp_flags'])}")


def _render_zone_locked(r: Rec) -> str:
    """mm_page_alloc_zone_locked (event class mm_page, kmem.h)."""
    page, pfn = _page_or_null(r["pfn"])
    return (f"page={page} pfn=0x{pfn:x} order={r['order']} migratetype={r['migratetype']} "
            f"percpu_refill={r['percpu_refill']}")


def _render_pcpu_drain(r: Rec) -> str:
    """mm_page_pcpu_drain (kmem.h)."""
    return (f"page={page_ptr(r['pfn'])} pfn=0x{r['pfn']:x} order={r['order']} "
            f"migratetype={r['migratetype']}")


def _render_extfrag(r: Rec) -> str:
    """mm_page_alloc_extfrag: pageblock_order and fragmenting are computed at print (kmem.h)."""
    fragmenting = int(r["fallback_order"] < PAGEBLOCK_ORDER)
    return (f"page={page_ptr(r['pfn'])} pfn=0x{r['pfn']:x} alloc_order={r['alloc_order']} "
            f"fallback_order={r['fallback_order']} pageblock_order={PAGEBLOCK_ORDER} "
            f"alloc_migratetype={r['alloc_migratetype']} "
            f"fallback_migratetype={r['fallback_migratetype']} fragmenting={fragmenting} "
            f"change_ownership={r['change_ownership']}")


def _render_rss_stat(r: Rec) -> str:
    """rss_stat: ``type`` is ``__print_symbolic(member, TRACE_MM_PAGES)``, size in bytes (kmem.h)."""
    return (f"mm_id={r['mm_id']} curr={r['curr']} type={symbolic(r['member'], TRACE_MM_PAGES)} "
            f"size={r['size']}B")


_SLAB_FMT = ('"call_site=%pS ptr=%p bytes_req=%zu bytes_alloc=%zu gfp_flags=%s node=%d '
             'accounted=%s"')

kmalloc = define(
    "kmem", "kmalloc",
    ("call_site", "ptr", "bytes_req", "bytes_alloc", "gfp_flags", "node"),
    fmt=_SLAB_FMT, render=_render_kmalloc,
    doc="A kmalloc() returned ptr (bytes_alloc from the size class of bytes_req).",
)
kmem_cache_alloc = define(
    "kmem", "kmem_cache_alloc",
    ("call_site", "ptr", "bytes_req", "bytes_alloc", "gfp_flags", "node", "accounted"),
    fmt=_SLAB_FMT, render=_render_kmem_cache_alloc,
    doc="An object was allocated from a slab cache (bytes_req=object_size, bytes_alloc=size).",
)
kfree = define(
    "kmem", "kfree", ("call_site", "ptr"),
    fmt='"call_site=%pS ptr=%p"', render=_render_kfree,
    doc="A kmalloc'ed object was freed.",
)
kmem_cache_free = define(
    "kmem", "kmem_cache_free", ("call_site", "ptr", "name"),
    fmt='"call_site=%pS ptr=%p name=%s"', render=_render_kmem_cache_free,
    doc="An object was returned to the slab cache `name`.",
)
mm_page_free = define(
    "kmem", "mm_page_free", ("pfn", "order"),
    fmt='"page=%p pfn=0x%lx order=%d"', render=_render_page_free,
    doc="A block of 2^order pages was freed.",
)
mm_page_free_batched = define(
    "kmem", "mm_page_free_batched", ("pfn",),
    fmt='"page=%p pfn=0x%lx order=0"', render=_render_page_free_batched,
    doc="An order-0 page was freed as part of a batch (free_unref_folios).",
)
mm_page_alloc = define(
    "kmem", "mm_page_alloc", ("pfn", "order", "gfp_flags", "migratetype"),
    fmt='"page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s"', render=_render_page_alloc,
    doc="The page allocator returned a block of 2^order pages (pfn -1: it failed).",
)
mm_page_alloc_zone_locked = define(
    "kmem", "mm_page_alloc_zone_locked", ("pfn", "order", "migratetype", "percpu_refill"),
    fmt='"page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d"', render=_render_zone_locked,
    doc="A block was taken from the buddy lists under zone->lock (percpu_refill: to refill a pcp list).",
)
mm_page_pcpu_drain = define(
    "kmem", "mm_page_pcpu_drain", ("pfn", "order", "migratetype"),
    fmt='"page=%p pfn=0x%lx order=%d migratetype=%d"', render=_render_pcpu_drain,
    doc="A page went from a per-CPU list back to the buddy lists.",
)
mm_page_alloc_extfrag = define(
    "kmem", "mm_page_alloc_extfrag",
    ("pfn", "alloc_order", "fallback_order", "alloc_migratetype", "fallback_migratetype",
     "change_ownership"),
    fmt=('"page=%p pfn=0x%lx alloc_order=%d fallback_order=%d pageblock_order=%d '
         'alloc_migratetype=%d fallback_migratetype=%d fragmenting=%d change_ownership=%d"'),
    render=_render_extfrag,
    doc="An allocation fell back to another migratetype's free list.",
)
rss_stat = define(
    "kmem", "rss_stat", ("mm_id", "curr", "member", "size"),
    fmt='"mm_id=%u curr=%d type=%s size=%ldB"', render=_render_rss_stat,
    doc="An mm's RSS counter `member` changed; size in bytes, mm_id a 32-bit hash of the mm.",
)
