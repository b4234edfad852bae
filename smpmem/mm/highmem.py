"""High memory: models mm/highmem.c and x86's kmap_local (arch/x86/include/asm/highmem.h, pgtable_32_areas.h).

On i386 the kernel maps only lowmem permanently (the direct map from
``PAGE_OFFSET`` 0xC0000000); a HighMem page needs a temporary mapping:

- ``kmap`` / ``kunmap``: the pkmap pool, ``LAST_PKMAP`` entries from
  ``PKMAP_BASE`` (512 with PAE, the model's i386: 2 MiB, one PTE page; 1024
  without), under ``kmap_lock``. ``map_new_virtual`` takes the next entry
  whose ``pkmap_count`` is 0, going round from ``last_pkmap_nr``; when the
  search wraps to entry 0 it calls ``flush_all_zero_pkmaps``, which unmaps
  every entry with count 1 (mapped, no user) and, if it unmapped any, flushes
  the whole pkmap range from every CPU's TLB (``flush_tlb_kernel_range``:
  IPIs, with ``kmap_lock`` held). With every entry in use the caller sleeps
  on ``pkmap_map_wait`` until a ``kunmap`` drops an entry to count 1. A page
  mapped already is shared: its count goes up (``page_address_htable``).
- ``kmap_atomic`` / ``kunmap_atomic`` (6.12: ``kmap_local`` with preemption
  and page faults disabled): per-CPU fixmap slots, ``KM_MAX_IDX`` (16)
  nested at most, no lock; unmapping flushes that one page on this CPU only
  (``arch_kmap_local_post_unmap`` → ``flush_tlb_one_kernel``).
- A lowmem page (every page on x86_64) is just ``page_address``: no lock, no
  cost, no slot — ``kmap_atomic`` still disables preemption.

Locks::

    kmap_lock          pkmap_count[], the pkmap PTEs, last_pkmap_nr,
                       page_address_htable (held across flush_all_zero_pkmaps' IPIs)
    (none)             the kmap_atomic slots: per CPU, preemption off

Simplified: no ``kmap_high_get`` / ``ARCH_NEEDS_KMAP_HIGH_GET``, no cache
colouring of pkmap entries, no ``CONFIG_DEBUG_KMAP_LOCAL``; the model's i386
is always PAE (as its meminfo is); the fixmap slot addresses are
approximate (their order and spacing are the kernel's). The TLB flush is
:func:`smpmem.mm.vmalloc._flush_tlb_kernel_range` (the TLB model's when it
is booted).

Failures: ``kunmap`` of a page that is not kmapped, an unbalanced or
out-of-order ``kunmap_atomic``, or nesting ``kmap_atomic`` deeper than
``KM_MAX_IDX`` raise :class:`HighmemError` (the kernel's BUG_ON / WARN).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, final

from ..sim import ModelBug, SpinLock
from ..trace.events import highmem as hm_events
from .page import PAGE_SHIFT, Page

if TYPE_CHECKING:
    from ..sim import Actor, Thread

PAGE_OFFSET = {"x86_64": 0xFFFF888000000000, "i386": 0xC0000000}  # __PAGE_OFFSET (no KASLR; 3G/1G split)
LAST_PKMAP_PAE = 512
LAST_PKMAP_NONPAE = 1024
PKMAP_BASE = 0xFF800000  # i386 PAE (see mm/vmalloc.py: VMALLOC_END = PKMAP_BASE - 2 pages)
KM_MAX_IDX = 16  # include/asm-generic/kmap_size.h (33 with CONFIG_DEBUG_KMAP_LOCAL)
FIXADDR_TOP = 0xFFFFF000  # i386 __FIXADDR_TOP
FIX_KMAP_BEGIN = 133  # approximate index in enum fixed_addresses (after the APIC and IO-APIC slots)

_ev_kmap = hm_events.kmap_high
_ev_kunmap = hm_events.kunmap_high
_ev_wait = hm_events.kmap_high_wait
_ev_flush = hm_events.flush_all_zero_pkmaps
_ev_kma = hm_events.kmap_atomic
_ev_kuma = hm_events.kunmap_atomic


class HighmemError(ValueError):
    """Misuse of kmap: unmapping what is not mapped, kmap_atomic nesting too deep or out of order."""


def lowmem_page_address(kernel: Any, page: Page) -> int:
    """``lowmem_page_address``: the direct-map address of a lowmem page (``__va(PFN_PHYS(pfn))``)."""
    return PAGE_OFFSET[kernel.config.layout] + (page.pfn << PAGE_SHIFT)


def PageHighMem(page: Page) -> bool:
    return page.zone.is_highmem


def _fix_to_virt(idx: int) -> int:
    return FIXADDR_TOP - (idx << PAGE_SHIFT)


class _WaitQueue:
    """``wait_queue_head_t`` of non-exclusive waiters: ``wake_up`` wakes them all."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: deque[Any] = deque()

    def remove_waiter(self, actor: "Actor") -> None:
        try:
            self.waiters.remove(actor)
        except ValueError:
            pass

    def active(self) -> bool:
        """``waitqueue_active``."""
        return bool(self.waiters)

    def wake_up(self, waker: "Thread") -> int:
        sim = waker.sim
        at = sim.now + waker.machine.costs.sleep_wakeup
        n = len(self.waiters)
        while self.waiters:
            sim.wake(self.waiters.popleft(), at)
        return n


