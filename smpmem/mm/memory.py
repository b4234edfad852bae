"""Page tables and page faults: models mm/memory.c (Linux 6.12) with arch/x86/mm/fault.c's user path.

Modelled:

- Page tables: the pgd page of each mm, pud (per 512 GiB), pmd (per 1 GiB)
  and PTE pages (per 2 MiB) allocated from the page allocator with
  ``GFP_PGTABLE_USER`` and counted in ``nr_page_table_pages`` (meminfo
  ``PageTables``) and the mm's ``pgtables_bytes`` (``VmPTE``); the pgd is
  not counted (x86 allocates it without a page-table constructor). A PTE is
  an int in x86's layout: ``pfn << 12`` with _PAGE_PRESENT, _RW, _USER,
  _ACCESSED (young), _DIRTY, _PROTNONE and the software _SPECIAL bit; a swap
  entry is ``entry << 12 | _PAGE_SWP_MARK`` with the present bits clear
  (:func:`swp_entry_to_pte`, :func:`pte_to_swp_entry`). Each PTE page has
  its own ``ptl`` (split PTE locks, class ``ptlock_ptr(ptdesc)``) or all
  share ``mm->page_table_lock`` (``tunables.split_ptlock = false``).
- The user fault path: ``do_user_addr_fault`` (``page_fault_user`` event with
  x86 error-code bits, the per-VMA lock first when enabled, then
  ``mmap_lock`` for read, ``access_error``, SIGSEGV), ``handle_mm_fault``
  (``pgfault``, per-task min/maj faults), ``do_anonymous_page`` (the shared
  zero page for reads; ``GFP_HIGHUSER_MOVABLE | __GFP_ZERO`` for writes,
  ``VM_FAULT_RETRY`` under the VMA lock while the VMA has no anon_vma, as
  ``vmf_anon_prepare``), ``do_wp_page`` (reuse an exclusive page as
  ``wp_can_reuse_anon_folio``, else ``wp_page_copy`` with ``copy_page``
  cost and ``ptep_clear_flush``), ``do_fault`` → ``do_read_fault`` /
  ``do_cow_fault`` / ``do_shared_fault`` through ``vma.vm_ops.fault`` (and
  ``page_mkwrite``), ``do_swap_page`` as a hook for reclaim.
- Unmapping: ``unmap_vmas`` / ``zap_pte_range`` under an ``mmu_gather``
  (``tlb_gather_mmu``: ``tlb_flush_pending``; pages freed after the TLB
  flush, in batches), ``free_pgtables`` between the neighbouring VMAs,
  ``exit_mmap``; fork's ``copy_page_range`` (write-protecting private
  writable PTEs in both); mprotect's ``change_protection``; ``mm_populate``.
- Shared anonymous mappings (``MAP_SHARED|MAP_ANONYMOUS``) as
  ``shmem_zero_setup`` makes them: an object named ``/dev/zero (deleted)``
  whose pages are found by offset, counted as ``Shmem`` and
  ``MM_SHMEMPAGES``. Simplified: those pages are unevictable (as ramfs
  pages), since shmem swap-out is not modelled.
- The hardware side of an access (:func:`access_pages`): the TLB hit path
  (a dict lookup and an LRU touch, no switch, ``mem_access`` charged), the
  page walk on a miss (``tlb_miss_walk``, setting the accessed and dirty
  bits as the MMU does), the fault otherwise. Every access checks the
  content token of DESIGN.md §6 against the shadow (ModelBug on a
  mismatch); in debug mode every hit also checks the entry against the PTE
  unless a flush of the mm is in flight.

Simplified: no THP, no fault-around, no NUMA hinting, no userfaultfd, no
stack expansion; PTE pages are installed under ``mm->page_table_lock``
(x86's split PMD lock is not modelled).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Iterable

from ..sim import ModelBug, SpinLock
from ..trace.events import exceptions as exc_events
from ..trace.events import mm as mm_events
from ..trace.gfp import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS, X86_PF_PROT, X86_PF_USER, X86_PF_WRITE
from . import gfp as G
from .lru import folio_add_lru, lru_add_drain, lru_del_on_free, lruvec_of
from .mmap import (
    VM_GROWSDOWN, VM_LOCKED, VM_MAYSHARE, VM_PFNMAP, VM_MIXEDMAP, VM_READ, VM_EXEC, VM_SEQ_READ, VM_SHARED,
    VM_WIPEONFORK, VM_WRITE, MmStruct, VmAreaStruct, add_mm_counter, find_vma, get_mm_rss, is_cow_mapping,
    lock_vma_under_rcu, update_hiwater_rss, vma_end_read, vma_is_anonymous,
)
from .page import PG_lru, PG_reserved, PG_swapbacked, PG_swapcache, PG_unevictable, PG_uptodate, PG_anon_exclusive, Page
from .page_alloc import alloc_pages, free_pages_
from .rmap import (
    AnonVma, PageAnon, anon_vma_prepare, folio_add_file_rmap_pte, folio_add_new_anon_rmap, folio_dup_anon_rmap,
    folio_mark_dirty, folio_remove_rmap_pte, linear_page_index,
)
from .tlb import TLB_FLUSH_ALL, flush_tlb_mm_range, switch_mm_irqs_off, tlbstate
from .zone import NR_FILE_PAGES, NR_PAGETABLE, NR_SHMEM, mod_node_page_state

if TYPE_CHECKING:
    from ..sim import Thread

# --- PTE bits (arch/x86/include/asm/pgtable_types.h) ------------------------------------------------
_PAGE_PRESENT = 0x001
_PAGE_RW = 0x002
_PAGE_USER = 0x004
_PAGE_ACCESSED = 0x020
_PAGE_DIRTY = 0x040
_PAGE_PROTNONE = 0x100  # _PAGE_GLOBAL's bit, meaning PROT_NONE when _PAGE_PRESENT is clear
_PAGE_SPECIAL = 0x200  # _PAGE_SOFTW1: no struct page behind it (the zero page)
_PAGE_SWP_MARK = 0x002  # the model's swap-entry marker (present bits clear)
PTE_PFN_SHIFT = 12
PTRS_PER_PTE = 512
PMD_SHIFT, PUD_SHIFT, PGDIR_SHIFT = 21, 30, 39
PAGE_SHIFT = 12

# --- vm_fault_t and fault flags (include/linux/mm_types.h) ------------------------------------------
VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_HWPOISON = 0x000010
VM_FAULT_SIGSEGV = 0x000040
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_LOCKED = 0x000200
VM_FAULT_RETRY = 0x000400
VM_FAULT_FALLBACK = 0x000800
VM_FAULT_DONE_COW = 0x001000
VM_FAULT_COMPLETED = 0x004000
VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON | VM_FAULT_FALLBACK
FAULT_FLAG_WRITE = 0x1
FAULT_FLAG_ALLOW_RETRY = 0x4
FAULT_FLAG_KILLABLE = 0x10
FAULT_FLAG_TRIED = 0x20
FAULT_FLAG_USER = 0x40
FAULT_FLAG_VMA_LOCK = 0x1000
FAULT_FLAG_DEFAULT = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE

SIGBUS, SIGKILL, SIGSEGV = 7, 9, 11
GFP_PGTABLE_USER = G.GFP_KERNEL | G.__GFP_ZERO | G.__GFP_ACCOUNT
GFP_USER_ZEROED = G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO  # vma_alloc_zeroed_movable_folio (a name usable in classes)
MAX_GATHER_BATCH = 507  # pages per mmu_gather batch page (PAGE_SIZE - header) / sizeof(void *)


def pte_present(pte: int) -> bool:
    return bool(pte & (_PAGE_PRESENT | _PAGE_PROTNONE))


def is_swap_pte(pte: int) -> bool:
    return bool(pte) and not pte & (_PAGE_PRESENT | _PAGE_PROTNONE)


def swp_entry_to_pte(entry: int) -> int:
    """A non-present PTE holding swap entry ``entry`` (an opaque non-negative int owned by swap)."""
    return (entry << PTE_PFN_SHIFT) | _PAGE_SWP_MARK


def pte_to_swp_entry(pte: int) -> int:
    return pte >> PTE_PFN_SHIFT


def pte_pfn(pte: int) -> int:
    return pte >> PTE_PFN_SHIFT


class MmHooks:
    """Where other subsystems plug into the fault and unmap paths (set at their boot).

    - ``do_swap_page(th, vmf, pte) -> vm_fault_t``: swap-in for a swap-entry
      PTE (reclaim/swap fills it). Called with ``mmap_lock`` (or the VMA lock)
      held for read and no page-table lock; it must map the page itself
      (``map_anon_page`` helps) and return VM_FAULT_* bits.
    - ``swap_duplicate(th, entry) -> bool | None``: one more PTE references the
      swap entry (fork, try_to_unmap); False refuses.
    - ``free_swap_and_cache(th, entry)``: a swap-entry PTE was zapped.
    - ``folio_free_swap(th, page) -> bool``: ``do_wp_page`` reusing a page in
      the swap cache asks swap to let it go.
    """

    def __init__(self) -> None:
        self.do_swap_page: Callable[..., Any] | None = None
        self.swap_duplicate: Callable[..., Any] | None = None
        self.free_swap_and_cache: Callable[..., Any] | None = None
        self.folio_free_swap: Callable[..., Any] | None = None


async def _maybe_await(r: Any) -> Any:
    if inspect.isawaitable(r):
        return await r
    return r


# --- page-table pages ---------------------------------------------------------------------------------

class PtePage:
    """One page of PTEs covering 2 MiB: ``ptes`` (vpn -> pte) written under ``ptl``."""

    __slots__ = ("page", "ptes", "ptl", "index")

    def __init__(self, page: Page, index: int, ptl: SpinLock) -> None:
        self.page = page
        self.index = index  # vaddr >> PMD_SHIFT
        self.ptes: dict[int, int] = {}
        self.ptl = ptl

    def __repr__(self) -> str:
        return f"<pte page 0x{self.index << PMD_SHIFT:x} {len(self.ptes)} entries>"


def pte_lockptr(mm: MmStruct, ptp: PtePage) -> SpinLock:
    """``pte_lockptr``: the split ptl of the PTE page, or the mm's page_table_lock."""
    return ptp.ptl


