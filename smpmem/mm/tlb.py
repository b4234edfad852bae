"""Per-CPU TLBs and TLB shootdowns: models arch/x86/mm/tlb.c (Linux 6.12).

Modelled:

- Each CPU's TLB (``cpu.percpu["tlb"]``, a :class:`TlbState` that is also
  ``cpu_tlbstate``): ``tunables.tlb_entries`` entries with LRU replacement,
  keyed by virtual page number. A user entry is ``(pfn, w, page, shadow,
  key)``: ``w`` is 0 read-only, 1 writable, 2 writable with the dirty bit
  already set in the PTE; ``page``, ``shadow`` and ``key`` serve the content
  check (DESIGN.md §6), not the hardware. Kernel entries (vmalloc, kmap) are
  global: they survive a CR3 write.
- ``loaded_mm``, ``is_lazy`` and the per-CPU ``tlb_gen`` of one context, as
  ``switch_mm_irqs_off`` / ``enter_lazy_tlb`` keep them; ``mm_cpumask`` is
  set when a CPU loads an mm and cleared when it loads another; a CPU
  running a kernel thread or idle stays lazily on the old mm.
- ``flush_tlb_mm_range``: ``inc_mm_tlb_gen``, more than
  ``tlb_single_page_flush_ceiling`` (33) pages become a full flush; the
  local CPU runs ``flush_tlb_func`` directly, the other CPUs of the mask get
  an IPI (``native_flush_tlb_multi``: lazy CPUs are skipped unless page
  tables were freed) and the initiator waits for every acknowledgement.
  ``flush_tlb_func`` does the partial/full decision on the generations.
  ``flush_tlb_all`` and ``flush_tlb_kernel_range`` IPI every CPU.
- ``tlb_flush`` events with the kernel's reasons and page counts (-1 for a
  full flush); ``nr_tlb_remote_flush``, ``nr_tlb_remote_flush_received``,
  ``nr_tlb_local_flush_all``, ``nr_tlb_local_flush_one`` (CONFIG_DEBUG_TLBFLUSH).

Simplified: no PCID (every switch to another mm flushes the user entries, as
on CPUs without PCID), no ``trim_cpumask``, no LAM, no INVLPGB; 4 KiB
entries only.

The checker: ``kernel.tlb_skip_shootdown = True`` (a debug switch) makes
``flush_tlb_mm_range`` skip the IPIs; :func:`check_tlb_after_flush` runs at
the end of every flush and raises :class:`~smpmem.sim.ModelBug` when a CPU
still translates an address of the flushed range to a frame (or with a
permission) the page tables no longer give it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..sim import ModelBug
from ..trace.events import tlb as tlb_events
from ..trace.gfp import (
    TLB_FLUSH_ON_TASK_SWITCH,
    TLB_LOCAL_MM_SHOOTDOWN,
    TLB_LOCAL_SHOOTDOWN,
    TLB_REMOTE_SEND_IPI,
    TLB_REMOTE_SHOOTDOWN,
)
from .page import PAGE_SHIFT

if TYPE_CHECKING:
    from ..sim import CPU, Thread

TLB_FLUSH_ALL = -1
tlb_single_page_flush_ceiling = 33  # pages (arch/x86/mm/tlb.c; Documentation/arch/x86/tlb.rst)
KERNEL_VPN_START = 0xFFFF800000000000 >> PAGE_SHIFT  # x86_64 kernel half: global entries

_tlb_flush = tlb_events.tlb_flush


class TlbState:
    """One CPU's TLB and ``cpu_tlbstate``: written only by that CPU (or its IPI handler)."""

    __slots__ = ("cpu", "entries", "capacity", "loaded_mm", "is_lazy", "tlb_gen", "nr_global",
                 "hits", "misses")

    def __init__(self, cpu: "CPU", capacity: int) -> None:
        self.cpu = cpu
        self.entries: OrderedDict[int, tuple] = OrderedDict()  # vpn -> entry; least recently used first
        self.capacity = capacity
        self.loaded_mm: Any = None  # None: init_mm (no user address space loaded)
        self.is_lazy = False  # cpu_tlbstate_shared.is_lazy
        self.tlb_gen = 0  # cpu_tlbstate.ctxs[0].tlb_gen: the loaded mm's generation this TLB caught up to
        self.nr_global = 0  # kernel (global) entries among `entries`
        self.hits = 0
        self.misses = 0

    def fill(self, vpn: int, entry: tuple) -> None:
        """Insert a translation after a page walk, evicting the least recently used one if full."""
        ents = self.entries
        if vpn in ents:
            del ents[vpn]
        elif len(ents) >= self.capacity:
            old, _ = ents.popitem(last=False)
            if old >= KERNEL_VPN_START:
                self.nr_global -= 1
        ents[vpn] = entry

    def flush_user(self) -> None:
        """A CR3 write without PCID: every non-global entry goes."""
        if not self.nr_global:
            self.entries.clear()
            return
        for vpn in [v for v in self.entries if v < KERNEL_VPN_START]:
            del self.entries[vpn]

    def flush_everything(self) -> None:
        """``__flush_tlb_all``: global entries too."""
        self.entries.clear()
        self.nr_global = 0

    def flush_one(self, vpn: int) -> None:
        """``flush_tlb_one_user`` / INVLPG."""
        if self.entries.pop(vpn, None) is not None and vpn >= KERNEL_VPN_START:
            self.nr_global -= 1


