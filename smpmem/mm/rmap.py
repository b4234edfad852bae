"""Reverse mappings: models mm/rmap.c (Linux 6.12) — from a page to the PTEs that map it.

Lock ordering in mm (mm/rmap.c's tree, the part this model has):

  mm->mmap_lock
    vma_start_write (&vma->vm_lock->lock)
      mapping->i_mmap_rwsem
        anon_vma->rwsem
          mm->page_table_lock or pte_lock (ptlock_ptr(ptdesc))
            swap_lock (in swap_duplicate)
            i_pages lock
              lruvec->lru_lock
                zone->lock

:data:`LOCK_ORDER` is that tree as (outer, inner) lock-class pairs;
:func:`seed_lock_order` hands it to the lock-order checker at boot, so taking
any two of these the wrong way round is reported on the first occasion.

Modelled: ``anon_vma`` with its root, parent, degree and the VMAs linked to it
(``anon_vma_chain``: a VMA lists every anon_vma it is linked into, an
anon_vma every VMA linked to it — the kernel's AVC objects are not separate
here); ``anon_vma_prepare`` (reusing a neighbour's with
``find_mergeable_anon_vma``), ``anon_vma_clone`` and ``anon_vma_fork``
(a fork always allocates the child's anon_vma: the kernel's reuse of one
with no VMAs and one child is not modelled); ``unlink_anon_vmas``;
the rmap of a page (``folio_add_new_anon_rmap``, ``folio_add_file_rmap_pte``,
``folio_remove_rmap_pte``, fork's ``folio_try_dup_anon_rmap_pte``) with
``NR_ANON_MAPPED`` / ``NR_FILE_MAPPED``; the rmap walk over an anon_vma or a
file's ``i_mmap`` (``rmap_walk_nolock`` for checks and /proc; each user below
walks with the locks); ``folio_referenced`` (test-and-clear the young bits; x86
flushes no TLB for that), ``try_to_unmap`` (immediate flush, or batched
with ``try_to_unmap_flush`` as reclaim does) and ``folio_mkclean``
(writeback write-protects shared file mappings, so later stores fault and
dirty the page again).

Simplified: no KSM, no migration entries, no large folios, no mlock
bookkeeping (a VM_LOCKED mapping makes try_to_unmap fail).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Iterator

from ..sim import ModelBug, RWSemaphore
from ..trace.gfp import MM_ANONPAGES, MM_SWAPENTS
from .mmap import VM_LOCKED, add_mm_counter
from .page import PG_anon_exclusive, PG_dirty, PG_swapbacked, PG_swapcache, Page
from .tlb import FlushInfo, flush_tlb_func
from .zone import NR_ANON_MAPPED, NR_FILE_MAPPED, mod_node_page_state

if TYPE_CHECKING:
    from ..sim import Thread
    from .mmap import MmStruct, VmAreaStruct

LOCK_ORDER: tuple[tuple[str, str], ...] = (
    ("&mm->mmap_lock", "&vma->vm_lock->lock"),
    ("&vma->vm_lock->lock", "&mapping->i_mmap_rwsem"),
    ("&mapping->i_mmap_rwsem", "&anon_vma->rwsem"),
    ("&anon_vma->rwsem", "&mm->page_table_lock"),
    ("&anon_vma->rwsem", "ptlock_ptr(ptdesc)"),
    ("&mm->page_table_lock", "swap_lock"),
    ("ptlock_ptr(ptdesc)", "swap_lock"),
    ("&mm->page_table_lock", "&mapping->i_pages"),
    ("ptlock_ptr(ptdesc)", "&mapping->i_pages"),
    ("&mapping->i_pages", "&lruvec->lru_lock"),
    ("&mm->page_table_lock", "&lruvec->lru_lock"),
    ("ptlock_ptr(ptdesc)", "&lruvec->lru_lock"),
    ("&lruvec->lru_lock", "&zone->lock"),
)


def seed_lock_order(kernel: Any) -> None:
    """Teach the lock-order checker the tree above (lockdep learns it by use; here it is known)."""
    after = kernel.locks.lockdep.after
    for outer, inner in LOCK_ORDER:
        after.setdefault((outer, 0), {}).setdefault((inner, 0), (outer,))


# --- anon_vma ------------------------------------------------------------------------------------

class AnonVma:
    """``struct anon_vma``: the VMAs an anonymous page may be mapped in.

    ``vmas`` (the rb_root of AVCs, by VMA uid: deterministic order) and
    ``num_active_vmas``/``num_children`` are written under the root's
    ``rwsem`` held for write.
    """

    __slots__ = ("root", "parent", "refcount", "degree", "num_children", "num_active_vmas", "vmas", "rwsem",
                 "slab_obj", "serial")
    _serial = 0

    def __init__(self, kernel: Any, parent: "AnonVma | None" = None) -> None:
        AnonVma._serial += 1
        self.serial = AnonVma._serial
        self.parent = parent if parent is not None else self
        self.root: AnonVma = parent.root if parent is not None else self
        self.refcount = 1
        self.degree = 1  # reference for the first VMA
        self.num_children = 0
        self.num_active_vmas = 0
        self.vmas: dict[int, "VmAreaStruct"] = {}
        self.rwsem: RWSemaphore | None = RWSemaphore(kernel, "&anon_vma->rwsem") if parent is None else None
        self.slab_obj: Any = None

    @property
    def lock(self) -> RWSemaphore:
        return self.root.rwsem  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<anon_vma {self.serial} vmas={len(self.vmas)}>"


def PageAnon(page: Page) -> bool:
    """``folio_test_anon``: ``mapping`` is an anon_vma."""
    return type(page.mapping) is AnonVma


async def anon_vma_alloc(th: "Thread", parent: AnonVma | None = None) -> AnonVma | None:
    from .mmap import slab_alloc

    ok, obj = await slab_alloc(th, "anon_vma")
    if not ok:
        return None
    av = AnonVma(th.machine, parent)
    av.slab_obj = obj
    return av


async def _put_anon_vma(th: "Thread", av: AnonVma) -> None:
    from .mmap import slab_free

    av.refcount -= 1
    if av.refcount == 0:
        root = av.root
        await slab_free(th, "anon_vma", av.slab_obj)
        if root is not av:
            await _put_anon_vma(th, root)


def _link(vma: "VmAreaStruct", av: AnonVma) -> None:
    vma.anon_vma_chain.append(av)
    av.vmas[vma.uid] = vma


def find_mergeable_anon_vma(vma: "VmAreaStruct") -> AnonVma | None:
    """``find_mergeable_anon_vma``: a neighbour's anon_vma this VMA could share."""
    from .mmap import prev_next

    mm = vma.vm_mm
    if vma.vm_start not in mm.mm_mt:
        return None
    prev, nxt = prev_next(mm, vma)
    for nb in (nxt, prev):
        if nb is None or nb.anon_vma is None or len(nb.anon_vma_chain) != 1:
            continue
        adjacent = nb.vm_start == vma.vm_end if nb is nxt else nb.vm_end == vma.vm_start
        same = not ((nb.vm_flags ^ vma.vm_flags) & ~0x8000000) and nb.vm_file is vma.vm_file
        contiguous = (nb.vm_pgoff == vma.vm_pgoff + vma.pages()) if nb is nxt else \
            (nb.vm_pgoff + nb.pages() == vma.vm_pgoff)
        if adjacent and same and contiguous:
            return nb.anon_vma
    return None