async def _pgtable_alloc(th: "Thread", mm: MmStruct) -> Page | None:
    """``pagetable_alloc`` + ``pagetable_pte_ctor``: a zeroed page counted in PageTables.

    The mm's ``pgtables_bytes`` (VmPTE) counts a table only once it is
    installed (``mm_inc_nr_ptes`` in ``pmd_install``, under the page_table_lock):
    a table that lost the install race was never the mm's.
    """
    page = await alloc_pages(th, GFP_PGTABLE_USER, 0)
    if page is None:
        return None
    mod_node_page_state(page.zone.zone_pgdat, NR_PAGETABLE, 1)
    return page


async def _pgtable_free(th: "Thread", mm: MmStruct, page: Page) -> None:
    """``pagetable_dtor`` + free: a table already out of the mm (uncounted from VmPTE when it was removed)."""
    mod_node_page_state(page.zone.zone_pgdat, NR_PAGETABLE, -1)
    await free_pages_(th, page, 0)


async def pgd_alloc(th: "Thread", mm: MmStruct) -> bool:
    """``pgd_alloc``: the top-level table (not counted in PageTables on x86)."""
    page = await alloc_pages(th, GFP_PGTABLE_USER, 0)
    if page is None:
        return False
    mm.pgd = page
    return True


async def pgd_free(th: "Thread", mm: MmStruct) -> None:
    if mm.pgd is not None:
        page, mm.pgd = mm.pgd, None
        await free_pages_(th, page, 0)


async def pte_alloc(th: "Thread", mm: MmStruct, vpn: int) -> PtePage | None:
    """``__pte_alloc`` (and the pud/pmd levels above it): the PTE page covering ``vpn``, or None (OOM)."""
    idx = vpn >> 9
    ptp = mm.ptes.get(idx)
    if ptp is not None:
        return ptp
    k = th.machine
    x86_64 = mm.layout.arch != "i386"
    want: list[tuple[str, int]] = []
    if x86_64 and (vpn >> 27) not in mm.puds:
        want.append(("pud", vpn >> 27))
    if (vpn >> 18) not in mm.pmds:
        want.append(("pmd", vpn >> 18))
    got: list[tuple[str, int, Page]] = []
    try:
        for kind, i in want:
            p = await _pgtable_alloc(th, mm)
            if p is None:
                for _k, _i, q in got:
                    await _pgtable_free(th, mm, q)
                return None
            got.append((kind, i, p))
        page = await _pgtable_alloc(th, mm)
        if page is None:
            for _k, _i, q in got:
                await _pgtable_free(th, mm, q)
            return None
    except BaseException:
        for _k, _i, q in got:
            await _pgtable_free(th, mm, q)
        raise
    # pmd_install: under the page_table_lock; another thread may have won the race.
    await mm.page_table_lock.acquire(th, site="pmd_install")
    spare: list[Page] = []
    for kind, i, p in got:
        d = mm.puds if kind == "pud" else mm.pmds
        if i in d:
            spare.append(p)
        else:
            d[i] = p
            mm.pgtables_bytes += 1 << PAGE_SHIFT  # mm_inc_nr_pmds / mm_inc_nr_puds
    ptp = mm.ptes.get(idx)
    if ptp is None:
        ptl = SpinLock(k, "ptlock_ptr(ptdesc)") if k.tunables.split_ptlock else mm.page_table_lock
        ptp = mm.ptes[idx] = PtePage(page, idx, ptl)
        mm.pgtables_bytes += 1 << PAGE_SHIFT  # mm_inc_nr_ptes
    else:
        spare.append(page)
    th.charge(k.costs.pte_op)
    await mm.page_table_lock.release(th)
    for p in spare:
        await _pgtable_free(th, mm, p)
    return ptp


def set_pte(mm: MmStruct, ptp: PtePage, vpn: int, pte: int) -> None:
    """``set_pte_at`` / ``pte_clear`` (the caller holds the ptl)."""
    if pte:
        ptp.ptes[vpn] = pte
    else:
        ptp.ptes.pop(vpn, None)


def pte_lookup(mm: MmStruct, vpn: int) -> int:
    ptp = mm.ptes.get(vpn >> 9)
    return ptp.ptes.get(vpn, 0) if ptp is not None else 0


def pte_maps(mm: MmStruct, vpn: int, pfn: int) -> bool:
    """True when the PTE at ``vpn`` is present and maps ``pfn``."""
    pte = pte_lookup(mm, vpn)
    return bool(pte & (_PAGE_PRESENT | _PAGE_PROTNONE)) and pte >> PTE_PFN_SHIFT == pfn


def vm_normal_page(k: Any, pte: int) -> Page | None:
    """``vm_normal_page``: the struct page behind a present PTE; None for the zero page (special)."""
    if pte & _PAGE_SPECIAL:
        return None
    return k.page_alloc.mem_map.pages.get(pte >> PTE_PFN_SHIFT)


def mm_counter_file(page: Page) -> int:
    return MM_SHMEMPAGES if page.flags & (1 << PG_swapbacked) else MM_FILEPAGES


def mm_counter(page: Page) -> int:
    return MM_ANONPAGES if PageAnon(page) else mm_counter_file(page)


# --- freeing user pages --------------------------------------------------------------------------------

async def _free_user_pages(th: "Thread", pages: list[Page]) -> None:
    """Pages whose last reference the caller holds: off the LRU (one lock round per lruvec), then freed."""
    on_lru = [p for p in pages if p.flags & (1 << PG_lru)]
    while on_lru:
        lv = lruvec_of(on_lru[0])
        mine = [p for p in on_lru if lruvec_of(p) is lv]
        on_lru = [p for p in on_lru if lruvec_of(p) is not lv]
        await lv.lru_lock.acquire_irqsave(th, site="folios_put_refs+0xb4/0x1d0")
        for p in mine:
            if p.flags & (1 << PG_lru):
                lru_del_on_free(p)
        await lv.lru_lock.release_irqrestore(th)
    for p in pages:
        p.flags &= ~((1 << PG_unevictable) | (1 << PG_anon_exclusive) | (1 << PG_lru))
        p.mapping = None
        await free_pages_(th, p, 0)


async def put_page(th: "Thread", page: Page) -> None:
    """``folio_put``: drop a reference; the last one frees the page."""
    if page._refcount == 1:
        await _free_user_pages(th, [page])
    elif page._refcount <= 0:
        raise ModelBug(f"put_page on a page with refcount {page._refcount}: {page!r}")
    else:
        page._refcount -= 1


