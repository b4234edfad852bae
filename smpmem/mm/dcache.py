"""The dentry and inode caches: models fs/dcache.c, fs/inode.c and the super block shrinker of fs/super.c (Linux 6.12).

Modelled: path lookup through the dcache hash (``d_lookup``, a hit costs
``dentry_lookup`` and takes a reference; a miss allocates a dentry from the
``dentry`` slab cache and looks the name up on disk); negative dentries for
names that do not exist; ``iget_locked`` through the inode hash under
``inode_hash_lock`` (a miss allocates from ``inode_cache`` and reads the
on-disk inode through a buffer head, ``__bread`` of its inode-table block);
``dput`` / ``iput`` putting unused objects on the super block's LRUs
(``s_dentry_lru``, ``s_inode_lru``: ``list_lru`` under ``&nlru->lock``) with
``DCACHE_REFERENCED`` / ``I_REFERENCED`` second chances; the per-sb
shrinker ``super_cache_count`` (unused objects × ``vfs_cache_pressure`` /
100, 0 never reclaims) and ``super_cache_scan`` (the scan split between
dentries and inodes by their share, ``prune_dcache_sb`` then
``prune_icache_sb``: a dentry freed drops its inode reference; an unused
inode with cached pages has its clean pages invalidated
(``pginodesteal`` / ``kswapd_inodesteal``) and is retried later; one
without pages is evicted: its mapping unregistered, its slab object
freed). ``vfs_open`` (``kernel.vfs_open``) returns a ``File``.

Simplified: a flat namespace of absolute paths (one dentry per path, no
parent chain or directory blocks read), no rename/unlink, no per-dentry
``d_lock`` (the hash is changed at atomic instants of the engine), dirty
inodes stay on the LRU until they are clean (the kernel takes them off and
re-adds them after writeback).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..sim import SpinLock
from .block import EIO, ENOENT, ENOMEM, DiskFs, WaitQueue
from .buffer import __bread, brelse
from .filemap import invalidate_mapping_pages, new_mapping
from .fs import I_DIRTY, I_FREEING, I_REFERENCED, I_SYNC, File, Inode, SuperBlock, cache_alloc, cache_free

if TYPE_CHECKING:
    from ..sim import Thread

DCACHE_REFERENCED = 1 << 6
DCACHE_PAR_LOOKUP = 1 << 28  # being looked up (with the parent locked shared): others wait


class Dentry:
    """``struct dentry``: a name, its inode (None: a negative dentry), its reference count."""

    __slots__ = ("d_name", "d_inode", "d_sb", "d_count", "d_flags", "on_lru", "slab_obj")

    def __init__(self, name: str, sb: SuperBlock, slab_obj: Any) -> None:
        self.d_name = name
        self.d_inode: Inode | None = None
        self.d_sb = sb
        self.d_count = 1
        self.d_flags = 0
        self.on_lru = False
        self.slab_obj = slab_obj

    def __repr__(self) -> str:
        return f"<dentry {self.d_name} {'negative' if self.d_inode is None else self.d_inode.i_ino} count={self.d_count}>"


class ShrinkControl:
    """``struct shrink_control`` as the super block shrinker reads it."""

    __slots__ = ("nr_to_scan", "nr_scanned", "gfp_mask", "nid")

    def __init__(self, nr_to_scan: int, gfp_mask: int = 0, nid: int = 0) -> None:
        self.nr_to_scan = nr_to_scan
        self.nr_scanned = nr_to_scan
        self.gfp_mask = gfp_mask
        self.nid = nid


class SbCaches:
    """One super block's dentry and inode LRUs (``list_lru``) and its shrinker."""

    def __init__(self, kernel: Any, sb: SuperBlock) -> None:
        self.sb = sb
        self.dentry_lru: OrderedDict[Dentry, None] = OrderedDict()  # oldest first
        self.inode_lru: OrderedDict[Inode, None] = OrderedDict()
        self.dentry_lru_lock = SpinLock(kernel, "&nlru->lock")
        self.inode_lru_lock = SpinLock(kernel, "&nlru->lock")


class Dcache:
    """The dentry hash and the super blocks: ``kernel.dcache``.

    ``hashtable`` maps a path to its dentry (``dentry_hashtable``);
    ``nr_dentry`` / ``nr_inodes`` count the allocated objects
    (/proc/sys/fs/dentry-state, inode-nr).
    """

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.hashtable: dict[str, Dentry] = {}
        self.sbs: dict[DiskFs, SuperBlock] = {}
        self.caches: dict[SuperBlock, SbCaches] = {}
        self.inode_hash_lock = SpinLock(kernel, "inode_hash_lock")
        self.nr_dentry = 0
        self.nr_inodes = 0
        self.lookup_wait = WaitQueue("d_wait_lookup")
        self.since_sweep = 0
        self.shrinkers: list[tuple[str, Any, Any]] = []  # (name, count, scan) when no shrinker registry exists