async def anon_vma_prepare(th: "Thread", vma: "VmAreaStruct") -> bool:
    """``__anon_vma_prepare``: give the VMA an anon_vma before its first anon page; False: ENOMEM."""
    if vma.anon_vma is not None:
        return True
    mm = vma.vm_mm
    av = find_mergeable_anon_vma(vma)
    allocated = None
    if av is None:
        allocated = av = await anon_vma_alloc(th)
        if av is None:
            return False
    lock = av.lock
    await lock.down_write(th, site="__anon_vma_prepare")
    await mm.page_table_lock.acquire(th, site="__anon_vma_prepare")
    if vma.anon_vma is None:
        vma.anon_vma = av
        _link(vma, av)
        av.num_active_vmas += 1
        if allocated is None:
            av.degree += 1
        allocated = None
    await mm.page_table_lock.release(th)
    await lock.up_write(th)
    if allocated is not None:
        await _put_anon_vma(th, allocated)
    th.charge(th.machine.costs.rmap_op)
    return True


async def anon_vma_clone(th: "Thread", dst: "VmAreaStruct", src: "VmAreaStruct") -> bool:
    """``anon_vma_clone``: link ``dst`` to every anon_vma ``src`` is linked to (split, fork)."""
    if not src.anon_vma_chain:
        return True
    lock = src.anon_vma_chain[0].lock
    await lock.down_write(th, site="anon_vma_clone")
    for av in src.anon_vma_chain:
        _link(dst, av)
        th.charge(th.machine.costs.rmap_op)
    dst.anon_vma = src.anon_vma
    if dst.anon_vma is not None:
        dst.anon_vma.num_active_vmas += 1
    await lock.up_write(th)
    return True