async def free_pages_and_swap_cache(th: "Thread", pages: list[Page]) -> None:
    """``free_pages_and_swap_cache``: the pages an unmap gathered; a swap cache page left unmapped leaves the cache.

    ``free_swap_cache`` for each: a page in the swap cache that no PTE maps
    any more and whose slot no swap PTE references (``folio_free_swap``,
    after a trylock) gives its slot back and leaves the cache, so the last
    reference below frees it; then :func:`release_pages`.
    """
    free_swap = th.machine.mm_hooks.folio_free_swap
    if free_swap is not None:
        for p in pages:
            if p.flags & (1 << PG_swapcache) and p._mapcount < 0:
                await free_swap(th, p)
    await release_pages(th, pages)


async def release_pages(th: "Thread", pages: list[Page]) -> None:
    """``release_pages`` / ``folios_put_refs``: drain this CPU's LRU batch, drop one ref each."""
    await lru_add_drain(th)
    last = []
    for p in pages:
        if p._refcount == 1:
            last.append(p)
        elif p._refcount <= 0:
            raise ModelBug(f"release_pages: refcount {p._refcount} on {p!r}")
        else:
            p._refcount -= 1
    if last:
        await _free_user_pages(th, last)


# --- the fault path -------------------------------------------------------------------------------------

class VmFault:
    """``struct vm_fault``: one fault in progress (what ``vm_ops.fault`` receives)."""

    __slots__ = ("vma", "address", "vpn", "pgoff", "flags", "ptp", "orig_pte", "page", "cow_page", "ptl_held")

    def __init__(self, vma: VmAreaStruct, address: int, flags: int, ptp: PtePage) -> None:
        self.vma = vma
        self.address = address & ~0xFFF
        self.vpn = address >> PAGE_SHIFT
        self.pgoff = linear_page_index(vma, address)  # the file offset in pages
        self.flags = flags
        self.ptp = ptp
        self.orig_pte = 0
        self.page: Page | None = None  # set by vm_ops.fault, with a reference for the caller
        self.cow_page: Page | None = None
        self.ptl_held = False

    async def lock(self, th: "Thread", site: str) -> None:
        await self.ptp.ptl.acquire(th, site=site)
        self.ptl_held = True

    async def unlock(self, th: "Thread") -> None:
        if self.ptl_held:
            self.ptl_held = False
            await self.ptp.ptl.release(th)


def access_error(error_code: int, vma: VmAreaStruct) -> bool:
    """``access_error`` (arch/x86/mm/fault.c)."""
    if error_code & X86_PF_WRITE:
        return not vma.vm_flags & VM_WRITE
    if error_code & X86_PF_PROT:
        return True
    return not vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC)


def _user_ip(mm: MmStruct) -> int:
    return mm.start_code + 0x1139  # a user instruction pointer (main+0x..): the model runs no code


_page_fault_user = exc_events.page_fault_user


async def do_user_addr_fault(th: "Thread", mm: MmStruct, addr: int, write: bool) -> int:
    """The user page fault (``exc_page_fault`` → ``do_user_addr_fault``): 0, or the signal to deliver."""
    k = th.machine
    th.charge(k.costs.fault_entry)
    vpn = addr >> PAGE_SHIFT
    tlbstate(th.cpu).flush_one(vpn)  # a #PF invalidates the faulting translation
    pte = pte_lookup(mm, vpn)
    error_code = X86_PF_USER | (X86_PF_WRITE if write else 0) | (X86_PF_PROT if pte & _PAGE_PRESENT else 0)
    tr = k.tracer
    if tr.on[_page_fault_user.id]:
        tr.emit(_page_fault_user, th, address=addr, ip=_user_ip(mm), error_code=error_code)
    flags = FAULT_FLAG_DEFAULT | FAULT_FLAG_USER | (FAULT_FLAG_WRITE if write else 0)
    fault = None
    if k.tunables.per_vma_lock:
        vma = await lock_vma_under_rcu(th, mm, addr)
        if vma is not None:
            if access_error(error_code, vma):
                await vma_end_read(th, vma)
                k.vmstat["vma_lock_success"] += 1
                return await bad_area(th, mm, addr, error_code)
            try:
                fault = await handle_mm_fault(th, vma, addr, flags | FAULT_FLAG_VMA_LOCK)
            finally:
                await vma_end_read(th, vma)
            if fault & VM_FAULT_RETRY:
                k.vmstat["vma_lock_retry"] += 1
                fault = None
            else:
                k.vmstat["vma_lock_success"] += 1
    if fault is None:
        await mm.mmap_lock.down_read(th, site="lock_mm_and_find_vma")
        try:
            vma = find_vma(mm, addr)
            th.charge(k.costs.vma_op)
            if vma is None or vma.vm_start > addr or access_error(error_code, vma):
                vma = None
            else:
                fault = await handle_mm_fault(th, vma, addr, flags)
        finally:
            await mm.mmap_lock.up_read(th)
        if vma is None:
            return await bad_area(th, mm, addr, error_code)
    if fault & VM_FAULT_OOM:
        return SIGKILL  # pagefault_out_of_memory: the allocator's OOM path found no other victim
    if fault & VM_FAULT_SIGBUS:
        return SIGBUS
    if fault & VM_FAULT_SIGSEGV:
        return SIGSEGV
    return 0


async def bad_area(th: "Thread", mm: MmStruct, addr: int, error_code: int) -> int:
    """``__bad_area_nosemaphore``: SIGSEGV for a user access outside any VMA or against its protection."""
    th.machine.mm_last_fault = addr
    return SIGSEGV


async def handle_mm_fault(th: "Thread", vma: VmAreaStruct, addr: int, flags: int) -> int:
    """``handle_mm_fault``: resolve a fault on ``vma`` (mmap_lock or the VMA lock held for read)."""
    k = th.machine
    mm = vma.vm_mm
    vpn = addr >> PAGE_SHIFT
    ptp = await pte_alloc(th, mm, vpn)
    if ptp is None:
        ret = VM_FAULT_OOM
    else:
        vmf = VmFault(vma, addr, flags, ptp)
        try:
            ret = await handle_pte_fault(th, vmf)
        finally:
            await vmf.unlock(th)
    # mm_account_fault
    if not ret & VM_FAULT_RETRY:
        k.vmstat["pgfault"] += 1
        if not ret & VM_FAULT_ERROR:
            proc = th.process
            if proc is not None:
                if ret & VM_FAULT_MAJOR or flags & FAULT_FLAG_TRIED:
                    proc.maj_flt += 1
                else:
                    proc.min_flt += 1
    return ret


async def handle_pte_fault(th: "Thread", vmf: VmFault) -> int:
    mm = vmf.vma.vm_mm
    pte = vmf.ptp.ptes.get(vmf.vpn, 0)
    vmf.orig_pte = pte
    if not pte:
        if vma_is_anonymous(vmf.vma):
            return await do_anonymous_page(th, vmf)
        return await do_fault(th, vmf)
    if not pte_present(pte):
        hook = th.machine.mm_hooks.do_swap_page
        if hook is None:
            raise ModelBug(f"a swap-entry PTE at 0x{vmf.address:x} (pid {mm.owner_pid}) but no do_swap_page is installed")
        return await _maybe_await(hook(th, vmf, pte))
    await vmf.lock(th, "handle_pte_fault")
    cur = vmf.ptp.ptes.get(vmf.vpn, 0)
    if cur != pte:
        return 0  # another thread changed it: retry the access
    if vmf.flags & FAULT_FLAG_WRITE:
        if not pte & _PAGE_RW:
            return await do_wp_page(th, vmf)
        pte |= _PAGE_DIRTY
    set_pte(mm, vmf.ptp, vmf.vpn, pte | _PAGE_ACCESSED)
    th.charge(th.machine.costs.pte_op)
    return 0


def _mk_pte(page_pfn: int, vma: VmAreaStruct, write: bool) -> int:
    pte = (page_pfn << PTE_PFN_SHIFT) | vma.vm_page_prot | _PAGE_ACCESSED
    if write and vma.vm_flags & VM_WRITE:
        pte |= _PAGE_RW | _PAGE_DIRTY
    return pte


