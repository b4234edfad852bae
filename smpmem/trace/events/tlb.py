"""TLB flush event: include/trace/events/tlb.h (Linux 6.12).

``pages`` is an ``unsigned long`` printed with ``%ld``: x86 passes
``TLB_FLUSH_ALL`` (-1UL) for a full flush, which prints ``pages:-1``;
records may carry it as -1 or as 2**64-1.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..gfp import TLB_FLUSH_REASON, s64, symbolic

Rec = Mapping[str, Any]


def _render_tlb_flush(r: Rec) -> str:
    """tlb_flush: the reason by name and by number (tlb.h)."""
    return f"pages:{s64(r['pages'])} reason:{symbolic(r['reason'], TLB_FLUSH_REASON)} ({r['reason']})"


tlb_flush = define(
    "tlb", "tlb_flush", ("reason", "pages"),
    fmt='"pages:%ld reason:%s (%d)"', render=_render_tlb_flush,
    doc="A CPU flushed `pages` TLB entries (-1: all) for `reason` (gfp.TLB_FLUSH_REASON).",
)
