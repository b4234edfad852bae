"""VMA placement, merging, splitting, brk and the error codes of mmap/munmap/mprotect (mm/mmap.c, mm/vma.c)."""

from __future__ import annotations

from smpmem.mm import mmap as M
from smpmem.mm.memory import check_mm_consistency

from mm_support import boot, run_one

RW = M.PROT_READ | M.PROT_WRITE
ANON = M.MAP_PRIVATE | M.MAP_ANONYMOUS


def layout(mm: M.MmStruct) -> list[tuple[int, int, str]]:
    """The VMAs as (start, end, rwxp), the stack left out."""
    return [(v.vm_start, v.vm_end, M.vm_flags_str(v.vm_flags)) for v in mm.mm_mt.values()
            if not v.vm_flags & M.VM_GROWSDOWN]


class TestPlacement:
    def test_top_down_below_mmap_base(self) -> None:
        """Mappings without a hint go top-down from mmap_base, each just below the previous."""
        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 1 << 20, RW, ANON)
            b = await M.vm_mmap(th, mm, None, 0, 1 << 20, M.PROT_READ, ANON)
            return mm.mmap_base, a, b
        base, a, b = run_one(boot(), body)
        assert base == 0x7FFFF7FFF000
        assert a == base - (1 << 20) and b == a - (1 << 20)

    def test_i386_task_size(self) -> None:
        """On i386 the user address space ends at 3 GiB; MAP_FIXED above it is ENOMEM."""
        async def body(th, proc):
            mm = proc.mm
            return mm.task_size, await M.vm_mmap(th, mm, None, 0xC0000000, 4096, RW, ANON | M.MAP_FIXED)
        k = boot(ram="64MiB")
        k.config = k.config.model_copy(update={"layout": "i386"})
        size, err = run_one(k, body)
        assert size == 0xC0000000 and err == -M.ENOMEM


class TestMergeSplit:
    def test_adjacent_same_flags_merge(self) -> None:
        """Two adjacent anonymous mappings with the same protection become one VMA (vma_merge_new_range)."""
        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 8192, RW, ANON)
            b = await M.vm_mmap(th, mm, None, a - 8192, 8192, RW, ANON)
            return a, b, layout(mm), mm.map_count
        a, b, lay, n = run_one(boot(), body)
        assert b == a - 8192
        assert lay == [(b, a + 8192, "rw-p")] and n == 2  # the merged VMA and the stack

    def test_different_prot_do_not_merge(self) -> None:
        """Adjacent mappings with different protections stay two VMAs."""
        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 8192, RW, ANON)
            await M.vm_mmap(th, mm, None, a - 8192, 8192, M.PROT_READ, ANON)
            return layout(mm)
        lay = run_one(boot(), body)
        assert [f for _, _, f in lay] == ["r--p", "rw-p"]

    def test_mprotect_splits_then_merges_back(self) -> None:
        """mprotect of the middle page splits one VMA into three; undoing it merges them into one again."""
        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 3 * 4096, RW, ANON)
            assert await M.do_mprotect(th, mm, a + 4096, 4096, M.PROT_READ) == 0
            mid = layout(mm)
            assert await M.do_mprotect(th, mm, a + 4096, 4096, RW) == 0
            return a, mid, layout(mm)
        a, mid, after = run_one(boot(), body)
        assert mid == [(a, a + 4096, "rw-p"), (a + 4096, a + 8192, "r--p"), (a + 8192, a + 12288, "rw-p")]
        assert after == [(a, a + 12288, "rw-p")]

    def test_munmap_middle_splits(self) -> None:
        """munmap of the middle of a VMA leaves two VMAs with the right pgoffs."""
        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 4 * 4096, RW, ANON)
            assert await M.vm_munmap(th, mm, a + 4096, 8192) == 0
            return a, [(v.vm_start, v.vm_end, v.vm_pgoff) for v in mm.mm_mt.values()][:2], mm.total_vm
        a, vmas, total = run_one(boot(), body)
        assert vmas == [(a, a + 4096, a >> 12), (a + 3 * 4096, a + 4 * 4096, (a >> 12) + 3)]
        assert total == 2 + 33  # two pages and the 132 KiB stack

    def test_faulted_vmas_with_different_anon_vmas_do_not_merge(self) -> None:
        """Two VMAs that each faulted get their own anon_vma and no longer merge after mprotect."""
        async def body(th, proc):
            from smpmem.workload._syscalls import touch
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 4096, RW, ANON)
            b = await M.vm_mmap(th, mm, None, 0, 4096, M.PROT_READ, ANON)
            await touch(th, a, 4096, True)
            await M.do_mprotect(th, mm, b, 4096, RW)  # b has no anon_vma: it merges with a
            return a, b, layout(mm)
        a, b, lay = run_one(boot(), body)
        assert b == a - 4096 and lay == [(b, a + 4096, "rw-p")]


