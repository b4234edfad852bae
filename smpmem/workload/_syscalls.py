"""The memory system calls of scenario programs: mmap, munmap, brk, mprotect, malloc, free, touch, fork.

Each step handler does what a C program's call does, through the memory
model (:mod:`smpmem.mm.mmap`, :mod:`smpmem.mm.memory`), charging
``syscall_entry`` per call. Regions are named: ``mmap`` and ``malloc``
record ``name -> Region``; later steps address them by name and offset.

Outcomes are the kernel's: a failed ``mmap``/``malloc``/``brk``/``fork``
(ENOMEM, EEXIST, ...) makes the program ``exit(1)``, as a C program that
checks the result would (``exit_group``: every thread of the process ends);
an access outside a mapping or against its protection is a SIGSEGV that
kills the process (exit code 139, a ``signal_generate`` event), a fault that
cannot get memory a SIGKILL (137). A step that names something that does
not exist is a :class:`ProgramError` (a scenario bug).

``malloc`` / ``free`` model glibc's main arena: requests of 128 KiB or more
(``M_MMAP_THRESHOLD``) get their own mmap; smaller ones come from the brk
heap, first fit over coalesced free chunks, growing the heap by the request
plus ``M_TOP_PAD`` (128 KiB) and trimming it when 128 KiB
(``M_TRIM_THRESHOLD``) are free at the top. Writing a chunk header is a
store into the heap, so a first malloc faults its page in as in real life.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from sortedcontainers import SortedDict

from ..mm import mmap as M
from ..mm.memory import SIGKILL, access_pages
from ..mm.page import PAGE_SHIFT, PAGE_SIZE
from ..trace.events import mm as mm_events
from ._program import ProgramError, ProgramExit, handler

if TYPE_CHECKING:
    from ..sim import Thread
    from ._process import Process

SIGCHLD = 17
CHUNK = 4096  # accesses between two synchronisations with the clock


@dataclass
class Region:
    """A named range of the program's address space: from mmap (``kind="mmap"``) or malloc."""

    addr: int
    size: int
    kind: str = "mmap"
    chunk: int = 0  # malloc: the chunk's address (the header); 0 for mmap regions
    mmapped: bool = False  # malloc: served by its own mmap


def regions_of(th: "Thread") -> dict[str, Region]:
    """The regions a thread's program knows by name: its own, plus those mapped before it was spawned."""
    return th.process.regions.setdefault(th.pid, {})


def _proc(th: "Thread") -> "Process":
    proc = th.process
    if proc is None or proc.mm is None:
        raise ProgramError("a memory step outside a process with an address space")
    return proc


def trace_newtask(th: "Thread", pid: int, comm: str, clone_flags: int, oom_score_adj: int) -> None:
    tr = th.machine.tracer
    ev = mm_events.task_newtask
    if tr.on[ev.id]:
        tr.emit(ev, th, task_pid=pid, task_comm=comm, clone_flags=clone_flags, oom_score_adj=oom_score_adj)


# --- process life ---------------------------------------------------------------------------------

async def exec_mm(th: "Thread", proc: "Process") -> bool:
    """``execve``'s ``bprm_mm_init`` / ``setup_arg_pages``: a new mm with a stack."""
    mm = await M.mm_alloc(th)
    if mm is None:
        return False
    if not await M.setup_new_exec(th, mm):
        await M.mmput(th, mm)
        return False
    mm.owner_pid = proc.tgid
    proc.mm = mm
    proc.heap = Heap()
    return True


async def exit_mm(th: "Thread") -> None:
    """``exit_mm``: this thread stops using its mm (lazily, for its CPU); the last user frees it."""
    from ..mm.tlb import enter_lazy_tlb

    proc = th.process
    if proc is None or proc.mm is None:
        return
    mm = proc.mm
    if th.cpu.current is th:
        enter_lazy_tlb(th.cpu)
    if mm.mm_users == 1:
        await M.mmput(th, mm)
        proc.mm = None
    else:
        await M.mmput(th, mm)


