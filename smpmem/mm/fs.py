"""In-core VFS objects: models ``struct inode``, ``struct super_block`` and ``struct file`` (include/linux/fs.h).

Modelled: an inode's number, size, state bits (``I_DIRTY_PAGES``, ``I_SYNC``,
``I_FREEING``), ``dirtied_when`` (jiffies in the kernel, virtual ns here),
reference count ``i_count``, ``i_rwsem`` (the RWSemaphore class
``&inode->i_rwsem``) and its ``i_data`` address space; a super block per
filesystem with its inode and dentry LRUs; an open file with its position,
readahead state (``struct file_ra_state``) and the ``errseq_t`` sample
``f_wb_err`` that makes fsync report a writeback error once per open file.

Also the one place the filesystem code allocates slab objects
(:func:`cache_alloc` / :func:`cache_free`): through ``kernel.slab`` when the
slab allocator is present (``kmem_cache_alloc`` of the ``dentry``,
``inode_cache`` and ``buffer_head`` caches), else a plain placeholder
object that costs no memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sim import RWSemaphore
from .gfp import GFP_KERNEL, GFP_NOFS

if TYPE_CHECKING:
    from ..sim import Thread
    from .block import DiskFs, DiskInode
    from .pagemap import AddressSpace

# inode->i_state bits (include/linux/fs.h)
I_DIRTY_SYNC = 1 << 0
I_DIRTY_DATASYNC = 1 << 1
I_DIRTY_PAGES = 1 << 2
I_NEW = 1 << 3
I_WILL_FREE = 1 << 4
I_FREEING = 1 << 5
I_CLEAR = 1 << 6
I_SYNC = 1 << 7
I_REFERENCED = 1 << 8
I_DIRTY = I_DIRTY_SYNC | I_DIRTY_DATASYNC | I_DIRTY_PAGES

# Size of the slab objects (for the placeholder and the docs): dentry 192, ext4 inode ~1 KiB, bh 104.
SLAB_GFP = {"dentry": GFP_KERNEL, "inode_cache": GFP_KERNEL, "buffer_head": GFP_NOFS}
# Where the kernel allocates and frees these objects (the kmem events' call_site).
ALLOC_SITE = {"dentry": "__d_alloc+0x2b/0x1f0", "inode_cache": "alloc_inode+0x59/0xc0",
              "buffer_head": "alloc_buffer_head+0x21/0x90"}
FREE_SITE = {"dentry": "__d_free+0x1d/0x30", "inode_cache": "free_inode_nonrcu+0x1a/0x30",
             "buffer_head": "free_buffer_head+0x24/0x70"}


class Inode:
    """``struct inode`` (with its ``i_data``).

    Locking: ``i_state``, ``dirtied_when`` and the writeback list membership
    under ``wb->list_lock`` (the kernel adds ``i_lock``); ``i_size`` under
    ``i_rwsem`` for writers; ``i_count`` atomic.
    """

    __slots__ = ("i_ino", "i_sb", "i_size", "i_mapping", "i_state", "dirtied_when", "i_count",
                 "i_rwsem", "disk", "expected", "slab_obj", "on_lru", "wb_list", "i_nlink", "__weakref__")

    def __init__(self, kernel: Any, sb: "SuperBlock", disk: "DiskInode | None", ino: int) -> None:
        self.i_ino = ino
        self.i_sb = sb
        self.disk = disk  # the on-disk inode (None for a block device inode)
        self.i_size = disk.size if disk is not None else 0
        self.i_mapping: "AddressSpace | None" = None
        self.i_state = 0
        self.dirtied_when = 0
        self.i_count = 0
        self.i_nlink = 1
        self.i_rwsem = RWSemaphore(kernel, "&inode->i_rwsem")
        # The content each page index should read back: the token of the last write(2) there
        # (checked by reads; absent for never-written pages and for pages written through mmap).
        self.expected: dict[int, Any] = {}
        self.slab_obj: Any = None
        self.on_lru = False  # on sb->s_inode_lru (unused: i_count == 0)
        self.wb_list: str | None = None  # which wb list holds it: "b_dirty", "b_io", "b_more_io"

    def __repr__(self) -> str:
        return f"<inode {self.i_ino} size={self.i_size} count={self.i_count}>"


class SuperBlock:
    """``struct super_block`` of one filesystem: its inodes, dentry and inode LRUs, its device and wb."""

    def __init__(self, kernel: Any, fs: "DiskFs") -> None:
        self.kernel = kernel
        self.fs = fs
        self.s_dev = fs.s_dev
        self.s_id = fs.part.name
        self.s_type = "ext2"
        self.s_bdev = fs.part
        self.inodes: dict[int, Inode] = {}  # the inode hash (icache) of this sb
        self.wb: Any = None  # the bdi_writeback of the disk (page_writeback.BdiWriteback)

    def __repr__(self) -> str:
        return f"<super_block {self.s_id}>"


class FileRaState:
    """``struct file_ra_state``: the readahead window ``[start, start + size)``, ``async_size``, ``prev_pos``."""

    __slots__ = ("start", "size", "async_size", "ra_pages", "mmap_miss", "prev_pos")

    def __init__(self, ra_pages: int) -> None:
        self.start = 0
        self.size = 0
        self.async_size = 0
        self.ra_pages = ra_pages
        self.mmap_miss = 0
        self.prev_pos = -1


class File:
    """``struct file``: an open file description (what ``vfs_open`` returns and a VMA's ``vm_file`` holds)."""

    __slots__ = ("f_path", "f_dentry", "f_inode", "f_mapping", "f_pos", "f_ra", "f_wb_err", "f_count",
                 "__weakref__")

    def __init__(self, path: str, dentry: Any, inode: Inode) -> None:
        assert inode.i_mapping is not None
        self.f_path = path
        self.f_dentry = dentry
        self.f_inode = inode
        self.f_mapping = inode.i_mapping
        self.f_pos = 0
        self.f_ra = FileRaState(inode.i_mapping.ra_pages)
        self.f_wb_err = inode.i_mapping.wb_err_seq  # errseq_sample at open
        self.f_count = 1

    def __repr__(self) -> str:
        return f"<file {self.f_path}>"

    def mmap(self, vma: Any) -> int:
        """``f_op->mmap`` = ``generic_file_mmap``: the VMA faults through the page cache."""
        from .filemap import generic_file_vm_ops

        vma.vm_ops = generic_file_vm_ops
        return 0

    async def release(self, th: "Thread") -> None:
        """``__fput``: the last reference is gone: drop the dentry (mm/mmap.py's ``fput`` calls this)."""
        from .dcache import dput

        dput(th, self.f_dentry)


def file_check_and_advance_wb_err(file: File) -> int:
    """``file_check_and_advance_wb_err``: the mapping's error if one happened since this file last looked."""
    m = file.f_mapping
    m.flags &= ~0b11  # clear AS_EIO / AS_ENOSPC, as the kernel does here
    if file.f_wb_err != m.wb_err_seq:
        file.f_wb_err = m.wb_err_seq
        return m.wb_err
    return 0


class _Placeholder:
    """A slab object when the slab allocator is absent: identity only."""

    __slots__ = ("cache",)

    def __init__(self, cache: str) -> None:
        self.cache = cache


async def cache_alloc(th: "Thread", name: str) -> Any:
    """``kmem_cache_alloc`` from the named cache (``dentry``, ``inode_cache``, ``buffer_head``); None on ENOMEM."""
    k = th.machine
    slab = getattr(k, "slab", None)
    caches = getattr(slab, "caches", None)
    if caches is not None and name in caches:
        from . import slab as slab_mod  # type: ignore[attr-defined]

        return await slab_mod.kmem_cache_alloc(th, caches[name], SLAB_GFP.get(name, GFP_KERNEL),
                                               call_site=ALLOC_SITE.get(name))
    return _Placeholder(name)


async def cache_free(th: "Thread", name: str, obj: Any) -> None:
    """``kmem_cache_free`` of an object :func:`cache_alloc` returned."""
    if obj is None or isinstance(obj, _Placeholder):
        return
    k = th.machine
    from . import slab as slab_mod  # type: ignore[attr-defined]

    await slab_mod.kmem_cache_free(th, k.slab.caches[name], obj, call_site=FREE_SITE.get(name))


__all__ = [
    "File", "FileRaState", "I_DIRTY", "I_DIRTY_PAGES", "I_FREEING", "I_SYNC", "Inode", "SuperBlock",
    "cache_alloc", "cache_free", "file_check_and_advance_wb_err",
]
