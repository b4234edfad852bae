"""/proc/zoneinfo: models ``zoneinfo_show_print`` (mm/vmstat.c).

Every zone of every node, populated or not (lowmem_reserve_ratio acts on all
of them): the node counters once, before the node's first populated zone;
free pages, watermarks, spanned/present/managed, ``protection``
(lowmem_reserve); for populated zones the zone and NUMA counters, each CPU's
pageset and the vmstat threshold. The pageset lines follow the reference's
live file (6.18: ``count:``, ``high:``, ``batch:``, ``high_min:``,
``high_max:`` aligned); 6.12 prints only the first three.
"""

from __future__ import annotations

from typing import Any

from ..mm.zone import (
    HPAGE_PMD_NR,
    MAX_RECLAIM_RETRIES,
    NODE_STAT_IN_THP,
    NODE_STAT_ITEMS,
    NUMA_STAT_ITEMS,
    ZONE_STAT_ITEMS,
)


def _zone(pgdat: Any, zone: Any, first_populated: Any, ncpus: int) -> str:
    out = [f"Node {pgdat.node_id}, zone {zone.name:>8}"]
    if zone is first_populated:
        out.append("\n  per-node stats")
        for i, name in enumerate(NODE_STAT_ITEMS):
            v = pgdat.vm_stat[i]
            if i in NODE_STAT_IN_THP:
                v //= HPAGE_PMD_NR
            out.append(f"\n      {name:<12} {v}")
    out.append(
        f"\n  pages free     {zone.vm_stat[0]}"
        f"\n        boost    {zone.watermark_boost}"
        f"\n        min      {zone.min_wmark_pages()}"
        f"\n        low      {zone.low_wmark_pages()}"
        f"\n        high     {zone.high_wmark_pages()}"
        f"\n        promo    {zone.promo_wmark_pages()}"
        f"\n        spanned  {zone.spanned_pages}"
        f"\n        present  {zone.present_pages}"
        f"\n        managed  {zone.managed_pages}"
        f"\n        cma      0")
    out.append("\n        protection: (" + ", ".join(str(r) for r in zone.lowmem_reserve) + ")")
    if not zone.populated():
        out.append("\n")
        return "".join(out)
    for i, name in enumerate(ZONE_STAT_ITEMS):
        out.append(f"\n      {name:<12} {zone.vm_stat[i]}")
    for i, name in enumerate(NUMA_STAT_ITEMS):
        out.append(f"\n      {name:<12} {zone.vm_numa_event[i]}")
    out.append("\n  pagesets")
    for cpu in range(ncpus):
        pcp = zone.per_cpu_pageset[cpu]
        out.append(f"\n    cpu: {cpu}"
                   f"\n              count:    {pcp.count}"
                   f"\n              high:     {pcp.high}"
                   f"\n              batch:    {pcp.batch}"
                   f"\n              high_min: {pcp.high_min}"
                   f"\n              high_max: {pcp.high_max}"
                   f"\n  vm stats threshold: {pcp.stat_threshold}")
    out.append(f"\n  node_unreclaimable:  {int(pgdat.kswapd_failures >= MAX_RECLAIM_RETRIES)}"
               f"\n  start_pfn:           {zone.zone_start_pfn}")
    out.append("\n")
    return "".join(out)


def render_zoneinfo(kernel: Any) -> str:
    """The text of /proc/zoneinfo."""
    pa = kernel.page_alloc
    out = []
    for pgdat in pa.nodes:
        first = next(iter(pgdat.populated_zones()), None)
        for zone in pgdat.node_zones:
            out.append(_zone(pgdat, zone, first, pa.ncpus))
    return "".join(out)
