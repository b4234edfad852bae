"""OOM events: include/trace/events/oom.h (Linux 6.12).

One deliberate rename: oom_score_adj_update and mark_victim have fields the
kernel calls ``pid`` and ``comm`` (the *target* task), which would collide
with the common record header (``pid``/``comm`` of the task that emitted the
event; the kernel's format file calls those ``common_pid``). In records they
are ``task_pid`` and ``task_comm``; the rendered text is the kernel's. RSS
sizes of mark_victim are in kB (``PG_COUNT_TO_KB``), as the kernel stores them.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..gfp import ZONE_TYPE, symbolic

Rec = Mapping[str, Any]


def _render_score_adj(r: Rec) -> str:
    """oom_score_adj_update (oom.h)."""
    return f"pid={r['task_pid']} comm={r['task_comm']} oom_score_adj={r['oom_score_adj']}"


def _render_reclaim_retry_zone(r: Rec) -> str:
    """reclaim_retry_zone: zone name left-aligned in 8 columns (``%-8s``, oom.h)."""
    return (f"node={r['node']} zone={symbolic(r['zone_idx'], ZONE_TYPE):<8} order={r['order']} "
            f"reclaimable={r['reclaimable']} available={r['available']} "
            f"min_wmark={r['min_wmark']} no_progress_loops={r['no_progress_loops']} "
            f"wmark_check={int(r['wmark_check'])}")


def _render_mark_victim(r: Rec) -> str:
    """mark_victim (oom.h)."""
    return (f"pid={r['task_pid']} comm={r['task_comm']} total-vm={r['total_vm']}kB "
            f"anon-rss={r['anon_rss']}kB file-rss:{r['file_rss']}kB "
            f"shmem-rss:{r['shmem_rss']}kB uid={r['uid']} pgtables={r['pgtables']}kB "
            f"oom_score_adj={r['oom_score_adj']}")


oom_score_adj_update = define(
    "oom", "oom_score_adj_update", ("task_pid", "task_comm", "oom_score_adj"),
    fmt='"pid=%d comm=%s oom_score_adj=%hd"', render=_render_score_adj,
    doc="A task's oom_score_adj was set (kernel fields pid, comm: renamed task_pid, task_comm).",
)
reclaim_retry_zone = define(
    "oom", "reclaim_retry_zone",
    ("node", "zone_idx", "order", "reclaimable", "available", "min_wmark",
     "no_progress_loops", "wmark_check"),
    fmt=('"node=%d zone=%-8s order=%d reclaimable=%lu available=%lu min_wmark=%lu '
         'no_progress_loops=%d wmark_check=%d"'),
    render=_render_reclaim_retry_zone,
    doc="should_reclaim_retry() checked one zone: would reclaimable+free pages meet min_wmark?",
)
mark_victim = define(
    "oom", "mark_victim",
    ("task_pid", "task_comm", "total_vm", "anon_rss", "file_rss", "shmem_rss", "uid",
     "pgtables", "oom_score_adj"),
    fmt=('"pid=%d comm=%s total-vm=%lukB anon-rss=%lukB file-rss:%lukB shmem-rss:%lukB '
         'uid=%u pgtables=%lukB oom_score_adj=%hd"'),
    render=_render_mark_victim,
    doc="The OOM killer chose a victim (kernel fields pid, comm: renamed task_pid, task_comm).",
)