async def vmf_anon_prepare(th: "Thread", vmf: VmFault) -> int:
    """``vmf_anon_prepare``: an anon_vma is needed; under the VMA lock that means retrying under mmap_lock."""
    vma = vmf.vma
    if vma.anon_vma is not None:
        return 0
    if vmf.flags & FAULT_FLAG_VMA_LOCK:
        return VM_FAULT_RETRY
    if not await anon_vma_prepare(th, vma):
        return VM_FAULT_OOM
    return 0


async def do_anonymous_page(th: "Thread", vmf: VmFault) -> int:
    """``do_anonymous_page``: the zero page for a read, a zeroed private page for a write."""
    k = th.machine
    vma, mm = vmf.vma, vmf.vma.vm_mm
    if vma.vm_flags & VM_SHARED:
        return VM_FAULT_SIGBUS
    if not vmf.flags & FAULT_FLAG_WRITE:
        entry = (k.zero_pfn << PTE_PFN_SHIFT) | _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_SPECIAL
        await vmf.lock(th, "do_anonymous_page")
        if not vmf.ptp.ptes.get(vmf.vpn):
            set_pte(mm, vmf.ptp, vmf.vpn, entry)
            th.charge(k.costs.pte_op)
        return 0
    ret = await vmf_anon_prepare(th, vmf)
    if ret:
        return ret
    page = await alloc_pages(th, G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO, 0)
    if page is None:
        return VM_FAULT_OOM
    try:
        page.flags |= 1 << PG_uptodate
        await vmf.lock(th, "do_anonymous_page")
    except BaseException:
        await free_pages_(th, page, 0)
        raise
    if vmf.ptp.ptes.get(vmf.vpn):
        await vmf.unlock(th)
        await free_pages_(th, page, 0)
        return 0
    map_anon_page(th, vmf, page, _mk_pte(page.pfn, vma, True))
    await folio_add_lru(th, page)  # folio_add_lru_vma
    return 0


def map_anon_page(th: "Thread", vmf: VmFault, page: Page, entry: int) -> None:
    """Map a new private page (ptl held): RSS, rmap, the PTE — with no wait in between."""
    mm = vmf.vma.vm_mm
    add_mm_counter(th, mm, MM_ANONPAGES, 1)
    folio_add_new_anon_rmap(page, vmf.vma, vmf.address)
    set_pte(mm, vmf.ptp, vmf.vpn, entry)
    th.charge(th.machine.costs.pte_op)


# --- copy-on-write ---------------------------------------------------------------------------------------

_mm_cow = mm_events.mm_cow


def _trace_cow(th: "Thread", addr: int, old: int, new: int, reused: int) -> None:
    tr = th.machine.tracer
    if tr.on[_mm_cow.id]:
        tr.emit(_mm_cow, th, address=addr, old_pfn=old, new_pfn=new, reused=reused)


async def wp_can_reuse_anon_folio(th: "Thread", page: Page) -> bool:
    """``wp_can_reuse_anon_folio``: ours alone (one reference, after draining this CPU's LRU batch)?"""
    if page._refcount > 3:
        return False
    if not page.flags & (1 << PG_lru):
        await lru_add_drain(th)  # references from this CPU's LRU batch
    swapcache = 1 if page.flags & (1 << PG_swapcache) else 0
    if page._refcount > 1 + swapcache:
        return False
    if swapcache:
        hook = th.machine.mm_hooks.folio_free_swap
        if hook is not None:
            await _maybe_await(hook(th, page))
    return page._refcount == 1


async def do_wp_page(th: "Thread", vmf: VmFault) -> int:
    """``do_wp_page`` (ptl held): a write to a present read-only PTE: reuse, share-mkwrite or copy."""
    k = th.machine
    vma = vmf.vma
    page = vm_normal_page(k, vmf.orig_pte)
    if vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        return await wp_page_shared(th, vmf, page)
    if page is not None and PageAnon(page) and \
            (page.flags & (1 << PG_anon_exclusive) or await wp_can_reuse_anon_folio(th, page)):
        page.flags |= 1 << PG_anon_exclusive
        wp_page_reuse(th, vmf)
        k.vmstat["pgreuse"] += 1
        _trace_cow(th, vmf.address, page.pfn, page.pfn, 1)
        return 0
    if page is not None:
        page._refcount += 1  # folio_get: kept across the copy
    await vmf.unlock(th)
    return await wp_page_copy(th, vmf, page)


def wp_page_reuse(th: "Thread", vmf: VmFault) -> None:
    """``wp_page_reuse``: make the PTE writable in place (no flush: the fault dropped the local entry)."""
    pte = vmf.ptp.ptes.get(vmf.vpn, 0)
    set_pte(vmf.vma.vm_mm, vmf.ptp, vmf.vpn, pte | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED)
    th.charge(th.machine.costs.pte_op)


async def wp_page_shared(th: "Thread", vmf: VmFault, page: Page | None) -> int:
    """``wp_page_shared``: a shared mapping written for the first time: ``page_mkwrite``, then mark dirty."""
    ops = vmf.vma.vm_ops
    mkwrite = getattr(ops, "page_mkwrite", None) if ops is not None else None
    if mkwrite is not None and page is not None:
        await vmf.unlock(th)
        vmf.page = page
        ret = await _maybe_await(mkwrite(th, vmf))
        if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            return ret
        await vmf.lock(th, "wp_page_shared")
        if vmf.ptp.ptes.get(vmf.vpn, 0) != vmf.orig_pte:
            return 0
    wp_page_reuse(th, vmf)
    if page is not None:
        await vmf.unlock(th)
        await fault_dirty_shared_page(th, vmf, page)
    return 0


async def fault_dirty_shared_page(th: "Thread", vmf: VmFault, page: Page) -> None:
    """``fault_dirty_shared_page``: dirty the page and let writeback throttle the writer."""
    await folio_mark_dirty(th, page)
    bdp = getattr(th.machine, "balance_dirty_pages_ratelimited", None)
    if bdp is not None and page.mapping is not None:
        await _maybe_await(bdp(th, page.mapping))


async def ptep_clear_flush(th: "Thread", mm: MmStruct, ptp: PtePage, vpn: int) -> int:
    """``ptep_clear_flush`` (ptl held): clear the PTE and shoot down every CPU's translation of it."""
    pte = ptp.ptes.get(vpn, 0)
    mm.tlb_flush_pending += 1
    set_pte(mm, ptp, vpn, 0)
    try:
        await flush_tlb_mm_range(th, mm, vpn << PAGE_SHIFT, (vpn + 1) << PAGE_SHIFT)
    finally:
        mm.tlb_flush_pending -= 1
    return pte


async def wp_page_copy(th: "Thread", vmf: VmFault, old: Page | None) -> int:
    """``wp_page_copy``: a private copy of ``old`` (or of the zero page) replaces it in this PTE."""
    k = th.machine
    vma, mm = vmf.vma, vmf.vma.vm_mm
    ret = await vmf_anon_prepare(th, vmf)
    if ret:
        if old is not None:
            await put_page(th, old)
        return ret
    if old is None:
        new = await alloc_pages(th, G.GFP_HIGHUSER_MOVABLE | G.__GFP_ZERO, 0)
    else:
        new = await alloc_pages(th, G.GFP_HIGHUSER_MOVABLE, 0)
    if new is None:
        if old is not None:
            await put_page(th, old)
        return VM_FAULT_OOM
    try:
        if old is not None:
            th.charge(k.costs.copy_page)  # __wp_page_copy_user
            new.token = old.token
        new.flags |= 1 << PG_uptodate
        await vmf.lock(th, "wp_page_copy")
    except BaseException:
        await free_pages_(th, new, 0)
        if old is not None:
            await put_page(th, old)
        raise
    if vmf.ptp.ptes.get(vmf.vpn, 0) != vmf.orig_pte:
        await vmf.unlock(th)
        await free_pages_(th, new, 0)
        if old is not None:
            await put_page(th, old)
        return 0
    if old is not None:
        if not PageAnon(old):
            add_mm_counter(th, mm, mm_counter_file(old), -1)
            add_mm_counter(th, mm, MM_ANONPAGES, 1)
    else:
        add_mm_counter(th, mm, MM_ANONPAGES, 1)
    await ptep_clear_flush(th, mm, vmf.ptp, vmf.vpn)
    folio_add_new_anon_rmap(new, vma, vmf.address)
    set_pte(mm, vmf.ptp, vmf.vpn, _mk_pte(new.pfn, vma, True))
    if old is not None:
        folio_remove_rmap_pte(old)
    th.charge(k.costs.pte_op)
    k.mm_cow_copies += 1
    _trace_cow(th, vmf.address, old.pfn if old is not None else k.zero_pfn, new.pfn, 0)
    await folio_add_lru(th, new)
    await vmf.unlock(th)
    if old is not None:
        await put_page(th, old)  # the mapping's reference
        await put_page(th, old)  # do_wp_page's folio_get
    return 0


