"""Random alloc/free sequences across orders and CPUs against a reference model (Hypothesis stateful)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

from page_alloc_support import free_lists, run_sync, toy
from smpmem.mm import page_alloc as PA
from smpmem.mm.gfp import GFP_ATOMIC, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_NOWAIT
from smpmem.mm.page_alloc import check_zone_structure
from smpmem.mm.zone import MAX_PAGE_ORDER, NR_FREE_PAGES

PAGES = 4096  # four order-10 blocks, eight pageblocks
CPUS = 3
GFPS = [GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_ATOMIC, GFP_NOWAIT]


class PageAllocatorMachine(RuleBasedStateMachine):
    """The allocator against a set of allocated (pfn, order) blocks: the reference model."""

    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.kernel = toy(PAGES, cpus=CPUS, tunables="min_free_kbytes = 0\npcp_batch = 7")
        self.pa = self.kernel.page_alloc
        self.zone = self.pa.zones[0]
        self.allocated: dict[int, int] = {}  # pfn -> order: the reference model

    @rule(target=blocks, order=st.integers(0, MAX_PAGE_ORDER), cpu=st.integers(0, CPUS - 1),
          gfp=st.sampled_from(GFPS))
    def alloc(self, order: int, cpu: int, gfp: int):
        """alloc_pages on a CPU: a new aligned block that overlaps nothing allocated, or None."""
        page, = run_sync(self.kernel, lambda th: PA.alloc_pages(th, gfp, order), cpus=[cpu])
        if page is None:
            # Only when no free block of that order is in the buddy lists (pcp lists may hold its
            # pieces: without reclaim progress nothing drains them) or the watermark forbids it.
            z = self.zone
            assert (all(not z.free_area[o].nr_free for o in range(order, MAX_PAGE_ORDER + 1))
                    or z.vm_stat[NR_FREE_PAGES] - ((1 << order) - 1) <= z.high_wmark_pages()), \
                f"order {order} failed with a free block available: {free_lists(z)}"
            return None
        pfn = page.pfn
        assert page.order == order and pfn % (1 << order) == 0
        for p, o in self.allocated.items():
            assert pfn + (1 << order) <= p or p + (1 << o) <= pfn, f"{pfn:#x}/{order} overlaps {p:#x}/{o}"
        self.allocated[pfn] = order
        return page

    @rule(page=consumes(blocks), cpu=st.integers(0, CPUS - 1))
    def free(self, page, cpu: int) -> None:
        """__free_pages on any CPU gives the block back."""
        if page is None:
            return
        run_sync(self.kernel, lambda th: PA.free_pages(th, page, page.order), cpus=[cpu])
        del self.allocated[page.pfn]

    @rule(cpu=st.integers(0, CPUS - 1))
    def drain(self, cpu: int) -> None:
        """drain_all_pages empties every pcp list."""
        run_sync(self.kernel, lambda th: PA.drain_all_pages(th), cpus=[cpu])
        assert self.zone.pcp_pages() == 0

    @precondition(lambda self: not self.allocated)
    @rule()
    def everything_merges_back(self) -> None:
        """With nothing allocated and the lists drained, the zone is four order-10 blocks again."""
        run_sync(self.kernel, lambda th: PA.drain_all_pages(th))
        assert [a.nr_free for a in self.zone.free_area] == [0] * MAX_PAGE_ORDER + [PAGES >> MAX_PAGE_ORDER]

    @invariant()
    def conservation(self) -> None:
        """Free in the buddy lists + on pcp lists + allocated == managed, and NR_FREE_PAGES agrees."""
        z = self.zone
        allocated = sum(1 << o for o in self.allocated.values())
        assert z.nr_allocated == allocated
        assert z.buddy_free_pages() + z.pcp_pages() + allocated == z.managed_pages == PAGES
        assert z.vm_stat[NR_FREE_PAGES] == z.buddy_free_pages()
        assert self.pa.check_conservation() is None

    @invariant()
    def free_blocks_aligned_disjoint_and_merged(self) -> None:
        """Every free block is aligned, inside the zone, overlaps no other free or allocated block."""
        z = self.zone
        assert check_zone_structure(z) is None
        for pfn, e in z.buddy.items():
            lo, hi = pfn, pfn + (1 << e[2])
            for p, o in self.allocated.items():
                assert hi <= p or p + (1 << o) <= lo, f"free {lo:#x}-{hi:#x} overlaps allocated {p:#x}/{o}"


TestPageAllocator = PageAllocatorMachine.TestCase
TestPageAllocator.settings = settings(max_examples=50, stateful_step_count=40, derandomize=True, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])
