"""/proc/pagetypeinfo: models ``pagetypeinfo_show`` (mm/vmstat.c).

Per node with memory: the pageblock size, the free blocks of every order on
each migratetype's list (``pagetypeinfo_showfree``, counting stops at 100000
with a ``>``), and the number of pageblocks of each migratetype
(``pagetypeinfo_showblockcount``). No PAGE_OWNER, so no mixed-block table.
"""

from __future__ import annotations

from typing import Any

from ..mm.zone import MIGRATE_TYPES, MIGRATETYPE_NAME, NR_PAGE_ORDERS, pageblock_nr_pages, pageblock_order

_CAP = 100000


def _showfree(pgdat: Any) -> list[str]:
    out = [f"{'Free pages count per migrate type at order':<43} "
           + "".join(f"{o:6d} " for o in range(NR_PAGE_ORDERS)) + "\n"]
    for zone in pgdat.node_zones:
        if not zone.populated():
            continue
        for mt in range(MIGRATE_TYPES):
            line = f"Node {pgdat.node_id:4d}, zone {zone.name:>8}, type {MIGRATETYPE_NAME[mt]:>12} "
            for o in range(NR_PAGE_ORDERS):
                n = 0
                pfn = zone.free_area[o].head[mt]
                while pfn >= 0:
                    n += 1
                    if n >= _CAP:
                        break
                    pfn = zone.buddy[pfn][1]
                line += (">" if n >= _CAP else "") + f"{n:6d} "
            out.append(line + "\n")
    return out


def _showblockcount(pgdat: Any) -> list[str]:
    out = [f"\n{'Number of blocks type ':<23}" + "".join(f"{MIGRATETYPE_NAME[mt]:>12} " for mt in range(MIGRATE_TYPES))
           + "\n"]
    for zone in pgdat.node_zones:
        if not zone.populated():
            continue
        count = [0] * MIGRATE_TYPES
        for pfn in range(zone.zone_start_pfn, zone.zone_end_pfn, pageblock_nr_pages):
            count[zone.get_pageblock_migratetype(pfn)] += 1
        out.append(f"Node {pgdat.node_id}, zone {zone.name:>8} " + "".join(f"{c:12d} " for c in count) + "\n")
    return out


def render_pagetypeinfo(kernel: Any) -> str:
    """The text of /proc/pagetypeinfo."""
    out: list[str] = []
    for pgdat in kernel.page_alloc.nodes:
        if not pgdat.node_present_pages:
            continue  # node_state(N_MEMORY)
        out.append(f"Page block order: {pageblock_order}\n")
        out.append(f"Pages per block:  {pageblock_nr_pages}\n")
        out.append("\n")
        out += _showfree(pgdat)
        out += _showblockcount(pgdat)
    return "".join(out)
