"""One example record per declared mm tracepoint, with the body FORMATS.md shows for it.

Bodies are copied from /work/shared/reference/FORMATS.md §2-§3 (``ex:`` lines),
values invented there, layout exact. Where FORMATS.md abbreviates (``...``) the
``page=%p`` value is filled in; where it gives no example (memcg reclaim,
node reclaim, vmalloc, the other writeback_work events) the body follows the
class's example or the format string. ``%p`` values in the examples are
invented hashes: object pointers are built with :func:`addr_for_hash` so they
hash to them; ``page=%p`` is derived from the pfn, so :func:`expected_body`
puts ``page_ptr(pfn)`` in its place.
"""

from __future__ import annotations

import re
from typing import Any

from smpmem.trace import gfp
from smpmem.trace.gfp import page_ptr

_K = 0x9E3779B97F4A7C15  # smpmem.trace.fmt.hash_ptr's multiplier
_M = 1 << 64


def addr_for_hash(h: str) -> int:
    """An address that hash_ptr renders as ``h`` (the hash is a bijection on 64-bit words)."""
    return (int(h, 16) * pow(_K, -1, _M)) % _M


def expected_body(body: str, fields: dict[str, Any]) -> str:
    """The example body with its invented ``page=`` hash replaced by page_ptr(pfn)."""
    if "pfn" not in fields or "page=" not in body:
        return body
    return re.sub(r"page=[0-9a-f]{16}", f"page={page_ptr(fields['pfn'])}", body)


_SHR = addr_for_hash("000000006d5e4f3a")
_BEGIN = {"order": 0, "gfp_flags": gfp.GFP_HIGHUSER_MOVABLE}
_BEGIN_BODY = "order=0 gfp_flags=GFP_HIGHUSER_MOVABLE"
_WORK = {"name": "8:0", "nr_pages": 4096, "sb_dev": 0, "sync_mode": 0, "for_kupdate": 0,
         "range_cyclic": 1, "for_background": 1, "reason": 0, "cgroup_ino": 1}
_WORK_BODY = ("bdi 8:0: sb_dev 0:0 nr_pages=4096 sync_mode=0 kupdate=0 range_cyclic=1 "
              "background=1 reason=background cgroup_ino=1")
_PAGE_CACHE = {"pfn": 0x3F2A1, "i_ino": 0x1C00D, "index": 1, "s_dev": gfp.mkdev(8, 1), "order": 0}

