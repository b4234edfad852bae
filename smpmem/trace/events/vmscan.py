"""Page reclaim events: include/trace/events/vmscan.h (Linux 6.12).

kswapd wake/sleep, direct reclaim begin/end (and the memcg and node reclaim
events of the same classes), slab shrinking, LRU isolation and shrinking, and
``mm_vmscan_write_folio`` (called ``mm_vmscan_writepage`` before ≈v5.18; see
``smpmem.trace.ftrace`` for the compat line the 6.12 perl script needs).
``reclaim_flags`` is stored raw; build it with ``gfp.trace_reclaim_flags``.
``shrink`` (``%pS`` of ``shr->scan_objects``) is a symbol string; ``shr`` an
address. Omitted: ``mm_vmscan_throttled``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..fmt import hash_ptr
from ..gfp import LRU_NAMES, page_ptr, show_gfp_flags, show_reclaim_flags, symbolic, sym

Rec = Mapping[str, Any]


def _render_kswapd_sleep(r: Rec) -> str:
    """mm_vmscan_kswapd_sleep (vmscan.h)."""
    return f"nid={r['nid']}"


def _render_kswapd_wake(r: Rec) -> str:
    """mm_vmscan_kswapd_wake: zid is recorded but not printed (vmscan.h)."""
    return f"nid={r['nid']} order={r['order']}"


def _render_nid_order_gfp(r: Rec) -> str:
    """mm_vmscan_wakeup_kswapd and mm_vmscan_node_reclaim_begin (vmscan.h)."""
    return f"nid={r['nid']} order={r['order']} gfp_flags={show_gfp_flags(r['gfp_flags'])}"


def _render_reclaim_begin(r: Rec) -> str:
    """Class mm_vmscan_direct_reclaim_begin_template (vmscan.h)."""
    return f"order={r['order']} gfp_flags={show_gfp_flags(r['gfp_flags'])}"


def _render_reclaim_end(r: Rec) -> str:
    """Class mm_vmscan_direct_reclaim_end_template (vmscan.h)."""
    return f"nr_reclaimed={r['nr_reclaimed']}"


def _render_shrink_slab_start(r: Rec) -> str:
    """mm_shrink_slab_start (vmscan.h)."""
    return (f"{sym(r['shrink'])} {hash_ptr(r['shr'])}: nid: {r['nid']} "
            f"objects to shrink {r['nr_objects_to_shrink']} "
            f"gfp_flags {show_gfp_flags(r['gfp_flags'])} cache items {r['cache_items']} "
            f"delta {r['delta']} total_scan {r['total_scan']} priority {r['priority']}")


def _render_shrink_slab_end(r: Rec) -> str:
    """mm_shrink_slab_end (vmscan.h)."""
    return (f"{sym(r['shrink'])} {hash_ptr(r['shr'])}: nid: {r['nid']} "
            f"unused scan count {r['unused_scan']} new scan count {r['new_scan']} "
            f"total_scan {r['total_scan']} last shrinker return val {r['retval']}")


def _render_lru_isolate(r: Rec) -> str:
    """mm_vmscan_lru_isolate: ``classzone`` is the old name of highest_zoneidx (vmscan.h, ≥6.7)."""
    return (f"classzone={r['highest_zoneidx']} order={r['order']} "
            f"nr_requested={r['nr_requested']} nr_scanned={r['nr_scanned']} "
            f"nr_skipped={r['nr_skipped']} nr_taken={r['nr_taken']} "
            f"lru={symbolic(r['lru'], LRU_NAMES)}")


def _render_write_folio(r: Rec) -> str:
    """mm_vmscan_write_folio (vmscan.h)."""
    return (f"page={page_ptr(r['pfn'])} pfn=0x{r['pfn']:x} "
            f"flags={show_reclaim_flags(r['reclaim_flags'])}")


def _render_shrink_inactive(r: Rec) -> str:
    """mm_vmscan_lru_shrink_inactive: nr_activate0/1 print as anon/file (vmscan.h)."""
    return (f"nid={r['nid']} nr_scanned={r['nr_scanned']} nr_reclaimed={r['nr_reclaimed']} "
            f"nr_dirty={r['nr_dirty']} nr_writeback={r['nr_writeback']} "
            f"nr_congested={r['nr_congested']} nr_immediate={r['nr_immediate']} "
            f"nr_activate_anon={r['nr_activate0']} nr_activate_file={r['nr_activate1']} "
            f"nr_ref_keep={r['nr_ref_keep']} nr_unmap_fail={r['nr_unmap_fail']} "
            f"priority={r['priority']} flags={show_reclaim_flags(r['reclaim_flags'])}")


def _render_shrink_active(r: Rec) -> str:
    """mm_vmscan_lru_shrink_active (vmscan.h)."""
    return (f"nid={r['nid']} nr_taken={r['nr_taken']} nr_active={r['nr_active']} "
            f"nr_deactivated={r['nr_deactivated']} nr_referenced={r['nr_referenced']} "
            f"priority={r['priority']} flags={show_reclaim_flags(r['reclaim_flags'])}")


_BEGIN_FMT = '"order=%d gfp_flags=%s"'
_END_FMT = '"nr_reclaimed=%lu"'

mm_vmscan_kswapd_sleep = define(
    "vmscan", "mm_vmscan_kswapd_sleep", ("nid",),
    fmt='"nid=%d"', render=_render_kswapd_sleep,
    doc="kswapd of node nid goes to sleep.",
)
mm_vmscan_kswapd_wake = define(
    "vmscan", "mm_vmscan_kswapd_wake", ("nid", "zid", "order"),
    fmt='"nid=%d order=%d"', render=_render_kswapd_wake,
    doc="kswapd of node nid wakes up to balance up to zone zid for an order-`order` request.",
)
mm_vmscan_wakeup_kswapd = define(
    "vmscan", "mm_vmscan_wakeup_kswapd", ("nid", "zid", "order", "gfp_flags"),
    fmt='"nid=%d order=%d gfp_flags=%s"', render=_render_nid_order_gfp,
    doc="An allocating task asks kswapd of node nid to run.",
)
mm_vmscan_direct_reclaim_begin = define(
    "vmscan", "mm_vmscan_direct_reclaim_begin", ("order", "gfp_flags"),
    fmt=_BEGIN_FMT, render=_render_reclaim_begin,
    doc="An allocating task starts direct reclaim.",
)
mm_vmscan_memcg_reclaim_begin = define(
    "vmscan", "mm_vmscan_memcg_reclaim_begin", ("order", "gfp_flags"),
    fmt=_BEGIN_FMT, render=_render_reclaim_begin,
    doc="A task starts reclaim because its memory cgroup hit its limit.",
)
mm_vmscan_memcg_softlimit_reclaim_begin = define(
    "vmscan", "mm_vmscan_memcg_softlimit_reclaim_begin", ("order", "gfp_flags"),
    fmt=_BEGIN_FMT, render=_render_reclaim_begin,
    doc="Soft-limit reclaim of one memory cgroup starts.",
)
mm_vmscan_direct_reclaim_end = define(
    "vmscan", "mm_vmscan_direct_reclaim_end", ("nr_reclaimed",),
    fmt=_END_FMT, render=_render_reclaim_end,
    doc="Direct reclaim ends having reclaimed nr_reclaimed pages.",
)
mm_vmscan_memcg_reclaim_end = define(
    "vmscan", "mm_vmscan_memcg_reclaim_end", ("nr_reclaimed",),
    fmt=_END_FMT, render=_render_reclaim_end,
    doc="Memory cgroup limit reclaim ends.",
)
mm_vmscan_memcg_softlimit_reclaim_end = define(
    "vmscan", "mm_vmscan_memcg_softlimit_reclaim_end", ("nr_reclaimed",),
    fmt=_END_FMT, render=_render_reclaim_end,
    doc="Soft-limit reclaim of one memory cgroup ends.",
)
mm_shrink_slab_start = define(
    "vmscan", "mm_shrink_slab_start",
    ("shr", "shrink", "nid", "nr_objects_to_shrink", "gfp_flags", "cache_items", "delta",
     "total_scan", "priority"),
    fmt=('"%pS %p: nid: %d objects to shrink %ld gfp_flags %s cache items %ld delta %lld '
         'total_scan %ld priority %d"'),
    render=_render_shrink_slab_start,
    doc="do_shrink_slab() calls one shrinker (shrink: its scan_objects symbol).",
)
mm_shrink_slab_end = define(
    "vmscan", "mm_shrink_slab_end",
    ("shr", "nid", "shrink", "unused_scan", "new_scan", "retval", "total_scan"),
    fmt=('"%pS %p: nid: %d unused scan count %ld new scan count %ld total_scan %ld '
         'last shrinker return val %d"'),
    render=_render_shrink_slab_end,
    doc="One shrinker call is done; retval is the number of objects freed.",
)
mm_vmscan_lru_isolate = define(
    "vmscan", "mm_vmscan_lru_isolate",
    ("highest_zoneidx", "order", "nr_requested", "nr_scanned", "nr_skipped", "nr_taken", "lru"),
    fmt=('"classzone=%d order=%d nr_requested=%lu nr_scanned=%lu nr_skipped=%lu nr_taken=%lu '
         'lru=%s"'),
    render=_render_lru_isolate,
    doc="isolate_lru_folios() took nr_taken of nr_scanned folios off list `lru`.",
)
mm_vmscan_write_folio = define(
    "vmscan", "mm_vmscan_write_folio", ("pfn", "reclaim_flags"),
    fmt='"page=%p pfn=0x%lx flags=%s"', render=_render_write_folio,
    doc="Reclaim starts writeback of a dirty folio (pageout()).",
)
mm_vmscan_lru_shrink_inactive = define(
    "vmscan", "mm_vmscan_lru_shrink_inactive",
    ("nid", "nr_scanned", "nr_reclaimed", "nr_dirty", "nr_writeback", "nr_congested",
     "nr_immediate", "nr_activate0", "nr_activate1", "nr_ref_keep", "nr_unmap_fail",
     "priority", "reclaim_flags"),
    fmt=('"nid=%d nr_scanned=%ld nr_reclaimed=%ld nr_dirty=%ld nr_writeback=%ld '
         'nr_congested=%ld nr_immediate=%ld nr_activate_anon=%d nr_activate_file=%d '
         'nr_ref_keep=%ld nr_unmap_fail=%ld priority=%d flags=%s"'),
    render=_render_shrink_inactive,
    doc="shrink_inactive_list() is done with one batch of an inactive list.",
)
mm_vmscan_lru_shrink_active = define(
    "vmscan", "mm_vmscan_lru_shrink_active",
    ("nid", "nr_taken", "nr_active", "nr_deactivated", "nr_referenced", "priority",
     "reclaim_flags"),
    fmt=('"nid=%d nr_taken=%ld nr_active=%ld nr_deactivated=%ld nr_referenced=%ld '
         'priority=%d flags=%s"'),
    render=_render_shrink_active,
    doc="shrink_active_list() moved nr_deactivated folios to the inactive list.",
)
mm_vmscan_node_reclaim_begin = define(
    "vmscan", "mm_vmscan_node_reclaim_begin", ("nid", "order", "gfp_flags"),
    fmt='"nid=%d order=%d gfp_flags=%s"', render=_render_nid_order_gfp,
    doc="node_reclaim() starts reclaiming on node nid (zone_reclaim_mode).",
)
mm_vmscan_node_reclaim_end = define(
    "vmscan", "mm_vmscan_node_reclaim_end", ("nr_reclaimed",),
    fmt=_END_FMT, render=_render_reclaim_end,
    doc="node_reclaim() ends having reclaimed nr_reclaimed pages.",
)
