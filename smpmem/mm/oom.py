"""The OOM killer: models mm/oom_kill.c (Linux 6.12).

Modelled: ``out_of_memory`` (the page allocator's last resort, called with
``oom_lock`` held from ``__alloc_pages_may_oom``): a task that is already
dying gets the reserves instead of a new kill (``task_will_free_mem``); a
request without __GFP_FS kills nobody; ``oom_kill_allocating_task``;
``select_bad_process`` / ``oom_evaluate_task`` over every process in
creation order (the newest wins a tie), waiting (no new kill) while an
earlier victim has not yet let its memory go; ``oom_badness`` (RSS + swap
entries + page-table pages, plus ``oom_score_adj`` × totalpages / 1000,
-1000 exempt); ``oom_kill_process`` / ``__oom_kill_process``: SIGKILL to
the whole thread group (``signal_generate``), ``mark_oom_victim``
(``mark_victim`` event, the victim's threads may use the OOM reserves,
ALLOC_OOM), the ``oom_kill`` counter and the kernel's log lines
(``dump_header``, "Out of memory: Killed process ..."). The kill is the
engine's cancellation of the victim's threads: each unwinds at its next
wait, releases what it holds and the last one's ``exit_mmap`` gives the
memory back (with its swap slots).

Simplified: no memcg or cpuset constraints (CONSTRAINT_NONE; totalpages =
RAM + swap), no oom reaper thread (the victim frees its own memory; a victim
still holding its mm ``OOM_REAPER_DELAY`` after the kill is skipped, as
MMF_OOM_SKIP after the reaper gave up), no processes sharing an mm outside
their thread group, no ``panic_on_oom``: when nobody can be killed the
allocation fails (ENOMEM) instead of the kernel's panic ("System is
deadlocked on memory").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..trace.events import mm as mm_events
from ..trace.events import oom as oom_events
from ..trace.gfp import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS
from . import gfp as G
from .page import PAGE_SIZE

if TYPE_CHECKING:
    from ..sim import Thread

OOM_SCORE_ADJ_MIN = -1000
OOM_SCORE_ADJ_MAX = 1000
SIGKILL = 9
SI_KERNEL = 0x80
HZ = 250
OOM_REAPER_DELAY = 2 * 1_000_000_000  # 2*HZ: the reaper's grace period before it reaps a victim


@dataclass
class OomControl:
    """``struct oom_control``."""

    gfp_mask: int
    order: int
    totalpages: int = 0
    chosen: Any = None
    chosen_points: int = -(1 << 63)  # LONG_MIN


@dataclass
class OomState:
    """The OOM killer's record: ``kernel.oom``.

    ``victims``: (virtual ns, pid, comm) of each kill; ``messages``: the
    kernel log lines the killer printed (most recent last, at most 200).
    """

    victims: list[tuple[int, int, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    nr_no_victim: int = 0  # "Out of memory and no killable processes"
    oom_killer_disabled: bool = False

    def log(self, line: str) -> None:
        self.messages.append(line)
        del self.messages[:-200]


ABORT = object()  # select_bad_process: an earlier victim is still exiting


def _mm_of(proc: Any) -> Any:
    mm = getattr(proc, "mm", None)
    if mm is None or getattr(mm, "dead", False):
        return None
    return mm


def oom_badness(proc: Any, totalpages: int) -> int | None:
    """``oom_badness``: how much killing ``proc`` frees, biased by ``oom_score_adj``; None if exempt."""
    from .mmap import get_mm_rss

    mm = _mm_of(proc)
    if mm is None:
        return None
    adj = proc.oom_score_adj
    if adj == OOM_SCORE_ADJ_MIN or proc.__dict__.get("oom_skip"):
        return None
    points = get_mm_rss(mm) + mm.rss_stat[MM_SWAPENTS] + mm.pgtables_bytes // PAGE_SIZE
    adj *= totalpages // 1000
    return points + adj


def tsk_is_oom_victim(proc: Any) -> bool:
    return proc.__dict__.get("oom_victim_at") is not None


async def select_bad_process(th: "Thread", oc: OomControl) -> Any:
    """``select_bad_process``: the process with the highest badness, None, or ABORT while a victim exits."""
    k = th.machine
    now = k.sim.now
    for proc in list(k.processes.values()):  # for_each_process: creation order
        th.charge(k.costs.oom_scan_task)
        if not proc.live_threads or _mm_of(proc) is None:
            continue  # exited, or never had an mm (oom_unkillable_task / find_lock_task_mm)
        if tsk_is_oom_victim(proc):
            if proc.__dict__.get("oom_skip") or now - proc.oom_victim_at >= OOM_REAPER_DELAY:
                proc.oom_skip = True  # MMF_OOM_SKIP: the reaper has given up on it
                continue
            return ABORT
        points = oom_badness(proc, oc.totalpages)
        if points is None or points < oc.chosen_points:
            continue
        oc.chosen, oc.chosen_points = proc, points
    await th.sync()
    return oc.chosen


def _kb(pages: int) -> int:
    return pages * (PAGE_SIZE // 1024)


def mark_oom_victim(th: "Thread", proc: Any) -> None:
    """``mark_oom_victim``: the victim's threads may dip into the reserves; the ``mark_victim`` event."""
    k = th.machine
    if tsk_is_oom_victim(proc):
        return
    proc.oom_victim_at = k.sim.now
    pa = k.page_alloc
    for t in proc.threads:
        if not t.done:
            pa.oom_reserve_threads.add(t)
    mm = _mm_of(proc)
    tr = k.tracer
    ev = oom_events.mark_victim
    if tr.on[ev.id]:
        r = mm.rss_stat if mm is not None else [0, 0, 0, 0]
        tr.emit(ev, th, task_pid=proc.tgid, task_comm=proc.comm,
                total_vm=_kb(mm.total_vm if mm is not None else 0), anon_rss=_kb(r[MM_ANONPAGES]),
                file_rss=_kb(r[MM_FILEPAGES]), shmem_rss=_kb(r[MM_SHMEMPAGES]), uid=0,
                pgtables=(mm.pgtables_bytes >> 10) if mm is not None else 0, oom_score_adj=proc.oom_score_adj)


