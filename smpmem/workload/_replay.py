"""Trace replay: a process driven by the memory accesses of a real program.

Two formats (docs/programs.md):

- ``lackey``: what ``valgrind --tool=lackey --trace-mem=yes`` prints, one
  record a line: ``I  0401ab70,3`` (instruction fetch), `` L 1fff000768,8``
  (load), `` S …`` (store), `` M …`` (modify: a load then a store), address
  in hex and size in bytes; valgrind's own ``==pid==`` lines are skipped.
- ``plain``: ``R ADDRESS`` or ``W ADDRESS`` with an optional size
  (``R 0x7ffd1234 8``); hex with or without ``0x``; ``#`` starts a comment.

Replay works at page granularity. The trace is read once
(:func:`read_trace`, cached by path, modification time and options) into
the sequence of pages it touches: an access that spans a page boundary
touches both pages; consecutive accesses to one page are coalesced into one,
except that a store after loads of the page stays a second access (a read
fault, then a write fault, as the real program took them). The touched
pages are clustered (pages within :data:`CLUSTER_GAP` pages of each other
share a cluster) and each cluster is mapped as private anonymous memory —
at the trace's own addresses with ``MAP_FIXED_NOREPLACE`` when they are
free in the simulated address space, else where the kernel chooses, the
accesses then shifted with it. Then the accesses are made in order.

Simplified: code, stack and heap are all anonymous read-write memory (no
file-backed text, no stack growth); the time between accesses is only the
model's cost of each access (the program's computation is not in a trace).
"""

from __future__ import annotations

import bisect
import os
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ..mm import mmap as M
from ..mm.memory import access_pages, pte_lookup, pte_present
from ._program import ProgramError, handler
from ._syscalls import CHUNK, _proc, exit_group

if TYPE_CHECKING:
    from ..sim import Thread
    from ._process import Process

PAGE_SHIFT = 12
CLUSTER_GAP = 512  # pages: touched pages less than 2 MiB apart share one mapping
_cache: dict[tuple[Any, ...], "Trace"] = {}


class TraceError(ValueError):
    """A trace file that cannot be read: names the file, the line and what was expected."""


@dataclass(frozen=True)
class Trace:
    """A trace read at page granularity.

    ``runs`` holds the coalesced accesses in order, each ``vpn << 1 | write``;
    ``clusters`` the ``[first_vpn, end_vpn)`` ranges that get one mapping each.
    """

    path: str
    format: str
    records: int  # accesses read from the file (after limit)
    pages: int  # distinct pages touched
    runs: array = field(repr=False)
    clusters: tuple[tuple[int, int], ...]


def _lackey(path: str, fh: Any, instructions: bool) -> Iterator[tuple[int, int, bool, bool]]:
    """``(address, size, load, store)`` of each lackey record."""
    for lineno, line in enumerate(fh, 1):
        if not line.strip() or line.startswith("=="):
            continue
        kind = line[:2]
        try:
            addr_s, _, size_s = line[2:].strip().partition(",")
            addr, size = int(addr_s, 16), int(size_s or "1")
        except ValueError:
            addr = size = -1
        if kind not in ("I ", " L", " S", " M") or addr < 0 or size <= 0:
            raise TraceError(f"{path}:{lineno}: not a lackey record (\"I  ADDR,SIZE\", \" L ADDR,SIZE\", "
                             f"\" S …\" or \" M …\"): {line.rstrip()[:80]!r}")
        if kind == "I ":
            if instructions:
                yield addr, size, True, False
        elif kind == " L":
            yield addr, size, True, False
        elif kind == " S":
            yield addr, size, False, True
        else:
            yield addr, size, True, True