def _lru_add_dentry(dc: Dcache, d: Dentry) -> None:
    if not d.on_lru:
        dc.caches[d.d_sb].dentry_lru[d] = None
        d.on_lru = True


def _lru_add_inode(dc: Dcache, inode: Inode) -> None:
    if not inode.on_lru:
        dc.caches[inode.i_sb].inode_lru[inode] = None
        inode.on_lru = True


async def iget(th: "Thread", sb: SuperBlock, ino: int) -> Inode | int:
    """``iget_locked`` + the filesystem's ``iget``: the in-core inode, read from disk on a miss."""
    k = th.machine
    dc: Dcache = k.dcache
    await dc.inode_hash_lock.acquire(th, site="iget_locked+0x4a/0x2e0")
    inode = sb.inodes.get(ino)
    if inode is not None:
        inode.i_count += 1
        inode.i_state |= I_REFERENCED
        await dc.inode_hash_lock.release(th)
        return inode
    await dc.inode_hash_lock.release(th)
    obj = await cache_alloc(th, "inode_cache")
    if obj is None:
        return -ENOMEM
    fs = sb.fs
    bh = await __bread(th, fs.part, fs.inode_meta_block(ino))
    if bh is None:
        await cache_free(th, "inode_cache", obj)
        return -EIO
    brelse(bh)
    inode = sb.inodes.get(ino)  # another thread read it meanwhile
    if inode is not None:
        await cache_free(th, "inode_cache", obj)
        inode.i_count += 1
        return inode
    th.charge(k.costs.inode_init)
    inode = Inode(k, sb, fs.inodes[ino], ino)
    inode.slab_obj = obj
    inode.i_count = 1
    new_mapping(k, inode)
    sb.inodes[ino] = inode
    dc.nr_inodes += 1
    return inode


def iput_nolock(dc: Dcache, inode: Inode) -> None:
    """``iput``: drop a reference; an unused inode stays cached on its sb's LRU (``iput_final``)."""
    assert inode.i_count > 0, f"iput of an unused {inode!r}"
    inode.i_count -= 1
    if inode.i_count == 0:
        _lru_add_inode(dc, inode)


def dput(th: "Thread", d: Dentry) -> None:
    """``dput``: drop a reference; an unused dentry goes on the sb's LRU (``retain_dentry``)."""
    assert d.d_count > 0, f"dput of an unused {d!r}"
    d.d_count -= 1
    if d.d_count == 0:
        d.d_flags |= DCACHE_REFERENCED
        _lru_add_dentry(th.machine.dcache, d)


async def path_lookup(th: "Thread", path: str, create: bool = False) -> Dentry | int:
    """``filename_lookup`` / ``lookup_open``: a referenced positive dentry for ``path``, or -errno.

    A miss hashes an in-lookup dentry (``d_alloc_parallel``: concurrent
    lookups of the name wait for it, ``d_wait_lookup``), reads the inode and
    instantiates it (or leaves it negative). With ``create`` a missing file
    is created (empty) on the first disk's filesystem.
    """
    k = th.machine
    dc: Dcache = k.dcache
    th.charge(k.costs.dentry_lookup)
    await th.sync()
    while True:
        d = dc.hashtable.get(path)
        if d is None or not d.d_flags & DCACHE_PAR_LOOKUP:
            break
        await dc.lookup_wait.wait(th)
    if d is not None:
        d.d_count += 1
        d.d_flags |= DCACHE_REFERENCED
        if d.d_inode is not None:
            return d
        if not create:
            dput(th, d)
            return -ENOENT
        return await _create(th, d)
    found = k.block.lookup(path)
    fs = found[0] if found is not None else k.block.default_fs
    sb = dc.sbs[fs]
    d = Dentry(path, sb, None)
    d.d_flags |= DCACHE_PAR_LOOKUP
    dc.hashtable[path] = d
    try:
        obj = await cache_alloc(th, "dentry")
        if obj is None:
            del dc.hashtable[path]
            return -ENOMEM
        d.slab_obj = obj
        dc.nr_dentry += 1
        if found is None:
            if not create:
                dput(th, d)  # a negative dentry stays cached
                return -ENOENT
            return await _create(th, d)
        inode = await iget(th, sb, found[1].ino)
        if isinstance(inode, int):
            del dc.hashtable[path]
            await _free_dentry(th, d)
            return inode
        d.d_inode = inode
        return d
    finally:
        d.d_flags &= ~DCACHE_PAR_LOOKUP  # d_lookup_done
        dc.lookup_wait.wake_all(k.sim, k.costs.sleep_wakeup)