class FlushInfo:
    """``struct flush_tlb_info``: what one flush asks every CPU to do."""

    __slots__ = ("mm", "start", "end", "freed_tables", "new_tlb_gen", "initiating_cpu")

    def __init__(self, mm: Any, start: int, end: int, freed_tables: bool, new_tlb_gen: int, cpu: int) -> None:
        self.mm = mm
        self.start = start
        self.end = end  # TLB_FLUSH_ALL for a full flush
        self.freed_tables = freed_tables
        self.new_tlb_gen = new_tlb_gen
        self.initiating_cpu = cpu

    @property
    def nr_pages(self) -> int:
        return TLB_FLUSH_ALL if self.end == TLB_FLUSH_ALL else (self.end - self.start) >> PAGE_SHIFT


def tlb_init(kernel: Any) -> None:
    """Give every CPU its TLB and hook the scheduler's context switch (boot)."""
    cap = kernel.tunables.tlb_entries
    for cpu in kernel.cpus:
        cpu.percpu["tlb"] = TlbState(cpu, cap)
    kernel.tlb_skip_shootdown = False  # debug switch: flush_tlb_mm_range sends no IPIs
    kernel.switch_hook = lambda cpu, th: context_switch_mm(kernel, cpu, th)


def tlbstate(cpu: "CPU") -> TlbState:
    return cpu.percpu["tlb"]


def _who(cpu: "CPU") -> Any:
    """Who an event on ``cpu`` is logged as: its current thread, or <idle>."""
    cur = cpu.current
    return cur if cur is not None and cur.log is not None else _IdleCtx(cpu)


class _IdleCtx:
    __slots__ = ("log",)

    def __init__(self, cpu: "CPU") -> None:
        self.log = cpu.idle_log


def _emit(kernel: Any, cpu: "CPU", reason: int, pages: int, who: Any = None) -> None:
    tr = kernel.tracer
    if tr.on[_tlb_flush.id]:
        tr.emit(_tlb_flush, who if who is not None else _who(cpu), reason=reason, pages=pages)


def _charge(cpu: "CPU", ns: int) -> None:
    cur = cpu.current
    if cur is not None:
        cur.pending += ns


# --- context switch ----------------------------------------------------------------------------

def thread_mm(th: Any) -> Any:
    """The mm a thread runs with (``current->mm``); None for kernel threads and exited threads."""
    proc = getattr(th, "process", None)
    return None if proc is None else proc.mm


def context_switch_mm(kernel: Any, cpu: "CPU", th: "Thread | None") -> None:
    """The mm half of ``context_switch``: ``switch_mm_irqs_off`` for a user thread, else ``enter_lazy_tlb``."""
    mm = thread_mm(th) if th is not None else None
    if mm is None or mm.dead:
        enter_lazy_tlb(cpu)
    else:
        switch_mm_irqs_off(kernel, cpu, mm, th)