def __oom_kill_process(th: "Thread", proc: Any, message: str) -> None:
    """``__oom_kill_process``: SIGKILL to the thread group, mark it, count it, log it."""
    k = th.machine
    st: OomState = k.oom
    mm = _mm_of(proc)
    r = list(mm.rss_stat) if mm is not None else [0, 0, 0, 0]
    total_vm = mm.total_vm if mm is not None else 0
    pgtables = mm.pgtables_bytes >> 10 if mm is not None else 0
    tr = k.tracer
    ev = mm_events.signal_generate
    if tr.on[ev.id]:
        tr.emit(ev, th, sig=SIGKILL, errno=0, code=SI_KERNEL, task_comm=proc.comm, task_pid=proc.tgid, group=1,
                result=0)
    mark_oom_victim(th, proc)
    k.vmstat["oom_kill"] += 1
    st.victims.append((k.sim.now, proc.tgid, proc.comm))
    st.log(f"{message}: Killed process {proc.tgid} ({proc.comm}) total-vm:{_kb(total_vm)}kB, "
           f"anon-rss:{_kb(r[MM_ANONPAGES])}kB, file-rss:{_kb(r[MM_FILEPAGES])}kB, "
           f"shmem-rss:{_kb(r[MM_SHMEMPAGES])}kB, UID:0 pgtables:{pgtables}kB oom_score_adj:{proc.oom_score_adj}")
    proc.signal = SIGKILL
    if proc.exit_code is None:
        proc.exit_code = 128 + SIGKILL
    victims = [t for t in proc.threads if not t.done]
    if victims:
        k.sim.kill(victims)


async def oom_kill_process(th: "Thread", oc: OomControl, message: str) -> None:
    """``oom_kill_process``: a victim already on its way out only gets the reserves; else kill it."""
    proc = oc.chosen
    if any(t.killed for t in proc.threads if not t.done):  # task_will_free_mem(victim)
        mark_oom_victim(th, proc)
        return
    __oom_kill_process(th, proc, message)


def dump_header(th: "Thread", oc: OomControl) -> None:
    """``dump_header``: the first line of the kernel's report."""
    k = th.machine
    proc = th.process
    adj = proc.oom_score_adj if proc is not None else 0
    k.oom.log(f"{th.comm} invoked oom-killer: gfp_mask={oc.gfp_mask:#x}({G.show_gfp_flags(oc.gfp_mask)}), "
              f"order={oc.order}, oom_score_adj={adj}")


async def out_of_memory(th: "Thread", gfp: int, order: int) -> bool:
    """``out_of_memory``: kill the task that frees the most memory; True if the caller may retry.

    The page allocator's hook (``oom_lock`` held). False when no task can be
    killed: the allocation then fails.
    """
    k = th.machine
    st: OomState = k.oom
    if st.oom_killer_disabled:
        return False
    proc = th.process
    # task_will_free_mem(current): a dying task gets the reserves so that it exits quickly.
    if th.killed or (proc is not None and tsk_is_oom_victim(proc)):
        if proc is not None:
            mark_oom_victim(th, proc)
        else:
            k.page_alloc.oom_reserve_threads.add(th)
        return True
    if not gfp & G.__GFP_FS:
        return True  # the OOM killer does not compensate for IO-less reclaim
    oc = OomControl(gfp, order)
    oc.totalpages = k.page_alloc.totalram_pages + int(k.page_alloc.meminfo_sources.get("total_swap_pages"))
    if (k.tunables.oom_kill_allocating_task and proc is not None and _mm_of(proc) is not None
            and proc.oom_score_adj != OOM_SCORE_ADJ_MIN):
        oc.chosen = proc
        dump_header(th, oc)
        await oom_kill_process(th, oc, "Out of memory (oom_kill_allocating_task)")
        return True
    chosen = await select_bad_process(th, oc)
    if chosen is ABORT:
        return True
    if chosen is None:
        dump_header(th, oc)
        st.nr_no_victim += 1
        st.log("Out of memory and no killable processes...")
        return False
    dump_header(th, oc)
    await oom_kill_process(th, oc, "Out of memory")
    return True


def oom_init(kernel: Any) -> OomState:
    """Install the OOM killer as the page allocator's last resort (``kernel.reclaim.out_of_memory``)."""
    st = OomState()
    kernel.oom = st
    kernel.reclaim.out_of_memory = out_of_memory
    return st


__all__ = [
    "OOM_SCORE_ADJ_MAX", "OOM_SCORE_ADJ_MIN", "OomControl", "OomState", "mark_oom_victim", "oom_badness",
    "oom_init", "oom_kill_process", "out_of_memory", "select_bad_process",
]
