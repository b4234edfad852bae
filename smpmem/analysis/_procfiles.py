"""Readers of /proc text files as the kernel prints them, and the /proc/lock_stat table.

Parsers (text → dicts): ``/proc/zoneinfo`` (mm/vmstat.c ``zoneinfo_show_print``),
``/proc/vmstat`` (``vmstat_show``), ``/proc/meminfo`` (fs/proc/meminfo.c,
values in kB) and ``/proc/lock_stat`` (kernel/locking/lockdep_proc.c
``seq_stats``). They accept what a real kernel prints (see
reference/live-*.txt) and ignore lines they do not know.

:func:`render_lock_stat` prints rows in the layout of ``seq_header`` and
``seq_stats``: ``%40s:`` class name, then con-bounces, contentions,
waittime min/max/total/avg, acq-bounces, acquisitions, holdtime
min/max/total/avg, times in µs as ``snprint_time`` rounds them. Differences
from the kernel: the contention-point lines (call sites) are not printed
(smpmem records none), rows are sorted by total wait time rather than by
contention count (``lock_stat_cmp``), and a figure the run did not record
prints as ``-``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_ZONE_HEAD = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)")
_PCP_KEYS = ("count", "high", "batch", "high_min", "high_max")
_ZONE_WMARKS = ("boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma")


def parse_zoneinfo(text: str) -> list[dict[str, Any]]:
    """Zones of a /proc/zoneinfo text, in order.

    Each zone: ``node``, ``zone`` (name), ``free`` (``pages free``), the
    watermark block (``min``, ``low``, ``high``, ``boost``, ``managed`` …),
    ``protection`` (list), ``stats`` (the ``nr_*``/``numa_*`` lines),
    ``node_stats`` (the ``per-node stats`` block, on the first zone of a
    node only), ``pagesets`` (per CPU dicts) and the trailing scalar lines.
    """
    zones: list[dict[str, Any]] = []
    z: dict[str, Any] | None = None
    section = ""
    pcp: dict[str, int] | None = None
    for raw in text.splitlines():
        m = _ZONE_HEAD.match(raw)
        if m:
            z = {"node": int(m[1]), "zone": m[2], "stats": {}, "node_stats": {}, "pagesets": []}
            zones.append(z)
            section, pcp = "", None
            continue
        if z is None:
            continue
        line = raw.strip()
        if not line:
            continue
        if line == "per-node stats":
            section = "node"
            continue
        if line == "pagesets":
            section = "pagesets"
            continue
        if line.startswith("pages free"):
            z["free"] = int(line.split()[-1])
            section = "zone"
            continue
        if line.startswith("protection:"):
            inside = line[line.index("(") + 1:line.rindex(")")]
            z["protection"] = [int(x) for x in inside.split(",") if x.strip()]
            continue
        if section == "pagesets":
            if line.startswith("cpu:"):
                pcp = {"cpu": int(line.split(":")[1])}
                z["pagesets"].append(pcp)
                continue
            if line.startswith("vm stats threshold:"):
                if pcp is not None:
                    pcp["vm_stats_threshold"] = int(line.split(":")[1])
                continue
            k, _, v = line.partition(":")
            if pcp is not None and k in _PCP_KEYS:
                pcp[k] = int(v)
                continue
        if ":" in line:  # node_unreclaimable:  0, start_pfn:  1, vm stats threshold
            k, _, v = line.partition(":")
            v = v.strip()
            if v.lstrip("-").isdigit():
                z[k.strip().replace(" ", "_")] = int(v)
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            continue
        key, val = parts[0], int(parts[1])
        if section == "node":
            z["node_stats"][key] = val
        elif section == "zone" and key in _ZONE_WMARKS and key not in z:
            z[key] = val
        else:
            z["stats"][key] = val
    return zones


def parse_vmstat(text: str) -> dict[str, int]:
    """``name value`` lines of /proc/vmstat."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as {field: value} (kB for the ``kB`` lines, counts for HugePages_*)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name.strip()] = int(parts[0])
    return out