def enter_lazy_tlb(cpu: "CPU") -> None:
    """``enter_lazy_tlb``: a kernel thread or idle keeps the old mm loaded, lazily."""
    ts = tlbstate(cpu)
    if ts.loaded_mm is not None:
        ts.is_lazy = True


def switch_mm_irqs_off(kernel: Any, cpu: "CPU", nxt: Any, who: Any = None) -> None:
    """Load ``nxt`` on ``cpu`` (``nxt`` None: init_mm). Charges the flush to the CPU's current thread."""
    ts = tlbstate(cpu)
    prev = ts.loaded_mm
    was_lazy = ts.is_lazy
    ts.is_lazy = False
    if prev is nxt:
        if nxt is None or not was_lazy:
            return
        if ts.tlb_gen == nxt.tlb_gen:
            return
        need_flush = True  # went out of date while lazy
    else:
        if prev is not None:
            prev.cpumask.discard(cpu.id)
            mmdrop_lazy_tlb(kernel, prev)
        if nxt is not None:
            nxt.cpumask.add(cpu.id)
            nxt.mm_count += 1  # mmgrab_lazy_tlb: the loaded mm stays allocated
        need_flush = True
    ts.loaded_mm = nxt
    if nxt is None:
        ts.flush_user()
        return
    ts.tlb_gen = nxt.tlb_gen
    if need_flush:
        ts.flush_user()
        _charge(cpu, kernel.costs.tlb_flush_all)
    _emit(kernel, cpu, TLB_FLUSH_ON_TASK_SWITCH, TLB_FLUSH_ALL if need_flush else 0, who)


def mmdrop_lazy_tlb(kernel: Any, mm: Any) -> None:
    """Drop the reference a CPU held on the mm it had loaded (``mmdrop_lazy_tlb``)."""
    mm.mm_count -= 1


def leave_mm(kernel: Any, cpu: "CPU") -> None:
    """``leave_mm``: switch this CPU to init_mm (no user entries remain)."""
    switch_mm_irqs_off(kernel, cpu, None)


# --- flushing ------------------------------------------------------------------------------------

def flush_tlb_func(kernel: Any, cpu: "CPU", f: FlushInfo, local: bool, who: Any = None) -> None:
    """``flush_tlb_func``: bring this CPU's TLB up to ``f.new_tlb_gen`` (local call or IPI handler)."""
    ts = tlbstate(cpu)
    loaded = ts.loaded_mm
    vm = kernel.vmstat
    if not local:
        vm["nr_tlb_remote_flush_received"] += 1
        if f.mm is not None and f.mm is not loaded:
            return
    if loaded is None:
        return
    if ts.is_lazy:
        # Lazy: switching to init_mm is barely slower than a minimal flush.
        switch_mm_irqs_off(kernel, cpu, None)
        return
    if f.new_tlb_gen and f.new_tlb_gen <= ts.tlb_gen:
        return  # already up to date with respect to this flush (0: TLB_GENERATION_INVALID)
    mm_tlb_gen = loaded.tlb_gen
    costs = kernel.costs
    if ts.tlb_gen == mm_tlb_gen:
        nr = 0  # a concurrent flush caught us up
    elif f.end != TLB_FLUSH_ALL and f.new_tlb_gen == ts.tlb_gen + 1 and f.new_tlb_gen == mm_tlb_gen:
        nr = (f.end - f.start) >> PAGE_SHIFT
        v0 = f.start >> PAGE_SHIFT
        pop = ts.entries.pop
        for vpn in range(v0, v0 + nr):
            pop(vpn, None)
        if local:
            vm["nr_tlb_local_flush_one"] += nr
        cost = costs.tlb_flush_one * nr
        if local and who is not None:
            who.pending += cost
        else:
            _charge(cpu, cost)
        ts.tlb_gen = mm_tlb_gen
    else:
        nr = TLB_FLUSH_ALL
        ts.flush_user()
        if local:
            vm["nr_tlb_local_flush_all"] += 1
        if local and who is not None:
            who.pending += costs.tlb_flush_all
        else:
            _charge(cpu, costs.tlb_flush_all)
        ts.tlb_gen = mm_tlb_gen
    reason = TLB_REMOTE_SHOOTDOWN if not local else (TLB_LOCAL_SHOOTDOWN if f.mm is None else TLB_LOCAL_MM_SHOOTDOWN)
    _emit(kernel, cpu, reason, nr, who if local else None)