# event -> (fields, body as FORMATS.md prints it)
EXAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    # kmem.h
    "kmalloc": (
        {"call_site": "alloc_pipe_info+0x9a/0x1f0", "ptr": addr_for_hash("00000000a3f1e2d4"),
         "bytes_req": 640, "bytes_alloc": 1024, "gfp_flags": gfp.GFP_KERNEL_ACCOUNT | gfp.__GFP_ZERO,
         "node": -1},
        "call_site=alloc_pipe_info+0x9a/0x1f0 ptr=00000000a3f1e2d4 bytes_req=640 bytes_alloc=1024 "
        "gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO node=-1 accounted=true"),
    "kmem_cache_alloc": (
        {"call_site": "alloc_empty_file+0x4a/0x120", "ptr": addr_for_hash("000000005b6c7d8e"),
         "bytes_req": 232, "bytes_alloc": 256, "gfp_flags": gfp.GFP_KERNEL, "node": -1,
         "accounted": True},
        "call_site=alloc_empty_file+0x4a/0x120 ptr=000000005b6c7d8e bytes_req=232 bytes_alloc=256 "
        "gfp_flags=GFP_KERNEL node=-1 accounted=true"),
    "kfree": (
        {"call_site": "free_pipe_info+0xa1/0xc0", "ptr": addr_for_hash("00000000a3f1e2d4")},
        "call_site=free_pipe_info+0xa1/0xc0 ptr=00000000a3f1e2d4"),
    "kmem_cache_free": (
        {"call_site": "__fput+0x13e/0x2a0", "ptr": addr_for_hash("000000005b6c7d8e"), "name": "filp"},
        "call_site=__fput+0x13e/0x2a0 ptr=000000005b6c7d8e name=filp"),
    "mm_page_free": (
        {"pfn": 0x1A2B3, "order": 0},
        "page=000000003b7a4c1e pfn=0x1a2b3 order=0"),
    "mm_page_free_batched": (
        {"pfn": 0x1A2B4},
        "page=000000003b7a4c1e pfn=0x1a2b4 order=0"),
    "mm_page_alloc": (
        {"pfn": 0x1A2B3, "order": 0, "gfp_flags": gfp.GFP_HIGHUSER_MOVABLE | gfp.__GFP_ZERO,
         "migratetype": gfp.MIGRATE_MOVABLE},
        "page=000000003b7a4c1e pfn=0x1a2b3 order=0 migratetype=1 "
        "gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO"),
    "mm_page_alloc_zone_locked": (
        {"pfn": 0x1A2B3, "order": 0, "migratetype": 1, "percpu_refill": 1},
        "page=000000003b7a4c1e pfn=0x1a2b3 order=0 migratetype=1 percpu_refill=1"),
    "mm_page_pcpu_drain": (
        {"pfn": 0x1A2B3, "order": 0, "migratetype": 1},
        "page=000000003b7a4c1e pfn=0x1a2b3 order=0 migratetype=1"),
    "mm_page_alloc_extfrag": (
        {"pfn": 0x1A2B3, "alloc_order": 0, "fallback_order": 9, "alloc_migratetype": 1,
         "fallback_migratetype": 0, "change_ownership": 1},
        "page=000000003b7a4c1e pfn=0x1a2b3 alloc_order=0 fallback_order=9 pageblock_order=9 "
        "alloc_migratetype=1 fallback_migratetype=0 fragmenting=0 change_ownership=1"),
    "rss_stat": (
        {"mm_id": 2824390453, "curr": 1, "member": gfp.MM_ANONPAGES, "size": 8437760},
        "mm_id=2824390453 curr=1 type=MM_ANONPAGES size=8437760B"),
    # vmscan.h
    "mm_vmscan_kswapd_sleep": ({"nid": 0}, "nid=0"),
    "mm_vmscan_kswapd_wake": ({"nid": 0, "zid": 2, "order": 0}, "nid=0 order=0"),
    "mm_vmscan_wakeup_kswapd": (
        {"nid": 0, "zid": 2, "order": 0, "gfp_flags": gfp.GFP_HIGHUSER_MOVABLE},
        "nid=0 order=0 gfp_flags=GFP_HIGHUSER_MOVABLE"),
    "mm_vmscan_direct_reclaim_begin": (_BEGIN, _BEGIN_BODY),
    "mm_vmscan_memcg_reclaim_begin": (_BEGIN, _BEGIN_BODY),
    "mm_vmscan_memcg_softlimit_reclaim_begin": (_BEGIN, _BEGIN_BODY),
    "mm_vmscan_direct_reclaim_end": ({"nr_reclaimed": 32}, "nr_reclaimed=32"),
    "mm_vmscan_memcg_reclaim_end": ({"nr_reclaimed": 32}, "nr_reclaimed=32"),
    "mm_vmscan_memcg_softlimit_reclaim_end": ({"nr_reclaimed": 32}, "nr_reclaimed=32"),
    "mm_vmscan_node_reclaim_begin": (
        {"nid": 0, "order": 0, "gfp_flags": gfp.GFP_KERNEL}, "nid=0 order=0 gfp_flags=GFP_KERNEL"),
    "mm_vmscan_node_reclaim_end": ({"nr_reclaimed": 32}, "nr_reclaimed=32"),
    "mm_shrink_slab_start": (
        {"shr": _SHR, "shrink": "super_cache_scan+0x0/0x210", "nid": 0, "nr_objects_to_shrink": 0,
         "gfp_flags": gfp.GFP_KERNEL, "cache_items": 1024, "delta": 8, "total_scan": 8,
         "priority": 12},
        "super_cache_scan+0x0/0x210 000000006d5e4f3a: nid: 0 objects to shrink 0 gfp_flags "
        "GFP_KERNEL cache items 1024 delta 8 total_scan 8 priority 12"),
    "mm_shrink_slab_end": (
        {"shr": _SHR, "nid": 0, "shrink": "super_cache_scan+0x0/0x210", "unused_scan": 0,
         "new_scan": 0, "retval": 8, "total_scan": 8},
        "super_cache_scan+0x0/0x210 000000006d5e4f3a: nid: 0 unused scan count 0 new scan count 0 "
        "total_scan 8 last shrinker return val 8"),
    "mm_vmscan_lru_isolate": (
        {"highest_zoneidx": 2, "order": 0, "nr_requested": 32, "nr_scanned": 32, "nr_skipped": 0,
         "nr_taken": 32, "lru": gfp.LRU_INACTIVE_FILE},
        "classzone=2 order=0 nr_requested=32 nr_scanned=32 nr_skipped=0 nr_taken=32 "
        "lru=inactive_file"),
    "mm_vmscan_write_folio": (
        {"pfn": 0x2B3C4, "reclaim_flags": gfp.trace_reclaim_flags(False)},
        "page=00000000c0ffee11 pfn=0x2b3c4 flags=RECLAIM_WB_ANON|RECLAIM_WB_ASYNC"),
    "mm_vmscan_lru_shrink_inactive": (
        {"nid": 0, "nr_scanned": 32, "nr_reclaimed": 30, "nr_dirty": 0, "nr_writeback": 0,
         "nr_congested": 0, "nr_immediate": 0, "nr_activate0": 0, "nr_activate1": 2,
         "nr_ref_keep": 0, "nr_unmap_fail": 0, "priority": 12,
         "reclaim_flags": gfp.trace_reclaim_flags(True)},
        "nid=0 nr_scanned=32 nr_reclaimed=30 nr_dirty=0 nr_writeback=0 nr_congested=0 "
        "nr_immediate=0 nr_activate_anon=0 nr_activate_file=2 nr_ref_keep=0 nr_unmap_fail=0 "
        "priority=12 flags=RECLAIM_WB_FILE|RECLAIM_WB_ASYNC"),
    "mm_vmscan_lru_shrink_active": (
        {"nid": 0, "nr_taken": 32, "nr_active": 5, "nr_deactivated": 27, "nr_referenced": 5,
         "priority": 12, "reclaim_flags": gfp.trace_reclaim_flags(True)},
        "nid=0 nr_taken=32 nr_active=5 nr_deactivated=27 nr_referenced=5 priority=12 "
        "flags=RECLAIM_WB_FILE|RECLAIM_WB_ASYNC"),
    # writeback.h
    "writeback_dirty_folio": ({"name": "8:0", "ino": 1835021, "index": 0},
                              "bdi 8:0: ino=1835021 index=0"),
    "folio_wait_writeback": ({"name": "8:0", "ino": 1835021, "index": 0},
                             "bdi 8:0: ino=1835021 index=0"),
    "global_dirty_state": (
        {"nr_dirty": 1024, "nr_writeback": 0, "background_thresh": 97536, "dirty_thresh": 195072,
         "dirty_limit": 195072, "nr_dirtied": 5000, "nr_written": 3976},
        "dirty=1024 writeback=0 bg_thresh=97536 thresh=195072 limit=195072 dirtied=5000 "
        "written=3976"),
    "balance_dirty_pages": (
        {"bdi": "8:0", "limit": 195072, "setpoint": 170688, "dirty": 180000,
         "bdi_setpoint": 170000, "bdi_dirty": 179000, "dirty_ratelimit": 102400,
         "task_ratelimit": 51200, "dirtied": 32, "dirtied_pause": 32, "paused": 0, "pause": 12,
         "period": 12, "think": 0, "cgroup_ino": 1},
        "bdi 8:0: limit=195072 setpoint=170688 dirty=180000 bdi_setpoint=170000 bdi_dirty=179000 "
        "dirty_ratelimit=102400 task_ratelimit=51200 dirtied=32 dirtied_pause=32 paused=0 "
        "pause=12 period=12 think=0 cgroup_ino=1"),
    **{f"writeback_{w}": (_WORK, _WORK_BODY) for w in ("queue", "exec", "start", "written", "wait")},
    "wbc_writepage": (
        {"name": "8:0", "nr_to_write": 1024, "pages_skipped": 0, "sync_mode": 0, "for_kupdate": 0,
         "for_background": 1, "for_reclaim": 0, "range_cyclic": 1, "range_start": 0,
         "range_end": (1 << 63) - 1, "cgroup_ino": 1},
        "bdi 8:0: towrt=1024 skip=0 mode=0 kupd=0 bgrd=1 reclm=0 cyclic=1 start=0x0 "
        "end=0x7fffffffffffffff cgroup_ino=1"),
    # filemap.h
    "mm_filemap_add_to_page_cache": (_PAGE_CACHE, "dev 8:1 ino 1c00d pfn=0x3f2a1 ofs=4096 order=0"),
    "mm_filemap_delete_from_page_cache": (_PAGE_CACHE,
                                          "dev 8:1 ino 1c00d pfn=0x3f2a1 ofs=4096 order=0"),
    "mm_filemap_fault": ({"i_ino": 0x1C00D, "s_dev": gfp.mkdev(8, 1), "index": 3}, "dev=8:1 ino=1c00d ofs=12288"),
    # tlb.h
    "tlb_flush": ({"reason": gfp.TLB_LOCAL_SHOOTDOWN, "pages": 1},
                  "pages:1 reason:local shootdown (2)"),
    # arch/x86/include/asm/trace/exceptions.h
    "page_fault_user": ({"address": 0x7F3A1C2D5000, "ip": 0x55D0C1A2B3C4, "error_code": 0x6},
                        "address=0x7f3a1c2d5000 ip=0x55d0c1a2b3c4 error_code=0x6"),
    "page_fault_kernel": ({"address": 0x7FFD1234A000, "ip": "__clear_user", "error_code": 0x2},
                          "address=0x7ffd1234a000 ip=__clear_user error_code=0x2"),
    # oom.h
    "oom_score_adj_update": ({"task_pid": 4120, "task_comm": "stress", "oom_score_adj": 1000},
                             "pid=4120 comm=stress oom_score_adj=1000"),
    "mark_victim": (
        {"task_pid": 4120, "task_comm": "stress", "total_vm": 2105344, "anon_rss": 2048000,
         "file_rss": 1024, "shmem_rss": 0, "uid": 1000, "pgtables": 4120, "oom_score_adj": 1000},
        "pid=4120 comm=stress total-vm=2105344kB anon-rss=2048000kB file-rss:1024kB "
        "shmem-rss:0kB uid=1000 pgtables=4120kB oom_score_adj=1000"),
    "reclaim_retry_zone": (
        {"node": 0, "zone_idx": gfp.ZONE_NORMAL, "order": 0, "reclaimable": 1024,
         "available": 2048, "min_wmark": 4096, "no_progress_loops": 1, "wmark_check": False},
        "node=0 zone=Normal   order=0 reclaimable=1024 available=2048 min_wmark=4096 "
        "no_progress_loops=1 wmark_check=0"),
    # mmap.h
    "vm_unmapped_area": (
        {"addr": 0x7F3A1C000000, "total_vm": 0x1A2B, "flags": 0x1, "length": 0x200000,
         "low_limit": 0x1000, "high_limit": 0x7FFD12345000, "align_mask": 0, "align_offset": 0},
        "addr=0x7f3a1c000000 err=0 total_vm=0x1a2b flags=0x1 len=0x200000 lo=0x1000 "
        "hi=0x7ffd12345000 mask=0x0 ofs=0x0"),
    # vmalloc.h (no example in FORMATS.md: values invented here, layout from the format)
    "alloc_vmap_area": (
        {"addr": 18446683600570023936, "size": 8192, "align": 4096,
         "vstart": 0xFFFFC90000000000, "vend": 0xFFFFE8FFFFFFFFFF, "failed": 0},
        "va_start: 18446683600570023936 size=8192 align=4096 vstart=0xffffc90000000000 "
        "vend=0xffffe8ffffffffff failed=0"),
    "purge_vmap_area_lazy": (
        {"start": 0xFFFFC90000000000, "end": 0xFFFFC90000400000, "npurged": 12},
        "start=0xffffc90000000000 end=0xffffc90000400000 num_purged=12"),
    "free_vmap_area_noflush": (
        {"va_start": 0xFFFFC90000002000, "nr_lazy": 2, "nr_lazy_max": 32768},
        "va_start=0xffffc90000002000 nr_lazy=2 nr_lazy_max=32768"),
}

MM_SUBSYSTEMS = ("kmem", "vmscan", "writeback", "filemap", "tlb", "exceptions", "oom", "mmap",
                 "vmalloc")
