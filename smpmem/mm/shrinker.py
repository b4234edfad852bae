"""Shrinkers: models mm/shrinker.c (Linux 6.12): the registry, ``do_shrink_slab`` and ``shrink_slab``.

A shrinker is a cache outside the LRU lists that reclaim can ask to give
memory back (the dentry and inode caches, the slab allocator's own free
slabs). It has two callbacks, as ``struct shrinker`` has:

- ``count_objects(sc) -> int``: how many objects could be freed now; cheap,
  no locks that sleep (0 or :data:`SHRINK_EMPTY` when there are none);
- ``async scan_objects(th, sc) -> int``: try to free ``sc.nr_to_scan``
  objects, set ``sc.nr_scanned`` if it scanned another number, and return
  how many it freed, or :data:`SHRINK_STOP` when it cannot make progress.

``do_shrink_slab`` turns reclaim's pressure into a number of objects to scan
(``total_scan``) and calls ``scan_objects`` in batches of ``batch`` (default
``SHRINK_BATCH``); what it could not do is deferred to the next call
(``nr_deferred``, per node for ``SHRINKER_NUMA_AWARE`` shrinkers). Every call
is bracketed by ``mm_shrink_slab_start`` / ``mm_shrink_slab_end`` and adds
the objects scanned to ``/proc/vmstat``'s ``slabs_scanned``.

Pressure, two ways (both real history):

- 6.12 (``priority`` given): ``delta = (freeable >> priority) * 4 / seeks``
  (``freeable / 2`` when ``seeks`` is 0) and ``total_scan = (nr_deferred >>
  priority) + delta``, at most ``2 * freeable``.
- Linux 4.x (``priority=None``): proportional to the LRU scan that preceded
  it, ``delta = 4 * nr_scanned / seeks * freeable / (nr_eligible + 1)``, with
  that era's windup limits. The tracepoint is 6.12's, so ``priority`` prints
  as -1 in this mode.

``mm_account_reclaimed_pages`` is where a freed slab page is credited to the
reclaimer (``current->reclaim_state``): reclaim sets
``kernel.shrinkers.reclaim_state[th.uid]`` around its work.

Simplified: no memcg-aware shrinking (memcg is not modelled), no RCU or
refcounting of shrinkers (registration and unregistration are instantaneous
and never race with a walk in the model), no debugfs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

from ..trace.events import vmscan as vmscan_events

if TYPE_CHECKING:
    from ..sim import Thread

SHRINK_STOP = (1 << 64) - 1  # ~0UL: scan_objects cannot make progress (include/linux/shrinker.h)
SHRINK_EMPTY = (1 << 64) - 2  # ~0UL - 1: count_objects has nothing at all
DEFAULT_SEEKS = 2  # "a good number if you don't know better"
SHRINK_BATCH = 128  # mm/shrinker.c
SHRINKER_REGISTERED = 1 << 0
SHRINKER_ALLOCATED = 1 << 1
SHRINKER_NUMA_AWARE = 1 << 2
SHRINKER_MEMCG_AWARE = 1 << 3
SHRINKER_NONSLAB = 1 << 4

_SHRINKER_ADDR_BASE = 0xFFFF888000300000  # where the model's struct shrinker objects live (for %p)


@dataclass
class ShrinkControl:
    """``struct shrink_control``: what one ``do_shrink_slab`` call asks of a shrinker."""

    gfp_mask: int
    nid: int
    nr_to_scan: int = 0  # set before each scan_objects call
    nr_scanned: int = 0  # scan_objects may change it to what it really scanned
    memcg: Any = None


CountFn = Callable[[ShrinkControl], int]
ScanFn = Callable[["Thread", ShrinkControl], Awaitable[int]]


@final
class Shrinker:
    """``struct shrinker``.

    ``nr_deferred`` holds the scan work not done yet, one entry per node for
    a NUMA-aware shrinker, else one entry (index 0).
    """

    __slots__ = ("name", "count_objects", "scan_objects", "seeks", "batch", "flags", "nr_deferred",
                 "addr", "symbol", "id", "nr_calls", "nr_freed")

    def __init__(self, name: str, count_objects: CountFn, scan_objects: ScanFn, seeks: int, batch: int,
                 flags: int, nnodes: int, addr: int, symbol: str, sid: int) -> None:
        self.name = name
        self.count_objects = count_objects
        self.scan_objects = scan_objects
        self.seeks = seeks
        self.batch = batch
        self.flags = flags | SHRINKER_REGISTERED
        self.nr_deferred = [0] * (nnodes if flags & SHRINKER_NUMA_AWARE else 1)
        self.addr = addr
        self.symbol = symbol  # %pS of scan_objects in the tracepoints
        self.id = sid
        self.nr_calls = 0  # do_shrink_slab calls that scanned (model statistic)
        self.nr_freed = 0  # objects freed over the run (model statistic)

    def __repr__(self) -> str:
        return f"<shrinker {self.name}>"


@dataclass
class ReclaimState:
    """``struct reclaim_state``: pages freed outside the LRU (slab pages) during one reclaim pass."""

    reclaimed: int = 0


@final
class ShrinkerRegistry:
    """``shrinker_list`` (registration order) and the reclaim-state table. One per kernel: ``kernel.shrinkers``."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.shrinker_list: list[Shrinker] = []  # list_add_tail: registration order
        self.reclaim_state: dict[int, ReclaimState] = {}  # thread uid -> current->reclaim_state
        self._next_id = 0

    def __getitem__(self, name: str) -> Shrinker:
        for s in self.shrinker_list:
            if s.name == name:
                return s
        raise KeyError(f"no shrinker named {name!r}; registered: {', '.join(s.name for s in self.shrinker_list)}")