async def exit_group(th: "Thread", code: int, sig: int = 0, addr: int = 0) -> None:
    """End the whole process: the other threads are killed, this one unwinds with ``code``."""
    proc = th.process
    k = th.machine
    if sig:
        proc.signal = sig
        tr = k.tracer
        ev = mm_events.signal_generate
        if tr.on[ev.id]:
            # SEGV_MAPERR (1) outside any VMA, SEGV_ACCERR (2) against its protection; SI_KERNEL for SIGKILL.
            code_si = 0x80 if sig == SIGKILL else (1 if M.vma_lookup(proc.mm, addr) is None else 2) \
                if proc.mm is not None else 1
            tr.emit(ev, th, sig=sig, errno=0, code=code_si, task_comm=proc.comm, task_pid=proc.tgid, group=1,
                    result=0)
    others = [t for t in proc.live_threads if t is not th]
    if others:
        k.sim.kill(others)
    raise ProgramExit(code)


# --- mmap, munmap, mprotect, brk ---------------------------------------------------------------------

_PROT = {"none": 0}
_PROT.update({p: (M.PROT_READ if "r" in p else 0) | (M.PROT_WRITE if "w" in p else 0)
              | (M.PROT_EXEC if "x" in p else 0) for p in ("r", "w", "x", "rw", "rx", "wx", "rwx")})
_FLAGS = {"private": M.MAP_PRIVATE, "shared": M.MAP_SHARED, "anonymous": M.MAP_ANONYMOUS, "fixed": M.MAP_FIXED,
          "fixed_noreplace": M.MAP_FIXED_NOREPLACE, "populate": M.MAP_POPULATE, "noreserve": M.MAP_NORESERVE,
          "locked": M.MAP_LOCKED}


def map_flags(text: str) -> int:
    return sum(_FLAGS[f] for f in text.split("|") if f)


async def open_for_mmap(th: "Thread", path: str, write: bool) -> Any:
    """The file to map, through the page cache's hook ``kernel.vfs_open(th, path, write)``."""
    vfs_open = getattr(th.machine, "vfs_open", None)
    if vfs_open is None:
        raise ProgramError(f"mmap of {path!r}: file mappings need the page cache (kernel.vfs_open), "
                           "which this build does not have")
    f = vfs_open(th, path, write)
    if hasattr(f, "__await__"):
        f = await f
    if f is None:
        raise ProgramError(f"mmap of {path!r}: no such file")
    return f