# --- file-backed faults (vm_ops) ------------------------------------------------------------------------

async def __do_fault(th: "Thread", vmf: VmFault) -> int:
    """``__do_fault``: ``vma.vm_ops.fault(th, vmf)`` sets ``vmf.page`` (with a reference for us)."""
    ret = await _maybe_await(vmf.vma.vm_ops.fault(th, vmf))
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY | VM_FAULT_DONE_COW):
        return ret
    if vmf.page is None:
        raise ModelBug(f"{vmf.vma.vm_ops!r}.fault returned {ret:#x} without a page")
    return ret


async def do_fault(th: "Thread", vmf: VmFault) -> int:
    """``do_fault``: read, copy-on-write or shared fault of a file (or shmem) VMA."""
    ops = vmf.vma.vm_ops
    if ops is None or getattr(ops, "fault", None) is None:
        return VM_FAULT_SIGBUS
    if not vmf.flags & FAULT_FLAG_WRITE:
        return await do_read_fault(th, vmf)
    if not vmf.vma.vm_flags & VM_SHARED:
        return await do_cow_fault(th, vmf)
    return await do_shared_fault(th, vmf)


async def finish_fault(th: "Thread", vmf: VmFault, page: Page, write: bool) -> int:
    """``finish_fault``: map ``vmf.page`` (or the COW copy) if the PTE is still empty; the fault's ref becomes the map's."""
    vma, mm = vmf.vma, vmf.vma.vm_mm
    await vmf.lock(th, "finish_fault")
    if vmf.ptp.ptes.get(vmf.vpn):
        await vmf.unlock(th)
        await put_page(th, page)
        return VM_FAULT_NOPAGE
    if PageAnon(page) or page.mapping is None:
        map_anon_page(th, vmf, page, _mk_pte(page.pfn, vma, write))
        await folio_add_lru(th, page)
        return 0
    entry = (page.pfn << PTE_PFN_SHIFT) | vma.vm_page_prot | _PAGE_ACCESSED
    if write and vma.vm_flags & VM_WRITE:
        entry |= _PAGE_RW | _PAGE_DIRTY
    add_mm_counter(th, mm, mm_counter_file(page), 1)
    folio_add_file_rmap_pte(page)
    set_pte(mm, vmf.ptp, vmf.vpn, entry)
    th.charge(th.machine.costs.pte_op)
    return 0


