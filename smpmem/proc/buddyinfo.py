"""/proc/buddyinfo: models ``frag_show`` / ``frag_show_print`` (mm/vmstat.c).

One line per populated zone of each node: ``nr_free`` of every order.
"""

from __future__ import annotations

from typing import Any

from ..mm.zone import NR_PAGE_ORDERS


def render_buddyinfo(kernel: Any) -> str:
    """The text of /proc/buddyinfo."""
    out = []
    for pgdat in kernel.page_alloc.nodes:
        for zone in pgdat.node_zones:
            if not zone.populated():
                continue
            line = f"Node {pgdat.node_id}, zone {zone.name:>8} "
            line += "".join(f"{zone.free_area[o].nr_free:6d} " for o in range(NR_PAGE_ORDERS))
            out.append(line + "\n")
    return "".join(out)