async def _create(th: "Thread", d: Dentry) -> Dentry | int:
    """``vfs_create``: a new empty file for a negative dentry (its inode block is read first)."""
    k = th.machine
    fs: DiskFs = d.d_sb.fs
    di = fs.create(d.d_name)
    if isinstance(di, int):
        dput(th, d)
        return di
    k.block.namespace[d.d_name] = fs
    inode = await iget(th, d.d_sb, di.ino)
    if isinstance(inode, int):
        dput(th, d)
        return inode
    d.d_inode = inode
    return d


async def _free_dentry(th: "Thread", d: Dentry) -> None:
    dc: Dcache = th.machine.dcache
    dc.nr_dentry -= 1
    await cache_free(th, "dentry", d.slab_obj)


async def vfs_open(th: "Thread", path: str, create: bool = False) -> File | int:
    """``vfs_open``: an open ``File`` for ``path`` (its dentry referenced), or -ENOENT / -EIO / -ENOMEM / -ENOSPC."""
    d = await path_lookup(th, path, create)
    if isinstance(d, int):
        return d
    assert d.d_inode is not None
    return File(path, d, d.d_inode)


def fput(th: "Thread", file: File) -> None:
    """``fput``: the last reference to an open file drops its dentry."""
    file.f_count -= 1
    if file.f_count == 0:
        dput(th, file.f_dentry)


async def kernel_vfs_open(th: "Thread", path: str, write: bool = False, create: bool = False) -> File | None:
    """``kernel.vfs_open(th, path, write)``: the hook other subsystems (mmap) open files with; None on error."""
    f = await vfs_open(th, path, create)
    return None if isinstance(f, int) else f


# --- the super block shrinker ---------------------------------------------------------------------

def super_cache_count(kernel: Any, sbc: SbCaches) -> int:
    """``super_cache_count``: unused dentries and inodes, scaled by ``vfs_cache_pressure``."""
    total = len(sbc.dentry_lru) + len(sbc.inode_lru)
    return total * kernel.tunables.vfs_cache_pressure // 100


async def prune_dcache_sb(th: "Thread", sbc: SbCaches, nr: int) -> int:
    """``prune_dcache_sb``: walk the dentry LRU from its oldest; free unused, unreferenced dentries."""
    k = th.machine
    dc: Dcache = k.dcache
    freed = 0
    lru = sbc.dentry_lru
    freeable: list[Dentry] = []
    await sbc.dentry_lru_lock.acquire(th, site="list_lru_walk_one+0x5c/0x90")
    for _ in range(min(nr, len(lru))):
        d = next(iter(lru))
        th.charge(k.costs.dentry_lookup)
        if d.d_count:
            del lru[d]
            d.on_lru = False
            continue
        if d.d_flags & DCACHE_REFERENCED:
            d.d_flags &= ~DCACHE_REFERENCED
            lru.move_to_end(d)
            continue
        del lru[d]
        d.on_lru = False
        freeable.append(d)
    await sbc.dentry_lru_lock.release(th)
    for d in freeable:  # shrink_dentry_list
        if dc.hashtable.get(d.d_name) is d:
            del dc.hashtable[d.d_name]
        if d.d_inode is not None:
            iput_nolock(dc, d.d_inode)
            d.d_inode = None
        await _free_dentry(th, d)
        freed += 1
    return freed


async def prune_icache_sb(th: "Thread", sbc: SbCaches, nr: int) -> int:
    """``prune_icache_sb``: evict unused, clean inodes without pages; invalidate pages of the others."""
    k = th.machine
    dc: Dcache = k.dcache
    lru = sbc.inode_lru
    freeable: list[Inode] = []
    retry: list[Inode] = []
    await sbc.inode_lru_lock.acquire(th, site="list_lru_walk_one+0x5c/0x90")
    for _ in range(min(nr, len(lru))):
        inode = next(iter(lru))
        th.charge(k.costs.dentry_lookup)
        if inode.i_count:
            del lru[inode]
            inode.on_lru = False
            continue
        if inode.i_state & (I_DIRTY | I_SYNC) or (inode.i_mapping is not None and inode.i_mapping.writeback):
            lru.move_to_end(inode)
            continue
        if inode.i_state & I_REFERENCED:
            inode.i_state &= ~I_REFERENCED
            lru.move_to_end(inode)
            continue
        if inode.i_mapping is not None and inode.i_mapping.nrpages:
            lru.move_to_end(inode)
            retry.append(inode)
            continue
        inode.i_state |= I_FREEING
        del lru[inode]
        inode.on_lru = False
        freeable.append(inode)
    await sbc.inode_lru_lock.release(th)
    for inode in retry:  # LRU_RETRY: drop its clean pages; evicted at a later pass
        reap = await invalidate_mapping_pages(th, inode.i_mapping)
        k.vmstat["kswapd_inodesteal" if th.comm.startswith("kswapd") else "pginodesteal"] += reap
    freed = 0
    for inode in freeable:  # dispose_list → evict
        sb = inode.i_sb
        if sb.inodes.get(inode.i_ino) is inode:
            del sb.inodes[inode.i_ino]
        if inode.i_mapping is not None:
            k.pagecache.unregister(inode.i_mapping)
        dc.nr_inodes -= 1
        await cache_free(th, "inode_cache", inode.slab_obj)
        freed += 1
    return freed


