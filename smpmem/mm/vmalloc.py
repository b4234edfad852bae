"""vmalloc: models mm/vmalloc.c: virtually contiguous, physically scattered kernel allocations.

Modelled:

- The vmalloc range (x86_64 4-level paging: ``VMALLOC_START``
  0xffffc90000000000, 32 TiB; i386: from ``high_memory`` + 8 MiB to
  ``PKMAP_BASE`` - 2 pages) is cut into ``vmap_area``s: busy ones (an rb-tree
  keyed by start: a ``SortedDict``), free space (lowest-fit search with
  alignment, split and merge as ``__alloc_vmap_area`` /
  ``merge_or_add_vmap_area`` do) and lazily freed ones waiting for a purge.
- ``vmalloc`` = ``__vmalloc_node_range``: a ``vm_struct`` (kzalloc), a
  ``vmap_area`` (from the ``vmap_area`` slab cache) of the rounded size plus
  one guard page (no ``VM_NO_GUARD``), the page array (kmalloc, or vmalloc
  itself above a page), order-0 pages (``__GFP_HIGHMEM`` allowed), and the
  kernel page table: a PTE per page, a page-table page from the buddy
  allocator the first time a 2 MiB (PMD) stretch is used, under
  ``init_mm.page_table_lock``. ``VmallocUsed`` is ``nr_vmalloc_pages``.
- ``vfree``: unlink the area, clear its PTEs without a flush, free the pages
  at once, and put the address range on the lazy list
  (``free_vmap_area_noflush``): when ``vmap_lazy_nr`` passes
  ``lazy_max_pages()`` (32 MiB worth × fls(CPUs), or the tunable
  ``lazy_vfree_threshold_pages``) a kworker purges: one
  ``flush_tlb_kernel_range`` over the whole lazy span (a global flush by IPI),
  then the ranges go back to the free space. An allocation that finds no room
  purges and retries once.
- Tracepoints ``alloc_vmap_area``, ``free_vmap_area_noflush``,
  ``purge_vmap_area_lazy``.

Locks, as of Linux 6.8 (6.9 split the busy and lazy trees per "vmap node";
6.12 has ``&vn->busy.lock`` and ``&vn->lazy.lock`` where the model has the
two global locks)::

    vmap_purge_lock (mutex)            serialises purges
      purge_vmap_area_lock             the lazy list
      free_vmap_area_lock              the free space
        &n->list_lock                  (kmem_cache_free of merged vmap_areas)
        &zone->lock                    (a slab the free empties goes back to the buddy lists)
    vmap_area_lock                     the busy tree
    init_mm.page_table_lock            kernel PTE pages

:data:`VMALLOC_LOCK_ORDER` holds the nesting as (outer, inner) pairs; boot
teaches it to the lock-order checker, as mm/rmap.py does for its tree.

Simplified: no per-CPU vmap blocks (``vm_map_ram``), no huge vmalloc
mappings, no KASAN shadow, no per-node pools; free-space nodes are not slab
objects (busy and lazy ``vmap_area``s are); only the PTE level of the kernel
page table is allocated; the TLB flush is :func:`_flush_tlb_kernel_range`.

Failures: ENOMEM and an exhausted range return None (with a warning in
``kernel.vmalloc.warnings``, as ``warn_alloc`` prints); ``vfree`` of an
address that is not a vmalloc area raises :class:`VmallocError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

from sortedcontainers import SortedDict

from ..sim import ModelBug, Mutex, SpinLock
from ..trace.events import tlb as tlb_events
from ..trace.events import vmalloc as vmalloc_events
from ..trace.gfp import TLB_LOCAL_SHOOTDOWN, TLB_REMOTE_SHOOTDOWN
from .gfp import GFP_DMA, GFP_DMA32, GFP_KERNEL, __GFP_HIGHMEM, __GFP_NOWARN, __GFP_ZERO
from .page import PAGE_SHIFT, PAGE_SIZE, Page
from .page_alloc import alloc_pages, free_pages_
from .slab import GFP_RECLAIM_MASK, SlabObj, kfree, kmalloc, kmem_cache_alloc, kmem_cache_free, kzalloc

if TYPE_CHECKING:
    from ..sim import CPU, Thread

# --- flags (include/linux/vmalloc.h) ------------------------------------------------------
VM_IOREMAP = 0x00000001
VM_ALLOC = 0x00000002
VM_MAP = 0x00000004
VM_USERMAP = 0x00000008
VM_DMA_COHERENT = 0x00000010
VM_UNINITIALIZED = 0x00000020  # not fully set up yet: /proc/vmallocinfo skips it
VM_NO_GUARD = 0x00000040  # no trailing guard page
VM_FLUSH_RESET_PERMS = 0x00000100

# --- the range ----------------------------------------------------------------------------
X86_64_VMALLOC_START = 0xFFFFC90000000000  # 4-level paging, no KASLR
X86_64_VMALLOC_SIZE_TB = 32
I386_PKMAP_BASE = 0xFF800000  # PAE: a PMD-aligned 2 MiB below the LDT and cpu_entry_area
VMALLOC_OFFSET = 8 << 20  # the hole after the direct map (arch/x86/include/asm/pgtable_32_areas.h)
PTRS_PER_PTE = 512  # x86_64 and PAE: a PTE page maps 2 MiB
ULONG_MAX = (1 << 64) - 1
TLB_FLUSH_ALL = -1
TLB_SINGLE_PAGE_FLUSH_CEILING = 33  # arch/x86/mm/tlb.c tlb_single_page_flush_ceiling
SIZEOF_VM_STRUCT = {"x86_64": 72, "i386": 44}  # kzalloc'ed per area
SIZEOF_PTR = {"x86_64": 8, "i386": 4}

VMALLOC_LOCK_ORDER: tuple[tuple[str, str], ...] = (
    ("vmap_purge_lock", "purge_vmap_area_lock"),
    ("vmap_purge_lock", "free_vmap_area_lock"),
    ("purge_vmap_area_lock", "&n->list_lock"),
    ("free_vmap_area_lock", "&n->list_lock"),
    ("purge_vmap_area_lock", "&zone->lock"),
    ("free_vmap_area_lock", "&zone->lock"),
)

_ev_alloc = vmalloc_events.alloc_vmap_area
_ev_noflush = vmalloc_events.free_vmap_area_noflush
_ev_purge = vmalloc_events.purge_vmap_area_lazy
_ev_tlb = tlb_events.tlb_flush


class VmallocError(ValueError):
    """Misuse of vmalloc: freeing an address that is not a vmalloc area (the message names it)."""


@final
class VmapArea:
    """``struct vmap_area``: ``[va_start, va_end)``, the guard page included; ``obj`` is its slab object."""

    __slots__ = ("va_start", "va_end", "vm", "obj")

    def __init__(self, va_start: int, va_end: int, vm: "VmStruct | None", obj: SlabObj | None) -> None:
        self.va_start = va_start
        self.va_end = va_end
        self.vm = vm
        self.obj = obj

    def __repr__(self) -> str:
        return f"<vmap_area 0x{self.va_start:x}-0x{self.va_end:x}>"


@final
class VmStruct:
    """``struct vm_struct``: what vmalloc returns (``addr`` is the kernel's return value).

    ``size`` includes the guard page (``get_vm_area_size`` subtracts it);
    ``pages`` are the backing frames in address order; ``obj`` and
    ``pages_obj`` are the slab (or vmalloc) allocations of the structure and
    of its page array.
    """

    __slots__ = ("addr", "size", "flags", "pages", "nr_pages", "caller", "requested_size", "va", "obj",
                 "pages_obj", "counted")

    def __init__(self, flags: int, caller: str, requested_size: int, obj: SlabObj) -> None:
        self.addr = 0
        self.size = 0
        self.flags = flags
        self.pages: list[Page] = []
        self.nr_pages = 0
        self.caller = caller
        self.requested_size = requested_size
        self.va: VmapArea | None = None
        self.obj = obj
        self.pages_obj: Any = None
        self.counted = False  # its pages are in nr_vmalloc_pages

    @property
    def area_size(self) -> int:
        """``get_vm_area_size``: the mapped bytes, without the guard page."""
        return self.size - (0 if self.flags & VM_NO_GUARD else PAGE_SIZE)

    def __repr__(self) -> str:
        return f"<vm_struct 0x{self.addr:x}-0x{self.addr + self.size:x} pages={self.nr_pages}>"


class _Worker:
    """One work item on ``system_wq`` with its own kworker: ``schedule_work`` wakes it unless already pending."""

    __slots__ = ("kernel", "comm", "fn", "pending", "thread", "sleeping", "runs")

    def __init__(self, kernel: Any, comm: str, fn: Any) -> None:
        self.kernel = kernel
        self.comm = comm
        self.fn = fn
        self.pending = False
        self.thread: Any = None
        self.sleeping = False
        self.runs = 0

    def remove_waiter(self, actor: Any) -> None:
        self.sleeping = False

    def schedule_work(self) -> bool:
        if self.pending:
            return False
        self.pending = True
        k = self.kernel
        if self.thread is None:
            self.thread = k.start_thread(k.kernel_thread(self.comm), self._main)
        elif self.sleeping:
            self.sleeping = False
            k.sim.wake(self.thread, k.sim.now + k.costs.sleep_wakeup)
        return True

    async def _main(self, th: "Thread") -> None:
        while True:
            while self.pending:
                self.pending = False
                self.runs += 1
                await self.fn(th)
            self.sleeping = True
            await th.sleep_on(self)


@final
class Vmalloc:
    """The vmalloc address space and its locks. One per kernel: ``kernel.vmalloc``."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.costs = kernel.costs
        self.tracer = kernel.tracer
        layout = kernel.config.layout
        self.layout = layout
        if layout == "x86_64":
            self.VMALLOC_START = X86_64_VMALLOC_START
            self.VMALLOC_END = X86_64_VMALLOC_START + (X86_64_VMALLOC_SIZE_TB << 40) - 1
        else:
            from .highmem import PAGE_OFFSET

            pa = kernel.page_alloc
            lowmem_end = max((z.zone_end_pfn for z in pa.populated if not z.is_highmem and not z.is_movable),
                             default=0)
            self.high_memory = PAGE_OFFSET["i386"] + (lowmem_end << PAGE_SHIFT)
            self.VMALLOC_START = self.high_memory + VMALLOC_OFFSET
            self.VMALLOC_END = I386_PKMAP_BASE - 2 * PAGE_SIZE
        self.vmap_area_lock = SpinLock(kernel, "vmap_area_lock")
        self.free_vmap_area_lock = SpinLock(kernel, "free_vmap_area_lock")
        self.purge_vmap_area_lock = SpinLock(kernel, "purge_vmap_area_lock")
        self.vmap_purge_lock = Mutex(kernel, "vmap_purge_lock")
        self.init_mm_page_table_lock = SpinLock(kernel, "init_mm.page_table_lock")
        self.busy: SortedDict = SortedDict()  # va_start -> VmapArea       (vmap_area_lock)
        self.free: SortedDict = SortedDict()  # start -> end of free space  (free_vmap_area_lock)
        self.free[self.VMALLOC_START] = self.VMALLOC_END
        self.purge: SortedDict = SortedDict()  # va_start -> VmapArea, merged  (purge_vmap_area_lock)
        self.purging: list[VmapArea] = []  # taken off the lazy list by a purge, not yet free (vmap_purge_lock)
        self.vmap_lazy_nr = 0  # pages of lazily freed areas (atomic in the kernel)
        self.nr_vmalloc_pages = 0  # pages backing vmalloc areas (atomic): VmallocUsed
        self.ptes: dict[int, Page] = {}  # vpn -> page: init_mm's PTEs in the vmalloc range
        self.pte_pages: dict[int, Page] = {}  # vpn // PTRS_PER_PTE -> the PTE page (init_mm.page_table_lock)
        t = kernel.tunables.lazy_vfree_threshold_pages
        ncpus = len(kernel.cpus)
        self.lazy_max = t if t is not None else ncpus.bit_length() * ((32 << 20) >> PAGE_SHIFT)
        self.vmap_area_cachep = kernel.slab.caches["vmap_area"]
        self.drain_work = _Worker(kernel, f"kworker/u{2 * ncpus}:0", drain_vmap_area_work)
        self.warnings: list[str] = []
        self.nr_purges = 0
        self.nr_flushes = 0  # global TLB flushes issued by purges
        self.generation = 0  # bumped at every change of the trees (the debug check runs when it moved)
        self._checked = -1

    @property
    def vmalloc_total(self) -> int:
        """``VMALLOC_TOTAL`` = VMALLOC_END - VMALLOC_START, in bytes (meminfo's VmallocTotal)."""
        return self.VMALLOC_END - self.VMALLOC_START

    def is_vmalloc_addr(self, addr: int) -> bool:
        return self.VMALLOC_START <= addr < self.VMALLOC_END

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        del self.warnings[:-100]

    def find_vmap_area(self, addr: int) -> VmapArea | None:
        """``__find_vmap_area``: the busy area containing ``addr``."""
        i = self.busy.bisect_right(addr) - 1
        if i < 0:
            return None
        va = self.busy.peekitem(i)[1]
        return va if va.va_start <= addr < va.va_end else None

    def vmalloc_to_page(self, addr: int) -> Page | None:
        """``vmalloc_to_page``: the frame a vmalloc address is mapped to (None: unmapped, e.g. a guard page)."""
        return self.ptes.get(addr >> PAGE_SHIFT)

    def areas(self) -> list[VmStruct]:
        """The busy areas' ``vm_struct``s in address order (what /proc/vmallocinfo walks)."""
        return [va.vm for va in self.busy.values() if va.vm is not None]


# --- the TLB flush (switchable) ----------------------------------------------------------------


def _who(cpu: "CPU") -> Any:
    cur = cpu.current
    return cur if cur is not None and cur.log is not None else _IdleCtx(cpu)


class _IdleCtx:
    __slots__ = ("log",)

    def __init__(self, cpu: "CPU") -> None:
        self.log = cpu.idle_log


async def _flush_tlb_kernel_range(th: "Thread", start: int, end: int) -> None:
    """``flush_tlb_kernel_range`` (arch/x86/mm/tlb.c): every CPU drops its kernel translations of ``[start, end)``.

    NOTE — the one place vmalloc's purge and highmem's ``flush_all_zero_pkmaps``
    flush the TLB. When the TLB model (smpmem/mm/tlb.py) is booted, i.e. the
    CPUs have ``percpu["tlb"]``, this defers to its
    ``flush_tlb_kernel_range(th, start, end)``. Otherwise it is a stand-in:
    ``on_each_cpu`` — an IPI to every other CPU by
    ``machine.smp_call_function_many`` (the sender waits for every
    acknowledgement) and the same work locally. Each CPU counts the flush in
    ``cpu.percpu["kernel_tlb_flushes"]``, pays a full flush
    (``tlb_flush_all``) above ``tlb_single_page_flush_ceiling`` pages or one
    ``tlb_flush_one`` per page below, and logs ``tlb_flush`` (reason remote
    or local shootdown; pages -1 for a full flush). x86's kernel-range flush
    logs no ``tlb_flush`` event; the stand-in does, so that the flushes show.
    """
    if "tlb" in th.cpu.percpu:
        from .tlb import flush_tlb_kernel_range

        await flush_tlb_kernel_range(th, start, end)
        return
    k = th.machine
    costs = k.costs
    nr = (end - start + PAGE_SIZE - 1) >> PAGE_SHIFT
    full = end == TLB_FLUSH_ALL or nr > TLB_SINGLE_PAGE_FLUSH_CEILING
    pages = -1 if full else nr
    cost = costs.tlb_flush_all if full else costs.tlb_flush_one * nr
    tr = k.tracer

    def do_flush(cpu: "CPU") -> None:
        p = cpu.percpu
        p["kernel_tlb_flushes"] = p.get("kernel_tlb_flushes", 0) + 1
        cur = cpu.current
        if cur is not None:
            cur.pending += cost
        if tr.on[_ev_tlb.id]:
            tr.emit(_ev_tlb, _who(cpu), reason=TLB_REMOTE_SHOOTDOWN, pages=pages)

    p = th.cpu.percpu
    p["kernel_tlb_flushes"] = p.get("kernel_tlb_flushes", 0) + 1
    th.pending += cost
    if tr.on[_ev_tlb.id]:
        tr.emit(_ev_tlb, th, reason=TLB_LOCAL_SHOOTDOWN, pages=pages)
    await k.smp_call_function_many(th, list(k.cpus), do_flush,
                                   name="do_flush_tlb_all" if full else "do_kernel_range_flush")


# --- free space (free_vmap_area_lock held) -------------------------------------------------------


def __alloc_vmap_area(vs: Vmalloc, th: "Thread", size: int, align: int, vstart: int, vend: int) -> int | None:
    """``__alloc_vmap_area``: the lowest free address in [vstart, vend) that fits ``size`` at ``align``; split the block."""
    free = vs.free
    th.pending += vs.costs.vmap_area_op
    i = max(free.bisect_right(vstart) - 1, 0)
    keys = free.keys()
    n = len(keys)
    while i < n:
        start = keys[i]
        end = free[start]
        if start >= vend:
            break
        lo = max(start, vstart)
        addr = (lo + align - 1) & ~(align - 1)
        if addr + size <= min(end, vend) and addr >= lo:
            # adjust_va_to_fit_type: FL / LE / RE / NE fit
            del free[start]
            if start < addr:
                free[start] = addr
            if addr + size < end:
                free[addr + size] = end
            vs.generation += 1
            return addr
        i += 1
    return None


def _merge_free(vs: Vmalloc, start: int, end: int) -> None:
    """``merge_or_add_vmap_area`` on the free space: coalesce with the neighbours."""
    free = vs.free
    i = free.bisect_left(start)
    if i < len(free):
        nstart = free.peekitem(i)[0]
        if nstart == end:
            end = free.pop(nstart)
        elif nstart < end:
            raise ModelBug(f"vmalloc: freeing 0x{start:x}-0x{end:x} overlaps free space at 0x{nstart:x}")
    if i > 0:
        pstart, pend = free.peekitem(i - 1)
        if pend == start:
            start = pstart
        elif pend > start:
            raise ModelBug(f"vmalloc: freeing 0x{start:x}-0x{end:x} overlaps free space 0x{pstart:x}-0x{pend:x}")
    free[start] = end
    vs.generation += 1


# --- allocation ---------------------------------------------------------------------------------


async def alloc_vmap_area(th: "Thread", size: int, align: int, vstart: int, vend: int, gfp: int,
                          vm: VmStruct | None) -> VmapArea | None:
    """``alloc_vmap_area``: address space for ``size`` bytes (guard included), busy and bound to ``vm``."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    if size <= 0 or size & (PAGE_SIZE - 1) or align & (align - 1):
        raise ModelBug(f"alloc_vmap_area: size {size:#x}, align {align:#x}")
    gfp &= GFP_RECLAIM_MASK
    obj = await kmem_cache_alloc(th, vs.vmap_area_cachep, gfp, "alloc_vmap_area")
    if obj is None:
        return None
    purged = False
    tr = vs.tracer
    while True:
        await vs.free_vmap_area_lock.acquire(th, "alloc_vmap_area")
        addr = __alloc_vmap_area(vs, th, size, align, vstart, vend)
        await vs.free_vmap_area_lock.release(th)
        if tr.on[_ev_alloc.id]:
            tr.emit(_ev_alloc, th, addr=vend if addr is None else addr, size=size, align=align, vstart=vstart,
                    vend=vend, failed=int(addr is None))
        if addr is not None:
            break
        if not purged:
            await reclaim_and_purge_vmap_areas(th)
            purged = True
            continue
        if not gfp & __GFP_NOWARN:
            vs.warn(f"vmalloc_node_range for size {size} failed: Address range restricted to "
                    f"{vstart:#x} - {vend:#x}")
        await kmem_cache_free(th, vs.vmap_area_cachep, obj, "alloc_vmap_area")
        return None
    va = VmapArea(addr, addr + size, vm, obj)
    if vm is not None:
        vm.addr = addr
        vm.size = size
        vm.va = va
    await vs.vmap_area_lock.acquire(th, "alloc_vmap_area")
    vs.busy[addr] = va
    th.pending += vs.costs.vmap_area_op
    vs.generation += 1
    await vs.vmap_area_lock.release(th)
    return va


async def __get_vm_area_node(th: "Thread", size: int, align: int, flags: int, start: int, end: int, gfp: int,
                             caller: str) -> VmStruct | None:
    """``__get_vm_area_node``: a ``vm_struct`` and its area (plus the guard page unless VM_NO_GUARD)."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    requested = size
    size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if not size:
        return None
    obj = await kzalloc(th, SIZEOF_VM_STRUCT[vs.layout], gfp & GFP_RECLAIM_MASK, "__get_vm_area_node")
    if obj is None:
        return None
    area = VmStruct(flags, caller, requested, obj)  # type: ignore[arg-type]
    obj.data = area
    if not flags & VM_NO_GUARD:
        size += PAGE_SIZE
    va = await alloc_vmap_area(th, size, align, start, end, gfp, area)
    if va is None:
        await kfree(th, obj, "__get_vm_area_node")
        return None
    return area


async def vmap_pages_range(th: "Thread", vs: Vmalloc, addr: int, pages: list[Page]) -> bool:
    """``vmap_pages_range``: a kernel PTE per page; a PTE page for each new 2 MiB stretch (False: no memory)."""
    costs = vs.costs
    vpn0 = addr >> PAGE_SHIFT
    for i, page in enumerate(pages):
        vpn = vpn0 + i
        pmd = vpn // PTRS_PER_PTE
        if pmd not in vs.pte_pages:
            # __pte_alloc_kernel: allocate, then populate under init_mm.page_table_lock unless someone won.
            new = await alloc_pages(th, GFP_KERNEL | __GFP_ZERO, 0)
            if new is None:
                return False
            await vs.init_mm_page_table_lock.acquire(th, "__pte_alloc_kernel")
            if pmd not in vs.pte_pages:
                vs.pte_pages[pmd] = new
                new = None
            await vs.init_mm_page_table_lock.release(th)
            if new is not None:
                await free_pages_(th, new, 0)
        vs.ptes[vpn] = page
    th.pending += costs.pte_op * len(pages)
    return True


async def __vmalloc_area_node(th: "Thread", area: VmStruct, gfp: int) -> bool:
    """``__vmalloc_area_node``: the page array, the pages, the mapping. False (area freed) on failure."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    nr_small_pages = area.area_size >> PAGE_SHIFT
    array_size = nr_small_pages * SIZEOF_PTR[vs.layout]
    nested_gfp = (gfp & GFP_RECLAIM_MASK) | __GFP_ZERO
    if not gfp & (GFP_DMA | GFP_DMA32):
        gfp |= __GFP_HIGHMEM
    if array_size > PAGE_SIZE:
        area.pages_obj = await __vmalloc_node_range(th, array_size, 1, vs.VMALLOC_START, vs.VMALLOC_END,
                                                    nested_gfp, 0, area.caller)
    else:
        area.pages_obj = await kmalloc(th, array_size, nested_gfp, "__vmalloc_area_node")
    if area.pages_obj is None:
        vs.warn(f"vmalloc error: size {area.area_size}, failed to allocated page array size {array_size}")
        await vfree(th, area)
        return False
    # vm_area_alloc_pages: order-0 pages one by one (the bulk allocator is not modelled).
    pages = area.pages
    for _ in range(nr_small_pages):
        page = await alloc_pages(th, gfp, 0)
        if page is None:
            break
        pages.append(page)
    area.nr_pages = len(pages)
    vs.nr_vmalloc_pages += area.nr_pages
    area.counted = True
    if area.nr_pages != nr_small_pages:
        if not gfp & __GFP_NOWARN:
            vs.warn(f"vmalloc error: size {area.area_size}, failed to allocate pages")
        await vfree(th, area)
        return False
    if not await vmap_pages_range(th, vs, area.addr, pages):
        vs.warn(f"vmalloc error: size {area.area_size}, failed to map pages")
        await vfree(th, area)
        return False
    vs.generation += 1
    return True


async def __vmalloc_node_range(th: "Thread", size: int, align: int, start: int, end: int, gfp: int,
                               vm_flags: int, caller: str) -> VmStruct | None:
    """``__vmalloc_node_range``: ``size`` bytes of zone-agnostic pages mapped contiguously in [start, end)."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    if size <= 0:
        vs.warn(f"vmalloc: size {size} (WARN_ON_ONCE(!size))")
        return None
    size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if size >> PAGE_SHIFT > th.machine.page_alloc.totalram_pages:  # type: ignore[attr-defined]
        if not gfp & __GFP_NOWARN:
            vs.warn(f"vmalloc error: size {size}, exceeds total pages")
        return None
    area = await __get_vm_area_node(th, size, align, VM_ALLOC | VM_UNINITIALIZED | vm_flags, start, end, gfp,
                                    caller)
    if area is None:
        if not gfp & __GFP_NOWARN:
            vs.warn(f"vmalloc error: size {size}, vm_struct allocation failed")
        return None
    if not await __vmalloc_area_node(th, area, gfp):
        return None
    area.flags &= ~VM_UNINITIALIZED  # clear_vm_uninitialized_flag
    return area


async def vmalloc(th: "Thread", size: int, gfp: int = GFP_KERNEL, call_site: str | None = None) -> VmStruct | None:
    """``vmalloc`` (``__vmalloc_node(size, 1, gfp, NUMA_NO_NODE, caller)``): a :class:`VmStruct`, or None.

    ``area.addr`` is the address the kernel returns.
    """
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    return await __vmalloc_node_range(th, size, 1, vs.VMALLOC_START, vs.VMALLOC_END, gfp, 0,
                                      call_site or "vmalloc")


async def vzalloc(th: "Thread", size: int, call_site: str | None = None) -> VmStruct | None:
    """``vzalloc``: vmalloc of zeroed pages."""
    return await vmalloc(th, size, GFP_KERNEL | __GFP_ZERO, call_site or "vzalloc")


# --- free ---------------------------------------------------------------------------------------


async def free_vmap_area_noflush(th: "Thread", va: VmapArea) -> None:
    """``free_vmap_area_noflush``: the range onto the lazy list; past the threshold, the purge is scheduled."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    nr_lazy_max = vs.lazy_max
    va_start = va.va_start
    vs.vmap_lazy_nr += (va.va_end - va.va_start) >> PAGE_SHIFT
    nr_lazy = vs.vmap_lazy_nr
    merged: list[SlabObj] = []
    await vs.purge_vmap_area_lock.acquire(th, "free_vmap_area_noflush")
    # merge_or_add_vmap_area into the purge tree: a merged neighbour's struct is freed.
    purge = vs.purge
    i = purge.bisect_left(va.va_start)
    if i < len(purge):
        nxt = purge.peekitem(i)[1]
        if nxt.va_start == va.va_end:
            del purge[nxt.va_start]
            va.va_end = nxt.va_end
            if nxt.obj is not None:
                merged.append(nxt.obj)
    if i > 0:
        prev = purge.peekitem(i - 1)[1]
        if prev.va_end == va.va_start:
            prev.va_end = va.va_end
            if va.obj is not None:
                merged.append(va.obj)
            va = prev
    purge[va.va_start] = va
    vs.generation += 1
    th.pending += vs.costs.vmap_area_op
    for obj in merged:
        await kmem_cache_free(th, vs.vmap_area_cachep, obj, "merge_or_add_vmap_area")
    await vs.purge_vmap_area_lock.release(th)
    tr = vs.tracer
    if tr.on[_ev_noflush.id]:
        tr.emit(_ev_noflush, th, va_start=va_start, nr_lazy=nr_lazy, nr_lazy_max=nr_lazy_max)
    if nr_lazy > nr_lazy_max:
        vs.drain_work.schedule_work()


async def __purge_vmap_area_lazy(th: "Thread", start: int, end: int) -> bool:
    """``__purge_vmap_area_lazy`` (``vmap_purge_lock`` held): one TLB flush over the lazy span, then free the ranges."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    await vs.purge_vmap_area_lock.acquire(th, "__purge_vmap_area_lazy")
    local = list(vs.purge.values())  # local_purge_list: in vs.purging until merged into the free space
    vs.purge.clear()
    vs.purging.extend(local)
    vs.generation += 1
    await vs.purge_vmap_area_lock.release(th)
    num_purged = 0
    if local:
        start = min(start, local[0].va_start)
        end = max(end, local[-1].va_end)
        try:
            await _flush_tlb_kernel_range(th, start, end)
            vs.nr_flushes += 1
            await vs.free_vmap_area_lock.acquire(th, "__purge_vmap_area_lazy")
            for va in local:
                vs.purging.remove(va)
                _merge_free(vs, va.va_start, va.va_end)
                vs.vmap_lazy_nr -= (va.va_end - va.va_start) >> PAGE_SHIFT
                num_purged += 1
                th.pending += vs.costs.vmap_area_op
                if va.obj is not None:
                    obj, va.obj = va.obj, None
                    await kmem_cache_free(th, vs.vmap_area_cachep, obj, "__purge_vmap_area_lazy")
            await vs.free_vmap_area_lock.release(th)
        except BaseException:
            # The kworker was killed (the end of a run): what it had not merged goes back on the lazy list.
            for va in local[num_purged:]:
                if va in vs.purging:
                    vs.purging.remove(va)
                vs.purge[va.va_start] = va
            vs.generation += 1
            raise
    vs.nr_purges += 1
    tr = vs.tracer
    if tr.on[_ev_purge.id]:
        tr.emit(_ev_purge, th, start=start, end=end, npurged=num_purged)
    return num_purged > 0


async def reclaim_and_purge_vmap_areas(th: "Thread") -> None:
    """``reclaim_and_purge_vmap_areas``: purge now (an allocation found no room)."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    await vs.vmap_purge_lock.acquire(th, "reclaim_and_purge_vmap_areas")
    await __purge_vmap_area_lazy(th, ULONG_MAX, 0)
    await vs.vmap_purge_lock.release(th)


async def drain_vmap_area_work(th: "Thread") -> None:
    """``drain_vmap_area_work``: the kworker's purge once the lazy total passed its threshold."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    await vs.vmap_purge_lock.acquire(th, "drain_vmap_area_work")
    await __purge_vmap_area_lazy(th, ULONG_MAX, 0)
    await vs.vmap_purge_lock.release(th)


async def vm_unmap_aliases(th: "Thread") -> None:
    """``vm_unmap_aliases``: purge the lazy areas now (no per-CPU vmap blocks in the model)."""
    await reclaim_and_purge_vmap_areas(th)


async def remove_vm_area(th: "Thread", addr: int) -> VmStruct | None:
    """``remove_vm_area``: unlink the area at ``addr``, clear its PTEs without a flush, free the range lazily."""
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    if addr & (PAGE_SIZE - 1):
        return None
    await vs.vmap_area_lock.acquire(th, "find_unlink_vmap_area")
    va = vs.find_vmap_area(addr)
    if va is not None:
        del vs.busy[va.va_start]
        vs.generation += 1
        th.pending += vs.costs.vmap_area_op
    await vs.vmap_area_lock.release(th)
    if va is None or va.vm is None:
        return None
    vm = va.vm
    # vunmap_range_noflush: the PTEs go; the TLBs keep them until the purge's flush.
    vpn0 = va.va_start >> PAGE_SHIFT
    ptes = vs.ptes
    n = 0
    for vpn in range(vpn0, vpn0 + len(vm.pages)):
        if ptes.pop(vpn, None) is not None:
            n += 1
    th.pending += vs.costs.pte_op * n
    await free_vmap_area_noflush(th, va)
    return vm


async def vfree(th: "Thread", area: "VmStruct | int | None") -> None:
    """``vfree``: give back a vmalloc area (a :class:`VmStruct` or its address); None does nothing.

    The pages go back at once; the address range only after the next purge.
    Raises :class:`VmallocError` for an address that is not a live vmalloc
    area (the kernel's "Trying to vfree() nonexistent vm area").
    """
    if area is None:
        return
    addr = area.addr if type(area) is VmStruct else area
    if not isinstance(addr, int):
        raise VmallocError(f"vfree: {area!r} is not a vmalloc area or address")
    vm = await remove_vm_area(th, addr)
    if vm is None:
        raise VmallocError(f"vfree: Trying to vfree() nonexistent vm area (0x{addr:x})"
                           + (": freed already?" if type(area) is VmStruct else ""))
    if type(area) is VmStruct and vm is not area:
        raise ModelBug(f"vfree: {area!r} but the area at 0x{addr:x} is {vm!r}")
    vs: Vmalloc = th.machine.vmalloc  # type: ignore[attr-defined]
    # The kernel subtracts from nr_vmalloc_pages after freeing the pages; here it is done first, so that
    # VmallocUsed never counts pages of an area that is no longer busy.
    if vm.counted:
        vs.nr_vmalloc_pages -= vm.nr_pages
        vm.counted = False
    pages, vm.pages = vm.pages, []
    vm.nr_pages = 0
    vs.generation += 1
    for page in pages:
        await free_pages_(th, page, 0)
    pages_obj = vm.pages_obj
    vm.pages_obj = None
    if type(pages_obj) is VmStruct:
        await vfree(th, pages_obj)  # kvfree
    elif pages_obj is not None:
        await kfree(th, pages_obj, "vfree")
    await kfree(th, vm.obj, "vfree")


# --- invariants -------------------------------------------------------------------------------


def vmalloc_space_reason(vs: Vmalloc) -> str | None:
    """The vmalloc range is exactly tiled by free, busy, lazy and purging areas; mappings stay inside busy areas' pages."""
    spans: list[tuple[int, int, str]] = [(s, e, "free") for s, e in vs.free.items()]
    spans += [(va.va_start, va.va_end, "busy") for va in vs.busy.values()]
    spans += [(va.va_start, va.va_end, "lazy") for va in vs.purge.values()]
    spans += [(va.va_start, va.va_end, "purging") for va in vs.purging]
    spans.sort()
    at = vs.VMALLOC_START
    for s, e, what in spans:
        if s != at:
            return (f"vmalloc range: {'gap' if s > at else 'overlap'} at 0x{min(s, at):x} "
                    f"(next {what} area 0x{s:x}-0x{e:x})")
        if e <= s:
            return f"vmalloc range: empty {what} area at 0x{s:x}"
        at = e
    if at != vs.VMALLOC_END:
        return f"vmalloc range ends at 0x{at:x}, not VMALLOC_END 0x{vs.VMALLOC_END:x}"
    counted = 0
    mapped = 0
    for va in vs.busy.values():
        vm = va.vm
        if vm is None:
            continue
        if vm.addr != va.va_start or vm.size != va.va_end - va.va_start:
            return f"{vm!r} does not match {va!r}"
        if vm.counted:
            counted += vm.nr_pages
        if not vm.flags & VM_UNINITIALIZED:
            if len(vm.pages) != vm.area_size >> PAGE_SHIFT:
                return f"{vm!r}: {len(vm.pages)} pages for {vm.area_size >> PAGE_SHIFT} mapped pages"
            mapped += len(vm.pages)
            if not vm.flags & VM_NO_GUARD and (va.va_end >> PAGE_SHIFT) - 1 in vs.ptes:
                return f"{vm!r}: its guard page 0x{va.va_end - PAGE_SIZE:x} is mapped"
    if counted != vs.nr_vmalloc_pages:
        return f"nr_vmalloc_pages {vs.nr_vmalloc_pages} != {counted} pages of the busy areas"
    if mapped > len(vs.ptes):
        return f"{len(vs.ptes)} kernel PTEs for {mapped} mapped vmalloc pages"
    lazy = sum((va.va_end - va.va_start) >> PAGE_SHIFT for va in list(vs.purge.values()) + vs.purging)
    if lazy > vs.vmap_lazy_nr:
        return f"vmap_lazy_nr {vs.vmap_lazy_nr} < {lazy} pages on the lazy list"
    return None


def check_vmalloc(vs: Vmalloc) -> str | None:
    """The debug check: :func:`vmalloc_space_reason` whenever the trees changed since the last call."""
    if vs.generation == vs._checked:
        return None
    vs._checked = vs.generation
    return vmalloc_space_reason(vs)


def vmalloc_init(kernel: Any) -> Vmalloc:
    """``vmalloc_init``: ``kernel.vmalloc``, VmallocUsed in meminfo, the debug check. Needs ``kernel.slab``."""
    vs = Vmalloc(kernel)
    kernel.vmalloc = vs
    after = kernel.locks.lockdep.after
    for outer, inner in VMALLOC_LOCK_ORDER:
        after.setdefault((outer, 0), {}).setdefault((inner, 0), (outer,))
    kernel.page_alloc.meminfo_sources.register("vmalloc_nr_pages", lambda: vs.nr_vmalloc_pages)
    kernel.add_check("vmalloc:space", lambda: check_vmalloc(vs))
    return vs


__all__ = [
    "VM_ALLOC", "VM_NO_GUARD", "VmStruct", "Vmalloc", "VmallocError", "VmapArea", "alloc_vmap_area",
    "check_vmalloc", "free_vmap_area_noflush", "reclaim_and_purge_vmap_areas", "remove_vm_area", "vfree",
    "vm_unmap_aliases", "vmalloc", "vmalloc_init", "vmalloc_space_reason", "vzalloc",
]