def should_flush_tlb(cpu: "CPU", f: FlushInfo) -> bool:
    """``should_flush_tlb``: lazy CPUs catch up at their next switch; others only if they run ``f.mm``."""
    ts = tlbstate(cpu)
    if ts.is_lazy:
        return False
    if f.mm is None:
        return True
    return ts.loaded_mm is f.mm


async def flush_tlb_mm_range(th: "Thread", mm: Any, start: int, end: int, freed_tables: bool = False) -> None:
    """``flush_tlb_mm_range``: every CPU that may cache ``mm`` drops its translations of ``[start, end)``.

    ``end == TLB_FLUSH_ALL`` flushes the whole mm. Returns when every IPI has
    been acknowledged. The caller has already changed the page tables.
    """
    k = th.machine
    if end == TLB_FLUSH_ALL or (end - start) >> PAGE_SHIFT > tlb_single_page_flush_ceiling:
        start, end = 0, TLB_FLUSH_ALL
    mm.tlb_gen += 1  # inc_mm_tlb_gen
    cpu = th.cpu
    info = FlushInfo(mm, start, end, freed_tables, mm.tlb_gen, cpu.id)
    others = [c for c in sorted(mm.cpumask) if c != cpu.id]
    if others:
        # native_flush_tlb_multi
        k.vmstat["nr_tlb_remote_flush"] += 1
        _emit(k, cpu, TLB_REMOTE_SEND_IPI, info.nr_pages, th)
        cpus = k.cpus
        if freed_tables:
            targets = [cpus[c] for c in others]
        else:
            targets = [cpus[c] for c in others if should_flush_tlb(cpus[c], info)]
        if cpu.id in mm.cpumask and (freed_tables or should_flush_tlb(cpu, info)):
            flush_tlb_func(k, cpu, info, True, th)
        if targets and not k.tlb_skip_shootdown:
            await k.smp_call_function_many(th, targets, lambda c: flush_tlb_func(k, c, info, False),
                                           name="flush_tlb_func")
    elif tlbstate(cpu).loaded_mm is mm:
        flush_tlb_func(k, cpu, info, True, th)
    if k.debug_vm:
        reason = check_tlb_after_flush(k, mm, start, end)
        if reason is not None:
            raise ModelBug(f"stale TLB entry after a shootdown: {reason}")


async def flush_tlb_page(th: "Thread", mm: Any, addr: int) -> None:
    """``flush_tlb_page``: one user page."""
    await flush_tlb_mm_range(th, mm, addr, addr + (1 << PAGE_SHIFT))


async def flush_tlb_range(th: "Thread", mm: Any, start: int, end: int) -> None:
    """``flush_tlb_range``: a range of one mm (no page tables freed)."""
    await flush_tlb_mm_range(th, mm, start, end)


async def flush_tlb_mm(th: "Thread", mm: Any) -> None:
    """``flush_tlb_mm``: the whole mm."""
    await flush_tlb_mm_range(th, mm, 0, TLB_FLUSH_ALL)


async def flush_tlb_all(th: "Thread") -> None:
    """``flush_tlb_all``: every CPU flushes everything, global entries included."""
    k = th.machine
    k.vmstat["nr_tlb_remote_flush"] += 1

    def do_flush_tlb_all(c: "CPU") -> None:
        k.vmstat["nr_tlb_remote_flush_received"] += 1
        tlbstate(c).flush_everything()
        _charge(c, k.costs.tlb_flush_all)

    do_flush_tlb_all(th.cpu)  # on_each_cpu runs it locally too
    await k.smp_call_function_many(th, list(k.cpus), do_flush_tlb_all, name="do_flush_tlb_all")


