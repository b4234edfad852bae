"""Dirty pages, their writeback and the flusher: models mm/page-writeback.c and fs/fs-writeback.c (Linux 6.12).

Modelled:

- Dirty accounting (``folio_account_dirtied``, ``folio_clear_dirty_for_io``,
  ``__folio_start_writeback``, ``__folio_end_writeback``): NR_FILE_DIRTY,
  NR_WRITEBACK, NR_ZONE_WRITE_PENDING, NR_DIRTIED, NR_WRITTEN, the
  per-wb WB_RECLAIMABLE / WB_WRITEBACK counts, the dirty and writeback
  tags, ``writeback_dirty_folio``. A page moves through the states of
  :data:`WRITEBACK_STATES`; an illegal move raises and changes nothing.
- ``__mark_inode_dirty``: an inode's first dirty page puts it on its wb's
  ``b_dirty`` list with ``dirtied_when`` and arms the flusher's delayed
  wakeup (``wb_wakeup_delayed``).
- The flusher (``wb_workfn``; one kworker per disk, comm ``kworker/u<2N>:<i>``):
  works queued by sync(2); ``wb_check_start_all`` (``wakeup_flusher_threads``);
  kupdate-style writeback every ``dirty_writeback_centisecs`` of inodes
  dirtied more than ``dirty_expire_centisecs`` ago
  (``wb_check_old_data_flush``); background writeback while dirty memory is
  above the background threshold (``wb_check_background_flush``,
  ``wb_over_bg_thresh``). ``wb_writeback`` → ``queue_io`` →
  ``writeback_sb_inodes`` → ``__writeback_single_inode`` →
  ``write_cache_pages`` with the kernel's chunk size, ``requeue_inode`` and
  the events writeback_exec/start/written/wait, wbc_writepage and
  global_dirty_state.
- ``global_dirty_limits`` as the kernel computes it:
  ``global_dirtyable_memory`` (free pages above the reserves plus the file
  LRU, highmem excluded, + 1), ratios in per-PAGE_SIZE units or the
  ``*_bytes`` settings, bg_thresh at most half of thresh.
- ``balance_dirty_pages_ratelimited`` / ``balance_dirty_pages``: a task
  enters every ``nr_dirtied_pause`` pages (per-CPU ``bdp_ratelimits``
  against ``ratelimit_pages``); below the freerun ceiling
  ``(thresh + bg_thresh) / 2`` it runs free with the kernel's poll interval;
  above it, it starts background writeback and sleeps ``pause`` jiffies
  (HZ = 250) computed from the kernel's ``pos_ratio_polynom`` around the
  setpoint ``(freerun + limit) / 2``, ``wb_max_pause`` (≤ 200 ms) and
  ``wb_min_pause``; the ``balance_dirty_pages`` event carries the
  kernel's fields (ratelimits in KB/s, times in ms).
- Writeback errors: a failed write leaves the page dirty (it is redirtied at
  completion and written again later), records the error on the mapping
  (``mapping_set_error``: errseq for fsync, AS_EIO), and never drops data.

Simplified (documented choices):

- The throttle keeps the global control line only: the per-wb line of
  ``wb_position_ratio`` and the per-bdi threshold share (``__wb_calc_thresh``,
  fprop of completions) are not modelled: ``wb_thresh`` = ``thresh``.
  ``dirty_ratelimit`` is the estimated write bandwidth itself (the balanced
  rate of one dirtier) instead of the kernel's ``wb_update_dirty_ratelimit``
  feedback loop; with N dirtiers ``pos_ratio`` drops until they share it.
  ``wb_update_write_bandwidth`` is the kernel's (3 s period, spike filter).
- No cgroup writeback, laptop mode, strictlimit, dirty_time, ``b_dirty_time``
  or per-task dirty leaks; no ``PAGECACHE_TAG_TOWRITE`` (a data-integrity
  pass writes the dirty pages it snapshots when it starts).
- Completion-side updates (end of writeback in interrupt context) happen at
  the completion instant without taking ``xa_lock`` (the engine makes them
  atomic); submission-side updates take the locks.

Lock order (with :mod:`smpmem.mm.filemap`)::

    inode->i_rwsem
      folio lock (PG_locked)
        mapping->i_pages (xa_lock)
        wb->list_lock
        lruvec->lru_lock
"""

from __future__ import annotations

from collections import OrderedDict, deque
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..sim import ModelBug, SpinLock
from ..trace.events import writeback as wb_events
from .block import (
    REQ_OP_WRITE,
    REQ_SYNC,
    SECTORS_PER_BLOCK,
    BIO_MAX_PAGES,
    Bio,
    WaitQueue,
    _ctx_of,
    submit_bio,
)
from .fs import I_DIRTY, I_DIRTY_PAGES, I_FREEING, I_NEW, I_SYNC, I_WILL_FREE
from .page import PG_active, PG_dirty, PG_locked, PG_lru, PG_reclaim, PG_unevictable, PG_writeback, PAGE_SHIFT, Page
from .pagemap import WAIT_WRITEBACK, AddressSpace, folio_lock, folio_unlock, mapping_set_error
from .zone import (
    NR_ACTIVE_FILE,
    NR_DIRTIED,
    NR_FILE_DIRTY,
    NR_FREE_PAGES,
    NR_INACTIVE_FILE,
    NR_VMSCAN_WRITE,
    NR_WRITEBACK,
    NR_WRITTEN,
    NR_ZONE_ACTIVE_FILE,
    NR_ZONE_INACTIVE_FILE,
    NR_ZONE_WRITE_PENDING,
)

if TYPE_CHECKING:
    from ..sim import Thread
    from .fs import Inode

# --- page states (habit 10: the table is the truth; the accounting follows it) ---------------
CLEAN = "clean"
DIRTY = "dirty"
WRITEBACK = "writeback"
DIRTY_WRITEBACK = "dirty+writeback"
SET_DIRTY = "set_dirty"  # folio_mark_dirty / the error redirty
START_WRITEBACK = "start_writeback"  # folio_clear_dirty_for_io + __folio_start_writeback
END_WRITEBACK = "end_writeback"  # __folio_end_writeback, I/O succeeded
END_WRITEBACK_ERROR = "end_writeback_error"  # __folio_end_writeback after -EIO: the page is redirtied

WRITEBACK_STATES: dict[str, dict[str, str]] = {
    CLEAN: {SET_DIRTY: DIRTY},
    DIRTY: {SET_DIRTY: DIRTY, START_WRITEBACK: WRITEBACK},
    WRITEBACK: {SET_DIRTY: DIRTY_WRITEBACK, END_WRITEBACK: CLEAN, END_WRITEBACK_ERROR: DIRTY},
    DIRTY_WRITEBACK: {SET_DIRTY: DIRTY_WRITEBACK, END_WRITEBACK: DIRTY, END_WRITEBACK_ERROR: DIRTY},
}
_STATE_OF = {0: CLEAN, 1 << PG_dirty: DIRTY, 1 << PG_writeback: WRITEBACK,
             (1 << PG_dirty) | (1 << PG_writeback): DIRTY_WRITEBACK}
_FLAGS_OF = {v: k for k, v in _STATE_OF.items()}
_DW = (1 << PG_dirty) | (1 << PG_writeback)


class IllegalTransition(ModelBug):
    """A page asked to move by an event its writeback state does not allow."""


def page_wb_state(page: Page) -> str:
    """The page's state in :data:`WRITEBACK_STATES`, from PG_dirty and PG_writeback."""
    return _STATE_OF[page.flags & _DW]


def wb_transition(page: Page, event: str) -> str:
    """Move ``page`` by ``event``; returns the old state. An illegal move raises and changes nothing."""
    old = _STATE_OF[page.flags & _DW]
    new = WRITEBACK_STATES[old].get(event)
    if new is None:
        raise IllegalTransition(f"page pfn 0x{page.pfn:x} (index {page.index}): event {event!r} is not allowed "
                                f"in state {old!r}")
    page.flags = (page.flags & ~_DW) | _FLAGS_OF[new]
    return old


