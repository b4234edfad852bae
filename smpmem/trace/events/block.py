"""Block layer events: include/trace/events/block.h (Linux 6.12).

``dev`` is a kernel-internal ``dev_t`` (``gfp.mkdev``) printed ``%d,%d``
(a comma, unlike the writeback and filemap formats); ``sector`` is the
absolute 512-byte sector on the whole disk (partitions are remapped before
a request is issued); ``rwbs`` is the string ``blk_fill_rwbs`` makes from the
request flags (``R``, ``W``, ``WS``, ``RA``, ``RM``, ...); ``cmd`` is the
empty passthrough command; ``ioprio`` 0 prints ``none,0,0``
(``IOPRIO_PRIO_CLASS``, ``_HINT``, ``_LEVEL``). Declared: block_bio_queue,
block_rq_issue, block_rq_complete and block_touch_buffer.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..gfp import MINORBITS

Rec = Mapping[str, Any]

# IOPRIO_CLASS_STRINGS (block.h): class values of include/uapi/linux/ioprio.h.
IOPRIO_CLASS = {0: "none", 1: "rt", 2: "be", 3: "idle", 7: "invalid"}


def dev_comma(dev: int) -> str:
    """``"%d,%d", MAJOR(dev), MINOR(dev)``."""
    return f"{dev >> MINORBITS},{dev & ((1 << MINORBITS) - 1)}"


def ioprio_str(ioprio: int) -> str:
    """``%s,%u,%u`` of class (symbolic), hint and level, as block.h prints them."""
    cls = (ioprio >> 13) & 0x7
    return f"{IOPRIO_CLASS.get(cls, f'0x{cls:x}')},{(ioprio >> 3) & 0x3FF},{ioprio & 0x7}"


def _render_bio(r: Rec) -> str:
    """Class block_bio (block.h)."""
    return f"{dev_comma(r['dev'])} {r['rwbs']} {r['sector']} + {r['nr_sector']} [{r['comm']}]"


def _render_rq(r: Rec) -> str:
    """Class block_rq (block.h)."""
    return (f"{dev_comma(r['dev'])} {r['rwbs']} {r['bytes']} ({r['cmd']}) {r['sector']} + {r['nr_sector']} "
            f"{ioprio_str(r['ioprio'])} [{r['comm']}]")


def _render_rq_completion(r: Rec) -> str:
    """Class block_rq_completion (block.h)."""
    return (f"{dev_comma(r['dev'])} {r['rwbs']} ({r['cmd']}) {r['sector']} + {r['nr_sector']} "
            f"{ioprio_str(r['ioprio'])} [{r['error']}]")


def _render_buffer(r: Rec) -> str:
    """Class block_buffer (block.h)."""
    return f"{dev_comma(r['dev'])} sector={r['sector']} size={r['size']}"


block_touch_buffer = define(
    "block", "block_touch_buffer", ("dev", "sector", "size"),
    fmt='"%d,%d sector=%llu size=%zu"', render=_render_buffer,
    doc="A buffer head found in the block device's page cache is touched (touch_buffer).",
)
block_bio_queue = define(
    "block", "block_bio_queue", ("dev", "sector", "nr_sector", "rwbs", "comm"),
    fmt='"%d,%d %s %llu + %u [%s]"', render=_render_bio,
    doc="A bio is submitted to a device's request queue (submit_bio).",
)
block_rq_issue = define(
    "block", "block_rq_issue", ("dev", "sector", "nr_sector", "bytes", "ioprio", "rwbs", "comm", "cmd"),
    fmt='"%d,%d %s %u (%s) %llu + %u %s,%u,%u [%s]"', render=_render_rq,
    doc="A request is handed to the device (one of its queue_depth slots).",
)
block_rq_complete = define(
    "block", "block_rq_complete", ("dev", "sector", "nr_sector", "error", "ioprio", "rwbs", "cmd"),
    fmt='"%d,%d %s (%s) %llu + %u %s,%u,%u [%d]"', render=_render_rq_completion,
    doc="The device completed a request (error: 0 or a negative errno, -5 for EIO).",
)
