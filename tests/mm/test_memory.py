"""Page faults, copy-on-write after fork, SIGSEGV, lock contention and teardown (mm/memory.c)."""

from __future__ import annotations

import pytest

from smpmem.mm import mmap as M
from smpmem.mm.memory import check_mm_consistency, pte_lookup, _PAGE_SPECIAL, PTE_PFN_SHIFT
from smpmem.mm.zone import NR_ANON_MAPPED, NR_PAGETABLE
from smpmem.scenario import parse_scenario
from smpmem.workload._syscalls import do_fork, touch

from mm_support import boot, run, run_one, spawn

RW = M.PROT_READ | M.PROT_WRITE
ANON = M.MAP_PRIVATE | M.MAP_ANONYMOUS


def node_stat(k, item: int) -> int:
    return sum(p.vm_stat[item] for p in k.page_alloc.nodes)


class TestAnonFaults:
    def test_read_maps_zero_page_then_write_copies(self) -> None:
        """A read fault maps the shared zero page; the first write replaces it with a zeroed private page."""
        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 4096, RW, ANON)
            await touch(th, a, 4096, False)
            first = pte_lookup(mm, a >> 12)
            await touch(th, a, 4096, True)
            return first, pte_lookup(mm, a >> 12), mm.rss_stat[1], th.machine.mm_cow_copies
        k = boot()
        first, second, anon, copies = run_one(k, body)
        assert first & _PAGE_SPECIAL and first >> PTE_PFN_SHIFT == k.zero_pfn
        assert not second & _PAGE_SPECIAL and anon == 1 and copies == 1
        assert k.vmstat["pgfault"] == 2

    def test_counters_follow_faults_and_exit(self) -> None:
        """RSS, AnonPages and PageTables rise with faults and return to zero when the process exits."""
        seen = {}

        async def body(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, 64 * 4096, RW, ANON)
            await touch(th, a, 64 * 4096, True)
            k = th.machine
            seen.update(rss=mm.rss_stat[1], anon=node_stat(k, NR_ANON_MAPPED), pt=node_stat(k, NR_PAGETABLE),
                        pte=mm.pgtables_bytes, check=check_mm_consistency(k), minflt=proc.min_flt)
        k = boot()
        free0 = k.page_alloc.nr_free_pages()
        run(k, lambda _: spawn(k, body))
        assert seen == {"rss": 64, "anon": 64, "pt": 3, "pte": 3 * 4096, "check": None, "minflt": 64}
        assert node_stat(k, NR_ANON_MAPPED) == 0 and node_stat(k, NR_PAGETABLE) == 0
        from smpmem.mm.zone import NR_SLAB_RECLAIMABLE, NR_SLAB_UNRECLAIMABLE
        slab = node_stat(k, NR_SLAB_RECLAIMABLE) + node_stat(k, NR_SLAB_UNRECLAIMABLE)  # caches keep their slabs
        pcp = sum(z.pcp_pages() for z in k.page_alloc.populated)
        assert k.page_alloc.nr_free_pages() + pcp + slab == free0


class TestForkCow:
    def _fork_and_write(self, n: int):
        k = boot(cpus=2)
        out = {}

        async def parent(th, proc):
            mm = proc.mm
            a = await M.vm_mmap(th, mm, None, 0, n * 4096, RW, ANON)
            await touch(th, a, n * 4096, True)
            before = th.machine.mm_cow_copies
            child_steps = parse_scenario(
                '[[process]]\nname = "c"\nprogram = [{op = "sleep", ns = "1ms"}]\n').process[0].program
            await do_fork(th, child_steps)  # the child sleeps, still sharing every page
            out["shared"] = all(pte_lookup(mm, (a >> 12) + i) & 2 == 0 for i in range(n))
            await touch(th, a, n * 4096, True)
            out["copies"] = th.machine.mm_cow_copies - before
            out["check"] = check_mm_consistency(th.machine)

        run(k, lambda _: spawn(k, parent))
        return out

    def test_parent_write_after_fork_copies_each_page_once(self) -> None:
        """After fork every private page is write-protected in both; the parent's writes copy each page exactly once."""
        out = self._fork_and_write(40)
        assert out["shared"] and out["copies"] == 40 and out["check"] is None

    def test_scenario_fork_one_copy_per_written_page(self) -> None:
        """A child that writes every page, then the parent: one copy per page, the parent reuses its pages."""
        toml = '''
[machine]
cpus = 2
ram = "128MiB"
[run]
duration = "1s"
[[process]]
name = "p"
cpus = [0]
program = [
  { op = "mmap", name = "a", size = "248KiB" },
  { op = "touch", region = "a", write = true },
  { op = "fork", program = [ { op = "touch", region = "a", write = true } ] },
  { op = "sleep", ns = "10ms" },
  { op = "touch", region = "a", write = true },
]
'''
        from smpmem.kernel import Kernel
        from smpmem.workload import start_processes

        k = Kernel(parse_scenario(toml))
        run(k, start_processes)
        assert k.mm_cow_copies == 62  # 248 KiB: every page copied once (by the child)
        assert k.vmstat["pgreuse"] == 62  # the parent, last sharer, reuses each page in place