@final
class KmapAtomicSlots:
    """One CPU's kmap_atomic / kmap_local slots (``current->kmap_ctrl`` of whoever runs there): a stack."""

    __slots__ = ("cpu", "stack")

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.stack: list[tuple[int, Page]] = []  # (vaddr, page), innermost last

    def __repr__(self) -> str:
        return f"<kmap_atomic slots of CPU{self.cpu}: {len(self.stack)} in use>"


@final
class Highmem:
    """The pkmap pool and its statistics. One per kernel: ``kernel.highmem``.

    ``pkmap_count[nr]``: 0 unused; 1 mapped, no user (to be flushed); n+1
    mapped with n users. ``pkmap_page[nr]`` is the PTE (the page mapped);
    ``page_address_map`` maps a pfn to its pkmap address.
    """

    def __init__(self, kernel: Any, last_pkmap: int | None = None) -> None:
        self.kernel = kernel
        self.layout = kernel.config.layout
        self.page_offset = PAGE_OFFSET[self.layout]
        pa = kernel.page_alloc
        self.has_highmem = any(z.is_highmem for z in pa.populated)
        self.LAST_PKMAP = last_pkmap if last_pkmap is not None else LAST_PKMAP_PAE
        if self.LAST_PKMAP & (self.LAST_PKMAP - 1):
            raise ValueError(f"LAST_PKMAP must be a power of two, got {self.LAST_PKMAP}")
        self.kmap_lock = SpinLock(kernel, "kmap_lock")
        self.pkmap_count = [0] * self.LAST_PKMAP  # kmap_lock
        self.pkmap_page: list[Page | None] = [None] * self.LAST_PKMAP  # the pkmap PTEs; kmap_lock
        self.page_address_map: dict[int, int] = {}  # pfn -> vaddr (page_address_htable); kmap_lock
        self.last_pkmap_nr = 0  # kmap_lock
        self.pkmap_map_wait = _WaitQueue()
        self.nr_kmap_high = 0  # kmap() calls that went to the pool
        self.nr_new_mappings = 0  # of those, the ones that needed a new entry
        self.nr_flush_all_zero = 0  # times the pool wrapped
        self.nr_global_flushes = 0  # of those, the ones that flushed every CPU's TLB
        self.nr_waits = 0  # kmap() calls that slept on pkmap_map_wait
        self.nr_kmap_atomic = 0  # kmap_atomic() of highmem pages (a slot used)
        for cpu in kernel.cpus:
            cpu.percpu["kmap_atomic"] = KmapAtomicSlots(cpu.id)
        self.generation = 0
        self._checked = -1

    def PKMAP_ADDR(self, nr: int) -> int:
        return PKMAP_BASE + (nr << PAGE_SHIFT)

    def PKMAP_NR(self, vaddr: int) -> int:
        return (vaddr - PKMAP_BASE) >> PAGE_SHIFT

    def page_address(self, page: Page) -> int | None:
        """``page_address``: the direct-map address of a lowmem page; a highmem page's pkmap address or None."""
        if not page.zone.is_highmem:
            return self.page_offset + (page.pfn << PAGE_SHIFT)
        return self.page_address_map.get(page.pfn)

    def kmap_atomic_addr(self, cpu: int, idx: int) -> int:
        """The fixmap address of slot ``idx`` on ``cpu`` (``__fix_to_virt(FIX_KMAP_BEGIN + idx + KM_MAX_IDX * cpu)``)."""
        return _fix_to_virt(FIX_KMAP_BEGIN + idx + KM_MAX_IDX * cpu)


