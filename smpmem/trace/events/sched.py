"""Scheduler and IPI events in the kernel's style (include/trace/events/sched.h, ipi.h)."""

from __future__ import annotations

from ..catalog import define

sched_switch = define(
    "sched", "sched_switch",
    ("prev_comm", "prev_pid", "prev_state", "next_comm", "next_pid"),
    fmt='"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d"',
    render=lambda r: (f"prev_comm={r['prev_comm']} prev_pid={r['prev_pid']} prev_prio=120 "
                      f"prev_state={r['prev_state']} ==> next_comm={r['next_comm']} "
                      f"next_pid={r['next_pid']} next_prio=120"),
    doc="A CPU switches from one thread to another (prev_state R: preempted, S: sleeping, X: dead).",
)
ipi_send_cpu = define(
    "ipi", "ipi_send_cpu", ("cpu_target", "callsite", "callback"),
    fmt='"cpu=%u callsite=%pS callback=%pS"',
    render=lambda r: f"cpu={r['cpu_target']} callsite={r['callsite']} callback={r['callback']}",
    doc="An IPI is sent to one CPU.",
)
ipi_entry = define(
    "ipi", "ipi_entry", ("reason",),
    fmt='"(%s)"',
    render=lambda r: f"({r['reason']})",
    doc="A CPU starts handling an IPI.",
)
ipi_exit = define(
    "ipi", "ipi_exit", ("reason",),
    fmt='"(%s)"',
    render=lambda r: f"({r['reason']})",
    doc="A CPU finishes handling an IPI.",
)