async def super_cache_scan(th: "Thread", sbc: SbCaches, sc: ShrinkControl) -> int:
    """``super_cache_scan``: split the scan between dentries and inodes by their share; prune both."""
    dentries = len(sbc.dentry_lru)
    inodes = len(sbc.inode_lru)
    total = dentries + inodes + 1
    d_scan = sc.nr_to_scan * dentries // total
    i_scan = sc.nr_to_scan * inodes // total
    freed = await prune_dcache_sb(th, sbc, d_scan)
    freed += await prune_icache_sb(th, sbc, i_scan)
    return freed


def _register(kernel: Any, name: str, count: Any, scan: Any) -> None:
    """Register with the shrinker registry (``kernel.shrinkers``, mm/shrinker.c) when it is booted.

    ``sb->s_shrink`` is ``SHRINKER_NUMA_AWARE`` with ``DEFAULT_SEEKS``; without a
    registry the pair is kept in ``kernel.dcache.shrinkers`` (tests call it directly).
    """
    kernel.dcache.shrinkers.append((name, count, scan))
    if getattr(kernel, "shrinkers", None) is None:
        return
    from . import shrinker as shrinker_mod  # type: ignore[attr-defined]

    shrinker_mod.register_shrinker(kernel, name, count, scan, flags=shrinker_mod.SHRINKER_NUMA_AWARE,
                                   symbol="super_cache_scan")


def dcache_init(kernel: Any) -> Dcache:
    """A super block per filesystem (its wb, LRUs and shrinker), the root inode, ``kernel.vfs_open``."""
    dc = Dcache(kernel)
    kernel.dcache = dc
    for i, fs in enumerate(kernel.block.filesystems):
        sb = SuperBlock(kernel, fs)
        sb.wb = kernel.writeback.wbs[fs.disk.name]
        dc.sbs[fs] = sb
        sbc = SbCaches(kernel, sb)
        dc.caches[sb] = sbc
        name = "sb-ext2" if i == 0 else f"sb-ext2-{i}"

        def count(sc: Any = None, _sbc: SbCaches = sbc) -> int:
            return super_cache_count(kernel, _sbc)

        async def scan(th: "Thread", sc: Any, _sbc: SbCaches = sbc) -> int:
            return await super_cache_scan(th, _sbc, sc)

        _register(kernel, name, count, scan)
    kernel.vfs_open = kernel_vfs_open
    kernel.add_check("dcache", lambda: check_dcache(kernel))
    return dc


def check_dcache(kernel: Any, full: bool = False) -> str | None:
    """Invariant: the object counts match the hashes; LRU flags match the LRUs; nothing freed stays hashed.

    The counts are checked every time; the walk of every dentry and inode is
    amortised like the page cache's (when the checks since the last walk
    reach a 16th of the objects, or ``full``).
    """
    dc: Dcache = kernel.dcache
    inodes = sum(len(sb.inodes) for sb in dc.sbs.values())
    if inodes != dc.nr_inodes:
        return f"{inodes} inodes hashed but nr_inodes is {dc.nr_inodes}"
    dc.since_sweep += 1
    if not full and dc.since_sweep < max(64, (len(dc.hashtable) + inodes) // 16):
        return None
    dc.since_sweep = 0
    for d in dc.hashtable.values():
        if d.d_count < 0:
            return f"{d!r}: negative reference count"
        if d.on_lru != (d in dc.caches[d.d_sb].dentry_lru):
            return f"{d!r}: on_lru disagrees with the LRU"
    for sb in dc.sbs.values():
        for inode in sb.inodes.values():
            if inode.i_state & I_FREEING:
                return f"{inode!r} is being freed but still hashed"
            if inode.on_lru != (inode in dc.caches[sb].inode_lru):
                return f"{inode!r}: on_lru disagrees with the LRU"
    return None


__all__ = ["Dcache", "Dentry", "ShrinkControl", "check_dcache", "dcache_init", "dput", "fput", "iget",
           "path_lookup", "prune_dcache_sb", "prune_icache_sb", "super_cache_count", "super_cache_scan",
           "vfs_open"]