async def anon_vma_fork(th: "Thread", vma: "VmAreaStruct", pvma: "VmAreaStruct") -> bool:
    """``anon_vma_fork``: the child VMA joins the parent's anon_vmas and gets one of its own."""
    vma.anon_vma = None
    if not await anon_vma_clone(th, vma, pvma):
        return False
    if vma.anon_vma is not None:
        vma.anon_vma.num_active_vmas -= 1
    vma.anon_vma = None
    av = await anon_vma_alloc(th, pvma.anon_vma)
    if av is None:
        await unlink_anon_vmas(th, vma)
        return False
    av.root.refcount += 1  # the root stays while any child exists
    av.parent.num_children += 1
    lock = av.lock
    await lock.down_write(th, site="anon_vma_fork")
    vma.anon_vma = av
    _link(vma, av)
    av.num_active_vmas += 1
    await lock.up_write(th)
    return True


async def unlink_anon_vmas(th: "Thread", vma: "VmAreaStruct") -> None:
    """``unlink_anon_vmas``: take the VMA off every anon_vma; free those nothing uses any more."""
    chain = vma.anon_vma_chain
    if not chain:
        vma.anon_vma = None
        return
    lock = chain[0].lock
    await lock.down_write(th, site="unlink_anon_vmas")
    if vma.anon_vma is not None:
        vma.anon_vma.num_active_vmas -= 1
    empty = []
    for av in chain:
        av.vmas.pop(vma.uid, None)
        if not av.vmas and av is not av.root:
            empty.append(av)
    await lock.up_write(th)
    vma.anon_vma_chain = []
    vma.anon_vma = None
    for av in empty:
        if av.parent is not av:
            av.parent.num_children -= 1
        await _put_anon_vma(th, av)


# --- page rmap counters -------------------------------------------------------------------------------

def _mod_mapped(page: Page, item: int, delta: int) -> None:
    mod_node_page_state(page.zone.zone_pgdat, item, delta)


def folio_add_new_anon_rmap(page: Page, vma: "VmAreaStruct", addr: int) -> None:
    """``folio_add_new_anon_rmap`` (RMAP_EXCLUSIVE): a fresh private page, mapped once."""
    av = vma.anon_vma
    if av is None:
        raise ModelBug(f"anon page mapped into {vma!r} which has no anon_vma")
    page.flags |= (1 << PG_swapbacked) | (1 << PG_anon_exclusive)
    page.mapping = av
    page.index = linear_page_index(vma, addr)
    page._mapcount = 0
    _mod_mapped(page, NR_ANON_MAPPED, 1)


def folio_dup_anon_rmap(page: Page) -> None:
    """``folio_try_dup_anon_rmap_pte`` at fork: shared now, so no longer exclusive."""
    page.flags &= ~(1 << PG_anon_exclusive)
    page._mapcount += 1


def folio_add_file_rmap_pte(page: Page) -> None:
    """``folio_add_file_rmap_pte``: one more PTE maps a page-cache page."""
    page._mapcount += 1
    if page._mapcount == 0:
        _mod_mapped(page, NR_FILE_MAPPED, 1)