def shrinker_init(kernel: Any) -> ShrinkerRegistry:
    """Create ``kernel.shrinkers`` (boot; before any subsystem registers a shrinker)."""
    reg = ShrinkerRegistry(kernel)
    kernel.shrinkers = reg
    return reg


def register_shrinker(kernel: Any, name: str, count_objects: CountFn, scan_objects: ScanFn, *,
                      seeks: int = DEFAULT_SEEKS, batch: int = 0, flags: int = 0,
                      symbol: str | None = None) -> Shrinker:
    """``shrinker_alloc`` + ``shrinker_register``: add a shrinker at the tail of ``shrinker_list``.

    ``symbol`` is what the tracepoints print for ``scan_objects`` (``%pS``);
    default: the callback's name. ``batch`` 0 means ``SHRINK_BATCH``.
    """
    reg: ShrinkerRegistry = kernel.shrinkers
    if any(s.name == name for s in reg.shrinker_list):
        raise ValueError(f"register_shrinker: a shrinker named {name!r} is already registered")
    if seeks < 0 or batch < 0:
        raise ValueError(f"register_shrinker({name!r}): seeks and batch must be >= 0, got {seeks}, {batch}")
    sid = reg._next_id
    reg._next_id += 1
    nnodes = len(kernel.page_alloc.nodes) if getattr(kernel, "page_alloc", None) is not None else 1
    sym = symbol if symbol is not None else getattr(scan_objects, "__name__", name)
    s = Shrinker(name, count_objects, scan_objects, seeks, batch, flags, nnodes,
                 _SHRINKER_ADDR_BASE + 0x100 * sid, sym, sid)
    reg.shrinker_list.append(s)
    return s


def unregister_shrinker(kernel: Any, shrinker: Shrinker) -> None:
    """``shrinker_free``: take it off the list (its deferred work is dropped)."""
    reg: ShrinkerRegistry = kernel.shrinkers
    if shrinker not in reg.shrinker_list:
        raise ValueError(f"unregister_shrinker: {shrinker.name!r} is not registered")
    reg.shrinker_list.remove(shrinker)
    shrinker.flags &= ~SHRINKER_REGISTERED


def mm_account_reclaimed_pages(th: "Thread", pages: int) -> None:
    """``mm_account_reclaimed_pages`` (mm/vmscan.c): credit freed non-LRU pages to the reclaimer, if any."""
    rs = th.machine.shrinkers.reclaim_state.get(th.uid)  # type: ignore[attr-defined]
    if rs is not None:
        rs.reclaimed += pages


