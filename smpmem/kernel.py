"""The simulated machine and its kernel: built from a validated scenario.

``Kernel`` is the one object every actor shares (the analogue of the globals
of a running kernel): CPUs, the clock and the tracer from
:class:`smpmem.sim.Machine`, plus the memory model's subsystems, booted in the
kernel's order (``mm_core_init``: zones and the buddy allocator first, then
slab, vmalloc, ...). Subsystems register invariant checks with
:meth:`Kernel.add_check`; in debug mode (``run.debug_vm``, the analogue of
``CONFIG_DEBUG_VM``) they run at every hand-off of the engine, i.e. after
every event that touched shared state, and once more at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .scenario import Scenario
from .sim import Machine, ModelBug, Thread, Tracer
from .sim.costs import CostModel

Check = Callable[[], "str | None"]


class BootError(ValueError):
    """The machine described cannot boot (e.g. a zone too small for its own mem_map)."""


@dataclass
class ReclaimHooks:
    """Where the page allocator's slow path calls into reclaim (mm/vmscan.c, mm/oom_kill.c).

    Until reclaim is modelled these do nothing: kswapd is not woken, direct
    reclaim frees nothing, and the OOM killer kills no one (the allocation
    fails). The reclaim subsystem replaces them at boot.
    """

    wakeup_kswapd: Callable[..., None] = lambda *a, **k: None
    try_to_free_pages: Callable[..., Any] | None = None  # async (thread, gfp, order, zonelist) -> nr_reclaimed
    out_of_memory: Callable[..., Any] | None = None  # async (thread, gfp, order) -> bool (a victim was killed)


@dataclass
class Checks:
    """Named invariant checks; each returns a reason string when broken (``bad_reason`` style)."""

    fns: list[tuple[str, Check]] = field(default_factory=list)

    def run(self) -> None:
        for name, fn in self.fns:
            reason = fn()
            if reason is not None:
                raise ModelBug(f"invariant {name!r} broken: {reason}")


class Kernel(Machine):
    """A machine booted from a scenario: CPUs, memory, daemons."""

    def __init__(self, scenario: Scenario, tracer: Tracer | None = None) -> None:
        costs: CostModel = scenario.costs.cost_model()
        super().__init__(scenario.machine.cpus, seed=scenario.run.seed, costs=costs, tracer=tracer)
        self.scenario = scenario
        self.config = scenario.machine
        self.tunables = scenario.tunables
        self.debug_vm = scenario.run.debug_vm
        self.vmstat = self.tracer.vmstat
        self.reclaim = ReclaimHooks()
        self.checks = Checks()
        self.processes: dict[int, Any] = {}  # tgid -> workload process
        if scenario.run.schedule == "pct":  # schedule exploration (smpmem explore): PCT order of same-instant wake-ups
            from .sim.engine import PctSchedule

            self.sim.pct = PctSchedule(scenario.run.seed, scenario.run.pct_depth)
        self.boot()
        if scenario.tunables.tlb_skip_shootdown:  # a deliberately broken protocol, for explore (tlb_init set False)
            self.tlb_skip_shootdown = True
        if self.debug_vm and self.checks.fns:
            self.sim.on_switch = self.checks.run

    bootmem: Any = None  # memblock reservations (smpmem.mm.page_alloc.BootMem); None = the default

    def boot(self) -> None:
        """Bring up the memory model's subsystems in the kernel's order."""
        from .mm.page_alloc import page_alloc_init

        # mm_core_init: zones, memblock, the buddy allocator, pagesets, watermarks.
        self.page_alloc = page_alloc_init(self, self.bootmem)
        from .mm.lru import check_lru_counts, lru_init

        lru_init(self)  # a lruvec per node (mm/swap.c, mm_inline.h)
        self.add_check("lru_counts", lambda: check_lru_counts(self))
        from .mm.highmem import kmap_init
        from .mm.shrinker import shrinker_init
        from .mm.slab import slab_init
        from .mm.vmalloc import vmalloc_init

        shrinker_init(self)  # shrinker_list (mm/shrinker.c)
        slab_init(self)  # kmem_cache_init: kmalloc and the boot caches, the slab shrinker (mm/slab.c)
        vmalloc_init(self)  # the vmalloc range (mm/vmalloc.c)
        kmap_init(self)  # the pkmap pool and kmap_atomic slots (mm/highmem.c)
        from .mm.filemap import filemap_init

        filemap_init(self)  # disks, page cache, writeback and its flushers, buffers, dcache/icache (mm/filemap.c, fs/)
        from .mm.memory import mm_init

        mm_init(self)  # TLBs, the zero page, the mm lock order and checks (mm/memory.c, arch/x86/mm/tlb.c)
        from .mm.vmscan import vmscan_init

        vmscan_init(self)  # swap areas, the OOM killer, kswapd per node and the allocator's reclaim hooks (mm/vmscan.c)
        from .printk import printk_init

        printk_init(self)  # the kernel log: every subsystem's messages, stamped (kernel/printk/printk.c)

    def add_check(self, name: str, fn: Check) -> None:
        """Register an invariant check (run at every hand-off in debug mode)."""
        self.checks.fns.append((name, fn))
        if self.debug_vm:
            self.sim.on_switch = self.checks.run

    def kernel_thread(self, comm: str, cpu: int | None = None) -> Thread:
        """A kernel daemon (kswapd0, the flusher): a daemon thread, not waited for at the end of a run."""
        return Thread(self, self.alloc_pid(), comm, daemon=True, allowed=None if cpu is None else [cpu])
