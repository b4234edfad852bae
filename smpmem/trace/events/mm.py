"""Events of the address-space model: two kernel tracepoints and one of smpmem's own.

- ``signal:signal_generate`` (include/trace/events/signal.h, Linux 6.12): a
  fault that ends in SIGSEGV / SIGBUS, or an OOM kill of the faulting task.
  The kernel's ``pid`` and ``comm`` fields name the *target* task; here they
  are ``task_pid`` / ``task_comm`` (the record header has ``pid``/``comm``),
  rendered as the kernel prints them.
- ``task:task_newtask`` (include/trace/events/task.h): fork and clone, with
  the same renaming.
- ``mm:mm_cow`` (smpmem's own, no kernel tracepoint): a write fault on a
  copy-on-write PTE, resolved by copying (``reused=0``, ``wp_page_copy``,
  or a private write to a file page, ``do_cow_fault``) or by reusing the
  page in place (``reused=1``, ``wp_page_reuse``).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define

Rec = Mapping[str, Any]


def _render_signal_generate(r: Rec) -> str:
    """signal_generate (signal.h)."""
    return (f"sig={r['sig']} errno={r['errno']} code={r['code']} comm={r['task_comm']} "
            f"pid={r['task_pid']} grp={r['group']} res={r['result']}")


def _render_task_newtask(r: Rec) -> str:
    """task_newtask (task.h)."""
    return (f"pid={r['task_pid']} comm={r['task_comm']} clone_flags={r['clone_flags']:x} "
            f"oom_score_adj={r['oom_score_adj']}")


def _render_mm_cow(r: Rec) -> str:
    return (f"address=0x{r['address']:x} old_pfn=0x{r['old_pfn']:x} new_pfn=0x{r['new_pfn']:x} "
            f"reused={r['reused']}")


signal_generate = define(
    "signal", "signal_generate", ("sig", "errno", "code", "task_comm", "task_pid", "group", "result"),
    fmt='"sig=%d errno=%d code=%d comm=%s pid=%d grp=%d res=%d"', render=_render_signal_generate,
    doc="A signal was sent: SIGSEGV (11, code SEGV_MAPERR 1 / SEGV_ACCERR 2) or SIGBUS (7) from a fault, "
        "SIGKILL (9) when a fault ran out of memory.",
)
task_newtask = define(
    "task", "task_newtask", ("task_pid", "task_comm", "clone_flags", "oom_score_adj"),
    fmt='"pid=%d comm=%s clone_flags=%lx oom_score_adj=%hd"', render=_render_task_newtask,
    doc="fork() or clone(): task_pid is the new task; clone_flags has CLONE_VM (0x100) for a thread.",
)
mm_cow = define(
    "mm", "mm_cow", ("address", "old_pfn", "new_pfn", "reused"),
    fmt='"address=0x%lx old_pfn=0x%lx new_pfn=0x%lx reused=%d"', render=_render_mm_cow, kernel=False,
    doc="A copy-on-write fault: copied old_pfn into new_pfn (reused=0) or made old_pfn writable (reused=1).",
)
