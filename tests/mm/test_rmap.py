"""Reverse maps: anon_vma across fork, folio_referenced, try_to_unmap to swap entries, the lock order (mm/rmap.c)."""

from __future__ import annotations

import pytest

from smpmem.mm import mmap as M
from smpmem.mm.memory import _PAGE_ACCESSED, check_mm_consistency, is_swap_pte, pte_lookup, pte_to_swp_entry
from smpmem.mm.page import PG_swapcache
from smpmem.mm.rmap import folio_referenced, rmap_walk_nolock, try_to_unmap
from smpmem.scenario import parse_scenario
from smpmem.sim import LockInversion
from smpmem.workload._syscalls import do_fork, touch

from mm_support import boot, run, spawn

RW = M.PROT_READ | M.PROT_WRITE
ANON = M.MAP_PRIVATE | M.MAP_ANONYMOUS
SLEEP = parse_scenario('[[process]]\nname = "c"\nprogram = [{op = "sleep", ns = "1ms"}]\n').process[0].program


def test_referenced_and_unmap_after_fork() -> None:
    """A page shared by parent and child: rmap finds both PTEs; folio_referenced clears both young bits;
    try_to_unmap turns both into the swap entry and moves the RSS to MM_SWAPENTS."""
    k = boot(cpus=2)
    k.mm_hooks.swap_duplicate = None  # a made-up entry: no swap device behind it
    k.mm_hooks.free_swap_and_cache = None
    out = {}

    async def parent(th, proc):
        mm = proc.mm
        a = await M.vm_mmap(th, mm, None, 0, 4096, RW, ANON)
        await touch(th, a, 4096, True)
        from smpmem.mm.lru import lru_add_drain
        await lru_add_drain(th)  # no LRU-batch reference in the way
        child = await do_fork(th, SLEEP)
        page = k.page_alloc.mem_map.pages[pte_lookup(mm, a >> 12) >> 12]
        out["walk"] = sorted(v.vm_mm.owner_pid for v, _ in rmap_walk_nolock(page))
        # the child's PTE was copied "old"; the parent's is young
        out["ref1"] = (await folio_referenced(th, page))[0]
        out["ref2"] = (await folio_referenced(th, page))[0]
        out["young"] = pte_lookup(mm, a >> 12) & _PAGE_ACCESSED
        page.flags |= 1 << PG_swapcache
        page.private = 0x1234
        page._refcount += 1  # the swap cache's reference
        out["unmapped"] = await try_to_unmap(th, page)
        out["ptes"] = [pte_lookup(m, a >> 12) for m in (mm, child.mm)]
        out["rss"] = [(m.rss_stat[1], m.rss_stat[2]) for m in (mm, child.mm)]
        out["refcount"] = page._refcount
        # drop the swap entries again so that exit does not need swap
        for m in (mm, child.mm):
            m.ptes[a >> 21].ptes.pop(a >> 12)
            M.add_mm_counter(th, m, 2, -1)
        page.flags &= ~(1 << PG_swapcache)
        from smpmem.mm.memory import put_page
        await put_page(th, page)
        out["check"] = check_mm_consistency(k)

    run(k, lambda _: spawn(k, parent))
    assert out["walk"] == sorted([k.processes[min(k.processes)].tgid, max(k.processes)])
    assert out["ref1"] == 1 and out["ref2"] == 0 and not out["young"]
    assert out["unmapped"] is True
    assert all(is_swap_pte(p) and pte_to_swp_entry(p) == 0x1234 for p in out["ptes"])
    assert out["rss"] == [(0, 1), (0, 1)] and out["refcount"] == 1
    assert out["check"] is None


def test_anon_page_without_swap_cache_stays_mapped() -> None:
    """try_to_unmap cannot unmap an anon page that is not in the swap cache (no swap entry to put)."""
    k = boot(cpus=1)
    out = {}

    async def body(th, proc):
        a = await M.vm_mmap(th, proc.mm, None, 0, 4096, RW, ANON)
        await touch(th, a, 4096, True)
        page = k.page_alloc.mem_map.pages[pte_lookup(proc.mm, a >> 12) >> 12]
        out["r"] = await try_to_unmap(th, page)

    run(k, lambda _: spawn(k, body))
    assert out["r"] is False


def test_lock_order_inversion_reported() -> None:
    """Taking mmap_lock while holding a page-table lock contradicts rmap.c's tree: the checker reports it."""
    k = boot(cpus=1)

    async def body(th, proc):
        mm = proc.mm
        await mm.page_table_lock.acquire(th)
        try:
            await mm.mmap_lock.down_read(th)
        finally:
            for lock in reversed(list(th.held)):
                lock.force_release(th)

    with pytest.raises(LockInversion):
        run(k, lambda _: spawn(k, body))