def page_address(kernel: Any, page: Page) -> int | None:
    """``page_address``: see :meth:`Highmem.page_address`."""
    return kernel.highmem.page_address(page)


# --- the pkmap pool (kmap_lock held) --------------------------------------------------------------


async def flush_all_zero_pkmaps(th: "Thread", hm: Highmem) -> None:
    """``flush_all_zero_pkmaps``: unmap every entry nobody uses (count 1), then flush the pkmap range everywhere."""
    from .vmalloc import _flush_tlb_kernel_range

    hm.nr_flush_all_zero += 1
    costs = th.machine.costs
    count = hm.pkmap_count
    ptes = hm.pkmap_page
    amap = hm.page_address_map
    freed = 0
    for i in range(hm.LAST_PKMAP):
        if count[i] != 1:
            continue
        count[i] = 0
        page = ptes[i]
        if page is None:
            raise ModelBug(f"flush_all_zero_pkmaps: pkmap entry {i} has count 1 but no PTE")
        ptes[i] = None
        del amap[page.pfn]  # set_page_address(page, NULL)
        freed += 1
    th.pending += costs.mem_access * hm.LAST_PKMAP + costs.pte_op * freed
    hm.generation += 1
    tr = th.machine.tracer
    if tr.on[_ev_flush.id]:
        tr.emit(_ev_flush, th, nr_freed=freed)
    if freed:
        hm.nr_global_flushes += 1
        await _flush_tlb_kernel_range(th, hm.PKMAP_ADDR(0), hm.PKMAP_ADDR(hm.LAST_PKMAP))


async def map_new_virtual(th: "Thread", hm: Highmem, page: Page) -> int:
    """``map_new_virtual``: a free pkmap entry for ``page`` (wrapping flushes; a full pool sleeps). kmap_lock held."""
    costs = th.machine.costs
    count = hm.pkmap_count
    mask = hm.LAST_PKMAP - 1
    while True:  # start:
        left = hm.LAST_PKMAP
        scanned = 0
        found = -1
        while True:
            hm.last_pkmap_nr = (hm.last_pkmap_nr + 1) & mask
            scanned += 1
            if hm.last_pkmap_nr == 0:  # no_more_pkmaps
                await flush_all_zero_pkmaps(th, hm)
                left = hm.LAST_PKMAP
            if not count[hm.last_pkmap_nr]:
                found = hm.last_pkmap_nr
                break
            left -= 1
            if left:
                continue
            # Every entry in use: sleep until a kunmap frees one.
            th.pending += costs.mem_access * scanned
            hm.nr_waits += 1
            tr = th.machine.tracer
            if tr.on[_ev_wait.id]:
                tr.emit(_ev_wait, th, pfn=page.pfn)
            hm.pkmap_map_wait.waiters.append(th)  # add_wait_queue, TASK_UNINTERRUPTIBLE
            await hm.kmap_lock.release(th)  # unlock_kmap
            await th.sleep_on(hm.pkmap_map_wait)  # schedule()
            await hm.kmap_lock.acquire(th, "map_new_virtual")
            vaddr = hm.page_address_map.get(page.pfn)
            if vaddr is not None:
                return vaddr  # somebody else mapped it while we slept
            break  # goto start
        if found < 0:
            continue
        th.pending += costs.mem_access * scanned + costs.pte_op
        vaddr = hm.PKMAP_ADDR(found)
        hm.pkmap_page[found] = page  # set_pte_at
        count[found] = 1
        hm.page_address_map[page.pfn] = vaddr  # set_page_address
        hm.nr_new_mappings += 1
        hm.generation += 1
        return vaddr


