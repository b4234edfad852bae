"""Block devices, bios and a tiny on-disk filesystem: models a very small part of block/ (blk-mq) and of a disk's layout.

Modelled:

- A :class:`BlockDevice` (``struct gendisk`` with its ``request_queue`` and
  the hardware behind it) is an actor in virtual time. ``submit_bio`` counts
  ``pgpgin``/``pgpgout`` (in sectors, as ``submit_bio`` does; /proc/vmstat
  shows KiB), takes a request tag (sleeping in ``blk_mq_get_tag`` when all
  ``nr_requests`` are in use) and either hands the request to the device at
  once (``block_rq_issue``) or queues it until one of the device's
  ``queue_depth`` slots frees. The device completes requests in issue order
  (``block_rq_complete``); the completion runs the bio's ``end_io`` in
  interrupt context on the submitting CPU, whose current thread loses
  ``bio_complete`` of time, and wakes whoever waits.
- Timing: a request that does not start where the previous one ended pays
  the device's ``latency`` (seek, flash access); up to ``queue_depth``
  latencies overlap; data moves over one channel at ``bandwidth`` (requests
  transfer one after another). So an SSD preset (depth 32) overlaps random
  reads and a rotating disk (depth 1) serialises them, and both stream
  sequential I/O at their bandwidth.
- Error injection: a request touching one of ``error_sectors`` fails with
  -EIO, and any request fails with probability ``error_rate`` drawn at issue
  from the deterministic stream ``kernel.rng_for("disk:<name>")``.
- The platter: for every 4 KiB block the content token last written there
  (DESIGN.md §6); a write request stores the tokens its pages held when it
  was submitted, a read request gives the pages what the platter holds.
- The layout (``DiskFs``): one partition (``sda1``, minor + 1) from sector
  2048 to the end of the disk, minus the swap partitions placed top-down at
  the disk's end (:class:`SwapArea`; a swap file is a file of the
  filesystem instead, allocated after the ``[[machine.file]]`` files). In it an ext2-like filesystem: 4 KiB blocks; block 0 the
  superblock, then the inode table (256-byte inodes read through 1 KiB
  buffer heads, four per block); file data from block 128 (disk sector
  3072), each ``[[machine.file]]`` given one contiguous extent in
  declaration order; files that grow get further extents from a bump
  allocator (``ENOSPC`` when the partition is full). Inode numbers start at
  12 (ext2's first non-reserved inode); the root directory is inode 2.

Simplified: no I/O scheduler, merging across bios or plugging (writeback
and readahead build one bio per contiguous run of pages instead); no
partitions table on disk; no flush/FUA semantics (a completed write is on
the platter); the metadata (inodes, directories, bitmaps) is read through
buffer heads but never written back: sizes and new files are persisted
with no journal or metadata I/O. Without a ``[[machine.disk]]`` the machine
has an implicit SSD ``sda`` of 1 TiB so that files can still be created.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from ..sim import Actor
from ..trace.events import block as block_events
from ..trace.gfp import mkdev

if TYPE_CHECKING:
    from ..sim import CPU, Thread

# errno values (include/uapi/asm-generic/errno-base.h, errno.h)
EPERM, ENOENT, EIO, ENOMEM, EBADF, EEXIST, EISDIR, EINVAL, EFBIG, ENOSPC = 1, 2, 5, 12, 9, 17, 21, 22, 27, 28
ERRNO_NAMES = {EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", ENOMEM: "ENOMEM", EBADF: "EBADF",
               EEXIST: "EEXIST", EISDIR: "EISDIR", EINVAL: "EINVAL", EFBIG: "EFBIG", ENOSPC: "ENOSPC"}

SECTOR_SHIFT = 9
SECTOR_SIZE = 1 << SECTOR_SHIFT
# enum req_op and the request flags blk_fill_rwbs reads (include/linux/blk_types.h)
REQ_OP_READ = 0
REQ_OP_WRITE = 1
REQ_SYNC = 1 << 0
REQ_META = 1 << 1
REQ_RAHEAD = 1 << 2
REQ_FUA = 1 << 3
REQ_PREFLUSH = 1 << 4
BLKDEV_DEFAULT_RQ = 128  # request tags per queue (nr_requests)
BIO_MAX_PAGES = 256  # BIO_MAX_VECS: pages in one bio

# The layout of a disk (see the module docstring).
PART_START = 2048  # sectors: the first partition starts at 1 MiB
FS_BLOCK_SIZE = 4096
SECTORS_PER_BLOCK = FS_BLOCK_SIZE >> SECTOR_SHIFT
META_BLOCK_SIZE = 1024  # buffer head size of the inode table
INODE_SIZE = 256
INODES_PER_META_BLOCK = META_BLOCK_SIZE // INODE_SIZE
ITABLE_META_BLOCK = 4  # 1 KiB block where the inode table starts (after the 4 KiB superblock)
DATA_START_BLOCK = 128  # first 4 KiB data block of the partition
ROOT_INO = 2
FIRST_INO = 12
MAX_INO = (DATA_START_BLOCK * (FS_BLOCK_SIZE // META_BLOCK_SIZE) - ITABLE_META_BLOCK) * INODES_PER_META_BLOCK
IMPLICIT_DISK_SIZE = 1 << 40

# Device numbers of the usual disk names (Documentation/admin-guide/devices.txt).
_MAJORS = (("nvme", 259, 1), ("sd", 8, 16), ("vd", 254, 16), ("xvd", 202, 16), ("hd", 3, 64))


def errno_name(err: int) -> str:
    """``-5`` → ``"EIO"``."""
    return ERRNO_NAMES.get(-err, str(err))


def blk_fill_rwbs(op: int, flags: int) -> str:
    """``blk_fill_rwbs`` (kernel/trace/blktrace.c): F for a preflush, R/W, then F(UA) A(head) S(ync) M(eta)."""
    s = "F" if flags & REQ_PREFLUSH else ""
    s += "W" if op == REQ_OP_WRITE else "R"
    if flags & REQ_FUA:
        s += "F"
    if flags & REQ_RAHEAD:
        s += "A"
    if flags & REQ_SYNC:
        s += "S"
    if flags & REQ_META:
        s += "M"
    return s


def device_numbers(name: str, index: int) -> tuple[int, int]:
    """(major, first minor) of a disk called ``name``, the ``index``-th declared."""
    for prefix, major, per in _MAJORS:
        if name.startswith(prefix):
            if prefix == "nvme":
                return major, index * 2
            letters = name[len(prefix):]
            if letters.isalpha():
                n = 0
                for c in letters:
                    n = n * 26 + (ord(c) - ord("a") + 1)
                return major, (n - 1) * per
    return 8, index * 16


class WaitQueue:
    """``wait_queue_head_t``: threads sleeping until a waker wakes them (FIFO).

    A woken thread runs ``sleep_wakeup`` after the waker's instant
    (``try_to_wake_up``). ``remove_waiter`` lets the engine forget a killed one.
    """

    __slots__ = ("waiters", "name")

    def __init__(self, name: str = "wq") -> None:
        self.waiters: deque[Any] = deque()
        self.name = name

    def remove_waiter(self, actor: Any) -> None:
        try:
            self.waiters.remove(actor)
        except ValueError:
            pass

    async def wait(self, th: "Thread") -> None:
        """Sleep until woken (``prepare_to_wait`` + ``schedule``); the caller rechecks its condition."""
        self.waiters.append(th)
        await th.sleep_on(self)

    def wake_all(self, sim: Any, delay: int) -> None:
        """``wake_up_all``."""
        at = sim.now + delay
        while self.waiters:
            sim.wake(self.waiters.popleft(), at)

    def wake_one(self, sim: Any, delay: int) -> None:
        """``wake_up`` of one exclusive waiter."""
        if self.waiters:
            sim.wake(self.waiters.popleft(), sim.now + delay)

    def __bool__(self) -> bool:
        return bool(self.waiters)

    def __repr__(self) -> str:
        return f"<WaitQueue {self.name} waiters={len(self.waiters)}>"


class Bio:
    """``struct bio``: one I/O of contiguous sectors for a list of pages.

    ``vecs`` holds ``(page, sector)`` per 4 KiB segment (a buffer-head bio
    has one page and a 1 KiB size); ``end_io(bio)`` runs at completion in
    interrupt context with ``status`` 0 or -EIO. ``tokens`` is what a write
    carried (the pages' tokens when it was submitted).
    """

    __slots__ = ("bdev", "op", "flags", "sector", "nr_sectors", "vecs", "end_io", "private",
                 "status", "done", "tokens", "cpu", "comm", "waitq")

    def __init__(self, bdev: "BlockDevice", op: int, sector: int, nr_sectors: int,
                 vecs: list[tuple[Any, int]], end_io: Callable[["Bio"], None] | None = None,
                 flags: int = 0, private: Any = None) -> None:
        self.bdev = bdev
        self.op = op
        self.flags = flags
        self.sector = sector  # absolute on the whole disk
        self.nr_sectors = nr_sectors
        self.vecs = vecs
        self.end_io = end_io
        self.private = private
        self.status = 0
        self.done = False
        self.tokens: list[Any] | None = None
        self.cpu: "CPU | None" = None
        self.comm = ""
        self.waitq: WaitQueue | None = None

    def __repr__(self) -> str:
        return f"<bio {self.bdev.name} {blk_fill_rwbs(self.op, self.flags)} {self.sector}+{self.nr_sectors}>"


class Request:
    """``struct request``: a bio holding a tag, queued or in the device."""

    __slots__ = ("bio", "done_at", "failed")

    def __init__(self, bio: Bio) -> None:
        self.bio = bio
        self.done_at = 0
        self.failed = False


class _IrqContext:
    """Who a completion is logged for when its CPU is idle: ``<idle>``-0 on that CPU."""

    __slots__ = ("log",)

    def __init__(self, log: Any) -> None:
        self.log = log


class Partition:
    """A partition (``struct block_device`` of ``sda1``): a sector range of a disk with its own dev_t.

    ``bd_mapping`` (the block device's page cache, for buffer heads) is set by
    :mod:`smpmem.mm.buffer`; ``fs`` is the filesystem on it.
    """

    def __init__(self, disk: "BlockDevice", partno: int, start: int, nr_sectors: int) -> None:
        self.disk = disk
        self.partno = partno
        self.name = f"{disk.name}p{partno}" if disk.name[-1].isdigit() else f"{disk.name}{partno}"
        self.dev = mkdev(disk.major, disk.minor + partno)
        self.start = start
        self.nr_sectors = nr_sectors
        self.bd_mapping: Any = None
        self.fs: DiskFs | None = None

    def __repr__(self) -> str:
        return f"<Partition {self.name} {self.start}+{self.nr_sectors}>"


class BlockDevice:
    """A disk: its request queue, its timing and error injection, its platter, its actor.

    Fields: ``queue`` (requests holding a tag but not yet in the device) and
    ``inflight`` (in the device, completion times non-decreasing) change at
    submission and completion, both atomic instants of the engine;
    ``nr_pending`` is the tags in use (``queue`` + ``inflight``).
    """

    def __init__(self, kernel: Any, name: str, major: int, minor: int, latency: int, bandwidth: int,
                 queue_depth: int, size: int, error_sectors: list[int], error_rate: float) -> None:
        self.kernel = kernel
        self.sim = kernel.sim
        self.name = name
        self.major = major
        self.minor = minor
        self.dev = mkdev(major, minor)
        self.bdi_name = f"{major}:{minor}"  # bdi_dev_name(): the disk's "MAJ:MIN"
        self.latency = latency
        self.bandwidth = bandwidth
        self.queue_depth = queue_depth
        self.nr_requests = max(BLKDEV_DEFAULT_RQ, queue_depth)
        self.size_sectors = size >> SECTOR_SHIFT
        self.error_sectors = sorted(set(error_sectors))
        self.error_rate = error_rate
        self.rng = kernel.rng_for(f"disk:{name}")
        self.queue: deque[Request] = deque()
        self.inflight: deque[Request] = deque()
        self.nr_pending = 0
        self.tag_wait = WaitQueue(f"{name} tags")
        self.bus_free = 0  # when the data channel is next free
        self.head = -1  # sector after the last request issued (no positioning latency there)
        self.actor: Actor | None = None
        self.idle = True
        self.platter: dict[int, Any] = {}  # absolute sector of a 4 KiB block -> content token
        self.reserved_top = self.size_sectors  # swap areas are reserved downwards from here
        self.partitions: list[Partition] = []
        # /proc/diskstats-like figures
        self.reads = self.writes = self.sectors_read = self.sectors_written = self.failed = 0
        self.busy_ns = 0

    def __repr__(self) -> str:
        return f"<BlockDevice {self.name} {self.bdi_name}>"

    # -- the engine's wait-list protocol (the device actor blocks on itself when idle) --
    def remove_waiter(self, actor: Any) -> None:
        pass

    def reserve_top(self, nr_sectors: int) -> int:
        """Reserve ``nr_sectors`` at the top of the free space (swap areas); returns the first sector."""
        self.reserved_top -= nr_sectors
        return self.reserved_top

    def platter_token(self, sector: int) -> Any:
        """The content of the 4 KiB block at ``sector``: the last token written, or its initial content.

        A block never written holds ``-(sector + 1)`` (unique, so a page read
        from the wrong place is noticed); a block allocated to a growing file
        holds 0 (zeros) until written.
        """
        tok = self.platter.get(sector)
        return -(sector + 1) if tok is None else tok

    def fails(self, sector: int, nr_sectors: int) -> bool:
        """Does a request over ``[sector, sector + nr_sectors)`` hit an injected error? (draws from the rng)"""
        es = self.error_sectors
        if es:
            i = bisect.bisect_left(es, sector)
            if i < len(es) and es[i] < sector + nr_sectors:
                return True
        return bool(self.error_rate) and self.rng.random() < self.error_rate


def _ctx_of(cpu: "CPU") -> Any:
    """The context a hard interrupt on ``cpu`` is logged in: the thread running there, else idle."""
    cur = cpu.current
    if cur is not None and cur.log is not None:
        return cur
    return _IrqContext(cpu.idle_log)


async def submit_bio(th: "Thread", bio: Bio) -> None:
    """``submit_bio``: account, take a tag (sleeping if the queue is full), issue or queue the request.

    Returns once the request is queued; ``bio.end_io`` runs at completion.
    """
    dev = bio.bdev
    k = th.machine
    th.charge(k.costs.bio_submit)
    if bio.op == REQ_OP_WRITE:
        k.vmstat["pgpgout"] += bio.nr_sectors
        if not bio.flags & REQ_META:
            bio.tokens = [p.token for p, _ in bio.vecs]
    else:
        k.vmstat["pgpgin"] += bio.nr_sectors
    await th.sync()
    tr = k.tracer
    if tr.on[block_events.block_bio_queue.id]:
        tr.emit(block_events.block_bio_queue, th, dev=dev.dev, sector=bio.sector, nr_sector=bio.nr_sectors,
                rwbs=blk_fill_rwbs(bio.op, bio.flags), comm=th.comm)
    while dev.nr_pending >= dev.nr_requests:
        await dev.tag_wait.wait(th)  # blk_mq_get_tag: io_schedule until a tag frees
    dev.nr_pending += 1
    bio.cpu = th.cpu
    bio.comm = th.comm
    rq = Request(bio)
    if dev.actor is None:
        _start_device(dev)
    if not dev.queue and len(dev.inflight) < dev.queue_depth:
        _issue(dev, rq, th)
    else:
        dev.queue.append(rq)


async def submit_bio_wait(th: "Thread", bio: Bio) -> int:
    """``submit_bio_wait``: submit and sleep until the bio completes; its status (0 or -EIO)."""
    user_end_io = bio.end_io
    wq = bio.waitq = WaitQueue("bio")
    sim = th.sim
    delay = th.machine.costs.sleep_wakeup

    def end_io(b: Bio) -> None:
        if user_end_io is not None:
            user_end_io(b)
        wq.wake_all(sim, delay)

    bio.end_io = end_io
    await submit_bio(th, bio)
    while not bio.done:
        await wq.wait(th)
    return bio.status


def _issue(dev: BlockDevice, rq: Request, who: Any) -> None:
    """Hand a request to the device: its completion time, the error draw, ``block_rq_issue``."""
    bio = rq.bio
    sim = dev.sim
    now = sim.now
    tr = dev.kernel.tracer
    if tr.on[block_events.block_rq_issue.id]:
        tr.emit(block_events.block_rq_issue, who, dev=dev.dev, sector=bio.sector, nr_sector=bio.nr_sectors,
                bytes=bio.nr_sectors << SECTOR_SHIFT, ioprio=0, rwbs=blk_fill_rwbs(bio.op, bio.flags),
                comm=bio.comm, cmd="")
    rq.failed = dev.fails(bio.sector, bio.nr_sectors)
    lat = 0 if bio.sector == dev.head else dev.latency
    xfer = ((bio.nr_sectors << SECTOR_SHIFT) * 1_000_000_000 + dev.bandwidth - 1) // dev.bandwidth
    start = max(now + lat, dev.bus_free)
    rq.done_at = start + xfer
    dev.busy_ns += rq.done_at - max(now, dev.bus_free)
    dev.bus_free = rq.done_at
    dev.head = bio.sector + bio.nr_sectors
    dev.inflight.append(rq)
    if dev.idle:
        dev.idle = False
        sim.wake(dev.actor, rq.done_at)


def _start_device(dev: BlockDevice) -> None:
    """Spawn the device's actor (at its first request): it completes requests as their time comes."""
    sim = dev.sim
    dev.actor = Actor(sim, f"disk-{dev.name}", daemon=True)
    dev.idle = False
    sim.spawn(dev.actor, _device_main, dev, at=sim.now)


async def _device_main(dev: BlockDevice) -> None:
    sim = dev.sim
    actor = dev.actor
    assert actor is not None
    while True:
        if not dev.inflight:
            dev.idle = True
            await sim.block(actor, dev)
            continue
        rq = dev.inflight[0]
        if rq.done_at > sim.now:
            await sim.sleep_until(rq.done_at)
            continue
        dev.inflight.popleft()
        _complete(dev, rq)
        while dev.queue and len(dev.inflight) < dev.queue_depth:
            nxt = dev.queue.popleft()
            _issue(dev, nxt, _ctx_of(nxt.bio.cpu))  # type: ignore[arg-type]


def _complete(dev: BlockDevice, rq: Request) -> None:
    """``blk_mq_end_request`` in the completion interrupt: move the data, run end_io, free the tag."""
    bio = rq.bio
    k = dev.kernel
    cpu = bio.cpu
    assert cpu is not None
    who = _ctx_of(cpu)
    cur = cpu.current
    if cur is not None:
        cur.pending += k.costs.bio_complete  # the interrupted thread loses the handler's time
    bio.status = -EIO if rq.failed else 0
    write = bio.op == REQ_OP_WRITE
    if rq.failed:
        dev.failed += 1
    elif bio.flags & REQ_META:
        pass
    elif write:
        platter = dev.platter
        for (_page, sector), tok in zip(bio.vecs, bio.tokens or ()):
            platter[sector] = tok
    else:
        for page, sector in bio.vecs:
            page.token = dev.platter_token(sector)
    if write:
        dev.writes += 1
        dev.sectors_written += bio.nr_sectors
    else:
        dev.reads += 1
        dev.sectors_read += bio.nr_sectors
    tr = k.tracer
    if tr.on[block_events.block_rq_complete.id]:
        tr.emit(block_events.block_rq_complete, who, dev=dev.dev, sector=bio.sector, nr_sector=bio.nr_sectors,
                error=bio.status, ioprio=0, rwbs=blk_fill_rwbs(bio.op, bio.flags), cmd="", hardirq=True)
    dev.nr_pending -= 1
    dev.tag_wait.wake_one(dev.sim, k.costs.sleep_wakeup)
    bio.done = True
    if bio.end_io is not None:
        bio.end_io(bio)


# --- the on-disk filesystem -------------------------------------------------------------


class DiskInode:
    """An inode as stored on disk: number, path, size and extents ``(file block, disk block, count)``."""

    __slots__ = ("ino", "path", "size", "extents", "starts")

    def __init__(self, ino: int, path: str, size: int = 0) -> None:
        self.ino = ino
        self.path = path
        self.size = size
        self.extents: list[tuple[int, int, int]] = []
        self.starts: list[int] = []  # file block of each extent (for bisect)

    @property
    def nr_blocks(self) -> int:
        if not self.extents:
            return 0
        lblk, _, n = self.extents[-1]
        return lblk + n

    def __repr__(self) -> str:
        return f"<DiskInode {self.ino} {self.path} size={self.size}>"


class DiskFs:
    """The filesystem on a partition: its inodes by number and path, its block allocator."""

    def __init__(self, part: Partition) -> None:
        self.part = part
        self.disk = part.disk
        self.s_dev = part.dev
        self.nr_blocks = part.nr_sectors // SECTORS_PER_BLOCK
        self.next_block = DATA_START_BLOCK  # bump allocator of data blocks
        self.next_ino = FIRST_INO
        self.inodes: dict[int, DiskInode] = {}
        self.by_path: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<DiskFs on {self.part.name}>"

    # -- sectors ------------------------------------------------------------------
    def block_sector(self, block: int) -> int:
        """Absolute disk sector of 4 KiB filesystem block ``block``."""
        return self.part.start + block * SECTORS_PER_BLOCK

    def inode_meta_block(self, ino: int) -> int:
        """The 1 KiB block of the partition holding inode ``ino`` (read through a buffer head)."""
        return ITABLE_META_BLOCK + (ino - 1) // INODES_PER_META_BLOCK

    def bmap(self, di: DiskInode, index: int) -> int | None:
        """``bmap``: absolute sector of page ``index`` of the file, None if no block is allocated there."""
        i = bisect.bisect_right(di.starts, index) - 1
        if i < 0:
            return None
        lblk, pblk, n = di.extents[i]
        if index >= lblk + n:
            return None
        return self.part.start + (pblk + index - lblk) * SECTORS_PER_BLOCK

    # -- allocation ------------------------------------------------------------------
    def create(self, path: str, size: int = 0, zeroed: bool = True) -> DiskInode | int:
        """A new inode for ``path`` with blocks for ``size`` bytes; -ENOSPC if inodes or blocks run out."""
        if self.next_ino > MAX_INO:
            return -ENOSPC
        di = DiskInode(self.next_ino, path, 0)
        if size:
            err = self.extend(di, size, zeroed=zeroed)
            if err:
                return err
        self.next_ino += 1
        self.inodes[di.ino] = di
        self.by_path[path] = di.ino
        return di

    def extend(self, di: DiskInode, new_size: int, zeroed: bool = True) -> int:
        """Allocate blocks so that ``new_size`` bytes are backed; 0 or -ENOSPC (nothing changes then).

        Blocks given to a growing file read as zeros (token 0) until written
        (``zeroed``); the blocks of files present at boot keep their initial content.
        """
        need = -(-new_size // FS_BLOCK_SIZE) - di.nr_blocks
        if need <= 0:
            di.size = max(di.size, new_size)
            return 0
        if self.next_block + need > self.nr_blocks:
            return -ENOSPC
        start = self.next_block
        self.next_block += need
        lblk = di.nr_blocks
        if di.extents and di.extents[-1][1] + di.extents[-1][2] == start:
            l0, p0, n0 = di.extents[-1]
            di.extents[-1] = (l0, p0, n0 + need)
        else:
            di.extents.append((lblk, start, need))
            di.starts.append(lblk)
        if zeroed:
            platter = self.disk.platter
            base = self.part.start
            for b in range(start, start + need):
                platter[base + b * SECTORS_PER_BLOCK] = 0
        di.size = max(di.size, new_size)
        return 0


class SwapArea:
    """Where the pages of one ``[[machine.swap]]`` area live on a disk.

    A partition (a name under ``/dev/``) is a sector range reserved at the
    disk's end. A swap file (any other path) is a file preallocated on the
    disk's filesystem at boot (as ``fallocate`` + ``mkswap``); at swapon the
    kernel maps its pages to sectors once (``setup_swap_extents`` →
    ``add_swap_extent``, one extent per contiguous run of blocks) and swap
    I/O then goes to the block device directly, past the page cache.
    """

    __slots__ = ("bdev", "nr_sectors", "start_sector", "extents", "starts", "major", "minor")

    def __init__(self, bdev: "BlockDevice", nr_sectors: int, start_sector: int = 0,
                 extents: list[tuple[int, int, int]] | None = None, partno: int = 0) -> None:
        self.bdev = bdev
        self.nr_sectors = nr_sectors
        self.start_sector = start_sector
        self.extents = extents or []  # a swap file's (first page, first sector, pages), in page order
        self.starts = [e[0] for e in self.extents]
        # The dev_t of the block device swap I/O is submitted to (bio_dev): the partition, or the whole disk.
        self.major, self.minor = bdev.major, bdev.minor + partno

    @property
    def is_file(self) -> bool:
        return bool(self.extents)

    def sector_of(self, offset: int) -> int:
        """``swap_folio_sector``: the disk sector of page ``offset`` of the area."""
        if not self.extents:
            return self.start_sector + offset * SECTORS_PER_BLOCK
        first_page, first_sector, _n = self.extents[bisect.bisect_right(self.starts, offset) - 1]
        return first_sector + (offset - first_page) * SECTORS_PER_BLOCK


def is_swap_partition(name: str) -> bool:
    """A ``[[machine.swap]]`` name under /dev/ is a partition; any other path is a swap file."""
    return name.startswith("/dev/")


def swap_partno(name: str, disk: str) -> int:
    """The partition number in a swap partition's name on ``disk`` ("/dev/sda2", "/dev/nvme0n1p2": 2), else 0."""
    rest = name[len("/dev/"):]
    if not rest.startswith(disk):
        return 0
    rest = rest[len(disk):]
    if rest.startswith("p") and disk[-1].isdigit():
        rest = rest[1:]
    return int(rest) if rest.isdigit() and 0 < int(rest) < 16 else 0


class BlockLayer:
    """The machine's disks and filesystems: ``kernel.block``.

    ``namespace`` maps every file path to the filesystem that holds it (one
    flat namespace over all disks); new files go on ``default_fs`` (the
    first disk's). ``swap_areas`` gives each ``[[machine.swap]]`` its sector
    range (for the swap subsystem).
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.devices: dict[str, BlockDevice] = {}
        self.filesystems: list[DiskFs] = []
        self.namespace: dict[str, DiskFs] = {}
        self.default_fs: DiskFs | None = None
        self.swap_areas: dict[str, SwapArea] = {}

    def lookup(self, path: str) -> tuple[DiskFs, DiskInode] | None:
        fs = self.namespace.get(path)
        if fs is None:
            return None
        return fs, fs.inodes[fs.by_path[path]]


def block_init(kernel: Any) -> BlockLayer:
    """Build the disks, reserve the swap areas, lay out the filesystems and their files (at boot)."""
    from ..kernel import BootError
    from ..scenario._schema import DISK_PRESETS

    cfg = kernel.config
    bl = BlockLayer(kernel)
    disks = list(cfg.disk)
    specs: list[dict[str, Any]] = []
    for d in disks:
        specs.append({"name": d.name, "latency": d.latency, "bandwidth": d.bandwidth, "queue_depth": d.queue_depth,
                      "size": d.size if d.size is not None else IMPLICIT_DISK_SIZE,
                      "error_sectors": list(d.error_sectors), "error_rate": d.error_rate})
    if not specs:
        ssd = DISK_PRESETS["ssd"]
        specs.append({"name": "sda", "latency": ssd["latency"], "bandwidth": ssd["bandwidth"],
                      "queue_depth": ssd["queue_depth"], "size": IMPLICIT_DISK_SIZE, "error_sectors": [],
                      "error_rate": 0.0})
    for i, s in enumerate(specs):
        major, minor = device_numbers(s["name"], i)
        bl.devices[s["name"]] = BlockDevice(kernel, s["name"], major, minor, s["latency"], s["bandwidth"],
                                            s["queue_depth"], s["size"], s["error_sectors"], s["error_rate"])
    for sw in cfg.swap:
        if is_swap_partition(sw.name):
            dev = bl.devices[sw.disk] if sw.disk is not None else next(iter(bl.devices.values()))
            n = sw.size >> SECTOR_SHIFT
            bl.swap_areas[sw.name] = SwapArea(dev, n, start_sector=dev.reserve_top(n),
                                              partno=swap_partno(sw.name, dev.name))
    for dev in bl.devices.values():
        top = dev.reserved_top // SECTORS_PER_BLOCK * SECTORS_PER_BLOCK
        part = Partition(dev, 1, PART_START, max(top - PART_START, 0))
        dev.partitions.append(part)
        fs = DiskFs(part)
        part.fs = fs
        bl.filesystems.append(fs)
    bl.default_fs = bl.filesystems[0]
    by_disk = {fs.disk.name: fs for fs in bl.filesystems}
    for f in cfg.file:
        fs = by_disk[f.disk] if f.disk is not None else bl.default_fs
        di = fs.create(f.path, f.size, zeroed=False)
        if isinstance(di, int):
            need = f.size + (PART_START << SECTOR_SHIFT) + DATA_START_BLOCK * FS_BLOCK_SIZE
            raise BootError(f"machine.file {f.path!r} ({f.size} bytes) does not fit on disk {fs.disk.name!r}: the "
                            f"partition offset and filesystem metadata take {need - f.size} bytes before the files")
        bl.namespace[f.path] = fs
    for sw in cfg.swap:
        if is_swap_partition(sw.name):
            continue
        fs = by_disk[sw.disk] if sw.disk is not None else bl.default_fs
        if sw.name in bl.namespace:
            raise BootError(f"machine.swap {sw.name!r} is also a machine.file: a swap file must be a file of its own")
        di = fs.create(sw.name, sw.size, zeroed=False)
        if isinstance(di, int):
            raise BootError(f"machine.swap {sw.name!r} ({sw.size} bytes) does not fit on the filesystem of disk "
                            f"{fs.disk.name!r} after the machine.file files")
        # setup_swap_extents: one swap extent per contiguous run of the file's blocks. The file
        # itself is not in the namespace: the file steps cannot open an active swap file.
        extents = [(lblk, fs.block_sector(pblk), n) for lblk, pblk, n in di.extents]
        bl.swap_areas[sw.name] = SwapArea(fs.disk, sw.size >> SECTOR_SHIFT, extents=extents,
                                          partno=fs.part.partno)
    return bl


def check_block_layer(bl: BlockLayer) -> str | None:
    """Invariant: each device's tags are its queued plus in-flight requests; completion times are ordered."""
    for dev in bl.devices.values():
        if dev.nr_pending != len(dev.queue) + len(dev.inflight):
            return (f"{dev.name}: {dev.nr_pending} tags in use but {len(dev.queue)} queued + "
                    f"{len(dev.inflight)} in flight")
        if len(dev.inflight) > dev.queue_depth:
            return f"{dev.name}: {len(dev.inflight)} requests in a device of queue depth {dev.queue_depth}"
        prev = -1
        for rq in dev.inflight:
            if rq.done_at < prev:
                return f"{dev.name}: in-flight completion times out of order"
            prev = rq.done_at
    return None


__all__ = [
    "Bio", "BlockDevice", "BlockLayer", "DiskFs", "DiskInode", "Partition", "WaitQueue", "block_init",
    "blk_fill_rwbs", "check_block_layer", "errno_name", "submit_bio", "submit_bio_wait",
    "EIO", "ENOENT", "ENOMEM", "ENOSPC", "EINVAL", "EBADF", "EFBIG", "REQ_OP_READ", "REQ_OP_WRITE",
    "REQ_META", "REQ_RAHEAD", "REQ_SYNC",
]