def folio_remove_rmap_pte(page: Page) -> None:
    """``folio_remove_rmap_pte``: one PTE fewer maps the page."""
    page._mapcount -= 1
    if page._mapcount < -1:
        raise ModelBug(f"mapcount underflow on {page!r}")
    if page._mapcount == -1:
        _mod_mapped(page, NR_ANON_MAPPED if PageAnon(page) else NR_FILE_MAPPED, -1)


def page_mapped(page: Page) -> bool:
    return page._mapcount >= 0


def linear_page_index(vma: "VmAreaStruct", addr: int) -> int:
    return ((addr - vma.vm_start) >> 12) + vma.vm_pgoff


def vma_address(page: Page, vma: "VmAreaStruct") -> int | None:
    """Where ``page`` would be mapped in ``vma`` (``vma_address``), or None if outside it."""
    addr = vma.vm_start + ((page.index - vma.vm_pgoff) << 12)
    if vma.vm_start <= addr < vma.vm_end:
        return addr
    return None


# --- walking the mappings --------------------------------------------------------------------------

def _candidate_vmas(page: Page) -> list["VmAreaStruct"]:
    mapping = page.mapping
    if type(mapping) is AnonVma:
        return list(mapping.vmas.values())
    i_mmap = getattr(mapping, "i_mmap", None)
    return list(i_mmap.values()) if i_mmap is not None else []


def _rmap_lock(page: Page) -> RWSemaphore | None:
    mapping = page.mapping
    if type(mapping) is AnonVma:
        return mapping.lock
    return getattr(mapping, "i_mmap_rwsem", None)


def rmap_walk_nolock(page: Page) -> Iterator[tuple["VmAreaStruct", int]]:
    """Every ``(vma, addr)`` whose PTE maps ``page`` now (no locks: for checks and /proc)."""
    from .memory import pte_maps

    for vma in _candidate_vmas(page):
        addr = vma_address(page, vma)
        if addr is not None and pte_maps(vma.vm_mm, addr >> 12, page.pfn):
            yield vma, addr


def _page_vma_ptes(th: "Thread", page: Page, vma: "VmAreaStruct") -> tuple["MmStruct", int, Any] | None:
    """The lookup half of ``page_vma_mapped_walk``: (mm, vpn, PTE page) where ``page`` would be mapped in
    ``vma``, or None when it falls outside the VMA or no PTE page covers it. Pays one ``rmap_op``."""
    addr = vma_address(page, vma)
    th.charge(th.machine.costs.rmap_op)
    if addr is None:
        return None
    mm = vma.vm_mm
    vpn = addr >> 12
    ptp = mm.ptes.get(vpn >> 9)
    if ptp is None:
        return None
    return mm, vpn, ptp


async def folio_referenced(th: "Thread", page: Page) -> tuple[int, int]:
    """``folio_referenced``: how many mappings saw the page young (clearing the bits), and their vm_flags.

    Takes the rmap lock for read and each mapping's page-table lock. x86
    clears the accessed bit without flushing the TLB
    (``ptep_clear_flush_young``): an access that hits a cached translation
    does not set it again.
    """
    from .memory import _PAGE_ACCESSED, pte_lockptr, pte_maps  # memory imports this module

    lock = _rmap_lock(page)
    if lock is not None:
        await lock.down_read(th, site="folio_referenced")
    referenced, vm_flags = 0, 0
    try:
        for vma in _candidate_vmas(page):
            found = _page_vma_ptes(th, page, vma)
            if found is None:
                continue
            mm, vpn, ptp = found
            ptl = pte_lockptr(mm, ptp)
            await ptl.acquire(th, site="folio_referenced_one")
            pte = ptp.ptes.get(vpn, 0)
            if pte_maps(mm, vpn, page.pfn):
                if vma.vm_flags & VM_LOCKED:
                    vm_flags |= VM_LOCKED
                if pte & _PAGE_ACCESSED:
                    ptp.ptes[vpn] = pte & ~_PAGE_ACCESSED
                    referenced += 1
                    vm_flags |= vma.vm_flags
            await ptl.release(th)
    finally:
        if lock is not None:
            await lock.up_read(th)
    return referenced, vm_flags