async def do_read_fault(th: "Thread", vmf: VmFault) -> int:
    ret = await __do_fault(th, vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        return ret
    return (await finish_fault(th, vmf, vmf.page, False)) | (ret & VM_FAULT_MAJOR)  # type: ignore[arg-type]


async def do_cow_fault(th: "Thread", vmf: VmFault) -> int:
    """``do_cow_fault``: a private write to a file page: copy it into a new anon page."""
    k = th.machine
    ret = await vmf_anon_prepare(th, vmf)
    if ret:
        return ret
    cow = await alloc_pages(th, G.GFP_HIGHUSER_MOVABLE, 0)
    if cow is None:
        return VM_FAULT_OOM
    try:
        ret = await __do_fault(th, vmf)
    except BaseException:
        await free_pages_(th, cow, 0)
        raise
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        await free_pages_(th, cow, 0)
        return ret
    src: Page = vmf.page  # type: ignore[assignment]
    th.charge(k.costs.copy_page)
    cow.token = src.token
    cow.flags |= 1 << PG_uptodate
    await put_page(th, src)
    k.mm_cow_copies += 1
    _trace_cow(th, vmf.address, src.pfn, cow.pfn, 0)
    return (await finish_fault(th, vmf, cow, True)) | (ret & VM_FAULT_MAJOR)


async def do_shared_fault(th: "Thread", vmf: VmFault) -> int:
    """``do_shared_fault``: a write to a shared file page: ``page_mkwrite``, map writable, dirty it."""
    ret = await __do_fault(th, vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        return ret
    page: Page = vmf.page  # type: ignore[assignment]
    mkwrite = getattr(vmf.vma.vm_ops, "page_mkwrite", None)
    if mkwrite is not None:
        r = await _maybe_await(mkwrite(th, vmf))
        if r & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            await put_page(th, page)
            return r
    r = await finish_fault(th, vmf, page, True)
    await vmf.unlock(th)
    if not r:
        await fault_dirty_shared_page(th, vmf, page)
    return r | (ret & VM_FAULT_MAJOR)


# --- shared anonymous memory (mm/shmem.c shmem_zero_setup, much reduced) ---------------------------------

class ShmemMapping:
    """The address_space of a ``/dev/zero (deleted)`` object: pages by offset, and the content shadow."""

    def __init__(self) -> None:
        self.pages: dict[int, Page] = {}
        self.i_mmap: dict[int, VmAreaStruct] = {}
        self.shadow: dict[int, int] = {}  # checker: page offset -> token
        self.nrpages = 0
        self.can_writeback = False  # shmem pages need no write notification


class ShmemFile:
    """The file ``shmem_zero_setup`` puts behind a shared anonymous VMA."""

    _ino = 1000

    def __init__(self, size: int) -> None:
        ShmemFile._ino += 1
        self.i_ino = ShmemFile._ino
        self.dev = (0, 1)
        self.path = "/dev/zero (deleted)"
        self.f_mapping = ShmemMapping()
        self.f_count = 1
        self.f_writable = True
        self.size = size

    async def release(self, th: "Thread") -> None:
        """The last VMA is gone: truncate (every page leaves the cache)."""
        m = self.f_mapping
        pages = [m.pages[i] for i in sorted(m.pages)]
        m.pages.clear()
        m.shadow.clear()
        for p in pages:
            mod_node_page_state(p.zone.zone_pgdat, NR_FILE_PAGES, -1)
            mod_node_page_state(p.zone.zone_pgdat, NR_SHMEM, -1)
            m.nrpages -= 1
        await release_pages(th, pages)


class _ShmemVmOps:
    """``shmem_anon_vm_ops``: the fault finds or creates the page at the VMA's offset."""

    page_mkwrite = None
    name = "shmem"

    async def fault(self, th: "Thread", vmf: VmFault) -> int:
        m: ShmemMapping = vmf.vma.vm_file.f_mapping
        idx = vmf.pgoff
        th.charge(th.machine.costs.pagecache_lookup)
        page = m.pages.get(idx)
        if page is None:
            new = await alloc_pages(th, GFP_USER_ZEROED, 0)
            if new is None:
                return VM_FAULT_OOM
            page = m.pages.get(idx)
            if page is None:
                page = new
                page.flags |= (1 << PG_swapbacked) | (1 << PG_uptodate) | (1 << PG_unevictable)
                page.mapping = m
                page.index = idx
                m.pages[idx] = page
                m.nrpages += 1
                mod_node_page_state(page.zone.zone_pgdat, NR_FILE_PAGES, 1)
                mod_node_page_state(page.zone.zone_pgdat, NR_SHMEM, 1)
                th.charge(th.machine.costs.pagecache_insert)
                page._refcount += 1  # the reference for the caller (the cache keeps the first)
                vmf.page = page
                await folio_add_lru(th, page)
                return 0
            await free_pages_(th, new, 0)
        page._refcount += 1
        vmf.page = page
        return 0


SHMEM_VM_OPS = _ShmemVmOps()


def shmem_zero_setup(k: Any, vma: VmAreaStruct) -> None:
    """``shmem_zero_setup``: a shared anonymous VMA is backed by a fresh shmem object."""
    vma.vm_file = ShmemFile(vma.vm_end - vma.vm_start)
    vma.vm_ops = SHMEM_VM_OPS


# --- unmapping: mmu_gather, zap, free_pgtables -------------------------------------------------------------

class MmuGather:
    """``struct mmu_gather``: the range to flush and the pages to free once it is flushed."""

    def __init__(self, mm: MmStruct, fullmm: bool = False) -> None:
        self.mm = mm
        self.fullmm = fullmm
        self.start = 1 << 62
        self.end = 0
        self.freed_tables = False
        self.pages: list[Page] = []
        self.tables: list[Page] = []


def tlb_gather_mmu(mm: MmStruct, fullmm: bool = False) -> MmuGather:
    mm.tlb_flush_pending += 1  # inc_tlb_flush_pending
    return MmuGather(mm, fullmm)


async def tlb_flush_mmu(th: "Thread", tlb: MmuGather) -> None:
    """``tlb_flush_mmu``: flush the gathered range, then free the gathered pages and tables."""
    if tlb.end > tlb.start or tlb.freed_tables or tlb.fullmm:
        if tlb.fullmm or tlb.end <= tlb.start:
            # The whole mm, or page tables freed with no PTE range gathered since the
            # last flush (a partial flush emptied it): flush everything, as a range
            # of nothing would flush nothing and the paging-structure caches must go.
            start, end = 0, TLB_FLUSH_ALL
        else:
            start, end = tlb.start, tlb.end
        await flush_tlb_mm_range(th, tlb.mm, start, end, tlb.freed_tables)
        tlb.start, tlb.end = 1 << 62, 0
        tlb.freed_tables = False
    pages, tlb.pages = tlb.pages, []
    if pages:
        await free_pages_and_swap_cache(th, pages)
    tables, tlb.tables = tlb.tables, []
    for p in tables:
        await _pgtable_free(th, tlb.mm, p)


async def tlb_finish_mmu(th: "Thread", tlb: MmuGather) -> None:
    try:
        await tlb_flush_mmu(th, tlb)
    finally:
        tlb.mm.tlb_flush_pending -= 1


async def zap_pte_range(th: "Thread", tlb: MmuGather, vma: VmAreaStruct, start: int, end: int) -> None:
    """``unmap_page_range`` / ``zap_pte_range``: clear the PTEs of ``[start, end)``, gathering the pages."""
    k = th.machine
    mm = vma.vm_mm
    v0, v1 = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    costs = k.costs
    pages_map = k.page_alloc.mem_map.pages
    shadow = mm.shadow
    for idx in sorted(i for i in mm.ptes if (i << 9) < v1 and ((i + 1) << 9) > v0):
        ptp = mm.ptes[idx]
        if not ptp.ptes:
            continue
        rss = [0, 0, 0, 0]
        swaps: list[int] = []
        ptl = ptp.ptl
        await ptl.acquire(th, site="zap_pte_range")
        try:
            vpns = sorted(v for v in ptp.ptes if v0 <= v < v1)
            for vpn in vpns:
                pte = ptp.ptes.pop(vpn)
                shadow.pop(vpn, None)
                th.pending += costs.zap_pte
                if pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
                    a = vpn << PAGE_SHIFT
                    if a < tlb.start:
                        tlb.start = a
                    if a + 4096 > tlb.end:
                        tlb.end = a + 4096
                    if pte & _PAGE_SPECIAL:
                        continue
                    page = pages_map.get(pte >> PTE_PFN_SHIFT)
                    if page is None:
                        raise ModelBug(f"zap: PTE 0x{pte:x} at 0x{vpn << 12:x} maps a frame that is not allocated")
                    if PageAnon(page):
                        rss[MM_ANONPAGES] -= 1
                    else:
                        rss[mm_counter_file(page)] -= 1
                        if pte & _PAGE_DIRTY:
                            await folio_mark_dirty(th, page)
                    folio_remove_rmap_pte(page)
                    tlb.pages.append(page)
                elif pte:
                    rss[MM_SWAPENTS] -= 1
                    swaps.append(pte_to_swp_entry(pte))
            for m, d in enumerate(rss):
                if d:
                    add_mm_counter(th, mm, m, d)
        finally:
            await ptl.release(th)
        free_swap = k.mm_hooks.free_swap_and_cache
        for e in swaps:
            if free_swap is not None:
                await _maybe_await(free_swap(th, e))
        if len(tlb.pages) >= MAX_GATHER_BATCH:
            await tlb_flush_mmu(th, tlb)


def free_pgtables(tlb: MmuGather, floor: int, ceiling: int, start: int, end: int) -> None:
    """``free_pgtables``: the tables under ``[start, end)`` that no VMA between floor and ceiling needs."""
    mm = tlb.mm
    for shift, table, span in ((PMD_SHIFT, mm.ptes, 1 << PMD_SHIFT), (PUD_SHIFT, mm.pmds, 1 << PUD_SHIFT),
                               (PGDIR_SHIFT, mm.puds, 1 << PGDIR_SHIFT)):
        lo = (floor + span - 1) & ~(span - 1)
        for idx in sorted(table):
            base = idx << shift
            if base < lo or base + span > ceiling or base + span <= start or base >= end:
                continue
            if shift == PMD_SHIFT:
                ptp = table[idx]
                if ptp.ptes:
                    raise ModelBug(f"free_pgtables: {ptp!r} still has entries")
                page = ptp.page
            else:
                lower = mm.ptes if shift == PUD_SHIFT else mm.pmds
                below = (PUD_SHIFT - PMD_SHIFT) if shift == PUD_SHIFT else (PGDIR_SHIFT - PUD_SHIFT)
                if any((i >> below) == idx for i in lower):
                    continue
                page = table[idx]
            del table[idx]
            mm.pgtables_bytes -= 1 << PAGE_SHIFT  # mm_dec_nr_ptes / _pmds / _puds
            tlb.tables.append(page)
            tlb.freed_tables = True


async def unmap_region(th: "Thread", mm: MmStruct, vmas: list[VmAreaStruct], floor: int, ceiling: int) -> None:
    """``unmap_region``: zap the detached VMAs and free their page tables under one mmu_gather."""
    update_hiwater_rss(mm)
    tlb = tlb_gather_mmu(mm)
    try:
        for v in vmas:
            await zap_pte_range(th, tlb, v, v.vm_start, v.vm_end)
        free_pgtables(tlb, floor, ceiling, vmas[0].vm_start, vmas[-1].vm_end)
    finally:
        await tlb_finish_mmu(th, tlb)


async def exit_mmap(th: "Thread", mm: MmStruct) -> None:
    """``exit_mmap``: zap every VMA, free every table (one full flush), remove the VMAs."""
    from .mmap import VM_ACCOUNT, mmap_write_lock, mmap_write_unlock, remove_vma, vm_unacct_memory

    k = th.machine
    await mmap_write_lock(th, mm, "exit_mmap")
    try:
        vmas = list(mm.mm_mt.values())
        update_hiwater_rss(mm)
        tlb = tlb_gather_mmu(mm, fullmm=True)
        try:
            for v in vmas:
                await zap_pte_range(th, tlb, v, v.vm_start, v.vm_end)
            free_pgtables(tlb, 0, 1 << 62, 0, 1 << 62)
            tlb.freed_tables = True
        finally:
            await tlb_finish_mmu(th, tlb)
        for v in vmas:
            del mm.mm_mt[v.vm_start]
            v.detached = True
            if v.vm_flags & VM_ACCOUNT:
                vm_unacct_memory(k, mm, v.pages())
            await remove_vma(th, v)
        mm.map_count = 0
        mm.mmap_cache = None
        mm.total_vm = mm.data_vm = mm.stack_vm = mm.exec_vm = mm.locked_vm = 0
        mm.shadow.clear()
        mm.dead = True
    finally:
        await mmap_write_unlock(th, mm)
    for c in k.cpus:
        ts = tlbstate(c)
        if ts.loaded_mm is mm:
            if not ts.is_lazy and c.current is not None and c.current is not th:
                raise ModelBug(f"CPU{c.id} still runs the dead {mm!r}")
            switch_mm_irqs_off(k, c, None)
    await pgd_free(th, mm)


# --- fork ------------------------------------------------------------------------------------------------

def vma_needs_copy(dst: VmAreaStruct, src: VmAreaStruct) -> bool:
    """``vma_needs_copy``: anon memory must be copied; file pages can be faulted in again."""
    if dst.vm_flags & VM_WIPEONFORK:
        return False
    if src.anon_vma is not None:
        return True
    if src.vm_flags & (VM_PFNMAP | VM_MIXEDMAP):
        return True
    return False


async def copy_page_range(th: "Thread", dst: VmAreaStruct, src: VmAreaStruct) -> bool:
    """``copy_page_range``: the child's PTEs for ``src``'s range; private writable ones write-protected in both."""
    k = th.machine
    src_mm, dst_mm = src.vm_mm, dst.vm_mm
    v0, v1 = src.vm_start >> PAGE_SHIFT, src.vm_end >> PAGE_SHIFT
    cow = is_cow_mapping(src.vm_flags)
    pages_map = k.page_alloc.mem_map.pages
    dup = k.mm_hooks.swap_duplicate
    for idx in sorted(i for i in src_mm.ptes if (i << 9) < v1 and ((i + 1) << 9) > v0):
        sptp = src_mm.ptes[idx]
        if not any(v0 <= v < v1 for v in sptp.ptes):
            continue
        dptp = await pte_alloc(th, dst_mm, idx << 9)
        if dptp is None:
            return False
        rss = [0, 0, 0, 0]
        out: list[tuple[int, int]] = []
        await sptp.ptl.acquire(th, site="copy_pte_range")
        try:
            for vpn in sorted(v for v in sptp.ptes if v0 <= v < v1):
                pte = sptp.ptes[vpn]
                th.pending += k.costs.copy_pte
                if pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
                    if not pte & _PAGE_SPECIAL:
                        page = pages_map[pte >> PTE_PFN_SHIFT]
                        page._refcount += 1
                        if PageAnon(page):
                            folio_dup_anon_rmap(page)
                            rss[MM_ANONPAGES] += 1
                        else:
                            folio_add_file_rmap_pte(page)
                            rss[mm_counter_file(page)] += 1
                    if cow and pte & _PAGE_RW:
                        pte &= ~_PAGE_RW
                        sptp.ptes[vpn] = pte  # ptep_set_wrprotect in the parent
                    if src.vm_flags & VM_SHARED:
                        pte &= ~_PAGE_DIRTY
                    out.append((vpn, pte & ~_PAGE_ACCESSED))
                elif pte:
                    if dup is not None:
                        await _maybe_await(dup(th, pte_to_swp_entry(pte)))
                    rss[MM_SWAPENTS] += 1
                    out.append((vpn, pte))
        finally:
            await sptp.ptl.release(th)
        await dptp.ptl.acquire(th, site="copy_pte_range")
        for vpn, pte in out:
            dptp.ptes[vpn] = pte
        for m, d in enumerate(rss):
            if d:
                add_mm_counter(th, dst_mm, m, d)
        await dptp.ptl.release(th)
    return True


# --- mprotect ----------------------------------------------------------------------------------------------

async def change_protection(th: "Thread", vma: VmAreaStruct, start: int, end: int) -> int:
    """``change_protection``: the PTEs of ``[start, end)`` get the VMA's new protection; returns pages changed."""
    k = th.machine
    mm = vma.vm_mm
    v0, v1 = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    prot = vma.vm_page_prot
    private_write = vma.vm_flags & VM_WRITE and not vma.vm_flags & VM_SHARED
    pages_map = k.page_alloc.mem_map.pages
    changed = 0
    tlb = tlb_gather_mmu(mm)
    try:
        for idx in sorted(i for i in mm.ptes if (i << 9) < v1 and ((i + 1) << 9) > v0):
            ptp = mm.ptes[idx]
            await ptp.ptl.acquire(th, site="change_pte_range")
            try:
                for vpn in sorted(v for v in ptp.ptes if v0 <= v < v1):
                    pte = ptp.ptes[vpn]
                    if not pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
                        continue
                    keep = pte & ~(_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_RW | _PAGE_USER)
                    new = keep | prot
                    if private_write and pte & _PAGE_DIRTY and not pte & _PAGE_SPECIAL:
                        page = pages_map.get(pte >> PTE_PFN_SHIFT)
                        if page is not None and PageAnon(page) and page.flags & (1 << PG_anon_exclusive):
                            new |= _PAGE_RW  # can_change_pte_writable
                    if new != pte:
                        ptp.ptes[vpn] = new
                        changed += 1
                        th.pending += k.costs.pte_op
                        a = vpn << PAGE_SHIFT
                        tlb.start, tlb.end = min(tlb.start, a), max(tlb.end, a + 4096)
            finally:
                await ptp.ptl.release(th)
    finally:
        await tlb_finish_mmu(th, tlb)
    return changed


# --- populate (mm/gup.c __mm_populate) ------------------------------------------------------------------------

async def mm_populate(th: "Thread", mm: MmStruct, start: int, length: int) -> None:
    """``mm_populate``: fault in every page of ``[start, start+length)`` (MAP_POPULATE, MAP_LOCKED)."""
    end = start + length
    await mm.mmap_lock.down_read(th, site="__mm_populate")
    try:
        addr = start
        while addr < end:
            vma = find_vma(mm, addr)
            if vma is None or vma.vm_start >= end:
                break
            addr = max(addr, vma.vm_start)
            if not vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC):
                addr = vma.vm_end
                continue
            write = (vma.vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
            while addr < min(end, vma.vm_end):
                pte = pte_lookup(mm, addr >> PAGE_SHIFT)
                if not pte & _PAGE_PRESENT or (write and not pte & _PAGE_RW):
                    r = await handle_mm_fault(th, vma, addr, FAULT_FLAG_DEFAULT | (FAULT_FLAG_WRITE if write else 0))
                    if r & VM_FAULT_ERROR:
                        return
                addr += 1 << PAGE_SHIFT
    finally:
        await mm.mmap_lock.up_read(th)


# --- the MMU: accesses from user space -------------------------------------------------------------------------

class _Any:
    """Equal to every token: the expected content of a page nobody checks."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


_ANY = _Any()


class _Unchecked(dict):
    """The shadow of pages whose owner keeps none (a file whose mapping has no ``shadow``)."""

    def get(self, key: Any, default: Any = None) -> Any:  # type: ignore[override]
        return _ANY

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


_UNCHECKED = _Unchecked()


def _shadow_for(mm: MmStruct, vpn: int, page: Page) -> tuple[dict, int]:
    """Where the expected token of an access lives: the mm's (private pages) or the file's (shared pages)."""
    mapping = page.mapping
    if mapping is None or type(mapping) is AnonVma:
        return mm.shadow, vpn
    sh = getattr(mapping, "shadow", None)
    if sh is None:
        return _UNCHECKED, 0
    return sh, page.index


async def tlb_miss(th: "Thread", mm: MmStruct, vpn: int, write: bool) -> int:
    """A TLB miss: walk the tables and fill the TLB, or fault. 0, or the signal to deliver."""
    k = th.machine
    await th.sync()
    ts = tlbstate(th.cpu)
    if ts.loaded_mm is not mm:
        switch_mm_irqs_off(k, th.cpu, mm, th)
    ts.misses += 1
    th.pending += k.costs.tlb_miss_walk
    for _attempt in range(64):
        ptp = mm.ptes.get(vpn >> 9)
        pte = ptp.ptes.get(vpn, 0) if ptp is not None else 0
        if pte & _PAGE_PRESENT and (not write or pte & _PAGE_RW):
            new = pte | _PAGE_ACCESSED | (_PAGE_DIRTY if write else 0)
            if new != pte:
                ptp.ptes[vpn] = new  # the MMU sets A (and D) atomically
            if pte & _PAGE_SPECIAL:
                page = k.zero_page
            else:
                page = k.page_alloc.mem_map.pages[pte >> PTE_PFN_SHIFT]
            sd, sk = _shadow_for(mm, vpn, page)
            w = (2 if new & _PAGE_DIRTY else 1) if new & _PAGE_RW else 0
            ts = tlbstate(th.cpu)
            if ts.loaded_mm is not mm:
                switch_mm_irqs_off(k, th.cpu, mm, th)
            ts.fill(vpn, (pte >> PTE_PFN_SHIFT, w, page, sd, sk))
            return 0
        sig = await do_user_addr_fault(th, mm, vpn << PAGE_SHIFT, write)
        if sig:
            return sig
        await th.sync()
    raise ModelBug(f"pid {mm.owner_pid}: 64 faults at 0x{vpn << 12:x} did not make it accessible")


def _data_loss(mm: MmStruct, vpn: int, page: Page, expected: Any) -> ModelBug:
    return ModelBug(f"data loss: pid {mm.owner_pid} read 0x{vpn << PAGE_SHIFT:x} through pfn 0x{page.pfn:x} "
                    f"and found token {page.token!r}, but {expected!r} was written there last")


async def access_pages(th: "Thread", mm: MmStruct, vpns: Iterable[int], write: bool) -> int:
    """Loads (or stores) to each page of ``vpns`` in order, as the CPU's MMU does; 0 or a signal.

    The hit path touches only this CPU's TLB and the page's content token:
    no lock, no switch; ``mem_access`` per hit is charged in one sum.
    """
    k = th.machine
    cpu = th.cpu
    ts = tlbstate(cpu)
    if ts.loaded_mm is not mm:
        switch_mm_irqs_off(k, cpu, mm, th)
    ents = ts.entries
    get = ents.get
    mte = ents.move_to_end
    dbg = k.debug_vm
    mem_access = k.costs.mem_access
    tok = k.mm_token
    hits = 0
    for vpn in vpns:
        while True:
            e = get(vpn)
            if e is not None and (not write or e[1] == 2):
                break
            th.pending += hits * mem_access
            ts.hits += hits
            hits = 0
            k.mm_token = tok
            sig = await tlb_miss(th, mm, vpn, write)
            tok = k.mm_token
            if sig:
                return sig
        if dbg and not mm.tlb_flush_pending and not mm.tlb_flush_batched:
            ptp = mm.ptes.get(vpn >> 9)
            pte = ptp.ptes.get(vpn, 0) if ptp is not None else 0
            if not pte & _PAGE_PRESENT or pte >> PTE_PFN_SHIFT != e[0] or (e[1] and not pte & _PAGE_RW):
                from .tlb import tlb_entry_stale_reason

                raise ModelBug(f"stale TLB entry used by pid {th.pid} on CPU{cpu.id}: "
                               f"{tlb_entry_stale_reason(mm, vpn, e)}")
        mte(vpn)
        page = e[2]
        if write:
            tok += 1
            page.token = tok
            e[3][e[4]] = tok
        else:
            exp = e[3].get(e[4])
            if page.token != exp:
                raise _data_loss(mm, vpn, page, exp)
        hits += 1
    th.pending += hits * mem_access
    ts.hits += hits
    k.mm_token = tok
    return 0


# --- boot and checks -----------------------------------------------------------------------------------------

def mm_init(kernel: Any) -> None:
    """Boot the address-space model: TLBs, the zero page, the lock order, hooks and checks."""
    from .rmap import seed_lock_order
    from .tlb import tlb_init

    tlb_init(kernel)
    seed_lock_order(kernel)
    pa = kernel.page_alloc
    kernel.mm_hooks = MmHooks()
    img = pa.kernel_image
    if img is not None and img.end > img.start:
        zero_pfn = img.start  # empty_zero_page lives in the kernel image (.bss)
    else:
        zero_pfn = max(z.zone_end_pfn for z in pa.populated)  # a frame no allocation can return
    zone = pa.populated[0]
    zp = Page(zero_pfn, zone, 0)
    zp.flags = 1 << PG_reserved
    zp._refcount = 1
    kernel.zero_pfn = zero_pfn
    kernel.zero_page = zp
    kernel.mm_token = 0  # the last content token written by any user store
    kernel.mm_cow_copies = 0
    kernel.vm_committed_as = 0
    pa.meminfo_sources.register("vm_committed_as", lambda: kernel.vm_committed_as)
    kernel.add_check("mm:rss-and-mapcounts", lambda: check_mm_quiescent(kernel))
    wb = getattr(kernel, "writeback", None)
    if wb is not None:
        from .rmap import folio_mkclean

        wb.folio_mkclean = folio_mkclean  # folio_clear_dirty_for_io write-protects shared mappings


def _walk_mm(k: Any, mm: MmStruct) -> tuple[list[int], dict[int, int]]:
    """(rss by counter, pfn -> PTE count) from the page tables of ``mm``."""
    rss = [0, 0, 0, 0]
    counts: dict[int, int] = {}
    pages_map = k.page_alloc.mem_map.pages
    for ptp in mm.ptes.values():
        for vpn, pte in ptp.ptes.items():
            if pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
                if pte & _PAGE_SPECIAL:
                    continue
                pfn = pte >> PTE_PFN_SHIFT
                page = pages_map.get(pfn)
                if page is None:
                    raise ModelBug(f"pid {mm.owner_pid}: PTE at 0x{vpn << 12:x} maps pfn 0x{pfn:x}, which is free")
                rss[mm_counter(page)] += 1
                counts[pfn] = counts.get(pfn, 0) + 1
            else:
                rss[MM_SWAPENTS] += 1
    return rss, counts


def live_mms(k: Any) -> list[MmStruct]:
    seen: dict[int, MmStruct] = {}
    for proc in k.processes.values():
        mm = getattr(proc, "mm", None)
        if mm is not None and not mm.dead:
            seen.setdefault(mm.serial, mm)
    return [seen[s] for s in sorted(seen)]


def check_mm_consistency(k: Any) -> str | None:
    """Every mm's RSS counters equal its PTEs by kind; every mapped page's mapcount equals its PTEs;
    a private anon page on the LRU has exactly one reference per mapping; ``pgtables_bytes`` counts the tables."""
    counts: dict[int, int] = {}
    for mm in live_mms(k):
        rss, c = _walk_mm(k, mm)
        if rss != mm.rss_stat:
            return f"pid {mm.owner_pid}: RSS counters {mm.rss_stat} but the page tables hold {rss}"
        tables = len(mm.ptes) + len(mm.pmds) + len(mm.puds)
        if mm.pgtables_bytes != tables << PAGE_SHIFT:
            return f"pid {mm.owner_pid}: pgtables_bytes {mm.pgtables_bytes} for {tables} table pages"
        for pfn, n in c.items():
            counts[pfn] = counts.get(pfn, 0) + n
    pages_map = k.page_alloc.mem_map.pages
    batched: dict[int, int] = {}
    for cpu in k.cpus:
        for name in ("lru_add", "lru_activate"):
            for p in cpu.percpu.get(name) or ():
                batched[p.pfn] = batched.get(p.pfn, 0) + 1
    for pfn, n in counts.items():
        page = pages_map[pfn]
        if page._mapcount + 1 != n:
            return f"{page!r}: mapcount {page._mapcount + 1} but {n} PTEs map it"
        if PageAnon(page) and page.flags & (1 << PG_lru) and not page.flags & (1 << PG_swapcache):
            if page._refcount != n + batched.get(pfn, 0):
                return f"{page!r}: refcount {page._refcount} but {n} mappings"
        elif page._refcount < n:
            return f"{page!r}: refcount {page._refcount} below its {n} mappings"
    return None


def check_mm_quiescent(k: Any) -> str | None:
    """:func:`check_mm_consistency` when no page-table lock, mmap_lock or flush is held (a stable state)."""
    # A full walk costs O(mapped pages): every 256th hand-off unless asked for every one.
    if not getattr(k, "mm_check_every_switch", False) and k.sim.switches & 255:
        return None
    for mm in live_mms(k):
        if mm.mmap_lock.writer is not None or mm.mmap_lock.readers or mm.tlb_flush_pending:
            return None
        if mm.page_table_lock.owner is not None or any(p.ptl.owner is not None for p in mm.ptes.values()):
            return None
    return check_mm_consistency(k)


__all__ = [
    "FAULT_FLAG_WRITE", "MmHooks", "MmuGather", "PtePage", "SIGBUS", "SIGKILL", "SIGSEGV", "ShmemFile",
    "VM_FAULT_MAJOR", "VM_FAULT_OOM", "VM_FAULT_RETRY", "VM_FAULT_SIGBUS", "VmFault", "access_pages",
    "check_mm_consistency", "copy_page_range", "do_user_addr_fault", "exit_mmap", "free_pages_and_swap_cache",
    "handle_mm_fault",
    "is_swap_pte", "map_anon_page", "mm_init", "pte_lookup", "pte_maps", "pte_to_swp_entry", "put_page",
    "release_pages", "swp_entry_to_pte", "unmap_region", "vm_normal_page",
]