def _plain(path: str, fh: Any, instructions: bool) -> Iterator[tuple[int, int, bool, bool]]:
    for lineno, line in enumerate(fh, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        kind = parts[0].upper()
        try:
            if kind not in ("R", "W") or not 2 <= len(parts) <= 3:
                raise ValueError
            a = parts[1].lower().removeprefix("0x")
            addr = int(a, 16)
            size = int(parts[2], 0) if len(parts) == 3 else 1
            if size <= 0:
                raise ValueError
        except ValueError:
            raise TraceError(f"{path}:{lineno}: expected \"R ADDRESS [SIZE]\" or \"W ADDRESS [SIZE]\" (address in "
                             f"hex): {line.rstrip()[:80]!r}") from None
        yield addr, size, kind == "R", kind == "W"


def read_trace(path: str, format: str = "lackey", limit: int | None = None, instructions: bool = True) -> Trace:
    """Read a trace file into a :class:`Trace`; :class:`TraceError` names the bad line."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise TraceError(f"{path}: {e.strerror}") from None
    key = (path, st.st_mtime_ns, st.st_size, format, limit, instructions)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    parse = _lackey if format == "lackey" else _plain
    runs = array("Q")
    seen: set[int] = set()
    cur, cur_w = -1, False
    records = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for addr, size, load, store in parse(path, fh, instructions):
            if limit is not None and records >= limit:
                break
            records += 1
            first, last = addr >> PAGE_SHIFT, (addr + size - 1) >> PAGE_SHIFT
            for vpn in range(first, last + 1):
                if vpn != cur:
                    cur, cur_w = vpn, store and not load
                    runs.append(vpn << 1 | cur_w)
                    seen.add(vpn)
                    if store and load:  # M: the load, then the store
                        runs.append(vpn << 1 | 1)
                        cur_w = True
                elif store and not cur_w:
                    runs.append(vpn << 1 | 1)
                    cur_w = True
    clusters: list[tuple[int, int]] = []
    for vpn in sorted(seen):
        if clusters and vpn - (clusters[-1][1] - 1) < CLUSTER_GAP:
            clusters[-1] = (clusters[-1][0], vpn + 1)
        else:
            clusters.append((vpn, vpn + 1))
    trace = Trace(path, format, records, len(seen), runs, tuple(clusters))
    if len(_cache) > 16:
        _cache.clear()
    _cache[key] = trace
    return trace


def check_trace(path: str, format: str, limit: int | None, instructions: bool) -> str | None:
    """Why the trace cannot be replayed (a bad line, an empty trace), or None. Used when a scenario loads."""
    try:
        t = read_trace(path, format, limit, instructions)
    except TraceError as e:
        return str(e)
    if not t.records:
        return f"{path}: the trace has no {format} access records"
    return None


# --- the replay step -----------------------------------------------------------------------------------------

@dataclass
class ReplayMap:
    """Where a trace's clusters went in one address space: ``(first_vpn, end_vpn, shift)`` each."""

    starts: list[int]
    clusters: list[tuple[int, int, int]]
    relocated: int

    def translate(self, vpn: int) -> int:
        i = bisect.bisect_right(self.starts, vpn) - 1
        return vpn + self.clusters[i][2]


@dataclass(frozen=True)
class ReplayStats:
    """What one replay did, read back from the model's page tables when it finished."""

    pid: int
    file: str
    records: int  # trace records replayed
    accesses: int  # page accesses made (after coalescing)
    pages: int  # distinct pages in the trace
    mappings: int  # clusters mapped
    relocated: int  # of those, mapped away from the trace's addresses
    present: int  # of the trace's pages, those with a present PTE at the end of the replay


def _maps(proc: "Process") -> dict[tuple[Any, ...], ReplayMap]:
    return proc.__dict__.setdefault("replay_maps", {})


async def map_trace(th: "Thread", proc: "Process", trace: Trace) -> ReplayMap | None:
    """Map the trace's clusters into ``proc``'s address space (once per trace); None on ENOMEM."""
    key = (trace.path, trace.clusters, id(proc.mm))  # the same clusters: the same mappings serve
    m = _maps(proc).get(key)
    if m is not None:
        return m
    mm = proc.mm
    prot = M.PROT_READ | M.PROT_WRITE
    flags = M.MAP_PRIVATE | M.MAP_ANONYMOUS
    out: list[tuple[int, int, int]] = []
    relocated = 0
    for first, end in trace.clusters:
        th.charge(th.machine.costs.syscall_entry)
        addr, length = first << PAGE_SHIFT, (end - first) << PAGE_SHIFT
        got = -M.EINVAL
        if end << PAGE_SHIFT <= mm.task_size:
            got = await M.vm_mmap(th, mm, None, addr, length, prot, flags | M.MAP_FIXED_NOREPLACE, 0)
        if got < 0:
            got = await M.vm_mmap(th, mm, None, 0, length, prot, flags, 0)
            relocated += 1
        if got < 0:
            return None
        out.append((first, end, (got >> PAGE_SHIFT) - first))
    m = ReplayMap([c[0] for c in out], out, relocated)
    _maps(proc)[key] = m
    return m


@handler("replay")
async def _replay(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    try:
        trace = read_trace(step.file, step.format, step.limit, step.instructions)
    except TraceError as e:
        raise ProgramError(str(e)) from None
    m = await map_trace(th, proc, trace)
    if m is None:
        await exit_group(th, 1)  # mmap failed: ENOMEM
        return
    mm = proc.mm
    runs = trace.runs
    translate = m.translate
    batch: list[int] = []
    batch_w = 0

    async def flush() -> None:
        sig = await access_pages(th, mm, batch, bool(batch_w))
        if sig:
            await exit_group(th, 128 + sig, sig, th.machine.__dict__.get("mm_last_fault", batch[0] << PAGE_SHIFT))
        await th.sync()
        batch.clear()

    for r in runs:
        w = r & 1
        if batch and (w != batch_w or len(batch) >= CHUNK):
            await flush()
        batch.append(translate(r >> 1))
        batch_w = w
    if batch:
        await flush()
    n = len(runs)
    seen = {translate(r >> 1) for r in runs}
    present = sum(1 for v in seen if pte_present(pte_lookup(mm, v)))
    stats = ReplayStats(th.pid, trace.path, trace.records, n, trace.pages, len(m.clusters), m.relocated, present)
    th.machine.__dict__.setdefault("replays", []).append(stats)