@handler("mmap")
async def _mmap(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    th.charge(th.machine.costs.syscall_entry)
    flags = map_flags(step.flags)
    prot = _PROT[step.prot]
    file = None
    if step.file is not None:
        file = await open_for_mmap(th, step.file, bool(flags & M.MAP_SHARED and prot & M.PROT_WRITE))
    addr = await M.vm_mmap(th, proc.mm, file, step.addr or 0, step.size, prot, flags, step.offset >> PAGE_SHIFT)
    if file is not None:
        await M.fput(th, file)  # the mapping holds its own reference
    if addr < 0:
        await exit_group(th, 1)
    regions_of(th)[step.name] = Region(addr, M.PAGE_ALIGN(step.size))


def _region(th: "Thread", name: str) -> Region:
    regions = regions_of(th)
    r = regions.get(name)
    if r is None:
        raise ProgramError(f"no region named {name!r} in thread {th.pid} (known: {', '.join(sorted(regions)) or 'none'})")
    return r


@handler("munmap")
async def _munmap(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    r = _region(th, step.region)
    th.charge(th.machine.costs.syscall_entry)
    size = step.size if step.size is not None else r.size - step.offset
    await M.vm_munmap(th, proc.mm, r.addr + step.offset, size)
    if step.offset == 0 and size >= r.size:
        del regions_of(th)[step.region]


@handler("mprotect")
async def _mprotect(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    r = _region(th, step.region)
    th.charge(th.machine.costs.syscall_entry)
    size = step.size if step.size is not None else r.size - step.offset
    await M.do_mprotect(th, proc.mm, r.addr + step.offset, size, _PROT[step.prot])


@handler("brk")
async def _brk(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    mm = proc.mm
    th.charge(th.machine.costs.syscall_entry)
    want = mm.brk + step.delta
    got = await M.sys_brk(th, mm, want)
    if got != want and step.delta > 0:
        await exit_group(th, 1)


# --- touch -------------------------------------------------------------------------------------------------

_zipf_cache: dict[tuple[int, float], list[float]] = {}


def _zipf_cdf(n: int, s: float) -> list[float]:
    key = (n, s)
    cdf = _zipf_cache.get(key)
    if cdf is None:
        cdf = list(itertools.accumulate(1.0 / (k ** s) for k in range(1, n + 1)))
        if len(_zipf_cache) > 64:
            _zipf_cache.clear()
        _zipf_cache[key] = cdf
    return cdf


def touch_chunks(th: "Thread", step: Any, start: int, size: int) -> Iterator[list[int]]:
    """The pages the accesses of a touch step fall on, in order, in lists of up to CHUNK."""
    first = start >> PAGE_SHIFT
    last = (start + size - 1) >> PAGE_SHIFT
    npages = last - first + 1
    count = step.count if step.count is not None else npages
    pat = step.pattern
    rng = th.rng
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        idx = range(done, done + n)
        if pat == "sequential":
            out = [first + i % npages for i in idx]
        elif pat == "reverse":
            out = [last - i % npages for i in idx]
        elif pat == "strided":
            stride = step.stride
            out = [(start + (i * stride) % size) >> PAGE_SHIFT for i in idx]
        elif pat == "random":
            hot = max(1, int(npages * step.hot_fraction))
            rnd = rng.random
            out = [first + int(rnd() * hot) for _ in idx]
        else:  # zipf
            hot = max(1, int(npages * step.hot_fraction))
            cdf = _zipf_cdf(hot, step.zipf_s)
            total = cdf[-1]
            rnd = rng.random
            br = bisect.bisect_left
            out = [first + min(br(cdf, rnd() * total), hot - 1) for _ in idx]
        done += n
        yield out


async def touch(th: "Thread", start: int, size: int, write: bool, step: Any = None) -> None:
    """Access ``[start, start+size)`` as ``step`` says (default: every page once, in order)."""
    proc = _proc(th)
    if step is None:
        step = _Seq()
    for chunk in touch_chunks(th, step, start, size):
        sig = await access_pages(th, proc.mm, chunk, write)
        if sig:
            await exit_group(th, 128 + sig, sig, th.machine.__dict__.get("mm_last_fault", start))
        await th.sync()


class _Seq:
    count = None
    pattern = "sequential"


@handler("touch")
async def _touch(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    r = _region(th, step.region)
    size = step.size if step.size is not None else r.size - step.offset
    if size <= 0:
        return
    await touch(th, r.addr + step.offset, size, step.write, step)


# --- malloc / free (glibc's main arena, much reduced) -------------------------------------------------------

M_MMAP_THRESHOLD = 128 * 1024
M_TOP_PAD = 128 * 1024
M_TRIM_THRESHOLD = 128 * 1024
MALLOC_ALIGN = 16
MINSIZE = 32
SIZE_SZ = 8


@dataclass
class Heap:
    """The main arena: chunks between ``start`` and ``top``, the top chunk up to the program break."""

    start: int = 0
    top: int = 0
    free: SortedDict = field(default_factory=SortedDict)  # chunk address -> size (coalesced)
    used: dict[int, int] = field(default_factory=dict)

    def copy(self) -> "Heap":
        return Heap(self.start, self.top, SortedDict(self.free), dict(self.used))


def request2size(n: int) -> int:
    return max(MINSIZE, (n + SIZE_SZ + MALLOC_ALIGN - 1) & ~(MALLOC_ALIGN - 1))


async def sbrk(th: "Thread", proc: "Process", incr: int) -> bool:
    mm = proc.mm
    want = mm.brk + incr
    return await M.sys_brk(th, mm, want) == want


async def malloc(th: "Thread", proc: "Process", n: int) -> Region | None:
    """glibc ``malloc(n)``: the user range (the header written), or None (ENOMEM)."""
    heap = proc.heap
    mm = proc.mm
    th.charge(200)  # the allocator's own bookkeeping, a few hundred instructions
    size = request2size(n)
    if n >= M_MMAP_THRESHOLD:
        length = M.PAGE_ALIGN(size + SIZE_SZ)
        addr = await M.vm_mmap(th, mm, None, 0, length, M.PROT_READ | M.PROT_WRITE, M.MAP_PRIVATE | M.MAP_ANONYMOUS)
        if addr < 0:
            return None
        await touch(th, addr, 16, True)  # the chunk header
        return Region(addr + 2 * SIZE_SZ, n, "malloc", addr, True)
    if heap.start == 0:
        heap.start = heap.top = (mm.brk + MALLOC_ALIGN - 1) & ~(MALLOC_ALIGN - 1)
    chunk = 0
    for a, s in heap.free.items():
        if s >= size:
            del heap.free[a]
            if s - size >= MINSIZE:
                heap.free[a + size] = s - size
            else:
                size = s
            chunk = a
            break
    if not chunk:
        avail = mm.brk - heap.top
        if avail < size + MINSIZE:
            incr = M.PAGE_ALIGN(size + MINSIZE - avail + M_TOP_PAD)
            if not await sbrk(th, proc, incr):
                return None
        chunk = heap.top
        heap.top += size
    heap.used[chunk] = size
    await touch(th, chunk, 16, True)  # prev_size/size header
    return Region(chunk + 2 * SIZE_SZ, n, "malloc", chunk, False)


async def free(th: "Thread", proc: "Process", r: Region) -> None:
    """glibc ``free``: munmap an mmapped chunk; else coalesce, and trim the top past M_TRIM_THRESHOLD."""
    th.charge(150)
    if r.mmapped:
        await M.vm_munmap(th, proc.mm, r.chunk, M.PAGE_ALIGN(request2size(r.size) + SIZE_SZ))
        return
    heap = proc.heap
    a = r.chunk
    size = heap.used.pop(a)
    await touch(th, a, 16, True)  # the free chunk's fd/bk pointers
    # coalesce with the following free chunk and the preceding one
    nxt = heap.free.get(a + size)
    if nxt is not None:
        del heap.free[a + size]
        size += nxt
    i = heap.free.bisect_left(a) - 1
    if i >= 0:
        pa, ps = heap.free.peekitem(i)
        if pa + ps == a:
            del heap.free[pa]
            a, size = pa, ps + size
    if a + size == heap.top:
        heap.top = a  # back into the top chunk
        top_size = proc.mm.brk - heap.top
        if top_size >= M_TRIM_THRESHOLD:
            extra = (top_size - M_TOP_PAD - MINSIZE - 1) & ~(PAGE_SIZE - 1)
            if extra > 0:
                await sbrk(th, proc, -extra)
    else:
        heap.free[a] = size


@handler("malloc")
async def _malloc(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    r = await malloc(th, proc, step.size)
    if r is None:
        await exit_group(th, 1)
    regions_of(th)[step.name] = r  # type: ignore[assignment]


@handler("free")
async def _free(th: "Thread", step: Any) -> None:
    proc = _proc(th)
    r = _region(th, step.name)
    if r.kind != "malloc":
        raise ProgramError(f"free of region {step.name!r}, which comes from mmap")
    del regions_of(th)[step.name]
    await free(th, proc, r)


# --- fork ------------------------------------------------------------------------------------------------------

async def do_fork(th: "Thread", program: list[Any]) -> "Process | None":
    """``fork()``: a child process with a copy-on-write copy of the mm runs ``program``; None on ENOMEM."""
    from ._process import Process, run_thread

    proc = _proc(th)
    k = th.machine
    th.charge(k.costs.syscall_entry)
    mm = await M.dup_mmap(th, proc.mm)
    if mm is None:
        return None
    tgid = k.alloc_pid()
    child = Process(k, tgid, proc.comm, spec=proc.spec, parent=proc, oom_score_adj=proc.oom_score_adj)
    child.mm = mm
    mm.owner_pid = tgid
    child.heap = proc.heap.copy() if proc.heap is not None else None
    child.start_time = th.sim.now
    k.processes[tgid] = child
    cth = child.new_thread(allowed=th.allowed)
    child.regions[cth.pid] = dict(regions_of(th))
    trace_newtask(th, tgid, proc.comm, SIGCHLD, proc.oom_score_adj)
    k.start_thread(cth, run_thread, program)
    return child


@handler("fork")
async def _fork(th: "Thread", step: Any) -> None:
    if await do_fork(th, step.program) is None:
        await exit_group(th, 1)
