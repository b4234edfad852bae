"""The ``madvise`` step: models mm/madvise.c for MADV_DONTNEED.

``madvise(addr, len, MADV_DONTNEED)`` takes ``mmap_lock`` for read, and for
each VMA in the range calls ``zap_page_range_single``: one mmu_gather, the
PTEs cleared under their page-table lock, a TLB flush of the range on every
CPU that uses the mm (the IPIs of a shootdown), then the pages freed.
Anonymous pages are gone (a later read maps the zero page, a write a new
page); file pages stay in the page cache and come back on the next fault.

Simplified: DONTNEED only (no FREE, COLD, PAGEOUT, WILLNEED); no per-VMA
lock path (6.x takes the VMA lock for DONTNEED on a single VMA); locked,
PFN-map and hugetlb VMAs give EINVAL as in ``madvise_dontneed_free_valid_vma``
(none are created by scenario steps), a range with holes ENOMEM after the
mapped parts were zapped. Both are outcomes, not errors: the program goes on.

Kept outside ``mm/`` for now because the address-space model has no
madvise; it uses only that model's public pieces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..mm import mmap as M
from ..mm.memory import tlb_finish_mmu, tlb_gather_mmu, zap_pte_range
from ._program import handler
from ._syscalls import _proc, _region

if TYPE_CHECKING:
    from ..sim import Thread


async def zap_page_range_single(th: "Thread", vma: Any, start: int, end: int) -> None:
    """``zap_page_range_single``: unmap ``[start, end)`` of one VMA under its own mmu_gather (flush included)."""
    mm = vma.vm_mm
    M.update_hiwater_rss(mm)
    tlb = tlb_gather_mmu(mm)
    try:
        await zap_pte_range(th, tlb, vma, start, end)
    finally:
        await tlb_finish_mmu(th, tlb)


async def madvise_dontneed(th: "Thread", mm: Any, start: int, length: int) -> int:
    """``do_madvise(start, len, MADV_DONTNEED)``: 0, -EINVAL or -ENOMEM (a hole in the range)."""
    if start & (M.PAGE_SIZE - 1):
        return -M.EINVAL
    end = start + M.PAGE_ALIGN(length)
    if end <= start:
        return 0
    await mm.mmap_lock.down_read(th, site="do_madvise")
    try:
        vmas = M.vmas_in_range(mm, start, end)
        err = 0
        addr = start
        for vma in vmas:
            th.charge(th.machine.costs.vma_op)
            if vma.vm_start > addr:
                err = -M.ENOMEM
            if vma.vm_flags & (M.VM_LOCKED | M.VM_PFNMAP | M.VM_HUGETLB):
                return -M.EINVAL
            lo, hi = max(start, vma.vm_start), min(end, vma.vm_end)
            await zap_page_range_single(th, vma, lo, hi)
            addr = hi
        if addr < end:
            err = -M.ENOMEM
        return err
    finally:
        await mm.mmap_lock.up_read(th)


@handler("madvise")
async def _madvise(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    r = _region(th, step.region)
    th.charge(th.machine.costs.syscall_entry)
    size = step.size if step.size is not None else r.size - step.offset
    if size > 0:
        await madvise_dontneed(th, proc.mm, r.addr + step.offset, size)
