"""Page cache events: include/trace/events/filemap.h (Linux 6.12).

Class mm_filemap_op_page_cache: ``s_dev`` is a kernel-internal ``dev_t``
(``gfp.mkdev``), ``i_ino`` prints in hex without ``0x``, and ``ofs`` is
``index << PAGE_SHIFT`` computed at print time. ``mm_filemap_fault``
(``filemap_fault``, every fault on a file page, before the page-cache
lookup) prints the same three in its own layout. The range and errseq
events of filemap.h are not declared.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..gfp import dev_str

Rec = Mapping[str, Any]
PAGE_SHIFT = 12


def _render_page_cache(r: Rec) -> str:
    """Class mm_filemap_op_page_cache (filemap.h)."""
    return (f"dev {dev_str(r['s_dev'])} ino {r['i_ino']:x} pfn=0x{r['pfn']:x} "
            f"ofs={r['index'] << PAGE_SHIFT} order={r['order']}")


_FIELDS = ("pfn", "i_ino", "index", "s_dev", "order")
_FMT = '"dev %d:%d ino %lx pfn=0x%lx ofs=%lu order=%u"'

mm_filemap_delete_from_page_cache = define(
    "filemap", "mm_filemap_delete_from_page_cache", _FIELDS, fmt=_FMT, render=_render_page_cache,
    doc="A folio leaves the page cache of inode i_ino (reclaim, truncate).",
)
mm_filemap_add_to_page_cache = define(
    "filemap", "mm_filemap_add_to_page_cache", _FIELDS, fmt=_FMT, render=_render_page_cache,
    doc="A folio enters the page cache of inode i_ino at page index `index`.",
)


def _render_fault(r: Rec) -> str:
    """mm_filemap_fault (filemap.h)."""
    return f"dev={dev_str(r['s_dev'])} ino={r['i_ino']:x} ofs={r['index'] << PAGE_SHIFT}"


mm_filemap_fault = define(
    "filemap", "mm_filemap_fault", ("i_ino", "s_dev", "index"), fmt='"dev=%d:%d ino=%lx ofs=%lld"',
    render=_render_fault,
    doc="filemap_fault for page `index` of inode i_ino, before the page-cache lookup: if the same task then adds "
        "that page to the cache, the fault is major (pgmajfault).",
)