async def flush_tlb_kernel_range(th: "Thread", start: int, end: int) -> None:
    """``flush_tlb_kernel_range``: every CPU drops its global entries of ``[start, end)`` (vmalloc, kmap)."""
    k = th.machine
    if end == TLB_FLUSH_ALL or (end - start) > tlb_single_page_flush_ceiling << PAGE_SHIFT:
        await flush_tlb_all(th)
        return
    v0, v1 = start >> PAGE_SHIFT, (end + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT

    def do_kernel_range_flush(c: "CPU") -> None:
        ts = tlbstate(c)
        for vpn in range(v0, v1):
            ts.flush_one(vpn)
        k.vmstat["nr_tlb_local_flush_one"] += v1 - v0
        _charge(c, k.costs.tlb_flush_one * (v1 - v0))

    do_kernel_range_flush(th.cpu)
    await k.smp_call_function_many(th, list(k.cpus), do_kernel_range_flush, name="do_kernel_range_flush")
    if k.debug_vm:
        for c in k.cpus:
            ents = tlbstate(c).entries
            for vpn in range(v0, v1):
                if vpn in ents:
                    raise ModelBug(f"stale TLB entry after flush_tlb_kernel_range: CPU{c.id} still maps "
                                   f"0x{vpn << PAGE_SHIFT:x}")


def tlb_fill_kernel(cpu: "CPU", vaddr: int, pfn: int) -> None:
    """A kernel (global) translation cached by ``cpu`` (vmalloc and kmap users call this on access)."""
    vpn = vaddr >> PAGE_SHIFT
    ts = tlbstate(cpu)
    if vpn not in ts.entries:
        ts.nr_global += 1
    ts.fill(vpn, (pfn, 1, None, None, None))


# --- the checker ----------------------------------------------------------------------------------

def tlb_entry_stale_reason(mm: Any, vpn: int, entry: tuple) -> str | None:
    """Why a cached translation of ``mm`` disagrees with its page tables, or None."""
    from .memory import PTE_PFN_SHIFT, _PAGE_PRESENT, _PAGE_RW

    ptp = mm.ptes.get(vpn >> 9)
    pte = ptp.ptes.get(vpn, 0) if ptp is not None else 0
    addr = vpn << PAGE_SHIFT
    if not pte & _PAGE_PRESENT:
        return f"0x{addr:x} -> pfn 0x{entry[0]:x}, but the PTE is {'none' if not pte else f'0x{pte:x} (not present)'}"
    if pte >> PTE_PFN_SHIFT != entry[0]:
        return f"0x{addr:x} -> pfn 0x{entry[0]:x}, but the PTE maps pfn 0x{pte >> PTE_PFN_SHIFT:x}"
    if entry[1] and not pte & _PAGE_RW:
        return f"0x{addr:x} is writable in the TLB but write-protected in the PTE"
    return None


def check_tlb_after_flush(kernel: Any, mm: Any, start: int, end: int) -> str | None:
    """After a flush of ``mm``'s ``[start, end)``: no CPU that runs ``mm`` holds a stale entry there.

    CPUs in lazy mode are exempt: they flush before they next use the mm
    (``switch_mm_irqs_off`` compares the generations). Another
    flush of the mm still in flight (``tlb_flush_pending`` above the
    caller's own) may legitimately leave entries for it.
    """
    if mm.tlb_flush_pending > 1 or mm.tlb_flush_batched:
        return None
    v0 = 0 if end == TLB_FLUSH_ALL else start >> PAGE_SHIFT
    v1 = KERNEL_VPN_START if end == TLB_FLUSH_ALL else end >> PAGE_SHIFT
    for c in kernel.cpus:
        ts = tlbstate(c)
        if ts.loaded_mm is not mm or ts.is_lazy:
            continue
        for vpn, e in ts.entries.items():
            if v0 <= vpn < v1:
                r = tlb_entry_stale_reason(mm, vpn, e)
                if r is not None:
                    return f"CPU{c.id} (pid {mm.owner_pid}): {r}"
    return None


__all__ = [
    "FlushInfo", "KERNEL_VPN_START", "TLB_FLUSH_ALL", "TlbState", "check_tlb_after_flush",
    "context_switch_mm", "enter_lazy_tlb", "flush_tlb_all", "flush_tlb_func", "flush_tlb_kernel_range",
    "flush_tlb_mm", "flush_tlb_mm_range", "flush_tlb_page", "flush_tlb_range", "leave_mm",
    "switch_mm_irqs_off", "tlb_entry_stale_reason", "tlb_fill_kernel", "tlb_init", "tlbstate",
    "tlb_single_page_flush_ceiling",
]