async def folio_mkclean(th: "Thread", page: Page) -> int:
    """``folio_mkclean``: write-protect and clean every shared-mapping PTE of a file page; how many were.

    Called by writeback before the I/O starts (``folio_clear_dirty_for_io``),
    with the page locked. Takes the mapping's ``i_mmap_rwsem`` for read and
    each PTE's lock; each PTE that is writable or dirty is cleared and flushed
    on every CPU that may cache it (``ptep_clear_flush``: a shootdown), then
    set again read-only and clean (``page_vma_mkclean_one``), so the next
    store through the mapping faults (``wp_page_shared``) and dirties the
    page again. Private mappings are skipped (``invalid_mkclean_vma``): their
    writes go to copies.
    """
    from .memory import _PAGE_DIRTY, _PAGE_RW, ptep_clear_flush, pte_lockptr, pte_maps, set_pte
    from .mmap import VM_SHARED

    mapping = page.mapping
    if mapping is None or type(mapping) is AnonVma:
        return 0
    lock = _rmap_lock(page)
    if lock is not None:
        await lock.down_read(th, site="folio_mkclean")
    cleaned = 0
    try:
        for vma in _candidate_vmas(page):
            if not vma.vm_flags & VM_SHARED:
                continue
            found = _page_vma_ptes(th, page, vma)
            if found is None:
                continue
            mm, vpn, ptp = found
            ptl = pte_lockptr(mm, ptp)
            await ptl.acquire(th, site="page_vma_mkclean_one")
            try:
                pte = ptp.ptes.get(vpn, 0)
                if not pte_maps(mm, vpn, page.pfn) or not pte & (_PAGE_RW | _PAGE_DIRTY):
                    continue
                pte = await ptep_clear_flush(th, mm, ptp, vpn)
                set_pte(mm, ptp, vpn, pte & ~(_PAGE_RW | _PAGE_DIRTY))  # pte_wrprotect(pte_mkclean(entry))
                cleaned += 1
            finally:
                await ptl.release(th)
    finally:
        if lock is not None:
            await lock.up_read(th)
    return cleaned


class TlbUbc:
    """``struct tlbflush_unmap_batch``: reclaim's deferred flush (``TTU_BATCH_FLUSH``)."""

    def __init__(self) -> None:
        self.cpumask: set[int] = set()
        self.mms: list[Any] = []
        self.flush_required = False


def set_tlb_ubc_flush_pending(ubc: TlbUbc, mm: "MmStruct") -> None:
    """``set_tlb_ubc_flush_pending`` / x86 ``arch_tlbbatch_add_pending``: remember the mm's CPUs."""
    mm.tlb_gen += 1  # inc_mm_tlb_gen: CPUs behind it flush fully
    ubc.cpumask |= mm.cpumask
    if mm not in ubc.mms:
        ubc.mms.append(mm)
    mm.tlb_flush_batched = True
    ubc.flush_required = True


async def try_to_unmap_flush(th: "Thread", ubc: TlbUbc) -> None:
    """``try_to_unmap_flush`` / ``arch_tlbbatch_flush``: one full flush on every CPU that may cache them."""
    if not ubc.flush_required:
        return
    k = th.machine
    info = FlushInfo(None, 0, -1, False, 0, th.cpu.id)
    targets = [k.cpus[c] for c in sorted(ubc.cpumask) if c != th.cpu.id]
    if th.cpu.id in ubc.cpumask:
        flush_tlb_func(k, th.cpu, info, True, th)
    if targets:
        k.vmstat["nr_tlb_remote_flush"] += 1
        if not k.tlb_skip_shootdown:
            await k.smp_call_function_many(th, targets, lambda c: flush_tlb_func(k, c, info, False),
                                           name="flush_tlb_func")
    for mm in ubc.mms:
        mm.tlb_flush_batched = False
    ubc.cpumask.clear()
    ubc.mms.clear()
    ubc.flush_required = False


