"""The OOM killer (smpmem/mm/oom.py): victim selection by badness, the kill, memory given back, no victim."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))

import trio  # noqa: E402
from reclaim_support import allocated_pages, boot, events_named, machine, records  # noqa: E402

from smpmem.mm.oom import oom_badness  # noqa: E402
from smpmem.sim import Thread  # noqa: E402
from smpmem.workload import start_processes  # noqa: E402

HOG = '''
[[process]]
name = "hog"
{extra}
program = [
  {{ op = "mmap", name = "a", size = "{half}" }},
  {{ op = "mmap", name = "b", size = "{half}" }},
  {{ op = "touch", region = "a", write = true }},
  {{ op = "touch", region = "b", write = true }},
]
'''


def run_processes(text: str, after: object = None) -> tuple[object, list[dict]]:
    """Boot ``text``, run its processes to the end, then ``after(th)`` in a kernel thread; the kernel and events."""
    k = boot(text, events="vmscan:*,oom:*,signal:*")
    k.baseline_allocated = allocated_pages(k)

    async def cleanup(th: Thread) -> None:
        while any(p.live_threads for p in k.processes.values()):
            await th.sleep_for(1_000_000)
        if after is not None:
            await after(th)  # type: ignore[operator]

    def setup(_: object) -> None:
        start_processes(k)
        k.start_thread(Thread(k, k.alloc_pid(), "cleanup"), cleanup)

    status = trio.run(lambda: k.run(setup))
    if k.sim.failure is not None:
        raise k.sim.failure
    assert status == "completed", status
    return k, records(k)


class TestKill:
    def test_hog_is_killed_and_every_page_comes_back(self) -> None:
        """More anonymous memory than RAM + swap: the hog is OOM-killed and all its pages and slots return."""
        from smpmem.mm.vmscan import shrink_all_memory

        async def after(th: Thread) -> None:
            await shrink_all_memory(th, 1 << 20)  # what reclaim would free later: swap cache nobody maps

        text = machine(ram="48MiB", swap="16MiB") + HOG.format(half="32MiB", extra="")
        k, recs = run_processes(text, after)
        hog = next(p for p in k.processes.values() if p.comm == "hog")
        assert (hog.exit_code, hog.signal) == (137, 9)
        assert k.vmstat["oom_kill"] == 1 and k.vmstat["pswpout"] > 0
        (victim,) = events_named(recs, "mark_victim")
        assert (victim["task_pid"], victim["task_comm"]) == (hog.tgid, "hog")
        assert victim["anon_rss"] > 0 and victim["total_vm"] >= 64 * 1024 and victim["oom_score_adj"] == 0
        sig = [r for r in events_named(recs, "signal_generate") if r["sig"] == 9]
        assert sig and sig[0]["task_pid"] == hog.tgid
        assert any(m.startswith("Out of memory: Killed process") for m in k.oom.messages)
        # Every page the hog had is free again, and every swap slot.
        assert k.swap.nr_swap_pages == k.swap.total_swap_pages and k.swap.nr_swapcache == 0
        from smpmem.mm.zone import NR_SLAB_UNRECLAIMABLE

        slab = k.page_alloc.nodes[0].vm_stat[NR_SLAB_UNRECLAIMABLE]  # the slab caches keep a few pages of objects
        assert allocated_pages(k) <= k.baseline_allocated + slab, (allocated_pages(k), k.baseline_allocated, slab)
        for pgdat in k.page_alloc.nodes:
            assert sum(len(lst) for lst in pgdat.lruvec.lists) == 0

    def test_reclaim_retry_zone_precedes_the_kill(self) -> None:
        """should_reclaim_retry reports each zone it weighs (oom:reclaim_retry_zone); the last ones before the
        kill fail the min-watermark check, and no_progress_loops counts up while reclaim frees nothing."""
        k, recs = run_processes(machine(ram="48MiB", swap=None) + HOG.format(half="24MiB", extra=""))
        kill_at = events_named(recs, "mark_victim")[0]["ts"]
        before = [r for r in events_named(recs, "reclaim_retry_zone") if r["ts"] <= kill_at]
        assert before, "no reclaim_retry_zone before the OOM kill"
        assert before[-1]["wmark_check"] == 0 and before[-1]["available"] >= before[-1]["reclaimable"]
        assert {r["node"] for r in before} == {0} and {r["zone_idx"] for r in before} <= {0, 1, 2, 3}
        assert max(r["no_progress_loops"] for r in before) >= 1

    def test_without_swap(self) -> None:
        """With no swap at all, anonymous pages stay resident and the hog is killed once the file cache is gone."""
        k, recs = run_processes(machine(ram="48MiB", swap=None) + HOG.format(half="24MiB", extra=""))
        hog = next(p for p in k.processes.values() if p.comm == "hog")
        assert hog.exit_code == 137 and k.vmstat["oom_kill"] == 1
        assert k.vmstat["pswpout"] == 0 and k.vmstat["pgscan_anon"] == 0

    def test_score_adj_picks_and_exempts(self) -> None:
        """oom_score_adj 1000 makes a small process the victim; -1000 exempts the biggest one."""
        text = machine(ram="48MiB", swap="16MiB") + '''
[[process]]
name = "small"
oom_score_adj = 1000
program = [ { op = "mmap", name = "a", size = "4MiB" }, { op = "touch", region = "a", write = true },
            { op = "sleep", ns = "2s" } ]
''' + HOG.format(half="32MiB", extra="oom_score_adj = -1000\nstart = \"2ms\"")
        k, recs = run_processes(text)
        victims = [r["task_comm"] for r in events_named(recs, "mark_victim")]
        assert victims[0] == "small"
        small = next(p for p in k.processes.values() if p.comm == "small")
        assert small.exit_code == 137
        hog = next(p for p in k.processes.values() if p.comm == "hog")
        assert "hog" not in victims and hog.exit_code in (137, None, 0)  # killed by its own failing fault, if at all
        assert k.oom.nr_no_victim >= 0
        updates = [(r["task_comm"], r["oom_score_adj"]) for r in events_named(recs, "oom_score_adj_update")]
        assert updates == [("small", 1000), ("hog", -1000)]  # set before each exec, in start order


class TestAllocatingTask:
    BIG = '''
[[process]]
name = "big"
program = [ { op = "mmap", name = "a", size = "18MiB" }, { op = "touch", region = "a", write = true },
            { op = "sleep", ns = "1s" } ]
'''

    def test_default_kills_the_biggest(self) -> None:
        """By default the process with the highest badness dies, not necessarily the one allocating."""
        k, recs = run_processes(machine(ram="48MiB", swap=None) + self.BIG
                                + HOG.format(half="10MiB", extra='start = "5ms"'))
        assert [r["task_comm"] for r in events_named(recs, "mark_victim")][0] == "big"

    def test_oom_kill_allocating_task(self) -> None:
        """vm.oom_kill_allocating_task = 1: the task whose allocation failed is killed, without a scan."""
        k, recs = run_processes(machine(ram="48MiB", swap=None, tunables="oom_kill_allocating_task = 1") + self.BIG
                                + HOG.format(half="10MiB", extra='start = "5ms"'))
        assert [r["task_comm"] for r in events_named(recs, "mark_victim")][0] == "hog"
        assert any("(oom_kill_allocating_task)" in m for m in k.oom.messages)


class TestNoVictim:
    def test_no_killable_process_fails_the_allocation(self) -> None:
        """When every process is exempt the allocation fails (ENOMEM): the faulting task gets SIGKILL, nothing hangs."""
        k, recs = run_processes(machine(ram="48MiB", swap=None) + HOG.format(half="24MiB", extra="oom_score_adj = -1000"))
        hog = next(p for p in k.processes.values() if p.comm == "hog")
        assert k.oom.nr_no_victim > 0 and k.vmstat["oom_kill"] == 0 and not events_named(recs, "mark_victim")
        assert hog.exit_code == 137  # pagefault_out_of_memory: the fault could not get a page
        assert "Out of memory and no killable processes..." in k.oom.messages


class TestBadness:
    def test_badness_formula(self) -> None:
        """oom_badness: RSS + swap entries + page-table pages, plus adj × totalpages / 1000; -1000 or no mm is exempt."""
        mm = SimpleNamespace(rss_stat=[10, 200, 30, 5], pgtables_bytes=3 * 4096, dead=False)
        proc = SimpleNamespace(mm=mm, oom_score_adj=0, __dict__={})
        p = SimpleNamespace(mm=mm, oom_score_adj=0)
        assert oom_badness(p, 100_000) == 10 + 200 + 5 + 30 + 3
        p.oom_score_adj = 500
        assert oom_badness(p, 100_000) == 248 + 500 * 100
        p.oom_score_adj = -1000
        assert oom_badness(p, 100_000) is None
        assert oom_badness(SimpleNamespace(mm=None, oom_score_adj=0), 100_000) is None
        assert proc.mm is mm
