"""The cost model: how many virtual nanoseconds each operation takes.

Every operation that takes time charges it from one :class:`CostModel`. The
defaults are round figures for a current x86_64 server core (2-3 GHz, DDR4),
taken from published microbenchmarks of the operations they stand for; a
scenario overrides any of them in its ``[costs]`` table. ``docs/fidelity.md``
says how they are calibrated against a real machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class CostModel:
    """Per-operation costs in nanoseconds (integers: virtual time is integral)."""

    # --- CPU and scheduling -------------------------------------------------
    context_switch: int = 895         # switch_to() between two threads on one CPU
    timeslice: int = 4_000_000        # CFS-like slice before a waiting thread preempts
    syscall_entry: int = 87           # entry + exit of a system call
    # --- locks and cache coherence -----------------------------------------
    lock_acquire: int = 7             # an uncontended atomic lock/unlock pair
    cacheline_bounce: int = 181       # a lock's cache line moving to another CPU
    spin_handoff: int = 60            # a ticket spinlock noticing its turn
    sleep_wakeup: int = 2000          # waking a task blocked on a sleeping lock (try_to_wake_up)
    # --- interrupts ---------------------------------------------------------
    ipi_send: int = 300               # the sender's cost of one IPI (x2APIC write)
    ipi_latency: int = 1000           # delivery until the target starts the handler
    ipi_handle: int = 400             # entry, handler dispatch and exit on the target
    # --- memory access and TLB ---------------------------------------------
    mem_access: int = 2               # a load/store that hits the TLB (and mostly the cache)
    tlb_miss_walk: int = 40           # a page-table walk on a TLB miss
    tlb_flush_one: int = 120          # INVLPG of one page
    tlb_flush_all: int = 400          # a full TLB flush (CR3 write)
    # --- page allocator -----------------------------------------------------
    pcp_list_op: int = 83             # take or put a page on a per-CPU list
    buddy_op: int = 40                # one split or one merge step in the buddy lists
    zone_watermark_check: int = 10    # zone_watermark_ok()
    clear_page: int = 468             # clear_page() of 4 KiB
    copy_page: int = 602              # copy_page() of 4 KiB
    # --- faults -------------------------------------------------------------
    fault_entry: int = 291            # exception entry, find_vma, handle_mm_fault overhead
    # --- page cache, block layer, writeback (mm/filemap.c, block/, fs/) ------
    pagecache_lookup: int = 40        # one xarray lookup in mapping->i_pages (RCU walk)
    pagecache_insert: int = 150       # __filemap_add_folio / __filemap_remove_folio: xarray store + counters
    copy_user_page: int = 600         # copy_{to,from}_user of 4 KiB between a user buffer and the page cache
    bio_submit: int = 1500            # submit_bio(): bio setup, blk-mq tag and dispatch to the driver
    bio_complete: int = 1000          # the completion interrupt and bio end_io, charged to the interrupted CPU
    writepage: int = 400              # one folio through write_cache_pages: lock, clear dirty, start writeback
    buffer_head_op: int = 80          # alloc/attach/look up one buffer_head on a block-device page
    dentry_lookup: int = 120          # d_lookup(): dcache hash walk and d_lockref get
    inode_init: int = 500             # iget/new_inode: fill a fresh inode from its on-disk copy
    # --- address spaces: VMAs, page tables, rmap (mm/mmap.c, mm/memory.c, mm/rmap.c) --
    vma_op: int = 150                 # find, insert, split or merge one VMA in the maple tree (vma_iter_store)
    pte_op: int = 10                  # read-modify-write of one PTE under its page-table lock
    copy_pte: int = 15                # copy_present_pte() for one PTE at fork (rmap dup, wrprotect)
    zap_pte: int = 15                 # zap_present_ptes() for one PTE: clear, rmap remove, gather the page
    rmap_op: int = 30                 # one anon_vma / i_mmap step of an rmap walk (vma_address, pte lookup)
    # --- kernel object allocators: slab, vmalloc (mm/slab.c, mm/vmalloc.c) -----
    slab_array_op: int = 20           # take or put an object in a per-CPU array cache (SLAB fast path, irqs off)
    slab_obj_move: int = 10           # move one object between a slab and an array cache under list_lock
    slab_grow: int = 300              # cache_grow_begin/end beyond the page allocation: slab management, colour
    slab_init_obj: int = 5            # cache_init_objs() for one object (the constructor's own work excluded)
    vmap_area_op: int = 200           # find, split, insert or merge one vmap_area in the vmalloc rb-trees
    # --- reclaim, swap and the OOM killer (mm/vmscan.c, mm/swapfile.c, mm/oom_kill.c) --
    lru_isolate: int = 40             # take one folio off an LRU list, or put it back, under lru_lock (list_move, flags, ref)
    reclaim_folio: int = 250          # shrink_folio_list's own work on one folio: trylock, flag tests, mapping checks
    swap_slot_op: int = 60            # allocate, duplicate or free one swap slot in swap_map and its cluster under si->lock
    oom_scan_task: int = 500          # oom_evaluate_task(): the badness of one task during select_bad_process()

    def with_overrides(self, overrides: Mapping[str, Any]) -> "CostModel":
        """A copy with some costs replaced; unknown names or bad values raise ValueError."""
        known = {f.name for f in fields(self)}
        for k, v in overrides.items():
            if k not in known:
                raise ValueError(f"unknown cost {k!r}")
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"cost {k!r} must be a non-negative integer of nanoseconds, got {v!r}")
        return dataclasses.replace(self, **dict(overrides))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


DEFAULT_COSTS = CostModel()