async def folio_mark_dirty(th: "Thread", page: Page) -> None:
    """``folio_mark_dirty``: through ``mapping.a_ops.dirty_folio`` when the mapping has one, else PG_dirty."""
    mapping = page.mapping
    a_ops = getattr(mapping, "a_ops", None) if type(mapping) is not AnonVma else None
    fn = getattr(a_ops, "dirty_folio", None) if a_ops is not None else None
    if fn is None:
        page.flags |= 1 << PG_dirty
        return
    r = fn(th, mapping, page)
    if inspect.isawaitable(r):
        await r


async def try_to_unmap(th: "Thread", page: Page, ubc: TlbUbc | None = None) -> bool:
    """``try_to_unmap``: remove every PTE that maps ``page``; True when it is no longer mapped.

    The caller holds a reference (and in the kernel the page lock). An anon
    page must be in the swap cache (``PG_swapcache``, ``page.private`` the
    swap entry): its PTEs become swap entries (``swap_duplicate`` through
    ``kernel.mm_hooks``), ``MM_ANONPAGES`` turns into ``MM_SWAPENTS``. A
    file page's PTEs are cleared; a dirty PTE dirties the page. With ``ubc``
    the TLB flush is deferred to :func:`try_to_unmap_flush`; without, each
    PTE is flushed at once (``ptep_clear_flush``).
    """
    from .memory import (_PAGE_DIRTY, mm_counter_file, ptep_clear_flush, pte_lockptr, pte_maps, put_page,
                         set_pte, swp_entry_to_pte)  # memory imports this module

    k = th.machine
    anon = PageAnon(page)
    if anon and not page.flags & (1 << PG_swapcache):
        return not page_mapped(page)
    lock = _rmap_lock(page)
    if lock is not None:
        await lock.down_read(th, site="try_to_unmap")
    ok = True
    try:
        for vma in _candidate_vmas(page):
            found = _page_vma_ptes(th, page, vma)
            if found is None:
                continue
            mm, vpn, ptp = found
            ptl = pte_lockptr(mm, ptp)
            await ptl.acquire(th, site="try_to_unmap_one")
            try:
                if not pte_maps(mm, vpn, page.pfn):
                    continue
                if vma.vm_flags & VM_LOCKED:
                    ok = False
                    continue
                if anon:
                    entry = page.private
                    dup = k.mm_hooks.swap_duplicate
                    if dup is not None:
                        r = dup(th, entry)
                        if inspect.isawaitable(r):
                            r = await r
                        if r is False:
                            ok = False
                            continue
                if ubc is not None:
                    pteval = ptp.ptes.get(vpn, 0)
                    set_pte(mm, ptp, vpn, 0)
                    set_tlb_ubc_flush_pending(ubc, mm)
                else:
                    pteval = await ptep_clear_flush(th, mm, ptp, vpn)
                if pteval & _PAGE_DIRTY:
                    await folio_mark_dirty(th, page)
                if anon:
                    set_pte(mm, ptp, vpn, swp_entry_to_pte(page.private))
                    add_mm_counter(th, mm, MM_ANONPAGES, -1)
                    add_mm_counter(th, mm, MM_SWAPENTS, 1)
                else:
                    add_mm_counter(th, mm, mm_counter_file(page), -1)
                folio_remove_rmap_pte(page)
                await put_page(th, page)
            finally:
                await ptl.release(th)
    finally:
        if lock is not None:
            await lock.up_read(th)
    return ok and not page_mapped(page)


__all__ = [
    "AnonVma", "LOCK_ORDER", "PageAnon", "TlbUbc", "anon_vma_clone", "anon_vma_fork", "anon_vma_prepare",
    "folio_add_file_rmap_pte", "folio_add_new_anon_rmap", "folio_dup_anon_rmap", "folio_mark_dirty",
    "folio_mkclean", "folio_referenced", "folio_remove_rmap_pte", "linear_page_index", "page_mapped", "rmap_walk_nolock",
    "seed_lock_order", "set_tlb_ubc_flush_pending", "try_to_unmap", "try_to_unmap_flush", "unlink_anon_vmas",
    "vma_address",
]
