"""/proc/lock_stat: models kernel/locking/lockdep_proc.c (``lock_stat_open``, ``seq_header``, ``seq_stats``).

Modelled: the header with its two 221-column rules, one ``%40s:`` row per
class (``-W`` and ``-R`` rows when a class was taken both for write and for
read), times in microseconds as ``snprint_time`` prints them (``"%lld.%02d"``
after adding 5 ns for display rounding), the contention points (where the
waiters waited) and contending points (where the holder they waited for took
the lock) under their dashed rules, the dotted separator after a class that
has them, and the ``*WARNING*`` line once lockdep has reported a violation
(the kernel turns ``debug_locks`` off then).

Simplified: classes carry no ``#version`` or ``/subclass`` suffix (a
:class:`~smpmem.sim.locks.LockClass` is keyed by its name). A call site is a
name, not an instruction pointer: it is printed where ``%pS`` prints
``symbol+off/size``, and ``[<%p>]`` shows :func:`~smpmem.trace.fmt.hash_ptr`
of a fixed address derived from the name's crc32, so that the same run
renders the same text. The kernel sorts with the unstable ``sort()`` on
contentions alone; ties here keep registration order.
"""

from __future__ import annotations

import zlib

from ..sim.locks import LockRegistry, LockStatistics, LockTime
from ..trace.fmt import hash_ptr

LOCKSTAT_WIDTH = 40 + 1 + 12 * (14 + 1)  # 221: the class column and twelve %14s columns
KERNEL_TEXT = 0xFFFFFFFF81000000  # where x86_64 kernel text starts: call sites live above it

_COLUMNS = (
    "con-bounces", "contentions", "waittime-min", "waittime-max", "waittime-total", "waittime-avg",
    "acq-bounces", "acquisitions", "holdtime-min", "holdtime-max", "holdtime-total", "holdtime-avg",
)


def site_address(site: str) -> int:
    """A deterministic kernel-text address standing for a call site (crc32 of its name)."""
    return KERNEL_TEXT + zlib.crc32(site.encode())


def snprint_time(ns: int) -> str:
    """``snprint_time``: ns as microseconds with two decimals, rounded by adding 5 ns first."""
    nr = ns + 5
    div = abs(nr) // 1000 * (1 if nr >= 0 else -1)  # div_s64_rem truncates toward zero
    rem = nr - div * 1000
    return f"{div}.{int(rem / 10):02d}"


def _line(c: str, offset: int, length: int) -> str:
    """``seq_line``: ``offset`` spaces, ``length`` times ``c``, a newline."""
    return " " * offset + c * length + "\n"


def _lock_time(lt: LockTime) -> str:
    """``seq_lock_time``: count, then min, max, total and average as times."""
    return f"{lt.nr:14d}" + "".join(f" {snprint_time(t):>14}" for t in (lt.min, lt.max, lt.total, lt.avg))


def seq_header(debug_locks: bool = True) -> str:
    """The version line, the optional warning, the column titles between two rules, a blank line."""
    out = "lock_stat version 0.4\n"
    if not debug_locks:
        out += "*WARNING* lock debugging disabled!! - possibly due to a lockdep warning\n"
    out += _line("-", 0, LOCKSTAT_WIDTH)
    out += f"{'class name':>40}" + "".join(f" {c:>14}" for c in _COLUMNS) + "\n"
    out += _line("-", 0, LOCKSTAT_WIDTH)
    return out + "\n"


def seq_stats(st: LockStatistics) -> str:
    """One class: its W and/or R rows, then its contention and contending points."""
    name = st.name[:37]  # snprintf(name, 38, "%s", cname)
    out = ""
    if st.holdtime_write.nr:
        out += f"{name:>38}-W:" if st.holdtime_read.nr else f"{name:>40}:"
        out += (f"{st.con_bounces_write:14d} " + _lock_time(st.waittime_write)
                + f" {st.acq_bounces_write:14d} " + _lock_time(st.holdtime_write) + "\n")
    if st.holdtime_read.nr:
        out += (f"{name:>38}-R:" + f"{st.con_bounces_read:14d} " + _lock_time(st.waittime_read)
                + f" {st.acq_bounces_read:14d} " + _lock_time(st.holdtime_read) + "\n")
    if st.waittime_read.nr + st.waittime_write.nr == 0:
        return out
    namelen = len(name) + (2 if st.holdtime_read.nr else 0)
    n = 0
    for points in (st.contention_points, st.contending_points):
        for i, (site, count) in enumerate(points):
            if i == 0:
                out += _line("-", 40 - namelen, namelen)
            ip = f"[<{hash_ptr(site_address(site))}>]"
            out += f"{name:>40} {count:14d} {ip:>29} {site}\n"
        n = len(points)
    if n:  # as the kernel's `if (i)`: only when the second list, the contending points, is not empty
        out += "\n" + _line(".", 0, LOCKSTAT_WIDTH) + "\n"
    return out


def render_lock_stat(registry: LockRegistry) -> str:
    """The text of /proc/lock_stat for every class of ``registry``, most contended first."""
    stats = registry.statistics()  # registration order
    # lock_stat_cmp: contentions descending; sorted() is stable, so ties stay in registration order.
    stats.sort(key=lambda st: -st.contentions)
    debug_locks = not registry.lockdep.violations
    return seq_header(debug_locks) + "".join(seq_stats(st) for st in stats)


__all__ = ["render_lock_stat", "seq_header", "seq_stats", "site_address", "snprint_time", "LOCKSTAT_WIDTH"]
