"""/proc/vmstat: models ``vmstat_start`` / ``vmstat_show`` and ``vmstat_text[]`` (mm/vmstat.c).

The whole file, in the kernel's order: the zone counters summed over all
zones, the NUMA events, the node counters summed over all nodes (THP items in
units of HPAGE_PMD_NR), the dirty thresholds, the mem_map counters, then
the vm events, and the deprecated ``nr_unstable 0`` at the end. The names
are those of the reference's live file (a 6.18 kernel; 6.12 also has
``nr_bounce`` and ``nr_writeback_temp`` and lacks ``nr_free_pages_blocks``,
``pgpromote_candidate_nrl``, ``pgdemote_proactive``, ``nr_hugetlb``,
``nr_balloon_pages``, ``nr_kernel_file_pages``, ``pgsteal_proactive`` and
``pgscan_proactive``).

Vm events are the plain counters of ``kernel.vmstat`` under these names
(``kernel.vmstat["pgfault"] += 1``); an event nobody counts reads 0.
``pgpgin``/``pgpgout`` count 512-byte sectors, as the kernel's do, and are
shown in KiB.
"""

from __future__ import annotations

from typing import Any

from ..mm.zone import (
    HPAGE_PMD_NR,
    NODE_STAT_IN_THP,
    NODE_STAT_ITEMS,
    NR_ACTIVE_FILE,
    NR_FREE_PAGES,
    NR_INACTIVE_FILE,
    NR_ZONE_ACTIVE_FILE,
    NR_ZONE_INACTIVE_FILE,
    NUMA_STAT_ITEMS,
    ZONE_STAT_ITEMS,
)


def texts_for_zones(prefix: str, zone_names: tuple[str, ...]) -> list[str]:
    """``TEXTS_FOR_ZONES(xx)``: ``xx_dma``, ``xx_dma32``, ``xx_normal``, ``xx_high``, ``xx_movable``, ``xx_device``."""
    return [f"{prefix}_{'high' if n == 'HighMem' else n.lower()}" for n in zone_names]


_EVENTS_HEAD = ("pgpgin", "pgpgout", "pswpin", "pswpout")
_EVENTS_AFTER_ZONES = (
    "pgfree", "pgactivate", "pgdeactivate", "pglazyfree", "pgfault", "pgmajfault", "pglazyfreed",
    "pgrefill", "pgreuse", "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged", "pgsteal_proactive",
    "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgscan_proactive", "pgscan_direct_throttle",
    "pgscan_anon", "pgscan_file", "pgsteal_anon", "pgsteal_file", "zone_reclaim_success",
    "zone_reclaim_failed", "pginodesteal", "slabs_scanned", "kswapd_inodesteal",
    "kswapd_low_wmark_hit_quickly", "kswapd_high_wmark_hit_quickly", "pageoutrun", "pgrotated",
    "drop_pagecache", "drop_slab", "oom_kill", "numa_pte_updates", "numa_huge_pte_updates",
    "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success",
    "pgmigrate_fail", "thp_migration_success", "thp_migration_fail", "thp_migration_split",
    "compact_migrate_scanned", "compact_free_scanned", "compact_isolated", "compact_stall",
    "compact_fail", "compact_success", "compact_daemon_wake", "compact_daemon_migrate_scanned",
    "compact_daemon_free_scanned", "htlb_buddy_alloc_success", "htlb_buddy_alloc_fail",
    "unevictable_pgs_culled", "unevictable_pgs_scanned", "unevictable_pgs_rescued",
    "unevictable_pgs_mlocked", "unevictable_pgs_munlocked", "unevictable_pgs_cleared",
    "unevictable_pgs_stranded", "thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge",
    "thp_collapse_alloc", "thp_collapse_alloc_failed", "thp_file_alloc", "thp_file_fallback",
    "thp_file_fallback_charge", "thp_file_mapped", "thp_split_page", "thp_split_page_failed",
    "thp_deferred_split_page", "thp_underused_split_page", "thp_split_pmd", "thp_scan_exceed_none_pte",
    "thp_scan_exceed_swap_pte", "thp_scan_exceed_share_pte", "thp_split_pud", "thp_zero_page_alloc",
    "thp_zero_page_alloc_failed", "thp_swpout", "thp_swpout_fallback", "balloon_inflate",
    "balloon_deflate", "balloon_migrate",
    # CONFIG_DEBUG_TLBFLUSH (counted by arch/x86/mm/tlb.c; smpmem always has them)
    "nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "nr_tlb_local_flush_all", "nr_tlb_local_flush_one",
    "swap_ra", "swap_ra_hit", "swpin_zero", "swpout_zero",
    "ksm_swpin_copy", "cow_ksm", "zswpin", "zswpout", "zswpwb", "direct_map_level2_splits",
    "direct_map_level3_splits", "direct_map_level2_collapses", "direct_map_level3_collapses",
    # CONFIG_PER_VMA_LOCK_STATS (counted by lock_vma_under_rcu and the fault path; smpmem always has them)
    "vma_lock_success", "vma_lock_abort", "vma_lock_retry", "vma_lock_miss",
)