class TestBadInput:
    def test_error_codes(self) -> None:
        """Linux's error codes: EINVAL, ENOMEM, EEXIST, and munmap of nothing succeeds."""
        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 4096, RW, ANON)
            return {
                "len0": await M.vm_mmap(th, mm, None, 0, 0, RW, ANON),
                "fixed_unaligned": await M.vm_mmap(th, mm, None, a + 1, 4096, RW, ANON | M.MAP_FIXED),
                "fixed_kernel": await M.vm_mmap(th, mm, None, 0xFFFF888000000000, 4096, RW, ANON | M.MAP_FIXED),
                "fixed_low": await M.vm_mmap(th, mm, None, 0x1000, 4096, RW, ANON | M.MAP_FIXED),
                "noreplace": await M.vm_mmap(th, mm, None, a, 4096, RW, ANON | M.MAP_FIXED_NOREPLACE),
                "huge": await M.vm_mmap(th, mm, None, 0, 1 << 50, RW, ANON),
                "munmap_unaligned": await M.vm_munmap(th, mm, a + 1, 4096),
                "munmap_len0": await M.vm_munmap(th, mm, a, 0),
                "munmap_kernel": await M.vm_munmap(th, mm, 0xFFFF888000000000, 4096),
                "munmap_nothing": await M.vm_munmap(th, mm, 0x10000000, 1 << 20),
                "mprotect_hole": await M.do_mprotect(th, mm, a - 4096, 8192, M.PROT_READ),
                "mprotect_unaligned": await M.do_mprotect(th, mm, a + 8, 4096, M.PROT_READ),
                "mprotect_len0": await M.do_mprotect(th, mm, a, 0, M.PROT_READ),
            }
        r = run_one(boot(), body)
        assert r == {"len0": -M.EINVAL, "fixed_unaligned": -M.EINVAL, "fixed_kernel": -M.ENOMEM,
                     "fixed_low": -M.EPERM, "noreplace": -M.EEXIST, "huge": -M.ENOMEM,
                     "munmap_unaligned": -M.EINVAL, "munmap_len0": -M.EINVAL, "munmap_kernel": -M.EINVAL,
                     "munmap_nothing": 0, "mprotect_hole": -M.ENOMEM, "mprotect_unaligned": -M.EINVAL,
                     "mprotect_len0": 0}

    def test_mprotect_past_max_map_count_gives_the_charge_back(self) -> None:
        """mprotect that must split a VMA at sysctl_max_map_count fails with ENOMEM and leaves
        Committed_AS (and the VMA) as they were, though making it writable had charged it."""
        async def body(th, proc):
            mm, k = proc.mm, th.machine
            a = await M.vm_mmap(th, mm, None, 0, 4 * 4096, M.PROT_READ, ANON)
            committed = k.vm_committed_as
            mm.map_count, real = M.SYSCTL_MAX_MAP_COUNT, mm.map_count
            err = await M.do_mprotect(th, mm, a + 4096, 4096, M.PROT_READ | M.PROT_WRITE)
            mm.map_count = real
            ok = await M.do_mprotect(th, mm, a + 4096, 4096, M.PROT_READ | M.PROT_WRITE)
            return err, k.vm_committed_as - committed, ok
        err, charged_after, ok = run_one(boot(), body)
        assert err == -M.ENOMEM and ok == 0
        assert charged_after == 1  # only the successful mprotect's page stays charged

    def test_map_fixed_replaces(self) -> None:
        """MAP_FIXED over an existing mapping unmaps what it covers first (and frees its pages)."""
        async def body(th, proc):
            from smpmem.workload._syscalls import touch
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 4 * 4096, RW, ANON)
            await touch(th, a, 4 * 4096, True)
            b = await M.vm_mmap(th, mm, None, a + 4096, 4096, M.PROT_READ, ANON | M.MAP_FIXED)
            return a, b, layout(mm), mm.rss_stat[1], check_mm_consistency(th.machine)
        a, b, lay, anon, bad = run_one(boot(), body)
        assert b == a + 4096 and bad is None
        assert [f for _, _, f in lay] == ["rw-p", "r--p", "rw-p"] and anon == 3


class TestBrk:
    def test_brk_grows_and_shrinks(self) -> None:
        """brk extends one heap VMA, refuses to go below start_brk, and shrinking unmaps."""
        async def body(th, proc):
            mm = proc.mm
            start = mm.start_brk
            r1 = await M.sys_brk(th, mm, start + 10000)
            r2 = await M.sys_brk(th, mm, start + 50000)
            heap = [(v.vm_start, v.vm_end) for v in mm.mm_mt.values() if v.vm_start == start]
            r3 = await M.sys_brk(th, mm, start - 4096)
            r4 = await M.sys_brk(th, mm, start + 4096)
            heap2 = [(v.vm_start, v.vm_end) for v in mm.mm_mt.values() if v.vm_start == start]
            return start, r1, r2, heap, r3, r4, heap2
        start, r1, r2, heap, r3, r4, heap2 = run_one(boot(), body)
        assert (r1, r2) == (start + 10000, start + 50000)
        assert heap == [(start, start + M.PAGE_ALIGN(50000))]
        assert r3 == start + 50000  # below start_brk: the old break comes back
        assert r4 == start + 4096 and heap2 == [(start, start + 4096)]


class TestKilledInMunmap:
    def test_a_kill_waits_for_munmap_to_finish(self) -> None:
        """The end of a run kills threads mid-munmap (PCT order, seeds 1-3): no PTE of a detached VMA is left.

        Before munmap ran uninterruptibly after detaching the VMAs, the last
        thread's exit_mmap failed in free_pgtables on the left-over PTEs.
        """
        from smpmem.kernel import Kernel
        from smpmem.scenario import parse_scenario
        from smpmem.workload import start_processes

        from mm_support import run

        toml = """
[machine]
cpus = 2
ram = "4GiB"
[tunables]
per_vma_lock = true
[run]
duration = "20ms"
schedule = "pct"
events = []
[[process]]
name = "pf1"
builtin = "page_fault1"
params = { mode = "threads", tasks = 2, size = "16MiB" }
"""
        for seed in (1, 2, 3):
            k = Kernel(parse_scenario(toml, overrides={"run.seed": seed}))
            assert run(k, start_processes, until=20_000_000) == "timeout"