async def kmap_high(th: "Thread", page: Page) -> int:
    """``kmap_high``: the page's pkmap address (mapping it if needed); one more user of its entry."""
    hm: Highmem = th.machine.highmem  # type: ignore[attr-defined]
    await hm.kmap_lock.acquire(th, "kmap_high")
    vaddr = hm.page_address_map.get(page.pfn)
    if vaddr is None:
        vaddr = await map_new_virtual(th, hm, page)
    nr = hm.PKMAP_NR(vaddr)
    hm.pkmap_count[nr] += 1
    hm.nr_kmap_high += 1
    hm.generation += 1
    if hm.pkmap_count[nr] < 2:
        raise ModelBug(f"kmap_high: pkmap entry {nr} has count {hm.pkmap_count[nr]} after a kmap")
    tr = th.machine.tracer
    if tr.on[_ev_kmap.id]:
        tr.emit(_ev_kmap, th, pfn=page.pfn, vaddr=vaddr, nr=nr, count=hm.pkmap_count[nr])
    await hm.kmap_lock.release(th)
    return vaddr


async def kunmap_high(th: "Thread", page: Page) -> None:
    """``kunmap_high``: one user fewer; at count 1 the entry may be reused, and sleepers are woken."""
    hm: Highmem = th.machine.highmem  # type: ignore[attr-defined]
    await hm.kmap_lock.acquire(th, "kunmap_high")
    vaddr = hm.page_address_map.get(page.pfn)
    if vaddr is None:
        await hm.kmap_lock.release(th)
        raise HighmemError(f"kunmap: page pfn 0x{page.pfn:x} is not kmapped")
    nr = hm.PKMAP_NR(vaddr)
    if hm.pkmap_count[nr] <= 1:
        await hm.kmap_lock.release(th)
        raise HighmemError(f"kunmap: page pfn 0x{page.pfn:x} (pkmap entry {nr}) has no kmap user left")
    hm.pkmap_count[nr] -= 1
    hm.generation += 1
    need_wakeup = hm.pkmap_count[nr] == 1 and hm.pkmap_map_wait.active()
    tr = th.machine.tracer
    if tr.on[_ev_kunmap.id]:
        tr.emit(_ev_kunmap, th, pfn=page.pfn, vaddr=vaddr, nr=nr, count=hm.pkmap_count[nr])
    await hm.kmap_lock.release(th)
    if need_wakeup:
        hm.pkmap_map_wait.wake_up(th)


async def kmap(th: "Thread", page: Page) -> int:
    """``kmap``: a kernel address for ``page``; may sleep (highmem pages only). Lowmem: ``page_address``, free."""
    hm: Highmem = th.machine.highmem  # type: ignore[attr-defined]
    if not page.zone.is_highmem:
        return hm.page_offset + (page.pfn << PAGE_SHIFT)
    return await kmap_high(th, page)


async def kunmap(th: "Thread", page: Page) -> None:
    """``kunmap``: end a ``kmap`` (nothing to do for a lowmem page)."""
    if not page.zone.is_highmem:
        return
    await kunmap_high(th, page)


def kmap_atomic(th: "Thread", page: Page) -> int:
    """``kmap_atomic``: a kernel address for ``page`` from this CPU's fixmap slots; no lock, cannot sleep.

    Disables preemption until :func:`kunmap_atomic` (nest them LIFO). Not a
    coroutine: like the kernel's, it never waits.
    """
    hm: Highmem = th.machine.highmem  # type: ignore[attr-defined]
    th.preempt_count += 1  # preempt_disable(); pagefault_disable()
    if not page.zone.is_highmem:
        return hm.page_offset + (page.pfn << PAGE_SHIFT)
    cpu = th.cpu
    slots: KmapAtomicSlots = cpu.percpu["kmap_atomic"]
    idx = len(slots.stack)
    if idx >= KM_MAX_IDX:
        th.preempt_count -= 1
        raise HighmemError(f"kmap_atomic: CPU{cpu.id} already has {KM_MAX_IDX} nested kmap_atomic slots in use "
                           f"(KM_MAX_IDX) — pfn 0x{page.pfn:x}")
    vaddr = hm.kmap_atomic_addr(cpu.id, idx)
    slots.stack.append((vaddr, page))
    hm.nr_kmap_atomic += 1
    th.pending += th.machine.costs.pte_op  # arch_kmap_local_set_pte
    tr = th.machine.tracer
    if tr.on[_ev_kma.id]:
        tr.emit(_ev_kma, th, pfn=page.pfn, vaddr=vaddr, idx=idx)
    return vaddr


