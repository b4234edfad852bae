"""Lock events: include/trace/events/lock.h (contention_begin/_end), plus lock hold spans."""

from __future__ import annotations

from ..catalog import define
from ..fmt import hash_ptr, print_flags

LCB_F_SPIN = 0x1
LCB_F_READ = 0x2
LCB_F_WRITE = 0x4
LCB_F_RT = 0x8
LCB_F_PERCPU = 0x10
LCB_F_MUTEX = 0x20
_LCB = [(LCB_F_SPIN, "SPIN"), (LCB_F_READ, "READ"), (LCB_F_WRITE, "WRITE"), (LCB_F_RT, "RT"),
        (LCB_F_PERCPU, "PERCPU"), (LCB_F_MUTEX, "MUTEX")]

contention_begin = define(
    "lock", "contention_begin", ("lock_addr", "flags", "name"),
    fmt='"%p (flags=%s)"',
    render=lambda r: f"{hash_ptr(r['lock_addr'])} (flags={print_flags(r['flags'], _LCB)})",
    doc="A task starts waiting for a lock. `name` (the lock class) is smpmem's addition; "
        "the ftrace body omits it as the kernel does.",
)
contention_end = define(
    "lock", "contention_end", ("lock_addr", "ret", "name", "wait_ns"),
    fmt='"%p (ret=%d)"',
    render=lambda r: f"{hash_ptr(r['lock_addr'])} (ret={r['ret']})",
    doc="The wait is over (ret 0: acquired). `name` and `wait_ns` are smpmem's additions.",
)
lock_release = define(
    "lock", "lock_release", ("lock_addr", "name", "hold_ns"),
    fmt='"%p %s"',
    render=lambda r: f"{hash_ptr(r['lock_addr'])} {r['name']}",
    doc="A lock is released after being held hold_ns (CONFIG_LOCKDEP's lock_release, plus the hold time).",
)
