"""Writeback events: include/trace/events/writeback.h (Linux 6.12).

The bdi name (``name`` or ``bdi``, a ``char[32]``) is the device string such
as ``8:0``; ``sb_dev`` is a kernel-internal ``dev_t`` (``gfp.mkdev``). Units
as the kernel stores them: global_dirty_state in pages; balance_dirty_pages
ratelimits in KB/s and times in ms (already converted by the model).
Declared: the folio class (writeback_dirty_folio, folio_wait_writeback),
global_dirty_state, balance_dirty_pages, the writeback_work_class events
(queue, exec, start, written, wait) and wbc_writepage.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..gfp import WB_WORK_REASON, dev_str, symbolic, u64

Rec = Mapping[str, Any]


def _render_folio(r: Rec) -> str:
    """Class writeback_folio_template (writeback.h)."""
    return f"bdi {r['name']}: ino={r['ino']} index={r['index']}"


def _render_global_dirty_state(r: Rec) -> str:
    """global_dirty_state (writeback.h)."""
    return (f"dirty={r['nr_dirty']} writeback={r['nr_writeback']} "
            f"bg_thresh={r['background_thresh']} thresh={r['dirty_thresh']} "
            f"limit={r['dirty_limit']} dirtied={r['nr_dirtied']} written={r['nr_written']}")


def _render_balance_dirty_pages(r: Rec) -> str:
    """balance_dirty_pages (writeback.h)."""
    return (f"bdi {r['bdi']}: limit={r['limit']} setpoint={r['setpoint']} dirty={r['dirty']} "
            f"bdi_setpoint={r['bdi_setpoint']} bdi_dirty={r['bdi_dirty']} "
            f"dirty_ratelimit={r['dirty_ratelimit']} task_ratelimit={r['task_ratelimit']} "
            f"dirtied={r['dirtied']} dirtied_pause={r['dirtied_pause']} "
            f"paused={r['paused']} pause={r['pause']} period={r['period']} "
            f"think={r['think']} cgroup_ino={r['cgroup_ino']}")


def _render_work(r: Rec) -> str:
    """Class writeback_work_class: reason via WB_WORK_REASON (writeback.h)."""
    return (f"bdi {r['name']}: sb_dev {dev_str(r['sb_dev'])} nr_pages={r['nr_pages']} "
            f"sync_mode={r['sync_mode']} kupdate={r['for_kupdate']} "
            f"range_cyclic={r['range_cyclic']} background={r['for_background']} "
            f"reason={symbolic(r['reason'], WB_WORK_REASON)} cgroup_ino={r['cgroup_ino']}")


def _render_wbc(r: Rec) -> str:
    """Class wbc_class: range_start/end are longs printed with 0x%lx (writeback.h)."""
    return (f"bdi {r['name']}: towrt={r['nr_to_write']} skip={r['pages_skipped']} "
            f"mode={r['sync_mode']} kupd={r['for_kupdate']} bgrd={r['for_background']} "
            f"reclm={r['for_reclaim']} cyclic={r['range_cyclic']} "
            f"start=0x{u64(r['range_start']):x} end=0x{u64(r['range_end']):x} "
            f"cgroup_ino={r['cgroup_ino']}")


_FOLIO_FIELDS = ("name", "ino", "index")
_FOLIO_FMT = '"bdi %s: ino=%lu index=%lu"'
_WORK_FIELDS = ("name", "nr_pages", "sb_dev", "sync_mode", "for_kupdate", "range_cyclic",
                "for_background", "reason", "cgroup_ino")
_WORK_FMT = ('"bdi %s: sb_dev %d:%d nr_pages=%ld sync_mode=%d " '
             '"kupdate=%d range_cyclic=%d background=%d reason=%s cgroup_ino=%lu"')

writeback_dirty_folio = define(
    "writeback", "writeback_dirty_folio", _FOLIO_FIELDS,
    fmt=_FOLIO_FMT, render=_render_folio,
    doc="A page-cache folio of inode ino becomes dirty.",
)
folio_wait_writeback = define(
    "writeback", "folio_wait_writeback", _FOLIO_FIELDS,
    fmt=_FOLIO_FMT, render=_render_folio,
    doc="A task waits for writeback of a folio to finish.",
)
global_dirty_state = define(
    "writeback", "global_dirty_state",
    ("nr_dirty", "nr_writeback", "background_thresh", "dirty_thresh", "dirty_limit",
     "nr_dirtied", "nr_written"),
    fmt=('"dirty=%lu writeback=%lu " "bg_thresh=%lu thresh=%lu limit=%lu " '
         '"dirtied=%lu written=%lu"'),
    render=_render_global_dirty_state,
    doc="The global dirty page counts and thresholds (pages), from balance_dirty_pages().",
)
balance_dirty_pages = define(
    "writeback", "balance_dirty_pages",
    ("bdi", "limit", "setpoint", "dirty", "bdi_setpoint", "bdi_dirty", "dirty_ratelimit",
     "task_ratelimit", "dirtied", "dirtied_pause", "paused", "pause", "period", "think",
     "cgroup_ino"),
    fmt=('"bdi %s: " "limit=%lu setpoint=%lu dirty=%lu " "bdi_setpoint=%lu bdi_dirty=%lu " '
         '"dirty_ratelimit=%lu task_ratelimit=%lu " "dirtied=%u dirtied_pause=%u " '
         '"paused=%lu pause=%ld period=%lu think=%ld cgroup_ino=%lu"'),
    render=_render_balance_dirty_pages,
    doc="A dirtying task is throttled (pause ms) by balance_dirty_pages().",
)
writeback_queue = define(
    "writeback", "writeback_queue", _WORK_FIELDS, fmt=_WORK_FMT, render=_render_work,
    doc="A writeback work item is queued for a bdi.",
)
writeback_exec = define(
    "writeback", "writeback_exec", _WORK_FIELDS, fmt=_WORK_FMT, render=_render_work,
    doc="The flusher starts executing a work item.",
)
writeback_start = define(
    "writeback", "writeback_start", _WORK_FIELDS, fmt=_WORK_FMT, render=_render_work,
    doc="wb_writeback() starts a pass.",
)
writeback_written = define(
    "writeback", "writeback_written", _WORK_FIELDS, fmt=_WORK_FMT, render=_render_work,
    doc="wb_writeback() finished a pass (nr_pages: what was left to write).",
)
writeback_wait = define(
    "writeback", "writeback_wait", _WORK_FIELDS, fmt=_WORK_FMT, render=_render_work,
    doc="wb_writeback() waits for inodes under writeback.",
)
wbc_writepage = define(
    "writeback", "wbc_writepage",
    ("name", "nr_to_write", "pages_skipped", "sync_mode", "for_kupdate", "for_background",
     "for_reclaim", "range_cyclic", "range_start", "range_end", "cgroup_ino"),
    fmt=('"bdi %s: towrt=%ld skip=%ld mode=%d kupd=%d " "bgrd=%d reclm=%d cyclic=%d " '
         '"start=0x%lx end=0x%lx cgroup_ino=%lu"'),
    render=_render_wbc,
    doc="One page is written under a writeback_control.",
)