def kunmap_atomic(th: "Thread", addr: int) -> None:
    """``kunmap_atomic``: release the innermost slot (a fixmap address) and flush it on this CPU only."""
    hm: Highmem = th.machine.highmem  # type: ignore[attr-defined]
    if th.preempt_count <= 0:
        raise HighmemError(f"kunmap_atomic(0x{addr:x}) without a kmap_atomic (preemption is not disabled)")
    cpu = th.cpu
    slots: KmapAtomicSlots = cpu.percpu["kmap_atomic"]
    lo = hm.kmap_atomic_addr(cpu.id, KM_MAX_IDX - 1)
    hi = hm.kmap_atomic_addr(cpu.id, 0)
    if lo <= addr <= hi and hm.layout == "i386":
        if not slots.stack:
            raise HighmemError(f"kunmap_atomic(0x{addr:x}): CPU{cpu.id} has no kmap_atomic slot in use")
        idx = len(slots.stack) - 1
        top, _page = slots.stack[-1]
        if top != addr:
            raise HighmemError(f"kunmap_atomic(0x{addr:x}) out of order on CPU{cpu.id}: the innermost slot is "
                               f"0x{top:x} (kmap_atomic mappings must be released in reverse order)")
        slots.stack.pop()
        costs = th.machine.costs
        th.pending += costs.pte_op + costs.tlb_flush_one  # pte_clear; flush_tlb_one_kernel
        tlb = cpu.percpu.get("tlb")
        if tlb is not None:
            tlb.flush_one(addr >> PAGE_SHIFT)
        tr = th.machine.tracer
        if tr.on[_ev_kuma.id]:
            tr.emit(_ev_kuma, th, vaddr=addr, idx=idx)
    th.preempt_count -= 1  # pagefault_enable(); preempt_enable()


# --- invariants ---------------------------------------------------------------------------------


def pkmap_reason(hm: Highmem) -> str | None:
    """The pool's state: counts, PTEs and page_address_htable agree."""
    seen: dict[int, int] = {}
    for nr in range(hm.LAST_PKMAP):
        c = hm.pkmap_count[nr]
        page = hm.pkmap_page[nr]
        if c < 0:
            return f"pkmap entry {nr}: count {c}"
        if (c == 0) != (page is None):
            return f"pkmap entry {nr}: count {c} but the PTE is {'empty' if page is None else 'set'}"
        if page is not None:
            if page.pfn in seen:
                return f"pfn 0x{page.pfn:x} is mapped by pkmap entries {seen[page.pfn]} and {nr}"
            seen[page.pfn] = nr
            if hm.page_address_map.get(page.pfn) != hm.PKMAP_ADDR(nr):
                return f"pkmap entry {nr} maps pfn 0x{page.pfn:x} but page_address says {hm.page_address_map.get(page.pfn)}"
    if len(seen) != len(hm.page_address_map):
        return f"{len(hm.page_address_map)} pages in page_address_htable, {len(seen)} mapped by pkmap entries"
    return None


def check_highmem(hm: Highmem) -> str | None:
    """The debug check: :func:`pkmap_reason` whenever the pool changed since the last call."""
    if hm.generation == hm._checked:
        return None
    hm._checked = hm.generation
    return pkmap_reason(hm)


def kmap_init(kernel: Any, last_pkmap: int | None = None) -> Highmem:
    """``kmap_init`` / ``pkmap`` setup: ``kernel.highmem``. ``last_pkmap`` overrides LAST_PKMAP (tests)."""
    hm = Highmem(kernel, last_pkmap)
    kernel.highmem = hm
    if hm.has_highmem:
        kernel.add_check("highmem:pkmap", lambda: check_highmem(hm))
    return hm


__all__ = [
    "Highmem", "HighmemError", "KM_MAX_IDX", "LAST_PKMAP_NONPAE", "LAST_PKMAP_PAE", "PAGE_OFFSET", "PKMAP_BASE",
    "PageHighMem", "check_highmem", "flush_all_zero_pkmaps", "kmap", "kmap_atomic", "kmap_high", "kmap_init",
    "kunmap", "kunmap_atomic", "kunmap_high", "lowmem_page_address", "map_new_virtual", "page_address",
    "pkmap_reason",
]