async def do_shrink_slab(th: "Thread", sc: ShrinkControl, shrinker: Shrinker, priority: int | None,
                         nr_scanned: int = 0, nr_eligible: int = 0) -> int:
    """``do_shrink_slab``: ask one shrinker to scan in proportion to the pressure; objects freed.

    Returns ``SHRINK_EMPTY`` when the shrinker had nothing (``shrink_slab``
    counts it as 0).
    """
    kernel = th.machine
    freeable = shrinker.count_objects(sc)
    if freeable == 0 or freeable == SHRINK_EMPTY:
        return freeable
    batch_size = shrinker.batch or SHRINK_BATCH
    nid = sc.nid if shrinker.flags & SHRINKER_NUMA_AWARE else 0
    # xchg_nr_deferred: take the deferred work so concurrent callers do not repeat it.
    nr = shrinker.nr_deferred[nid]
    shrinker.nr_deferred[nid] = 0
    if priority is not None:
        # 6.12
        if shrinker.seeks:
            delta = ((freeable >> priority) * 4) // shrinker.seeks
        else:
            delta = freeable // 2
        total_scan = (nr >> priority) + delta
        total_scan = min(total_scan, 2 * freeable)
        next_deferred_base = nr + delta
    else:
        # Linux 4.x: proportional to the LRU scan
        seeks = shrinker.seeks or DEFAULT_SEEKS
        delta = (4 * nr_scanned) // seeks
        delta = (delta * freeable) // (nr_eligible + 1)
        total_scan = nr + delta
        next_deferred_base = total_scan
        if delta < freeable // 4:
            total_scan = min(total_scan, freeable // 2)
        total_scan = min(total_scan, freeable * 2)
    tr = kernel.tracer
    if tr.on[vmscan_events.mm_shrink_slab_start.id]:
        tr.emit(vmscan_events.mm_shrink_slab_start, th, shr=shrinker.addr, shrink=shrinker.symbol, nid=sc.nid,
                nr_objects_to_shrink=nr, gfp_flags=sc.gfp_mask, cache_items=freeable, delta=delta,
                total_scan=total_scan, priority=-1 if priority is None else priority)
    freed = 0
    scanned = 0
    while total_scan >= batch_size or total_scan >= freeable:
        nr_to_scan = min(batch_size, total_scan)
        sc.nr_to_scan = nr_to_scan
        sc.nr_scanned = nr_to_scan
        ret = await shrinker.scan_objects(th, sc)
        if ret == SHRINK_STOP:
            break
        freed += ret
        kernel.vmstat["slabs_scanned"] += sc.nr_scanned
        total_scan -= sc.nr_scanned
        scanned += sc.nr_scanned
        if sc.nr_scanned <= 0:
            break  # a shrinker that scans nothing would loop forever (the kernel trusts it; the model does not)
        await th.sync()  # cond_resched()
    if priority is not None:
        next_deferred = max(nr + delta - scanned, 0)
        next_deferred = min(next_deferred, 2 * freeable)
        shrinker.nr_deferred[nid] += next_deferred
    else:
        next_deferred = max(next_deferred_base - scanned, 0)
        if next_deferred > 0:
            shrinker.nr_deferred[nid] += next_deferred
    new_nr = shrinker.nr_deferred[nid]
    shrinker.nr_calls += 1
    shrinker.nr_freed += freed
    if tr.on[vmscan_events.mm_shrink_slab_end.id]:
        tr.emit(vmscan_events.mm_shrink_slab_end, th, shr=shrinker.addr, nid=sc.nid, shrink=shrinker.symbol,
                unused_scan=nr, new_scan=new_nr, retval=freed, total_scan=total_scan)
    return freed


async def shrink_slab(th: "Thread", gfp: int, nid: int, priority: int | None, nr_scanned: int = 0,
                      nr_eligible: int = 0) -> int:
    """``shrink_slab``: every registered shrinker in list order; the objects freed in all.

    ``priority`` is reclaim's ``sc->priority`` (12 … 0); pass ``None`` with
    ``nr_scanned`` (LRU pages just scanned) and ``nr_eligible`` (LRU pages
    that could have been) for the 4.x proportional pressure. Every shrinker
    sees ``nid`` in its control; one that is not NUMA-aware keeps a single
    deferred count (6.12's code: the comment above ``shrink_slab`` saying
    such shrinkers "receive a node id of 0" is stale).
    """
    reg: ShrinkerRegistry = th.machine.shrinkers  # type: ignore[attr-defined]
    freed = 0
    for shrinker in list(reg.shrinker_list):
        if not shrinker.flags & SHRINKER_REGISTERED:
            continue  # unregistered during the walk
        sc = ShrinkControl(gfp, nid)
        ret = await do_shrink_slab(th, sc, shrinker, priority, nr_scanned, nr_eligible)
        if ret == SHRINK_EMPTY:
            ret = 0
        freed += ret
    await th.sync()  # cond_resched()
    return freed


__all__ = [
    "DEFAULT_SEEKS", "ReclaimState", "SHRINK_BATCH", "SHRINK_EMPTY", "SHRINK_STOP", "SHRINKER_NUMA_AWARE",
    "ShrinkControl", "Shrinker", "ShrinkerRegistry", "do_shrink_slab", "mm_account_reclaimed_pages",
    "register_shrinker", "shrink_slab", "shrinker_init", "unregister_shrinker",
]