# --- constants (include/linux/writeback.h, mm/page-writeback.c, fs/fs-writeback.c) ----------
HZ = 250  # CONFIG_HZ_250 (Debian): jiffies for the throttle arithmetic
NS_PER_JIFFY = 1_000_000_000 // HZ
MAX_PAUSE = max(HZ // 5, 1)
DIRTY_POLL_THRESH = 128 >> (PAGE_SHIFT - 10)
BANDWIDTH_INTERVAL = max(HZ // 5, 1)
WB_BANDWIDTH_IDLE_JIF = HZ
RATELIMIT_CALC_SHIFT = 10
INIT_BW = (100 << (20 - PAGE_SHIFT))  # 100 MB/s in pages
DIRTY_SCOPE = 8
MIN_WRITEBACK_PAGES = 4096 >> (PAGE_SHIFT - 10)
LONG_MAX = (1 << 63) - 1
WB_SYNC_NONE, WB_SYNC_ALL = 0, 1
# enum wb_reason
WB_REASON_BACKGROUND, WB_REASON_VMSCAN, WB_REASON_SYNC, WB_REASON_PERIODIC = 0, 1, 2, 3
WB_REASON_LAPTOP_TIMER, WB_REASON_FS_FREE_SPACE, WB_REASON_FORKER_THREAD, WB_REASON_FOREIGN_FLUSH = 4, 5, 6, 7
SWAP_CLUSTER_MAX = 32


class Pageout(Enum):
    """``pageout_t`` (mm/vmscan.c): what :func:`writeback_single_page` did with a reclaim candidate."""

    KEEP = "keep"  # failed to write; page still locked
    ACTIVATE = "activate"  # move to the active list; page still locked
    SUCCESS = "success"  # I/O submitted; page unlocked
    CLEAN = "clean"  # already clean; page still locked


def ilog2(x: int) -> int:
    return max(x, 1).bit_length() - 1


def roundup_pow_of_two(x: int) -> int:
    return 1 << (max(x, 1) - 1).bit_length()


def jiffies(kernel: Any) -> int:
    return kernel.sim.now // NS_PER_JIFFY


class WritebackControl:
    """``struct writeback_control``."""

    __slots__ = ("nr_to_write", "pages_skipped", "sync_mode", "for_kupdate", "for_background", "for_reclaim",
                 "for_sync", "range_cyclic", "range_start", "range_end", "err")

    def __init__(self, nr_to_write: int, sync_mode: int = WB_SYNC_NONE, for_kupdate: bool = False,
                 for_background: bool = False, for_reclaim: bool = False, for_sync: bool = False,
                 range_cyclic: bool = True, range_start: int = 0, range_end: int = LONG_MAX) -> None:
        self.nr_to_write = nr_to_write
        self.pages_skipped = 0
        self.sync_mode = sync_mode
        self.for_kupdate = for_kupdate
        self.for_background = for_background
        self.for_reclaim = for_reclaim
        self.for_sync = for_sync
        self.range_cyclic = range_cyclic
        self.range_start = range_start
        self.range_end = range_end
        self.err = 0


class WbWork:
    """``struct wb_writeback_work``: what one wb_writeback() pass is asked to do."""

    __slots__ = ("nr_pages", "sync_mode", "for_kupdate", "for_background", "for_sync", "range_cyclic",
                 "reason", "done", "finished")

    def __init__(self, nr_pages: int, reason: int, sync_mode: int = WB_SYNC_NONE, for_kupdate: bool = False,
                 for_background: bool = False, for_sync: bool = False, range_cyclic: bool = True) -> None:
        self.nr_pages = nr_pages
        self.sync_mode = sync_mode
        self.for_kupdate = for_kupdate
        self.for_background = for_background
        self.for_sync = for_sync
        self.range_cyclic = range_cyclic
        self.reason = reason
        self.done: WaitQueue | None = None
        self.finished = False


class BdiWriteback:
    """``struct bdi_writeback`` of one disk: dirty inode lists, work list, flusher, counters, bandwidth.

    Locking: ``b_dirty``, ``b_io``, ``b_more_io`` and an inode's
    ``dirtied_when`` under ``list_lock`` (``&wb->list_lock``);
    ``work_list`` under ``work_lock`` (atomic here); the counters atomic.
    ``b_dirty`` runs from the oldest ``dirtied_when`` (first) to the newest.
    """

    def __init__(self, kernel: Any, bdev: Any, comm: str) -> None:
        self.kernel = kernel
        self.bdev = bdev
        self.name = bdev.bdi_name  # bdi_dev_name(): "8:0"
        self.list_lock = SpinLock(kernel, "&wb->list_lock")
        self.b_dirty: OrderedDict[Any, None] = OrderedDict()
        self.b_io: deque[Any] = deque()
        self.b_more_io: deque[Any] = deque()
        self.work_list: deque[WbWork] = deque()
        self.thread = kernel.kernel_thread(comm)
        self.started = False
        self.sleeping = False
        self.timer_at: int | None = None  # the delayed wakeup (wb->dwork) when armed
        self.waitq = WaitQueue(f"flusher {self.name}")
        self.sync_wait = WaitQueue(f"I_SYNC {self.name}")  # inode_sleep_on_writeback
        self.running = False  # WB_writeback_running
        self.start_all_reason: int | None = None  # WB_start_all
        self.last_old_flush = 0
        self.reclaimable = 0  # WB_RECLAIMABLE
        self.writeback = 0  # WB_WRITEBACK
        self.dirtied = 0  # WB_DIRTIED
        self.written = 0  # WB_WRITTEN
        self.write_bandwidth = INIT_BW  # pages/s
        self.avg_write_bandwidth = INIT_BW
        self.dirty_ratelimit = INIT_BW
        self.bw_time_stamp = 0  # jiffies
        self.written_stamp = 0
        self.dirty_exceeded = False

    def has_dirty_io(self) -> bool:
        """``wb_has_dirty_io``."""
        return bool(self.b_dirty or self.b_io or self.b_more_io)

    def __repr__(self) -> str:
        return f"<bdi_writeback {self.name}>"


class WritebackState:
    """The global side: ``global_wb_domain``, per-task throttle state, ``ratelimit_pages``; ``kernel.writeback``."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.wbs: dict[str, BdiWriteback] = {}  # by disk name
        self.dirty_limit = 0  # global_wb_domain.dirty_limit
        self.dirty_limit_tstamp = 0
        self.ratelimit_pages = 32
        self.bdp_ratelimits = [0] * len(kernel.cpus)
        self.task: dict[int, list[int]] = {}  # thread uid -> [nr_dirtied, nr_dirtied_pause, dirty_paused_when]
        self.folio_mkclean: Any = None  # rmap hook: write-protect a page's PTEs before writeback

    def task_state(self, th: "Thread") -> list[int]:
        st = self.task.get(th.uid)
        if st is None:
            st = self.task[th.uid] = [0, 128 >> (PAGE_SHIFT - 10), 0]
        return st


# --- dirty limits -------------------------------------------------------------------------

def global_dirtyable_memory(kernel: Any) -> int:
    """``global_dirtyable_memory``: free pages above the reserves plus the file LRU, highmem excluded, + 1."""
    pa = kernel.page_alloc
    x = 0
    high = 0
    for z in pa.zones:
        v = z.vm_stat
        x += v[NR_FREE_PAGES]
        if z.is_highmem:
            high += v[NR_FREE_PAGES] + v[NR_ZONE_INACTIVE_FILE] + v[NR_ZONE_ACTIVE_FILE]
    x -= min(x, pa.totalreserve_pages)
    for p in pa.nodes:
        x += p.vm_stat[NR_INACTIVE_FILE] + p.vm_stat[NR_ACTIVE_FILE]
    if high:
        x -= min(x, high)  # highmem_dirtyable_memory, vm_highmem_is_dirtyable = 0
    return x + 1


def domain_dirty_limits(kernel: Any, avail: int) -> tuple[int, int]:
    """``domain_dirty_limits`` of the global domain: (bg_thresh, thresh) in pages."""
    t = kernel.tunables
    page = 1 << PAGE_SHIFT
    ratio = t.dirty_ratio * page // 100
    bg_ratio = t.dirty_background_ratio * page // 100
    thresh = -(-t.dirty_bytes // page) if t.dirty_bytes else ratio * avail // page
    bg = -(-t.dirty_background_bytes // page) if t.dirty_background_bytes else bg_ratio * avail // page
    thresh = min(thresh, (1 << 32) - 1)
    if bg >= thresh:
        bg = thresh // 2
    return bg, thresh


def global_dirty_limits(kernel: Any) -> tuple[int, int]:
    """``global_dirty_limits``: (background, dirty) thresholds in pages (for /proc/vmstat; no event)."""
    return domain_dirty_limits(kernel, global_dirtyable_memory(kernel))


def _node_sum(kernel: Any, item: int) -> int:
    return sum(p.vm_stat[item] for p in kernel.page_alloc.nodes)


def trace_global_dirty_state(kernel: Any, who: Any, bg: int, thresh: int) -> None:
    tr = kernel.tracer
    if tr.on[wb_events.global_dirty_state.id]:
        tr.emit(wb_events.global_dirty_state, who, nr_dirty=_node_sum(kernel, NR_FILE_DIRTY),
                nr_writeback=_node_sum(kernel, NR_WRITEBACK), background_thresh=bg, dirty_thresh=thresh,
                dirty_limit=kernel.writeback.dirty_limit, nr_dirtied=_node_sum(kernel, NR_DIRTIED),
                nr_written=_node_sum(kernel, NR_WRITTEN))


def _limits_traced(kernel: Any, who: Any) -> tuple[int, int, int]:
    """``domain_dirty_avail`` + ``domain_dirty_limits`` with its trace point: (avail, bg, thresh)."""
    avail = global_dirtyable_memory(kernel)
    bg, thresh = domain_dirty_limits(kernel, avail)
    trace_global_dirty_state(kernel, who, bg, thresh)
    return avail, bg, thresh


def writeback_set_ratelimit(kernel: Any) -> None:
    """``writeback_set_ratelimit``: ratelimit_pages = dirty_thresh / (CPUs × 32), at least 16."""
    ws: WritebackState = kernel.writeback
    _bg, thresh = global_dirty_limits(kernel)
    ws.dirty_limit = max(ws.dirty_limit, thresh)
    ws.ratelimit_pages = max(thresh // (len(kernel.cpus) * 32), 16)


# --- marking dirty ------------------------------------------------------------------------

def _mod_dirty(page: Page, delta: int) -> None:
    z = page.zone
    z.zone_pgdat.vm_stat[NR_FILE_DIRTY] += delta
    z.vm_stat[NR_ZONE_WRITE_PENDING] += delta


def folio_account_dirtied(kernel: Any, who: Any, page: Page, mapping: AddressSpace) -> None:
    """``folio_account_dirtied``: the counters and the ``writeback_dirty_folio`` event of a newly dirty page."""
    tr = kernel.tracer
    inode = mapping.host
    wb: BdiWriteback = inode.i_sb.wb
    if tr.on[wb_events.writeback_dirty_folio.id]:
        tr.emit(wb_events.writeback_dirty_folio, who, name=wb.name, ino=inode.i_ino, index=page.index)
    _mod_dirty(page, 1)
    page.zone.zone_pgdat.vm_stat[NR_DIRTIED] += 1
    wb.reclaimable += 1
    wb.dirtied += 1
    th = who if hasattr(who, "uid") else None
    if th is not None:
        ws: WritebackState = kernel.writeback
        ws.task_state(th)[0] += 1
        ws.bdp_ratelimits[th.cpu.id] += 1


def _tag_dirty(kernel: Any, who: Any, page: Page, mapping: AddressSpace) -> None:
    """``__folio_mark_dirty`` under xa_lock: account and tag (the page already has PG_dirty)."""
    folio_account_dirtied(kernel, who, page, mapping)
    mapping.dirty.add(page.index)
    kernel.pagecache.nr_dirty_tagged += 1


async def folio_mark_dirty(th: "Thread", page: Page) -> bool:
    """``folio_mark_dirty`` → ``filemap_dirty_folio``: True if the page was clean and is now dirty.

    For a page-cache page: PG_dirty, the accounting and the dirty tag under
    ``xa_lock``, then ``__mark_inode_dirty(I_DIRTY_PAGES)``. A page not in a
    mapping only gets PG_dirty.
    """
    if page.flags & (1 << PG_dirty):
        return False
    mapping: AddressSpace | None = page.mapping
    if not isinstance(mapping, AddressSpace):
        page.flags |= 1 << PG_dirty
        return True
    k = th.machine
    await mapping.xa_lock.acquire_irqsave(th, site="__folio_mark_dirty+0x5d/0x1f0")
    if page.flags & (1 << PG_dirty) or page.mapping is not mapping:
        await mapping.xa_lock.release_irqrestore(th)
        return False
    wb_transition(page, SET_DIRTY)
    _tag_dirty(k, th, page, mapping)
    await mapping.xa_lock.release_irqrestore(th)
    await __mark_inode_dirty(th, mapping.host, I_DIRTY_PAGES)
    return True


def _inode_dirty_locked(kernel: Any, inode: "Inode", flags: int) -> bool:
    """The list work of ``__mark_inode_dirty`` (wb->list_lock held): True if the flusher's delayed wakeup is due."""
    if (inode.i_state & flags) == flags:
        return False
    was_dirty = inode.i_state & I_DIRTY
    inode.i_state |= flags
    if was_dirty or inode.i_state & I_FREEING or inode.wb_list is not None:
        return False  # already listed (b_dirty stays ordered by dirtied_when), or on b_io / b_more_io
    wb: BdiWriteback = inode.i_sb.wb
    wakeup = not wb.has_dirty_io()
    inode.dirtied_when = kernel.sim.now
    wb.b_dirty[inode] = None
    inode.wb_list = "b_dirty"
    return wakeup


async def __mark_inode_dirty(th: "Thread", inode: "Inode", flags: int) -> None:
    """``__mark_inode_dirty``: the first dirtying puts the inode on ``b_dirty`` and arms the flusher."""
    if (inode.i_state & flags) == flags:
        return
    wb: BdiWriteback = inode.i_sb.wb
    await wb.list_lock.acquire(th, site="__mark_inode_dirty+0x1b2/0x3c0")
    wakeup = _inode_dirty_locked(th.machine, inode, flags)
    await wb.list_lock.release(th)
    if wakeup:
        wb_wakeup_delayed(wb)


# --- writeback of one page ----------------------------------------------------------------

def _start_writeback_locked(kernel: Any, page: Page, mapping: AddressSpace, reclaim: bool) -> None:
    """``folio_clear_dirty_for_io`` + ``__folio_start_writeback`` (page locked, xa_lock held)."""
    wb_transition(page, START_WRITEBACK)
    wb: BdiWriteback = mapping.host.i_sb.wb
    pc = kernel.pagecache
    mapping.dirty.discard(page.index)
    pc.nr_dirty_tagged -= 1
    wb.reclaimable -= 1
    page.zone.zone_pgdat.vm_stat[NR_FILE_DIRTY] -= 1  # NR_ZONE_WRITE_PENDING: -1 dirty, +1 writeback
    page.zone.zone_pgdat.vm_stat[NR_WRITEBACK] += 1
    mapping.writeback.add(page.index)
    pc.nr_writeback_tagged += 1
    wb.writeback += 1
    if reclaim:
        page.flags |= 1 << PG_reclaim


def folio_end_writeback(kernel: Any, page: Page, err: int, who: Any = None) -> None:
    """``folio_end_writeback`` (interrupt context): clear PG_writeback, account, wake waiters.

    On an error the page is redirtied (it stays in the cache, dirty, to be
    written again) and the error recorded on the mapping.
    """
    mapping: AddressSpace = page.mapping
    inode = mapping.host
    wb: BdiWriteback = inode.i_sb.wb
    pc = kernel.pagecache
    old = wb_transition(page, END_WRITEBACK_ERROR if err else END_WRITEBACK)
    mapping.writeback.discard(page.index)
    pc.nr_writeback_tagged -= 1
    wb.writeback -= 1
    wb.written += 1
    pgdat = page.zone.zone_pgdat
    pgdat.vm_stat[NR_WRITEBACK] -= 1
    page.zone.vm_stat[NR_ZONE_WRITE_PENDING] -= 1
    pgdat.vm_stat[NR_WRITTEN] += 1
    if err:
        mapping_set_error(mapping, err)
        if old == WRITEBACK:  # not redirtied meanwhile: it is dirty again now (folio_redirty_for_writepage)
            _tag_dirty(kernel, who if who is not None else _ctx_of(kernel.cpus[0]), page, mapping)
            if _inode_dirty_locked(kernel, inode, I_DIRTY_PAGES):
                wb_wakeup_delayed(wb)
    if page.flags & (1 << PG_reclaim):
        page.flags &= ~(1 << PG_reclaim)
        if not err:
            folio_rotate_reclaimable(kernel, page)
    kernel.pagecache.waits.wake(page, PG_writeback)
    if wb.sync_wait:
        wb.sync_wait.wake_all(kernel.sim, kernel.costs.sleep_wakeup)


def folio_rotate_reclaimable(kernel: Any, page: Page) -> None:
    """``folio_rotate_reclaimable`` + ``lru_move_tail`` (mm/swap.c): a page reclaim marked for immediate
    reclaim goes to the tail of the inactive list when its writeback ends (active or not), unless it is
    locked, dirty again or unevictable (pgrotated)."""
    f = page.flags
    if f & ((1 << PG_locked) | (1 << PG_dirty) | (1 << PG_unevictable)) or not f & (1 << PG_lru):
        return
    lruvec = page.zone.zone_pgdat.lruvec
    lruvec.del_folio(page)
    page.flags &= ~(1 << PG_active)
    lruvec.add_folio_tail(page)
    kernel.vmstat["pgrotated"] += 1


async def folio_wait_writeback(th: "Thread", page: Page) -> None:
    """``folio_wait_writeback``: sleep until PG_writeback clears (the caller holds a reference)."""
    k = th.machine
    while page.flags & (1 << PG_writeback):
        tr = k.tracer
        mapping = page.mapping
        if tr.on[wb_events.folio_wait_writeback.id] and isinstance(mapping, AddressSpace):
            tr.emit(wb_events.folio_wait_writeback, th, name=mapping.host.i_sb.wb.name, ino=mapping.host.i_ino,
                    index=page.index)
        await k.pagecache.waits.wait(th, page, WAIT_WRITEBACK)


def _end_bio_write(bio: Bio) -> None:
    """``mpage_write_end_io``: end writeback of every page of the bio."""
    kernel = bio.private
    who = _ctx_of(bio.cpu)
    for page, _sector in bio.vecs:
        folio_end_writeback(kernel, page, bio.status, who)


class _BioBuilder:
    """Collects pages into bios of contiguous sectors (``mpage_writepages``), submitting full or broken runs."""

    __slots__ = ("kernel", "bdev", "bio", "next_sector", "flags", "submitted")

    def __init__(self, kernel: Any, bdev: Any, flags: int) -> None:
        self.kernel = kernel
        self.bdev = bdev
        self.bio: Bio | None = None
        self.next_sector = -1
        self.flags = flags
        self.submitted = 0

    async def add(self, th: "Thread", page: Page, sector: int) -> None:
        bio = self.bio
        if bio is not None and (sector != self.next_sector or len(bio.vecs) >= BIO_MAX_PAGES):
            await self.flush(th)
            bio = None
        if bio is None:
            bio = self.bio = Bio(self.bdev, REQ_OP_WRITE, sector, 0, [], end_io=_end_bio_write,
                                 flags=self.flags, private=self.kernel)
        bio.vecs.append((page, sector))
        bio.nr_sectors += SECTORS_PER_BLOCK
        self.next_sector = sector + SECTORS_PER_BLOCK

    async def flush(self, th: "Thread") -> None:
        bio = self.bio
        if bio is not None:
            self.bio = None
            self.submitted += 1
            await submit_bio(th, bio)


def _trace_wbc(kernel: Any, th: "Thread", wb: BdiWriteback, wbc: WritebackControl) -> None:
    tr = kernel.tracer
    if tr.on[wb_events.wbc_writepage.id]:
        tr.emit(wb_events.wbc_writepage, th, name=wb.name, nr_to_write=wbc.nr_to_write,
                pages_skipped=wbc.pages_skipped, sync_mode=wbc.sync_mode, for_kupdate=int(wbc.for_kupdate),
                for_background=int(wbc.for_background), for_reclaim=int(wbc.for_reclaim),
                range_cyclic=int(wbc.range_cyclic), range_start=wbc.range_start, range_end=wbc.range_end,
                cgroup_ino=1)


async def write_cache_pages(th: "Thread", mapping: AddressSpace, wbc: WritebackControl) -> int:
    """``write_cache_pages`` / ``writeback_iter`` with mpage bios: write the mapping's dirty pages.

    WB_SYNC_NONE skips pages under writeback and stops when ``nr_to_write``
    is spent; WB_SYNC_ALL waits for them and writes every page dirty when it
    started. Returns 0 (errors are reported at completion, on the mapping).
    """
    k = th.machine
    inode = mapping.host
    fs = inode.i_sb.fs
    disk = inode.disk
    wb: BdiWriteback = inode.i_sb.wb
    costs = k.costs
    sync = wbc.sync_mode == WB_SYNC_ALL
    if wbc.range_cyclic:
        start, end = mapping.writeback_index, LONG_MAX
    else:
        start, end = wbc.range_start >> PAGE_SHIFT, wbc.range_end >> PAGE_SHIFT
    todo = list(mapping.dirty.irange(start, end))
    builder = _BioBuilder(k, fs.disk, REQ_SYNC if sync else 0)
    next_index = 0
    done = True
    for idx in todo:
        page = mapping.i_pages.get(idx)
        if page is None:
            continue
        page._refcount += 1
        th.charge(costs.writepage)
        await folio_lock(th, page)
        if page.mapping is not mapping or not page.flags & (1 << PG_dirty):
            folio_unlock(k.pagecache.waits, page)
            await _put(th, page)
            continue
        if page.flags & (1 << PG_writeback):
            if not sync:
                folio_unlock(k.pagecache.waits, page)
                await _put(th, page)
                continue
            await folio_wait_writeback(th, page)
        if k.writeback.folio_mkclean is not None and page._mapcount >= 0:
            await k.writeback.folio_mkclean(th, page)  # rmap: write-protect the PTEs (folio_clear_dirty_for_io)
        _trace_wbc(k, th, wb, wbc)
        await mapping.xa_lock.acquire_irqsave(th, site="__folio_start_writeback+0x8e/0x2b0")
        _start_writeback_locked(k, page, mapping, wbc.for_reclaim)
        await mapping.xa_lock.release_irqrestore(th)
        sector = fs.bmap(disk, idx)
        if sector is None:
            raise ModelBug(f"ino {inode.i_ino} page {idx} is dirty but has no block")
        await builder.add(th, page, sector)
        folio_unlock(k.pagecache.waits, page)
        await _put(th, page)
        wbc.nr_to_write -= 1
        next_index = idx + 1
        if wbc.nr_to_write <= 0 and not sync:
            done = False
            break
    await builder.flush(th)
    if wbc.range_cyclic:
        mapping.writeback_index = 0 if done else next_index
    return 0


async def _put(th: "Thread", page: Page) -> None:
    """Drop a reference taken for a walk (``folio_put``); the page cache keeps its own."""
    page._refcount -= 1
    if page._refcount <= 0:
        raise ModelBug(f"pfn 0x{page.pfn:x}: the page cache's reference went away during writeback")


async def do_writepages(th: "Thread", mapping: AddressSpace, wbc: WritebackControl) -> int:
    """``do_writepages``: the mapping's writepages (mpage for files), then a bandwidth update."""
    ret = await write_cache_pages(th, mapping, wbc)
    wb = mapping.host.i_sb.wb
    now = jiffies(th.machine)
    if now >= wb.bw_time_stamp + BANDWIDTH_INTERVAL:
        wb_update_bandwidth(th.machine, wb, now)
    return ret


async def filemap_fdatawait_range(th: "Thread", mapping: AddressSpace, start: int, end: int) -> int:
    """``filemap_fdatawait_range_keep_errors``: wait for writeback of the range; the mapping's AS_ errors stay."""
    for idx in list(mapping.writeback.irange(start >> PAGE_SHIFT, end >> PAGE_SHIFT)):
        page = mapping.i_pages.get(idx)
        if page is None or not page.flags & (1 << PG_writeback):
            continue
        page._refcount += 1
        await folio_wait_writeback(th, page)
        await _put(th, page)
    return 0


async def filemap_write_and_wait_range(th: "Thread", mapping: AddressSpace, start: int = 0,
                                       end: int = LONG_MAX) -> int:
    """``file_write_and_wait_range`` without the errseq part: WB_SYNC_ALL write, then wait."""
    if not mapping.nrpages:
        return 0
    wbc = WritebackControl(LONG_MAX, WB_SYNC_ALL, range_cyclic=False, range_start=start, range_end=end)
    await do_writepages(th, mapping, wbc)
    await filemap_fdatawait_range(th, mapping, start, end)
    return 0


async def writeback_single_page(th: "Thread", page: Page, for_reclaim: bool = True) -> Pageout:
    """``pageout`` → ``writepage`` for one locked page-cache page: asynchronous writeback.

    The caller holds the page lock and a reference. A clean page gives
    ``Pageout.CLEAN`` (still locked); a page outside any mapping or with
    no block ``KEEP`` (still locked); else the write is submitted, the page
    is unlocked and ``SUCCESS`` returned (``PG_reclaim`` set when
    ``for_reclaim``: at completion it rotates to the inactive tail). The
    ``mm_vmscan_write_folio`` event is reclaim's to emit.
    """
    k = th.machine
    if not page.flags & (1 << PG_dirty):
        return Pageout.CLEAN
    mapping = page.mapping
    if not isinstance(mapping, AddressSpace) or mapping.nr_blockdev:
        return Pageout.KEEP
    if page.flags & (1 << PG_writeback):
        return Pageout.KEEP
    inode = mapping.host
    fs = inode.i_sb.fs
    sector = fs.bmap(inode.disk, page.index)
    if sector is None:
        return Pageout.KEEP
    wb: BdiWriteback = inode.i_sb.wb
    wbc = WritebackControl(SWAP_CLUSTER_MAX, WB_SYNC_NONE, for_reclaim=for_reclaim, range_cyclic=False)
    if k.writeback.folio_mkclean is not None and page._mapcount >= 0:
        await k.writeback.folio_mkclean(th, page)
    _trace_wbc(k, th, wb, wbc)
    await mapping.xa_lock.acquire_irqsave(th, site="__folio_start_writeback+0x8e/0x2b0")
    _start_writeback_locked(k, page, mapping, for_reclaim)
    await mapping.xa_lock.release_irqrestore(th)
    th.charge(k.costs.writepage)
    bio = Bio(fs.disk, REQ_OP_WRITE, sector, SECTORS_PER_BLOCK, [(page, sector)], end_io=_end_bio_write,
              private=k)
    if for_reclaim:
        page.zone.zone_pgdat.vm_stat[NR_VMSCAN_WRITE] += 1
    folio_unlock(k.pagecache.waits, page)
    await submit_bio(th, bio)
    return Pageout.SUCCESS



# --- bandwidth and the throttle --------------------------------------------------------------

def wb_update_bandwidth(kernel: Any, wb: BdiWriteback, now: int) -> None:
    """``__wb_update_bandwidth``: the write bandwidth estimate (``wb_update_write_bandwidth``) and dirty_limit."""
    elapsed = now - wb.bw_time_stamp
    if elapsed <= 0:
        return
    if elapsed > WB_BANDWIDTH_IDLE_JIF and wb.writeback == 0:
        # wb_bandwidth_estimate_start: idle for a while, restart the measurement
        wb.written_stamp = wb.written
        wb.bw_time_stamp = now
        return
    period = roundup_pow_of_two(3 * HZ)
    written = wb.written
    bw = (written - min(written, wb.written_stamp)) * HZ
    avg = wb.avg_write_bandwidth
    old = wb.write_bandwidth
    if elapsed > period:
        bw //= elapsed
        avg = bw
    else:
        bw += old * (period - elapsed)
        bw >>= ilog2(period)
        if avg > old and old >= bw:
            avg -= (avg - old) >> 3
        if avg < old and old <= bw:
            avg += (old - avg) >> 3
    wb.write_bandwidth = max(bw, 1)
    wb.avg_write_bandwidth = max(avg, 1)
    wb.dirty_ratelimit = wb.avg_write_bandwidth  # simplified: the balanced rate of one dirtier
    wb.written_stamp = written
    wb.bw_time_stamp = now


def update_dirty_limit(ws: WritebackState, thresh: int, dirty: int) -> None:
    """``update_dirty_limit``: follow a rising thresh at once, a falling one slowly (1/32 per update)."""
    limit = ws.dirty_limit
    if limit < thresh:
        ws.dirty_limit = thresh
        return
    thresh = max(thresh, dirty)
    if limit > thresh:
        ws.dirty_limit = limit - ((limit - thresh) >> 5)


def pos_ratio_polynom(setpoint: int, dirty: int, limit: int) -> int:
    """``pos_ratio_polynom``: 1 + ((setpoint - dirty) / (limit - setpoint))^3, in 1/1024, clamped to [0, 2]."""
    num = (setpoint - dirty) << RATELIMIT_CALC_SHIFT
    den = (limit - setpoint) | 1
    x = abs(num) // den * (1 if num >= 0 else -1)  # div64_s64 truncates toward zero
    pos = x
    pos = _shr(pos * x)
    pos = _shr(pos * x)
    pos += 1 << RATELIMIT_CALC_SHIFT
    return min(max(pos, 0), 2 << RATELIMIT_CALC_SHIFT)


def _shr(v: int) -> int:
    """``>> RATELIMIT_CALC_SHIFT`` of a signed 64-bit value (arithmetic shift, as C's on two's complement)."""
    return v >> RATELIMIT_CALC_SHIFT


def dirty_poll_interval(dirty: int, thresh: int) -> int:
    """``dirty_poll_interval``: pages a task may dirty before looking again, ~sqrt of the headroom."""
    if thresh > dirty:
        return 1 << (ilog2(thresh - dirty) >> 1)
    return 1


def wb_max_pause(wb: BdiWriteback, wb_dirty: int) -> int:
    """``wb_max_pause`` (jiffies): short enough that the device does not run dry, at most MAX_PAUSE."""
    bw = wb.avg_write_bandwidth
    t = wb_dirty // (1 + bw // roundup_pow_of_two(1 + HZ // 8))
    return min(t + 1, MAX_PAUSE)


def wb_min_pause(wb: BdiWriteback, max_pause: int, task_ratelimit: int, dirty_ratelimit: int) -> tuple[int, int]:
    """``wb_min_pause``: (min pause in jiffies, the next nr_dirtied_pause)."""
    hi = ilog2(wb.avg_write_bandwidth)
    lo = ilog2(wb.dirty_ratelimit)
    t = max(1, HZ // 100)
    if hi > lo:
        t += (hi - lo) * (10 * HZ) // 1024
    t = min(t, 1 + max_pause // 2)
    rhz = roundup_pow_of_two(HZ)
    pages = dirty_ratelimit * t // rhz
    if pages < DIRTY_POLL_THRESH:
        t = max_pause
        pages = dirty_ratelimit * t // rhz
        if pages > DIRTY_POLL_THRESH:
            pages = DIRTY_POLL_THRESH
            t = HZ * DIRTY_POLL_THRESH // max(dirty_ratelimit, 1)
    pause = HZ * pages // (task_ratelimit + 1)
    if pause > max_pause:
        t = max_pause
        pages = task_ratelimit * t // rhz
    return (1 + t // 2 if pages >= DIRTY_POLL_THRESH else t), pages


def KBps(pages_per_s: int) -> int:
    return pages_per_s << (PAGE_SHIFT - 10)


async def balance_dirty_pages(th: "Thread", wb: BdiWriteback, pages_dirtied: int) -> None:
    """``balance_dirty_pages``: start background writeback, and pause the task above the freerun ceiling."""
    k = th.machine
    ws: WritebackState = k.writeback
    st = ws.task_state(th)
    start_time = jiffies(k)
    while True:
        now = jiffies(k)
        nr_dirty = _node_sum(k, NR_FILE_DIRTY)
        _avail, bg, thresh = _limits_traced(k, th)
        dirty = nr_dirty + _node_sum(k, NR_WRITEBACK)
        freerun = dirty <= (thresh + bg) // 2
        if nr_dirty > bg and not wb.running:
            wb_start_background_writeback(wb)
        if freerun:
            st[2] = now
            st[0] = 0
            st[1] = dirty_poll_interval(dirty, thresh)
            break
        if not wb.running:
            wb_start_background_writeback(wb)
        wb_thresh = thresh
        wb_dirty = wb.reclaimable + wb.writeback
        wb.dirty_exceeded = wb_dirty > wb_thresh and dirty > thresh
        if now >= wb.bw_time_stamp + BANDWIDTH_INTERVAL:
            wb_update_bandwidth(k, wb, now)
        if now >= ws.dirty_limit_tstamp + BANDWIDTH_INTERVAL:
            update_dirty_limit(ws, thresh, dirty)
            ws.dirty_limit_tstamp = now
        limit = max(thresh, ws.dirty_limit)  # hard_dirty_limit
        freerun_ceiling = (thresh + bg) // 2
        setpoint = (freerun_ceiling + limit) // 2
        pos_ratio = 0 if dirty >= limit else pos_ratio_polynom(setpoint, dirty, limit)
        dirty_ratelimit = wb.dirty_ratelimit
        task_ratelimit = (dirty_ratelimit * pos_ratio) >> RATELIMIT_CALC_SHIFT
        max_pause = wb_max_pause(wb, wb_dirty)
        min_pause, nr_dirtied_pause = wb_min_pause(wb, max_pause, task_ratelimit, dirty_ratelimit)
        if task_ratelimit == 0:
            period = pause = max_pause
        else:
            period = HZ * pages_dirtied // task_ratelimit
            pause = period
            if st[2]:
                pause -= now - st[2]
            if pause < min_pause:
                _trace_bdp(k, th, wb, st, thresh, bg, dirty, wb_thresh, wb_dirty, dirty_ratelimit,
                           task_ratelimit, pages_dirtied, period, min(pause, 0), start_time, now)
                if pause < -HZ:
                    st[2] = now
                    st[0] = 0
                elif period:
                    st[2] += period
                    st[0] = 0
                elif st[1] <= pages_dirtied:
                    st[1] += pages_dirtied
                break
            if pause > max_pause:
                now += min(pause - max_pause, max_pause)
                pause = max_pause
        _trace_bdp(k, th, wb, st, thresh, bg, dirty, wb_thresh, wb_dirty, dirty_ratelimit, task_ratelimit,
                   pages_dirtied, period, pause, start_time, jiffies(k))
        await th.sync()
        await th.sleep_for(pause * NS_PER_JIFFY)  # io_schedule_timeout(pause)
        st[2] = now + pause
        st[0] = 0
        st[1] = nr_dirtied_pause
        if task_ratelimit:
            break
        if wb_dirty <= len(k.cpus) * 8:  # wb_stat_error(): nothing left to wait for
            break


def _trace_bdp(k: Any, th: "Thread", wb: BdiWriteback, st: list[int], thresh: int, bg: int, dirty: int,
               wb_thresh: int, wb_dirty: int, dirty_ratelimit: int, task_ratelimit: int, dirtied: int,
               period: int, pause: int, start_time: int, now: int) -> None:
    tr = k.tracer
    if not tr.on[wb_events.balance_dirty_pages.id]:
        return
    ws: WritebackState = k.writeback
    freerun = (thresh + bg) // 2
    setpoint = (ws.dirty_limit + freerun) // 2
    tr.emit(wb_events.balance_dirty_pages, th, bdi=wb.name, limit=ws.dirty_limit, setpoint=setpoint, dirty=dirty,
            bdi_setpoint=setpoint * wb_thresh // (thresh + 1), bdi_dirty=wb_dirty,
            dirty_ratelimit=KBps(dirty_ratelimit), task_ratelimit=KBps(task_ratelimit), dirtied=dirtied,
            dirtied_pause=st[1], paused=(now - start_time) * 1000 // HZ, pause=pause * 1000 // HZ,
            period=period * 1000 // HZ, think=0 if st[2] == 0 else (now - st[2]) * 1000 // HZ, cgroup_ino=1)


async def balance_dirty_pages_ratelimited(th: "Thread", mapping: AddressSpace) -> None:
    """``balance_dirty_pages_ratelimited``: call once per newly dirtied page; throttles every few pages."""
    inode = mapping.host
    wb: BdiWriteback | None = getattr(inode.i_sb, "wb", None)
    if wb is None or mapping.nr_blockdev:
        return
    k = th.machine
    ws: WritebackState = k.writeback
    st = ws.task_state(th)
    ratelimit = st[1]
    if wb.dirty_exceeded:
        ratelimit = min(ratelimit, 32 >> (PAGE_SHIFT - 10))
    cpu = th.cpu.id
    if st[0] >= ratelimit:
        ws.bdp_ratelimits[cpu] = 0
    elif ws.bdp_ratelimits[cpu] >= ws.ratelimit_pages:
        ws.bdp_ratelimits[cpu] = 0
        ratelimit = 0
    if st[0] >= ratelimit:
        await balance_dirty_pages(th, wb, st[0])


# --- the flusher --------------------------------------------------------------------------------

def _wake_flusher(wb: BdiWriteback, at: int) -> None:
    """Make the flusher's work due at ``at`` (now, or the delayed time) unless it is due sooner.

    The worker thread is started the first time (``bdi_wq`` has workers
    anyway); an idle worker sleeps with its timer as a wake-up in the
    engine's heap, moved earlier by a sooner request.
    """
    k = wb.kernel
    sim = k.sim
    th = wb.thread
    at = max(at, sim.now)
    if wb.timer_at is not None and wb.timer_at <= at:
        return  # already due sooner (queue_delayed_work does not postpone)
    wb.timer_at = at
    if not wb.started:
        wb.started = True
        k.start_thread(th, wb_workfn_loop, wb)
        return
    if not wb.sleeping:
        return  # running: it looks at timer_at before it goes idle
    if th.token != -1:
        sim.reschedule_at(th, at)
    else:
        wb.waitq.remove_waiter(th)
        sim.wake(th, at)


def wb_wakeup(wb: BdiWriteback) -> None:
    """``wb_wakeup``: run the flusher now (``mod_delayed_work(.., 0)``)."""
    _wake_flusher(wb, wb.kernel.sim.now)


def wb_wakeup_delayed(wb: BdiWriteback) -> None:
    """``wb_wakeup_delayed``: run the flusher in ``dirty_writeback_centisecs`` unless it is due sooner."""
    k = wb.kernel
    interval = k.tunables.dirty_writeback_centisecs * 10_000_000
    if not interval:
        return
    _wake_flusher(wb, k.sim.now + interval)


def wb_start_background_writeback(wb: BdiWriteback) -> None:
    """``wb_start_background_writeback``: wake the flusher; it checks the background threshold."""
    wb_wakeup(wb)


def wb_start_writeback(wb: BdiWriteback, reason: int) -> None:
    """``wb_start_writeback``: ask for writeback of everything (WB_start_all) and wake the flusher."""
    if not wb.has_dirty_io() or wb.start_all_reason is not None:
        return
    wb.start_all_reason = reason
    wb_wakeup(wb)


def wakeup_flusher_threads(kernel: Any, reason: int = WB_REASON_VMSCAN) -> None:
    """``wakeup_flusher_threads``: start writeback of all dirty data on every disk (reclaim, sync)."""
    for wb in kernel.writeback.wbs.values():
        wb_start_writeback(wb, reason)


async def _flusher_sleep(th: "Thread", wb: BdiWriteback) -> None:
    """The worker goes idle until ``wb_wakeup`` or its delayed timer."""
    sim = th.sim
    wb.sleeping = True
    if wb.timer_at is not None:
        sim.wake(th, max(wb.timer_at, sim.now))  # the timer: a wake-up already in the heap
    try:
        await wb.waitq.wait(th)
    finally:
        wb.sleeping = False
        wb.waitq.remove_waiter(th)


async def wb_workfn_loop(th: "Thread", wb: BdiWriteback) -> None:
    """The flusher's kworker: ``wb_workfn`` each time its work is due, idle in between."""
    k = th.machine
    sim = k.sim
    while True:
        await th.sync()
        if wb.timer_at is None or wb.timer_at > sim.now:
            await _flusher_sleep(th, wb)
            continue
        wb.timer_at = None
        while True:
            await wb_do_writeback(th, wb)
            if not wb.work_list:
                break
        if wb.start_all_reason is not None:
            wb.timer_at = sim.now
        elif wb.has_dirty_io() and k.tunables.dirty_writeback_centisecs:
            due = sim.now + k.tunables.dirty_writeback_centisecs * 10_000_000
            if wb.timer_at is None or wb.timer_at > due:
                wb.timer_at = due


def _trace_work(k: Any, th: "Thread", ev: Any, wb: BdiWriteback, work: WbWork) -> None:
    tr = k.tracer
    if tr.on[ev.id]:
        tr.emit(ev, th, name=wb.name, nr_pages=work.nr_pages, sb_dev=0, sync_mode=work.sync_mode,
                for_kupdate=int(work.for_kupdate), range_cyclic=int(work.range_cyclic),
                for_background=int(work.for_background), reason=work.reason, cgroup_ino=1)


async def wb_do_writeback(th: "Thread", wb: BdiWriteback) -> int:
    """``wb_do_writeback``: queued works, then start-all, kupdate and background checks."""
    k = th.machine
    wrote = 0
    wb.running = True
    try:
        while wb.work_list:
            work = wb.work_list.popleft()
            _trace_work(k, th, wb_events.writeback_exec, wb, work)
            wrote += await wb_writeback(th, wb, work)
            work.finished = True
            if work.done is not None:
                work.done.wake_all(k.sim, k.costs.sleep_wakeup)
        wrote += await wb_check_start_all(th, wb)
        wrote += await wb_check_old_data_flush(th, wb)
        wrote += await wb_check_background_flush(th, wb)
    finally:
        wb.running = False
    return wrote


def get_nr_dirty_pages(k: Any) -> int:
    return _node_sum(k, NR_FILE_DIRTY)


async def wb_check_start_all(th: "Thread", wb: BdiWriteback) -> int:
    reason = wb.start_all_reason
    if reason is None:
        return 0
    k = th.machine
    nr = get_nr_dirty_pages(k)
    wrote = 0
    if nr:
        wrote = await wb_writeback(th, wb, WbWork(nr, reason))
    wb.start_all_reason = None
    return wrote


async def wb_check_old_data_flush(th: "Thread", wb: BdiWriteback) -> int:
    """kupdate: every dirty_writeback_centisecs, write inodes dirtied more than dirty_expire_centisecs ago."""
    k = th.machine
    interval = k.tunables.dirty_writeback_centisecs * 10_000_000
    if not interval:
        return 0
    now = k.sim.now
    if now < wb.last_old_flush + interval:
        return 0
    wb.last_old_flush = now
    nr = get_nr_dirty_pages(k)
    if nr:
        return await wb_writeback(th, wb, WbWork(nr, WB_REASON_PERIODIC, for_kupdate=True))
    return 0


def wb_over_bg_thresh(th: "Thread", wb: BdiWriteback) -> bool:
    """``wb_over_bg_thresh``: is dirty memory (without writeback) above the background threshold?"""
    k = th.machine
    _avail, bg, _thresh = _limits_traced(k, th)
    if get_nr_dirty_pages(k) > bg:
        return True
    return wb.reclaimable > bg  # wb_bg_thresh = bg_thresh (no per-bdi share)


async def wb_check_background_flush(th: "Thread", wb: BdiWriteback) -> int:
    if wb_over_bg_thresh(th, wb):
        return await wb_writeback(th, wb, WbWork(LONG_MAX, WB_REASON_BACKGROUND, for_background=True))
    return 0


def queue_io(wb: BdiWriteback, dirtied_before: int) -> None:
    """``queue_io``: b_more_io, then the inodes of b_dirty dirtied at or before ``dirtied_before``, onto b_io."""
    for inode in wb.b_more_io:
        inode.wb_list = "b_io"
    wb.b_io.extend(wb.b_more_io)
    wb.b_more_io.clear()
    b_dirty = wb.b_dirty
    while b_dirty:
        inode = next(iter(b_dirty))
        if inode.dirtied_when > dirtied_before:
            break
        del b_dirty[inode]
        wb.b_io.append(inode)
        inode.wb_list = "b_io"


def _redirty_tail(k: Any, wb: BdiWriteback, inode: "Inode") -> None:
    """``redirty_tail_locked``: back on b_dirty as its newest (dirtied_when kept unless older than the newest)."""
    if wb.b_dirty:
        newest = next(reversed(wb.b_dirty))
        if inode.dirtied_when < newest.dirtied_when:
            inode.dirtied_when = k.sim.now
    wb.b_dirty[inode] = None
    wb.b_dirty.move_to_end(inode)
    inode.wb_list = "b_dirty"


def _requeue_inode(k: Any, wb: BdiWriteback, inode: "Inode", wbc: WritebackControl, dirtied_before: int) -> None:
    """``requeue_inode``: where an inode goes after its writeback slice."""
    if inode.i_state & I_FREEING:
        return
    if inode.i_state & I_DIRTY and wbc.sync_mode == WB_SYNC_ALL:
        inode.dirtied_when = k.sim.now
    if inode.i_mapping.dirty:
        if wbc.nr_to_write <= 0 and not inode.dirtied_when > dirtied_before:
            wb.b_more_io.append(inode)  # slice used up: next turn
            inode.wb_list = "b_more_io"
        else:
            _redirty_tail(k, wb, inode)
    elif inode.i_state & I_DIRTY:
        _redirty_tail(k, wb, inode)
    else:
        inode.wb_list = None  # clean: off the lists


def writeback_chunk_size(k: Any, wb: BdiWriteback, work: WbWork) -> int:
    """``writeback_chunk_size``: pages per inode per turn (everything for WB_SYNC_ALL)."""
    if work.sync_mode == WB_SYNC_ALL:
        return LONG_MAX
    pages = min(wb.avg_write_bandwidth // 2, k.writeback.dirty_limit // DIRTY_SCOPE)
    pages = min(pages, work.nr_pages)
    return (pages + MIN_WRITEBACK_PAGES) // MIN_WRITEBACK_PAGES * MIN_WRITEBACK_PAGES


async def __writeback_single_inode(th: "Thread", inode: "Inode", wbc: WritebackControl) -> None:
    """``__writeback_single_inode``: write its pages; clear I_DIRTY_PAGES unless some stay dirty."""
    mapping = inode.i_mapping
    await do_writepages(th, mapping, wbc)
    if wbc.sync_mode == WB_SYNC_ALL and not wbc.for_sync:
        await filemap_fdatawait_range(th, mapping, 0, LONG_MAX)
    inode.i_state &= ~I_DIRTY
    if mapping.dirty:
        inode.i_state |= I_DIRTY_PAGES


async def writeback_sb_inodes(th: "Thread", wb: BdiWriteback, work: WbWork, dirtied_before: int) -> int:
    """``writeback_sb_inodes`` (entered and left with ``wb->list_lock`` held): write b_io's inodes."""
    k = th.machine
    start = k.sim.now
    total = 0
    while wb.b_io:
        inode = wb.b_io.popleft()
        inode.wb_list = None
        if inode.i_state & (I_NEW | I_FREEING | I_WILL_FREE):
            _redirty_tail(k, wb, inode)
            continue
        if inode.i_state & I_SYNC and work.sync_mode != WB_SYNC_ALL:
            wb.b_more_io.append(inode)  # requeue_io: someone else is writing it
            inode.wb_list = "b_more_io"
            continue
        await wb.list_lock.release(th)
        if inode.i_state & I_SYNC:
            while inode.i_state & I_SYNC:
                await wb.sync_wait.wait(th)  # inode_sleep_on_writeback
            await wb.list_lock.acquire(th, site="writeback_sb_inodes+0x230/0x4f0")
            wb.b_io.appendleft(inode)
            inode.wb_list = "b_io"
            continue
        inode.i_state |= I_SYNC
        chunk = writeback_chunk_size(k, wb, work)
        wbc = WritebackControl(chunk, work.sync_mode, for_kupdate=work.for_kupdate,
                               for_background=work.for_background, for_sync=work.for_sync,
                               range_cyclic=work.range_cyclic)
        await __writeback_single_inode(th, inode, wbc)
        work.nr_pages -= chunk - wbc.nr_to_write
        wrote = max(chunk - wbc.nr_to_write - wbc.pages_skipped, 0)
        total += wrote
        await wb.list_lock.acquire(th, site="writeback_sb_inodes+0x1a5/0x4f0")
        if not inode.i_state & I_DIRTY:
            total += 1
        _requeue_inode(k, wb, inode, wbc, dirtied_before)
        inode.i_state &= ~I_SYNC  # inode_sync_complete
        if wb.sync_wait:
            wb.sync_wait.wake_all(k.sim, k.costs.sleep_wakeup)
        if total:
            if k.sim.now - start >= 100_000_000:  # HZ / 10
                break
            if work.nr_pages <= 0:
                break
    return total


async def wb_writeback(th: "Thread", wb: BdiWriteback, work: WbWork) -> int:
    """``wb_writeback``: loop queue_io + writeback_sb_inodes until the work is done or nothing is left."""
    k = th.machine
    nr_pages = work.nr_pages
    dirtied_before = k.sim.now
    expire = k.tunables.dirty_expire_centisecs * 10_000_000
    while True:
        if work.nr_pages <= 0:
            break
        if (work.for_background or work.for_kupdate) and wb.work_list:
            break
        if work.for_background and not wb_over_bg_thresh(th, wb):
            break
        await wb.list_lock.acquire(th, site="wb_writeback+0xa2/0x340")
        _trace_work(k, th, wb_events.writeback_start, wb, work)
        queued = False
        if not wb.b_io:
            if work.for_kupdate:
                dirtied_before = k.sim.now - expire
            elif work.for_background:
                dirtied_before = k.sim.now
            queue_io(wb, dirtied_before)
            queued = True
        progress = await writeback_sb_inodes(th, wb, work, dirtied_before)
        _trace_work(k, th, wb_events.writeback_written, wb, work)
        if progress or not queued:
            await wb.list_lock.release(th)
            continue
        if not wb.b_more_io:
            await wb.list_lock.release(th)
            break
        _trace_work(k, th, wb_events.writeback_wait, wb, work)
        inode = wb.b_more_io[-1]
        await wb.list_lock.release(th)
        while inode.i_state & I_SYNC:
            await wb.sync_wait.wait(th)  # inode_sleep_on_writeback
    return nr_pages - work.nr_pages


async def sync_inodes(th: "Thread") -> int:
    """``sync_inodes_sb`` for every filesystem: a WB_SYNC_ALL work per disk, waited for, then the writeback."""
    k = th.machine
    works = []
    for wb in k.writeback.wbs.values():
        if not wb.has_dirty_io():
            continue
        work = WbWork(LONG_MAX, WB_REASON_SYNC, sync_mode=WB_SYNC_ALL, for_sync=True, range_cyclic=False)
        work.done = WaitQueue("sync")
        wb.work_list.append(work)
        _trace_work(k, th, wb_events.writeback_queue, wb, work)
        wb_wakeup(wb)
        works.append(work)
    for work in works:
        while not work.finished:
            assert work.done is not None
            await work.done.wait(th)
    # wait_sb_inodes: every page under writeback
    for m in list(k.pagecache.mappings()):
        if m.writeback:
            await filemap_fdatawait_range(th, m, 0, LONG_MAX)
    return 0


# --- boot -------------------------------------------------------------------------------------

def page_writeback_init(kernel: Any) -> WritebackState:
    """``page_writeback_init`` + ``bdi_init``: a wb and its flusher thread per disk; ratelimit_pages."""
    ws = WritebackState(kernel)
    kernel.writeback = ws
    ncpus = len(kernel.cpus)
    for i, dev in enumerate(kernel.block.devices.values()):
        ws.wbs[dev.name] = BdiWriteback(kernel, dev, f"kworker/u{2 * ncpus}:{i + 1}")
    kernel.page_alloc.meminfo_sources.register("dirty_thresholds", lambda: global_dirty_limits(kernel))
    kernel.balance_dirty_pages_ratelimited = balance_dirty_pages_ratelimited  # for mm/memory.py's shared faults
    return ws


def writeback_start(kernel: Any) -> None:
    """After the page allocator is up: the ratelimit from the first dirty limits."""
    writeback_set_ratelimit(kernel)


def check_writeback_counts(kernel: Any) -> str | None:
    """Invariant: node dirty/writeback counters equal the tagged pages; wb counts add up; write pending matches."""
    pc = kernel.pagecache
    dirty = _node_sum(kernel, NR_FILE_DIRTY)
    wbk = _node_sum(kernel, NR_WRITEBACK)
    swap_wbk = getattr(getattr(kernel, "swap", None), "nr_writeback", 0)
    wbk -= swap_wbk  # swap cache folios under writeback (mm/page_io.c): no mapping tags, no wb
    if dirty != pc.nr_dirty_tagged:
        return f"NR_FILE_DIRTY {dirty} but {pc.nr_dirty_tagged} pages tagged dirty in mappings"
    if wbk != pc.nr_writeback_tagged:
        return f"NR_WRITEBACK {wbk} but {pc.nr_writeback_tagged} pages tagged writeback in mappings"
    pending = sum(z.vm_stat[NR_ZONE_WRITE_PENDING] for z in kernel.page_alloc.zones)
    if pending != dirty + wbk + swap_wbk:
        return f"NR_ZONE_WRITE_PENDING {pending} != dirty {dirty} + writeback {wbk}"
    ws: WritebackState = kernel.writeback
    if sum(w.reclaimable for w in ws.wbs.values()) != dirty:
        return "WB_RECLAIMABLE of the disks does not add up to NR_FILE_DIRTY"
    if sum(w.writeback for w in ws.wbs.values()) != wbk:
        return "WB_WRITEBACK of the disks does not add up to NR_WRITEBACK"
    return None


__all__ = [
    "BdiWriteback", "IllegalTransition", "Pageout", "WRITEBACK_STATES", "WritebackControl", "WritebackState",
    "balance_dirty_pages", "balance_dirty_pages_ratelimited", "check_writeback_counts", "do_writepages",
    "domain_dirty_limits", "filemap_fdatawait_range", "filemap_write_and_wait_range", "folio_end_writeback",
    "folio_mark_dirty", "folio_wait_writeback", "global_dirty_limits", "global_dirtyable_memory",
    "page_wb_state", "pos_ratio_polynom", "sync_inodes", "wakeup_flusher_threads", "wb_transition",
    "write_cache_pages", "writeback_single_page",
]