@dataclass
class LockRow:
    """One class of /proc/lock_stat, times in ns; None where not recorded."""

    name: str
    con_bounces: int | None = None
    contentions: int | None = None
    wait_min: int | None = None
    wait_max: int | None = None
    wait_total: int | None = None
    acq_bounces: int | None = None
    acquisitions: int | None = None
    hold_min: int | None = None
    hold_max: int | None = None
    hold_total: int | None = None

    @property
    def wait_avg(self) -> int | None:
        if self.wait_total is None or self.contentions is None:
            return None
        return self.wait_total // self.contentions if self.contentions else 0

    @property
    def hold_avg(self) -> int | None:
        if self.hold_total is None or self.acquisitions is None:
            return None
        return self.hold_total // self.acquisitions if self.acquisitions else 0


def _us(ns: int | None) -> str:
    """lockdep_proc.c ``snprint_time``: ns as ``%lld.%02d`` µs, rounded at the 10 ns digit."""
    if ns is None:
        return "-"
    nr = ns + 5
    return f"{nr // 1000}.{(nr % 1000) // 10:02d}"


def _n(v: int | None) -> str:
    return "-" if v is None else str(v)


LOCK_STAT_WIDTH = 40 + 1 + 12 * (14 + 1)
_LOCK_COLS = ("con-bounces", "contentions", "waittime-min", "waittime-max", "waittime-total",
              "waittime-avg", "acq-bounces", "acquisitions", "holdtime-min", "holdtime-max",
              "holdtime-total", "holdtime-avg")


def render_lock_stat(rows: list[LockRow]) -> str:
    """The /proc/lock_stat text for ``rows`` in the given order (``seq_header`` + ``seq_stats``)."""
    out = ["lock_stat version 0.4", "-" * LOCK_STAT_WIDTH,
           f"{'class name':>40}" + "".join(f" {c:>14}" for c in _LOCK_COLS), "-" * LOCK_STAT_WIDTH, ""]
    for r in rows:
        out.append(
            f"{r.name[:38]:>40}:{_n(r.con_bounces):>14} {_n(r.contentions):>14}"
            f" {_us(r.wait_min):>14} {_us(r.wait_max):>14} {_us(r.wait_total):>14} {_us(r.wait_avg):>14}"
            f" {_n(r.acq_bounces):>14} {_n(r.acquisitions):>14}"
            f" {_us(r.hold_min):>14} {_us(r.hold_max):>14} {_us(r.hold_total):>14} {_us(r.hold_avg):>14}")
    return "\n".join(out) + "\n"


def _from_us(s: str) -> int | None:
    if s == "-":
        return None
    whole, _, frac = s.partition(".")
    return int(whole) * 1000 + int((frac or "0").ljust(2, "0")[:2]) * 10


def parse_lock_stat(text: str) -> list[LockRow]:
    """Class rows of a /proc/lock_stat text (``-R``/``-W`` rows of one class are summed).

    Times come back in ns at the file's 10 ns resolution; contention-point
    lines, separators and the header are skipped.
    """
    rows: dict[str, LockRow] = {}
    for line in text.splitlines():
        if len(line) < 42 or line[40] != ":":
            continue
        name = line[:40].strip()
        if name.endswith(("-R", "-W")) and line[38] == "-":
            name = name[:-2]
        f = line[41:].split()
        if len(f) != 12:
            continue
        ints = [None if x == "-" else int(x) for x in (f[0], f[1], f[6], f[7])]
        t = [_from_us(x) for x in (f[2], f[3], f[4], f[8], f[9], f[10])]
        new = LockRow(name, ints[0], ints[1], t[0], t[1], t[2], ints[2], ints[3], t[3], t[4], t[5])
        old = rows.get(name)
        rows[name] = new if old is None else _merge_rw(old, new)
    return list(rows.values())


def _merge_rw(a: LockRow, b: LockRow) -> LockRow:
    def add(x: int | None, y: int | None) -> int | None:
        return None if x is None and y is None else (x or 0) + (y or 0)

    def lo(x: int | None, y: int | None) -> int | None:
        vals = [v for v in (x, y) if v]
        return min(vals) if vals else (x if x is not None else y)

    def hi(x: int | None, y: int | None) -> int | None:
        vals = [v for v in (x, y) if v is not None]
        return max(vals) if vals else None

    return LockRow(a.name, add(a.con_bounces, b.con_bounces), add(a.contentions, b.contentions),
                   lo(a.wait_min, b.wait_min), hi(a.wait_max, b.wait_max), add(a.wait_total, b.wait_total),
                   add(a.acq_bounces, b.acq_bounces), add(a.acquisitions, b.acquisitions),
                   lo(a.hold_min, b.hold_min), hi(a.hold_max, b.hold_max), add(a.hold_total, b.hold_total))