class TestSigsegv:
    def _run(self, program: str):
        from smpmem.kernel import Kernel
        from smpmem.workload import start_processes
        k = Kernel(parse_scenario(f'[run]\nduration = "1s"\n[[process]]\nname = "p"\nthreads = 2\nprogram = {program}\n'))
        run(k, start_processes)
        return k, k.processes[min(k.processes)]

    def test_write_to_read_only_mapping(self) -> None:
        """A store to a read-only mapping is SIGSEGV: exit code 139, the process's threads all end."""
        k, p = self._run('[{op = "mmap", name = "a", size = "8KiB", prot = "r"}, '
                         '{op = "mprotect", region = "a", prot = "r", size = "4KiB"}, '
                         '{op = "touch", region = "a", write = true}]')
        assert p.exit_code == 139 and p.signal == 11 and p.mm is None
        assert not p.live_threads

    def test_access_after_munmap(self) -> None:
        """Touching a range after munmap of its first half is SIGSEGV (SEGV_MAPERR)."""
        k, p = self._run('[{op = "mmap", name = "a", size = "8KiB"}, '
                         '{op = "munmap", region = "a", size = "4KiB", offset = "4KiB"}, '
                         '{op = "touch", region = "a", write = true}]')
        assert p.exit_code == 139


class TestLocks:
    def _threads(self, tunables: str, writer: bool = True):
        from smpmem.kernel import Kernel
        from smpmem.workload import start_processes
        prog = ('[{op = "mmap", name = "a", size = "2MiB"}, {op = "touch", region = "a", write = true}'
                + (', {op = "loop", count = 20, body = [{op = "mmap", name = "x", size = "4KiB"}, '
                   '{op = "munmap", region = "x"}]}' if writer else "") + "]")
        k = Kernel(parse_scenario(f'[machine]\ncpus = 8\nram = "512MiB"\n[tunables]\n{tunables}\n'
                                  f'[run]\nduration = "1s"\n[[process]]\nname = "p"\nthreads = 8\nprogram = {prog}\n'))
        run(k, start_processes)
        self.kernel = k
        return {s.name: s for s in k.locks.statistics()}

    def test_mmap_lock_and_page_table_lock_contend(self) -> None:
        """Eight threads faulting while others mmap: contention on mmap_lock, and on page_table_lock without split PTLs."""
        st = self._threads("split_ptlock = false")
        assert st["&mm->mmap_lock"].contentions > 0
        assert st["&mm->page_table_lock"].contentions > 0
        assert "ptlock_ptr(ptdesc)" not in st or st["ptlock_ptr(ptdesc)"].acquisitions == 0

    def test_split_ptlocks_used(self) -> None:
        """With split PTE locks the faults take the per-table ptl, not page_table_lock."""
        st = self._threads("split_ptlock = true")
        assert st["ptlock_ptr(ptdesc)"].acquisitions > 0

    def test_per_vma_lock_reduces_mmap_lock_contention(self) -> None:
        """Per-VMA locks take the faults off mmap_lock: fewer readers wait behind the mmap/munmap writers."""
        off = self._threads("per_vma_lock = false")["&mm->mmap_lock"]
        on = self._threads("per_vma_lock = true")["&mm->mmap_lock"]
        assert on.waittime_read.nr < off.waittime_read.nr
        assert on.acquisitions < off.acquisitions

    def test_vma_lock_stats_in_proc_vmstat(self) -> None:
        """/proc/vmstat has CONFIG_PER_VMA_LOCK_STATS's counters: every user fault tries the VMA lock first and
        ends as one of success, retry (fell back to mmap_lock) or abort (a miss looks up again); most succeed."""
        from smpmem.proc.vmstat import render_vmstat

        self._threads("per_vma_lock = true")
        v = {name: int(n) for name, n in (line.split() for line in render_vmstat(self.kernel).splitlines())}
        tries = v["vma_lock_success"] + v["vma_lock_retry"] + v["vma_lock_abort"]
        assert tries == v["pgfault"] and v["vma_lock_success"] > 0.9 * tries