def vm_event_names(zone_names: tuple[str, ...]) -> list[str]:
    """The ``enum vm_event_item`` texts for a layout's zone types."""
    return (list(_EVENTS_HEAD) + texts_for_zones("pgalloc", zone_names) + texts_for_zones("allocstall", zone_names)
            + texts_for_zones("pgskip", zone_names) + list(_EVENTS_AFTER_ZONES))


def global_dirty_limits(kernel: Any) -> tuple[int, int]:
    """``global_dirty_limits`` (mm/page-writeback.c): (background, dirty) thresholds in pages.

    Dirtyable memory is free pages above the reserves plus the file LRU,
    highmem excluded (``vm_highmem_is_dirtyable`` is 0). The writeback model
    may register its own figure as ``dirty_thresholds``.
    """
    pa = kernel.page_alloc
    src = pa.meminfo_sources
    if src.provided("dirty_thresholds"):
        bg, dirty = src.get("dirty_thresholds")
        return int(bg), int(dirty)
    zones = pa.zones
    x = sum(z.vm_stat[NR_FREE_PAGES] for z in zones)
    x -= min(x, pa.totalreserve_pages)
    x += sum(p.vm_stat[NR_INACTIVE_FILE] + p.vm_stat[NR_ACTIVE_FILE] for p in pa.nodes)
    high = sum(z.vm_stat[NR_FREE_PAGES] + z.vm_stat[NR_ZONE_INACTIVE_FILE] + z.vm_stat[NR_ZONE_ACTIVE_FILE]
               for z in zones if z.is_highmem)
    x -= min(x, high)
    t = kernel.tunables
    dirty = -(-t.dirty_bytes // 4096) if t.dirty_bytes else t.dirty_ratio * x // 100
    bg = -(-t.dirty_background_bytes // 4096) if t.dirty_background_bytes else t.dirty_background_ratio * x // 100
    if bg >= dirty:
        bg = dirty // 2
    return bg, dirty


def vmstat_items(kernel: Any) -> list[tuple[str, int]]:
    """Every (name, value) of /proc/vmstat, in order."""
    pa = kernel.page_alloc
    zones = pa.zones
    nodes = pa.nodes
    items: list[tuple[str, int]] = []
    for i, name in enumerate(ZONE_STAT_ITEMS):
        items.append((name, sum(z.vm_stat[i] for z in zones)))
    for i, name in enumerate(NUMA_STAT_ITEMS):
        items.append((name, sum(z.vm_numa_event[i] for z in zones)))
    for i, name in enumerate(NODE_STAT_ITEMS):
        v = sum(p.vm_stat[i] for p in nodes)
        if i in NODE_STAT_IN_THP:
            v //= HPAGE_PMD_NR
        items.append((name, v))
    bg, dirty = global_dirty_limits(kernel)
    items.append(("nr_dirty_threshold", dirty))
    items.append(("nr_dirty_background_threshold", bg))
    items.append(("nr_memmap_pages", int(pa.meminfo_sources.get("nr_memmap_pages"))))
    items.append(("nr_memmap_boot_pages", pa.memmap_boot_pages))
    ev = kernel.vmstat
    for name in vm_event_names(pa.types.names):
        v = ev.get(name, 0)
        if name in ("pgpgin", "pgpgout"):
            v //= 2  # sectors -> KiB
        items.append((name, v))
    return items


def render_vmstat(kernel: Any) -> str:
    """The text of /proc/vmstat."""
    return "".join(f"{name} {v}\n" for name, v in vmstat_items(kernel)) + "nr_unstable 0\n"
