"""Address spaces: models ``mm_struct`` and VMAs (include/linux/mm_types.h), mm/mmap.c, mm/vma.c,
mm/mprotect.c and the mm half of kernel/fork.c (Linux 6.12).

Modelled:

- ``MmStruct``: ``mm_users`` / ``mm_count``, ``map_count``, ``total_vm``,
  ``data_vm`` / ``exec_vm`` / ``stack_vm`` (``vm_stat_account``),
  ``locked_vm``, the RSS counters ``MM_FILEPAGES`` … ``MM_SHMEMPAGES`` with
  ``rss_stat`` events, ``hiwater_rss`` / ``hiwater_vm``, ``pgtables_bytes``,
  ``mmap_lock`` (an rwsem, class ``&mm->mmap_lock``) with ``mm_lock_seq``,
  ``page_table_lock``, ``mm_cpumask``, ``tlb_gen``, brk, stack and the
  layout (TASK_SIZE 3 GiB on i386, 128 TiB - 4 KiB on x86_64, mmap_base
  128 MiB below the stack, no randomisation: as with ``setarch -R``).
- VMAs in a ``sortedcontainers.SortedDict`` keyed by ``vm_start`` (the maple
  tree) plus the last lookup (``mmap_cache``); ``find_vma``; top-down
  ``get_unmapped_area`` (``vm_unmapped_area`` events) with the bottom-up
  fallback; ``do_mmap`` / ``mmap_region`` with ``MAP_FIXED`` unmapping,
  ``MAP_FIXED_NOREPLACE`` (EEXIST), accounting under the overcommit policy
  and merging with neighbours (``can_vma_merge_before/after``: same flags
  but VM_SOFTDIRTY, same file, contiguous ``vm_pgoff``, compatible
  ``anon_vma`` with the ``list_is_singular`` rule); ``do_vmi_munmap``
  splitting at both ends; ``brk``; ``mprotect`` splitting and merging again;
  per-VMA locks (``vma_start_write`` / ``vma_start_read``) when
  ``tunables.per_vma_lock``; ``dup_mmap`` for fork.
- Errors are returned as negative errno values, never raised: EINVAL for a
  zero length or an unaligned address, ENOMEM past TASK_SIZE or without
  room, EEXIST for MAP_FIXED_NOREPLACE over a mapping, EPERM below
  ``mmap_min_addr`` with MAP_FIXED, EACCES for a write mapping of a file
  that is not writable.

Simplified: no ``mremap``, mempolicy, userfaultfd, hugetlb or THP;
``madvise`` knows only MADV_DONTNEED (smpmem/workload/_madvise.py); ``munmap`` keeps ``mmap_lock`` for write instead of downgrading it;
stacks do not grow on faults (the initial stack VMA is 132 KiB); RLIMIT_AS
and RLIMIT_DATA are unlimited; exec maps no ELF image (only the stack), so
VmExe and VmLib are 0.

Locks (see the tree in :mod:`smpmem.mm.rmap`): the VMA tree and the mm's
counters except RSS are written under ``mmap_lock`` held for write; faults
read them under ``mmap_lock`` for read or a per-VMA read lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedDict

from ..sim import ModelBug, RWSemaphore, SpinLock
from ..trace.events import kmem as kmem_events
from ..trace.events import mmap as mmap_events
from ..trace.gfp import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS
from .page import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from ..sim import Thread

PAGE_MASK = ~(PAGE_SIZE - 1)
NR_MM_COUNTERS = 4

# --- errno (include/uapi/asm-generic/errno-base.h) -----------------------------------------------
EPERM, ENOMEM, EACCES, EEXIST, EINVAL, EOVERFLOW = 1, 12, 13, 17, 22, 75
ERRNO_NAMES = {EPERM: "EPERM", ENOMEM: "ENOMEM", EACCES: "EACCES", EEXIST: "EEXIST", EINVAL: "EINVAL",
               EOVERFLOW: "EOVERFLOW"}

# --- mmap(2) (include/uapi/asm-generic/mman*.h) ---------------------------------------------------
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x0100
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_FIXED_NOREPLACE = 0x100000

# --- vm_flags (include/linux/mm.h) ---------------------------------------------------------------
VM_NONE = 0
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_GROWSDOWN = 0x100
VM_PFNMAP = 0x400
VM_LOCKED = 0x2000
VM_IO = 0x4000
VM_SEQ_READ = 0x8000
VM_RAND_READ = 0x10000
VM_DONTCOPY = 0x20000
VM_DONTEXPAND = 0x40000
VM_LOCKONFAULT = 0x80000
VM_ACCOUNT = 0x100000
VM_NORESERVE = 0x200000
VM_HUGETLB = 0x400000
VM_SYNC = 0x800000
VM_ARCH_1 = 0x1000000
VM_WIPEONFORK = 0x2000000
VM_DONTDUMP = 0x4000000
VM_SOFTDIRTY = 0x8000000
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000
VM_STACK = VM_GROWSDOWN
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK_DEFAULT_FLAGS = VM_DATA_DEFAULT_FLAGS
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC

# fs/proc/task_mmu.c show_smap_vma_flags(): mnemonics by bit (x86_64, 6.12)
VM_FLAG_MNEMONICS: tuple[tuple[int, str], ...] = (
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"), (VM_MAYREAD, "mr"),
    (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"), (VM_GROWSDOWN, "gd"), (VM_PFNMAP, "pf"),
    (VM_LOCKED, "lo"), (VM_IO, "io"), (VM_SEQ_READ, "sr"), (VM_RAND_READ, "rr"), (VM_DONTCOPY, "dc"),
    (VM_DONTEXPAND, "de"), (VM_LOCKONFAULT, "lf"), (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"),
    (VM_HUGETLB, "ht"), (VM_SYNC, "sf"), (VM_ARCH_1, "ar"), (VM_WIPEONFORK, "wf"), (VM_DONTDUMP, "dd"),
    (VM_SOFTDIRTY, "sd"), (VM_MIXEDMAP, "mm"), (VM_HUGEPAGE, "hg"), (VM_NOHUGEPAGE, "nh"),
    (VM_MERGEABLE, "mg"),
)

# --- layout ---------------------------------------------------------------------------------------
SIZE_128M = 128 << 20
STACK_GUARD_GAP = 256 << PAGE_SHIFT  # stack_guard_gap: 1 MiB
MMAP_MIN_ADDR = 65536  # vm.mmap_min_addr (CONFIG_DEFAULT_MMAP_MIN_ADDR on x86)
SYSCTL_MAX_MAP_COUNT = 65530  # DEFAULT_MAX_MAP_COUNT
RLIMIT_STACK = 8 << 20
INITIAL_STACK = 0x21000  # setup_arg_pages: the argument page plus 128 KiB of stack_expand
VM_UNMAPPED_AREA_TOPDOWN = 1
USER_PGTABLES_CEILING = 1 << 62  # no ceiling: tables up to the top of the user half may go


def PAGE_ALIGN(x: int) -> int:
    return (x + PAGE_SIZE - 1) & PAGE_MASK


def offset_in_page(x: int) -> int:
    return x & (PAGE_SIZE - 1)


class Layout:
    """The user address-space limits of an architecture (arch/x86/include/asm/page_*_types.h, mm/util.c)."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        if arch == "i386":
            self.task_size = 0xC0000000  # the 3G/1G split
            self.elf_et_dyn_base = 0x00400000
        else:
            self.task_size = (1 << 47) - PAGE_SIZE  # DEFAULT_MAP_WINDOW: 0x7ffffffff000
            self.elf_et_dyn_base = (self.task_size // 3 * 2) & PAGE_MASK  # 0x555555554000
        self.stack_top = self.task_size
        # mmap_base(): the stack rlimit plus the guard gap, at least 128 MiB, no random offset.
        gap = max(RLIMIT_STACK + STACK_GUARD_GAP, SIZE_128M)
        self.mmap_base = PAGE_ALIGN(self.task_size - gap)
        self.task_unmapped_base = PAGE_ALIGN(self.task_size // 3)  # mmap_legacy_base without randomisation


# --- the structures -------------------------------------------------------------------------------

class VmAreaStruct:
    """``struct vm_area_struct``: one mapping ``[vm_start, vm_end)``.

    Written under ``mmap_lock`` for write (and the per-VMA lock when enabled);
    ``anon_vma`` is set once under ``mm->page_table_lock`` (``anon_vma_prepare``).
    """

    __slots__ = ("vm_mm", "vm_start", "vm_end", "vm_flags", "vm_page_prot", "vm_pgoff", "vm_file", "vm_ops",
                 "anon_vma", "anon_vma_chain", "vm_lock", "vm_lock_seq", "detached", "slab_obj", "uid",
                 "swap_readahead_info")

    _uids = 0

    def __init__(self, mm: "MmStruct", start: int, end: int, flags: int, pgoff: int) -> None:
        VmAreaStruct._uids += 1
        self.uid = VmAreaStruct._uids  # order of creation: the deterministic key in rmap lists
        self.vm_mm = mm
        self.vm_start = start
        self.vm_end = end
        self.vm_flags = flags
        self.vm_pgoff = pgoff  # in pages: the file offset, or vm_start >> PAGE_SHIFT for private anon
        self.vm_page_prot = 0
        self.vm_file: Any = None
        self.vm_ops: Any = None
        self.anon_vma: Any = None  # rmap.AnonVma once the first anon page is faulted
        self.anon_vma_chain: list[Any] = []  # every AnonVma this VMA is linked into (the AVC list)
        self.vm_lock: RWSemaphore | None = None  # per-VMA lock (tunables.per_vma_lock)
        self.vm_lock_seq = -1  # == mm.mm_lock_seq while write-locked
        self.detached = False
        self.slab_obj: Any = None
        self.swap_readahead_info = (0, 0, 0)  # VMA swap readahead: (last fault vpn, window, hits)
        vma_set_page_prot(self)

    def pages(self) -> int:
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def __repr__(self) -> str:
        return f"<vma {self.vm_start:x}-{self.vm_end:x} {vm_flags_str(self.vm_flags)} pgoff={self.vm_pgoff:x}>"


def vm_flags_str(flags: int) -> str:
    """``rw-p`` as in /proc/PID/maps."""
    return ("r" if flags & VM_READ else "-") + ("w" if flags & VM_WRITE else "-") + \
           ("x" if flags & VM_EXEC else "-") + ("s" if flags & VM_MAYSHARE else "p")


def vma_set_page_prot(vma: VmAreaStruct) -> None:
    """``vma_set_page_prot``: the PTE bits new mappings of this VMA get (``protection_map``).

    Private writable mappings get no _PAGE_RW (copy-on-write, made writable by
    the write fault); shared writable ones keep it unless the VMA wants write
    notifications (dirty tracking of file pages: ``vma_wants_writenotify``).
    """
    from .memory import _PAGE_PRESENT, _PAGE_PROTNONE, _PAGE_RW, _PAGE_USER

    f = vma.vm_flags
    if not f & VM_ACCESS_FLAGS:
        vma.vm_page_prot = _PAGE_PROTNONE
        return
    prot = _PAGE_PRESENT | _PAGE_USER
    if f & VM_SHARED and f & VM_WRITE and not vma_wants_writenotify(vma):
        prot |= _PAGE_RW
    vma.vm_page_prot = prot


def vma_wants_writenotify(vma: VmAreaStruct) -> bool:
    """``vma_wants_writenotify``: shared writable file mappings whose pages are written back."""
    f = vma.vm_flags
    if (f & (VM_WRITE | VM_SHARED)) != (VM_WRITE | VM_SHARED):
        return False
    ops = vma.vm_ops
    if ops is not None and getattr(ops, "page_mkwrite", None) is not None:
        return True
    file = vma.vm_file
    if file is None:
        return False
    return bool(getattr(getattr(file, "f_mapping", None), "can_writeback", True))


def vma_is_anonymous(vma: VmAreaStruct) -> bool:
    return vma.vm_ops is None


def is_cow_mapping(flags: int) -> bool:
    return (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


class MmStruct:
    """``struct mm_struct``: one address space, shared by the threads of a process.

    ``mm_mt`` (the VMAs), ``map_count``, ``total_vm`` and the other
    ``*_vm`` counters, brk and layout: ``mmap_lock`` held for write.
    ``rss_stat``: atomic (percpu_counter in the kernel). ``ptes``, ``pmds``,
    ``puds``, ``pgtables_bytes``: ``page_table_lock`` (table installation)
    and the table's ptl (entries). ``cpumask``, ``tlb_gen``: atomic bitops.
    ``shadow``: the content checker's view (vpn -> token), not the kernel's.
    """

    def __init__(self, kernel: Any, layout: Layout, serial: int) -> None:
        self.kernel = kernel
        self.serial = serial
        self.addr = 0xFFFF888100000000 + serial * 0x440  # a stable fake kernel address
        self.mm_id = _hash32(self.addr)  # rss_stat's mm_id: a 32-bit hash of the pointer
        self.layout = layout
        self.task_size = layout.task_size
        self.mmap_base = layout.mmap_base
        self.mm_users = 1
        self.mm_count = 1
        self.mm_mt: SortedDict = SortedDict()  # vm_start -> VmAreaStruct
        self.mmap_cache: VmAreaStruct | None = None
        self.map_count = 0
        self.total_vm = self.locked_vm = self.pinned_vm = self.data_vm = self.exec_vm = self.stack_vm = 0
        self.hiwater_rss = self.hiwater_vm = 0
        self.rss_stat = [0] * NR_MM_COUNTERS
        self.def_flags = 0
        self.mmap_lock = RWSemaphore(kernel, "&mm->mmap_lock")
        self.mm_lock_seq = 0
        self.page_table_lock = SpinLock(kernel, "&mm->page_table_lock")
        self.cpumask: set[int] = set()
        self.tlb_gen = 0
        self.tlb_flush_pending = 0  # mmu_gathers and flushes in flight (inc_tlb_flush_pending)
        self.tlb_flush_batched = False  # reclaim's deferred unmap flush (set_tlb_ubc_flush_pending)
        self.pgd: Any = None  # the pgd page
        self.puds: dict[int, Any] = {}  # vaddr >> 39 -> pud table page (x86_64)
        self.pmds: dict[int, Any] = {}  # vaddr >> 30 -> pmd table page
        self.ptes: dict[int, Any] = {}  # vaddr >> 21 -> memory.PtePage
        self.pgtables_bytes = 0
        self.start_code = self.end_code = self.start_data = self.end_data = layout.elf_et_dyn_base
        self.start_brk = self.brk = 0
        self.start_stack = 0
        self.arg_start = self.arg_end = self.env_start = self.env_end = 0
        self.shadow: dict[int, int] = {}
        self.dead = False  # exit_mmap has run
        self.owner_pid = 0
        self.slab_obj: Any = None
        self.committed = 0  # pages charged to vm_committed_as by this mm's VM_ACCOUNT mappings

    # -- lookups (mmap_lock held, or a per-VMA lock for the VMA found) ----------------------------
    def vmas(self) -> Iterator[VmAreaStruct]:
        return iter(list(self.mm_mt.values()))

    def __repr__(self) -> str:
        return f"<mm {self.serial} pid={self.owner_pid} users={self.mm_users} vmas={self.map_count}>"


def _hash32(v: int) -> int:
    """``hash_64(v, 32)`` (include/linux/hash.h, GOLDEN_RATIO_64)."""
    return ((v * 0x61C8864680B583EB) & 0xFFFFFFFFFFFFFFFF) >> 32


def find_vma(mm: MmStruct, addr: int) -> VmAreaStruct | None:
    """``find_vma``: the first VMA with ``vm_end > addr`` (it may start above ``addr``)."""
    c = mm.mmap_cache
    if c is not None and c.vm_start <= addr < c.vm_end and not c.detached:
        return c
    mt = mm.mm_mt
    i = mt.bisect_right(addr) - 1
    if i >= 0:
        v = mt.peekitem(i)[1]
        if v.vm_end > addr:
            mm.mmap_cache = v
            return v
    if i + 1 < len(mt):
        v = mt.peekitem(i + 1)[1]
        mm.mmap_cache = v
        return v
    return None


def vma_lookup(mm: MmStruct, addr: int) -> VmAreaStruct | None:
    """``vma_lookup``: the VMA containing ``addr``, or None."""
    v = find_vma(mm, addr)
    return v if v is not None and v.vm_start <= addr else None


def find_vma_prev(mm: MmStruct, addr: int) -> tuple[VmAreaStruct | None, VmAreaStruct | None]:
    """(the VMA found by find_vma, the one before it)."""
    mt = mm.mm_mt
    i = mt.bisect_right(addr) - 1
    if i >= 0 and mt.peekitem(i)[1].vm_end > addr:
        return mt.peekitem(i)[1], (mt.peekitem(i - 1)[1] if i >= 1 else None)
    nxt = mt.peekitem(i + 1)[1] if i + 1 < len(mt) else None
    return nxt, (mt.peekitem(i)[1] if i >= 0 else None)


def find_vma_intersection(mm: MmStruct, start: int, end: int) -> VmAreaStruct | None:
    v = find_vma(mm, start)
    return v if v is not None and v.vm_start < end else None


def vmas_in_range(mm: MmStruct, start: int, end: int) -> list[VmAreaStruct]:
    """The VMAs overlapping ``[start, end)``, in address order."""
    out = []
    v = find_vma(mm, start)
    if v is None or v.vm_start >= end:
        return out
    for s in mm.mm_mt.irange(v.vm_start, end - 1):
        out.append(mm.mm_mt[s])
    return out


def prev_next(mm: MmStruct, vma: VmAreaStruct) -> tuple[VmAreaStruct | None, VmAreaStruct | None]:
    mt = mm.mm_mt
    i = mt.index(vma.vm_start)
    return (mt.peekitem(i - 1)[1] if i > 0 else None, mt.peekitem(i + 1)[1] if i + 1 < len(mt) else None)


def vm_start_gap(vma: VmAreaStruct) -> int:
    s = vma.vm_start
    if vma.vm_flags & VM_GROWSDOWN:
        s = max(s - STACK_GUARD_GAP, 0)
    return s


def vm_end_gap(vma: VmAreaStruct) -> int:
    return vma.vm_end


# --- slab objects (mm_struct, vm_area_struct, anon_vma) --------------------------------------------

async def slab_alloc(th: "Thread", cache: str) -> tuple[bool, Any]:
    """``kmem_cache_alloc(cache, GFP_KERNEL)`` when the slab allocator is there: (ok, object)."""
    k = th.machine
    slab = getattr(k, "slab", None)
    if slab is None:
        return True, None
    cachep = slab.caches.get(cache)
    if cachep is None:
        return True, None
    from . import slab as slab_mod  # type: ignore[attr-defined]
    from .gfp import GFP_KERNEL

    obj = await slab_mod.kmem_cache_alloc(th, cachep, GFP_KERNEL)
    return obj is not None, obj


async def slab_free(th: "Thread", cache: str, obj: Any) -> None:
    """``kmem_cache_free`` of an object :func:`slab_alloc` returned."""
    if obj is None:
        return
    k = th.machine
    slab = getattr(k, "slab", None)
    if slab is None or cache not in slab.caches:
        return
    from . import slab as slab_mod  # type: ignore[attr-defined]

    await slab_mod.kmem_cache_free(th, slab.caches[cache], obj)


# --- RSS and vm accounting --------------------------------------------------------------------------

_rss_stat = kmem_events.rss_stat


def add_mm_counter(th: "Thread", mm: MmStruct, member: int, value: int) -> None:
    """``add_mm_counter`` + ``mm_trace_rss_stat``."""
    mm.rss_stat[member] += value
    tr = th.machine.tracer
    if tr.on[_rss_stat.id]:
        proc = getattr(th, "process", None)
        curr = 1 if proc is not None and proc.mm is mm else 0
        tr.emit(_rss_stat, th, mm_id=mm.mm_id, curr=curr, member=member,
                size=mm.rss_stat[member] << PAGE_SHIFT)


def get_mm_rss(mm: MmStruct) -> int:
    r = mm.rss_stat
    return r[MM_FILEPAGES] + r[MM_ANONPAGES] + r[MM_SHMEMPAGES]


def update_hiwater_rss(mm: MmStruct) -> None:
    rss = get_mm_rss(mm)
    if mm.hiwater_rss < rss:
        mm.hiwater_rss = rss


def update_hiwater_vm(mm: MmStruct) -> None:
    if mm.hiwater_vm < mm.total_vm:
        mm.hiwater_vm = mm.total_vm


def vm_stat_account(mm: MmStruct, flags: int, npages: int) -> None:
    """``vm_stat_account``: total_vm and the exec / stack / data split."""
    mm.total_vm += npages
    if (flags & (VM_EXEC | VM_WRITE | VM_STACK)) == VM_EXEC:
        mm.exec_vm += npages
    elif (flags & VM_STACK) == VM_STACK:
        mm.stack_vm += npages
    elif (flags & (VM_WRITE | VM_SHARED | VM_STACK)) == VM_WRITE:
        mm.data_vm += npages


def _committed(k: Any) -> int:
    return getattr(k, "vm_committed_as", 0)


def security_vm_enough_memory(th: "Thread", mm: MmStruct, pages: int) -> bool:
    """``__vm_enough_memory``: charge ``pages`` to vm_committed_as under the overcommit policy."""
    k = th.machine
    pa = k.page_alloc
    mode = k.tunables.overcommit_memory
    swap = int(pa.meminfo_sources.get("total_swap_pages"))
    committed = _committed(k)
    if mode == 0:
        if pages > pa.totalram_pages + swap:
            return False
    elif mode == 2:
        limit = pa.totalram_pages * k.tunables.overcommit_ratio // 100 + swap
        if committed + pages > limit:
            return False
    k.vm_committed_as = committed + pages
    mm.committed += pages
    return True


def vm_unacct_memory(k: Any, mm: MmStruct, pages: int) -> None:
    k.vm_committed_as = _committed(k) - pages
    mm.committed -= pages


def accountable_mapping(flags: int) -> bool:
    return (flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE


# --- per-VMA locks (include/linux/mm.h, CONFIG_PER_VMA_LOCK) --------------------------------------

async def mmap_write_lock(th: "Thread", mm: MmStruct, site: str = "do_mmap") -> None:
    await mm.mmap_lock.down_write(th, site=site)


async def mmap_write_unlock(th: "Thread", mm: MmStruct) -> None:
    """``mmap_write_unlock``: ``vma_end_write_all`` (every write-locked VMA is released) and up_write."""
    mm.mm_lock_seq += 1
    await mm.mmap_lock.up_write(th)


async def vma_start_write(th: "Thread", vma: VmAreaStruct) -> None:
    """``vma_start_write``: wait for the VMA's readers, then mark it write-locked until mmap_write_unlock."""
    lock = vma.vm_lock
    mm = vma.vm_mm
    if lock is None or vma.vm_lock_seq == mm.mm_lock_seq:
        return
    await lock.down_write(th, site="vma_start_write")
    vma.vm_lock_seq = mm.mm_lock_seq
    await lock.up_write(th)


async def vma_start_read(th: "Thread", vma: VmAreaStruct) -> bool:
    """``vma_start_read``: a read trylock that fails while the VMA is write-locked."""
    lock = vma.vm_lock
    if lock is None or vma.vm_lock_seq == vma.vm_mm.mm_lock_seq:
        return False
    if lock.writer is not None or lock.waiters:
        return False  # down_read_trylock fails
    await lock.down_read(th, site="lock_vma_under_rcu")
    if vma.vm_lock_seq == vma.vm_mm.mm_lock_seq:
        await lock.up_read(th)
        return False
    return True


async def vma_end_read(th: "Thread", vma: VmAreaStruct) -> None:
    await vma.vm_lock.up_read(th)  # type: ignore[union-attr]


async def lock_vma_under_rcu(th: "Thread", mm: MmStruct, addr: int) -> VmAreaStruct | None:
    """``lock_vma_under_rcu``: find the VMA without mmap_lock and read-lock it, or None (fall back).

    A VMA detached between the lookup and the lock was replaced: counted as a
    miss and looked up again (``goto retry``); no VMA, a VMA being written or
    one not covering ``addr`` is an abort.
    """
    k = th.machine
    mt = mm.mm_mt
    while True:
        i = mt.bisect_right(addr) - 1
        th.charge(k.costs.vma_op)
        if i < 0:
            k.vmstat["vma_lock_abort"] += 1
            return None
        vma = mt.peekitem(i)[1]
        if not await vma_start_read(th, vma):
            k.vmstat["vma_lock_abort"] += 1
            return None
        if vma.detached:
            await vma_end_read(th, vma)
            k.vmstat["vma_lock_miss"] += 1
            continue  # the area was replaced with another one
        if not vma.vm_start <= addr < vma.vm_end:
            await vma_end_read(th, vma)
            k.vmstat["vma_lock_abort"] += 1
            return None
        return vma


# --- VMA tree edits (mmap_lock held for write) ------------------------------------------------------

def _new_vm_lock(k: Any) -> RWSemaphore | None:
    return RWSemaphore(k, "&vma->vm_lock->lock") if k.tunables.per_vma_lock else None


async def vm_area_alloc(th: "Thread", mm: MmStruct, start: int, end: int, flags: int, pgoff: int) -> VmAreaStruct | None:
    """``vm_area_alloc``: a new VMA (from the vm_area_struct cache), or None (ENOMEM)."""
    ok, obj = await slab_alloc(th, "vm_area_struct")
    if not ok:
        return None
    vma = VmAreaStruct(mm, start, end, flags, pgoff)
    vma.slab_obj = obj
    vma.vm_lock = _new_vm_lock(th.machine)
    return vma


async def vm_area_dup(th: "Thread", orig: VmAreaStruct, mm: MmStruct | None = None) -> VmAreaStruct | None:
    """``vm_area_dup``: a copy of ``orig`` (anon_vma links are the caller's business)."""
    new = await vm_area_alloc(th, mm or orig.vm_mm, orig.vm_start, orig.vm_end, orig.vm_flags, orig.vm_pgoff)
    if new is None:
        return None
    new.vm_file = orig.vm_file
    new.vm_ops = orig.vm_ops
    new.vm_page_prot = orig.vm_page_prot
    return new


def vma_link_tree(mm: MmStruct, vma: VmAreaStruct) -> None:
    if vma.vm_start in mm.mm_mt:
        raise ModelBug(f"two VMAs at 0x{vma.vm_start:x}: {mm.mm_mt[vma.vm_start]!r} and {vma!r}")
    mm.mm_mt[vma.vm_start] = vma
    mm.map_count += 1


def vma_unlink_tree(mm: MmStruct, vma: VmAreaStruct) -> None:
    del mm.mm_mt[vma.vm_start]
    mm.map_count -= 1
    if mm.mmap_cache is vma:
        mm.mmap_cache = None


def vma_set_range(mm: MmStruct, vma: VmAreaStruct, start: int, end: int, pgoff: int) -> None:
    """Change a linked VMA's range (its key in the tree moves with its start)."""
    if start != vma.vm_start:
        del mm.mm_mt[vma.vm_start]
        vma.vm_start = start
        mm.mm_mt[start] = vma
    vma.vm_end = end
    vma.vm_pgoff = pgoff
    if mm.mmap_cache is vma:
        mm.mmap_cache = None


def vma_link_file(vma: VmAreaStruct) -> None:
    """``__vma_link_file``: the VMA goes into its file's ``i_mmap`` (for file rmap)."""
    mapping = getattr(vma.vm_file, "f_mapping", None)
    if mapping is not None and hasattr(mapping, "i_mmap"):
        mapping.i_mmap[vma.uid] = vma


def vma_unlink_file(vma: VmAreaStruct) -> None:
    mapping = getattr(vma.vm_file, "f_mapping", None)
    if mapping is not None and hasattr(mapping, "i_mmap"):
        mapping.i_mmap.pop(vma.uid, None)


def get_file(file: Any) -> None:
    if file is not None and hasattr(file, "f_count"):
        file.f_count += 1


async def fput(th: "Thread", file: Any) -> None:
    """Drop a file reference; the last one calls ``file.release(th)`` if the file has one."""
    if file is None or not hasattr(file, "f_count"):
        return
    file.f_count -= 1
    if file.f_count == 0:
        rel = getattr(file, "release", None)
        if rel is not None:
            await rel(th)


async def __split_vma(th: "Thread", mm: MmStruct, vma: VmAreaStruct, addr: int) -> VmAreaStruct | None:
    """``__split_vma``: cut ``vma`` at ``addr``; returns the new upper part (the lower part stays ``vma``)."""
    from .rmap import anon_vma_clone

    await vma_start_write(th, vma)
    new = await vm_area_dup(th, vma)
    if new is None:
        return None
    if not await anon_vma_clone(th, new, vma):
        await slab_free(th, "vm_area_struct", new.slab_obj)
        return None
    th.charge(th.machine.costs.vma_op)
    delta = (addr - vma.vm_start) >> PAGE_SHIFT
    new.vm_start = addr
    new.vm_pgoff = vma.vm_pgoff + delta
    vma.vm_end = addr
    if mm.mmap_cache is vma:
        mm.mmap_cache = None
    get_file(new.vm_file)
    vma_link_tree(mm, new)
    if new.vm_file is not None:
        vma_link_file(new)
    return new


def _mergeable_anon(av: Any, nb: VmAreaStruct) -> bool:
    """``is_mergeable_anon_vma(av, nb->anon_vma, nb)``."""
    if (av is None or nb.anon_vma is None) and len(nb.anon_vma_chain) == 1:
        return True
    return av is nb.anon_vma


def _anon_compatible(a: VmAreaStruct, b: VmAreaStruct) -> bool:
    """``are_anon_vmas_compatible``."""
    return a.anon_vma is None or b.anon_vma is None or a.anon_vma is b.anon_vma


def _same_backing(nb: VmAreaStruct, flags: int, file: Any, ops: Any) -> bool:
    """``is_mergeable_vma``: flags equal but VM_SOFTDIRTY, the same file."""
    return not ((nb.vm_flags ^ flags) & ~VM_SOFTDIRTY) and nb.vm_file is file and nb.vm_ops is ops \
        and not nb.vm_flags & (VM_PFNMAP | VM_MIXEDMAP | VM_DONTEXPAND)


def can_vma_merge_after(prev: VmAreaStruct, flags: int, file: Any, ops: Any, av: Any, pgoff: int) -> bool:
    return _same_backing(prev, flags, file, ops) and _mergeable_anon(av, prev) and \
        prev.vm_pgoff + prev.pages() == pgoff


def can_vma_merge_before(nxt: VmAreaStruct, flags: int, file: Any, ops: Any, av: Any, pgoff: int, pglen: int) -> bool:
    return _same_backing(nxt, flags, file, ops) and _mergeable_anon(av, nxt) and nxt.vm_pgoff == pgoff + pglen


async def _absorb(th: "Thread", mm: MmStruct, low: VmAreaStruct, high: VmAreaStruct) -> None:
    """``low`` grows over ``high``, which goes away (the two are adjacent and compatible)."""
    from .rmap import unlink_anon_vmas

    await vma_start_write(th, low)
    await vma_start_write(th, high)
    if low.anon_vma is None and high.anon_vma is not None:
        # dup_anon_vma: low takes over high's anon_vma (its chain is singular by the merge rule)
        from .rmap import anon_vma_clone

        await anon_vma_clone(th, low, high)
        low.anon_vma = high.anon_vma
    vma_unlink_tree(mm, high)
    low.vm_end = high.vm_end
    high.detached = True
    await unlink_anon_vmas(th, high)
    if high.vm_file is not None:
        vma_unlink_file(high)
        await fput(th, high.vm_file)
    await slab_free(th, "vm_area_struct", high.slab_obj)
    th.charge(th.machine.costs.vma_op)


async def vma_merge_neighbours(th: "Thread", mm: MmStruct, vma: VmAreaStruct) -> VmAreaStruct:
    """Merge a linked VMA with its neighbours where the kernel's rules allow; returns the survivor."""
    prev, nxt = prev_next(mm, vma)
    merged_left = False
    if prev is not None and prev.vm_end == vma.vm_start and \
            can_vma_merge_after(prev, vma.vm_flags, vma.vm_file, vma.vm_ops, vma.anon_vma, vma.vm_pgoff):
        if nxt is None or nxt.vm_start != vma.vm_end or _anon_compatible(prev, vma):
            await _absorb(th, mm, prev, vma)
            vma = prev
            merged_left = True
    if nxt is not None and nxt.vm_start == vma.vm_end and \
            can_vma_merge_before(nxt, vma.vm_flags, vma.vm_file, vma.vm_ops, vma.anon_vma,
                                 vma.vm_pgoff, vma.pages()) and \
            (not merged_left or _anon_compatible(vma, nxt)):
        await _absorb(th, mm, vma, nxt)
    return vma


# --- get_unmapped_area (mm/mmap.c, arch/x86/kernel/sys_x86_64.c) ------------------------------------

def _trace_unmapped(th: "Thread", mm: MmStruct, addr: int, length: int, lo: int, hi: int, flags: int) -> None:
    tr = th.machine.tracer
    ev = mmap_events.vm_unmapped_area
    if tr.on[ev.id]:
        tr.emit(ev, th, addr=addr, total_vm=mm.total_vm, flags=flags, length=length, low_limit=lo,
                high_limit=hi, align_mask=0, align_offset=0)


def unmapped_area_topdown(mm: MmStruct, length: int, low: int, high: int) -> int:
    """The highest gap of ``length`` bytes in ``[low, high)``, or -ENOMEM."""
    mt = mm.mm_mt
    gap_end = high
    i = mt.bisect_left(high)
    if i < len(mt):
        gap_end = min(gap_end, vm_start_gap(mt.peekitem(i)[1]))
    i -= 1
    while True:
        prev = mt.peekitem(i)[1] if i >= 0 else None
        gap_start = max(vm_end_gap(prev) if prev is not None else 0, low)
        if gap_end > gap_start and gap_end - gap_start >= length:
            return (gap_end - length) & PAGE_MASK
        if prev is None:
            return -ENOMEM
        gap_end = min(gap_end, vm_start_gap(prev))
        i -= 1


def unmapped_area(mm: MmStruct, length: int, low: int, high: int) -> int:
    """The lowest gap of ``length`` bytes in ``[low, high)``, or -ENOMEM."""
    mt = mm.mm_mt
    gap_start = low
    i = mt.bisect_right(low) - 1
    if i >= 0:
        gap_start = max(gap_start, vm_end_gap(mt.peekitem(i)[1]))
    i += 1
    while True:
        nxt = mt.peekitem(i)[1] if i < len(mt) else None
        gap_end = min(vm_start_gap(nxt) if nxt is not None else high, high)
        if gap_end > gap_start and gap_end - gap_start >= length:
            return gap_start
        if nxt is None or gap_end >= high:
            return -ENOMEM
        gap_start = max(gap_start, vm_end_gap(nxt))
        i += 1


def arch_get_unmapped_area_topdown(th: "Thread", mm: MmStruct, addr: int, length: int, flags: int) -> int:
    """``arch_get_unmapped_area_topdown`` (x86): the hint if it fits, else top-down below mmap_base."""
    task_size = mm.task_size
    if length > task_size - MMAP_MIN_ADDR:
        return -ENOMEM
    if flags & MAP_FIXED:
        return addr
    if addr:
        addr = PAGE_ALIGN(addr)
        vma, prev = find_vma_prev(mm, addr)
        if task_size - length >= addr and addr >= MMAP_MIN_ADDR and \
                (vma is None or addr + length <= vm_start_gap(vma)) and (prev is None or addr >= vm_end_gap(prev)):
            return addr
    lo, hi = PAGE_SIZE, mm.mmap_base
    addr = unmapped_area_topdown(mm, length, lo, hi)
    _trace_unmapped(th, mm, addr, length, lo, hi, VM_UNMAPPED_AREA_TOPDOWN)
    if addr < 0:
        # A failed top-down search falls back to bottom-up (arch_get_unmapped_area).
        lo, hi = mm.layout.task_unmapped_base, task_size
        addr = unmapped_area(mm, length, lo, hi)
        _trace_unmapped(th, mm, addr, length, lo, hi, 0)
    return addr


def get_unmapped_area(th: "Thread", mm: MmStruct, addr: int, length: int, flags: int) -> int:
    """``__get_unmapped_area``: an address for a mapping, or -errno."""
    if length > mm.task_size:
        return -ENOMEM
    addr = arch_get_unmapped_area_topdown(th, mm, addr, length, flags)
    if addr < 0:
        return addr
    if addr > mm.task_size - length:
        return -ENOMEM
    if offset_in_page(addr):
        return -EINVAL
    return addr


# --- mmap ---------------------------------------------------------------------------------------------

def calc_vm_prot_bits(prot: int) -> int:
    return (VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0) | \
        (VM_EXEC if prot & PROT_EXEC else 0)


def calc_vm_flag_bits(flags: int) -> int:
    return (VM_GROWSDOWN if flags & MAP_GROWSDOWN else 0) | (VM_LOCKED if flags & MAP_LOCKED else 0)


async def do_mmap(th: "Thread", mm: MmStruct, file: Any, addr: int, length: int, prot: int, flags: int,
                  pgoff: int = 0) -> tuple[int, int]:
    """``do_mmap`` (mmap_lock held for write): ``(address or -errno, bytes to populate)``."""
    k = th.machine
    if length == 0:
        return -EINVAL, 0
    if not flags & MAP_FIXED and addr and addr < MMAP_MIN_ADDR:
        addr = PAGE_ALIGN(MMAP_MIN_ADDR)  # round_hint_to_min
    length = PAGE_ALIGN(length)
    if length == 0 or length > mm.task_size:
        return -ENOMEM, 0
    if pgoff + (length >> PAGE_SHIFT) >= 1 << 52:
        return -EOVERFLOW, 0
    if mm.map_count > SYSCTL_MAX_MAP_COUNT:
        return -ENOMEM, 0
    if flags & MAP_FIXED_NOREPLACE:
        flags |= MAP_FIXED
    if flags & MAP_FIXED and addr < MMAP_MIN_ADDR:
        return -EPERM, 0  # security_mmap_addr: cap_mmap_addr
    addr = get_unmapped_area(th, mm, addr, length, flags)
    if addr < 0:
        return addr, 0
    if flags & MAP_FIXED_NOREPLACE and find_vma_intersection(mm, addr, addr + length) is not None:
        return -EEXIST, 0
    vm_flags = calc_vm_prot_bits(prot) | calc_vm_flag_bits(flags) | mm.def_flags | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    if file is not None:
        writable = getattr(file, "f_writable", True)
        if flags & MAP_SHARED:
            if prot & PROT_WRITE and not writable:
                return -EACCES, 0
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not writable:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
    else:
        if flags & MAP_SHARED:
            vm_flags |= VM_SHARED | VM_MAYSHARE
            pgoff = 0
        else:
            pgoff = addr >> PAGE_SHIFT
    if flags & MAP_NORESERVE and k.tunables.overcommit_memory != 2:
        vm_flags |= VM_NORESERVE
    addr = await mmap_region(th, mm, file, addr, length, vm_flags, pgoff, shared_anon=file is None and bool(flags & MAP_SHARED))
    populate = 0
    if addr >= 0 and (vm_flags & VM_LOCKED or (flags & (MAP_POPULATE | MAP_NONBLOCK)) == MAP_POPULATE):
        populate = length
    return addr, populate


async def mmap_region(th: "Thread", mm: MmStruct, file: Any, addr: int, length: int, vm_flags: int, pgoff: int,
                      shared_anon: bool = False) -> int:
    """``mmap_region``: unmap what MAP_FIXED covers, charge, merge or create, account."""
    k = th.machine
    end = addr + length
    pglen = length >> PAGE_SHIFT
    th.charge(k.costs.vma_op)
    if find_vma_intersection(mm, addr, end) is not None:
        err = await do_vmi_munmap(th, mm, addr, length)
        if err < 0:
            return err
    charged = 0
    if accountable_mapping(vm_flags):
        if not security_vm_enough_memory(th, mm, pglen):
            return -ENOMEM
        charged = pglen
        vm_flags |= VM_ACCOUNT
    vma = await vm_area_alloc(th, mm, addr, end, vm_flags, pgoff)
    if vma is None:
        if charged:
            vm_unacct_memory(k, mm, charged)
        return -ENOMEM
    if file is not None:
        vma.vm_file = file
        get_file(file)
        mmap_hook = getattr(file, "mmap", None)  # f_op->mmap: sets vm_ops (filemap_fault, page_mkwrite)
        if mmap_hook is not None:
            r = mmap_hook(vma)
            if hasattr(r, "__await__"):
                r = await r
            if isinstance(r, int) and r < 0:
                await fput(th, file)
                await slab_free(th, "vm_area_struct", vma.slab_obj)
                if charged:
                    vm_unacct_memory(k, mm, charged)
                return r
    elif shared_anon:
        from .memory import shmem_zero_setup

        shmem_zero_setup(k, vma)
    vma_set_page_prot(vma)
    vma_link_tree(mm, vma)
    if vma.vm_file is not None:
        vma_link_file(vma)
    vm_stat_account(mm, vm_flags, pglen)
    if vm_flags & VM_LOCKED:
        mm.locked_vm += pglen
    await vma_merge_neighbours(th, mm, vma)
    return addr


async def vm_mmap(th: "Thread", mm: MmStruct, file: Any, addr: int, length: int, prot: int, flags: int,
                  pgoff: int = 0) -> int:
    """``vm_mmap_pgoff``: the mmap(2) system call on ``mm`` (takes mmap_lock, populates): address or -errno."""
    await mmap_write_lock(th, mm, "vm_mmap_pgoff")
    try:
        ret, populate = await do_mmap(th, mm, file, addr, length, prot, flags, pgoff)
    finally:
        await mmap_write_unlock(th, mm)
    if ret >= 0 and populate:
        from .memory import mm_populate

        await mm_populate(th, mm, ret, populate)
    return ret


# --- munmap --------------------------------------------------------------------------------------------

async def do_vmi_munmap(th: "Thread", mm: MmStruct, start: int, length: int) -> int:
    """``do_vmi_munmap`` (mmap_lock held for write): 0, or -errno. Unmapping nothing succeeds."""
    if offset_in_page(start) or start > mm.task_size or length > mm.task_size - start:
        return -EINVAL
    end = start + PAGE_ALIGN(length)
    if end == start:
        return -EINVAL
    vma = find_vma(mm, start)
    if vma is None or vma.vm_start >= end:
        return 0
    return await do_vmi_align_munmap(th, mm, vma, start, end)


async def do_vmi_align_munmap(th: "Thread", mm: MmStruct, vma: VmAreaStruct, start: int, end: int) -> int:
    """Split at ``start`` and ``end``, detach the VMAs between, unmap them and free their page tables."""
    from .memory import unmap_region

    k = th.machine
    if start > vma.vm_start:
        if mm.map_count >= SYSCTL_MAX_MAP_COUNT:
            return -ENOMEM
        new = await __split_vma(th, mm, vma, start)
        if new is None:
            return -ENOMEM
        vma = new
    last = vmas_in_range(mm, start, end)[-1]
    if last.vm_end > end:
        if await __split_vma(th, mm, last, end) is None:
            return -ENOMEM
    victims = vmas_in_range(mm, start, end)
    for v in victims:
        await vma_start_write(th, v)
    prev, nxt = prev_next(mm, victims[0])
    nxt = prev_next(mm, victims[-1])[1]
    update_hiwater_vm(mm)
    # From here on the work cannot be left half done: detached VMAs are no longer
    # in the tree that exit_mmap walks, so their PTEs must be zapped and their
    # tables freed by this call. A kill waits for the end (the kernel's munmap
    # has no killable wait either).
    with th.sim.uninterruptible(th):
        for v in victims:
            vma_unlink_tree(mm, v)
            v.detached = True
            th.charge(k.costs.vma_op)
        floor = prev.vm_end if prev is not None else 0
        ceiling = nxt.vm_start if nxt is not None else USER_PGTABLES_CEILING
        await unmap_region(th, mm, victims, floor, ceiling)
        for v in victims:
            pages = v.pages()
            vm_stat_account(mm, v.vm_flags, -pages)
            if v.vm_flags & VM_LOCKED:
                mm.locked_vm -= pages
            if v.vm_flags & VM_ACCOUNT:
                vm_unacct_memory(k, mm, pages)
            await remove_vma(th, v)
    return 0


async def remove_vma(th: "Thread", vma: VmAreaStruct) -> None:
    """``remove_vma``: unlink from rmap, drop the file, free the VMA."""
    from .rmap import unlink_anon_vmas

    await unlink_anon_vmas(th, vma)
    if vma.vm_file is not None:
        vma_unlink_file(vma)
        await fput(th, vma.vm_file)
    await slab_free(th, "vm_area_struct", vma.slab_obj)


async def vm_munmap(th: "Thread", mm: MmStruct, start: int, length: int) -> int:
    """munmap(2): 0 or -errno."""
    await mmap_write_lock(th, mm, "__vm_munmap")
    try:
        return await do_vmi_munmap(th, mm, start, length)
    finally:
        await mmap_write_unlock(th, mm)


# --- brk -------------------------------------------------------------------------------------------------

async def do_brk_flags(th: "Thread", mm: MmStruct, addr: int, length: int) -> int:
    """``do_brk_flags``: extend the brk VMA or create one; 0 or -errno."""
    k = th.machine
    pglen = length >> PAGE_SHIFT
    flags = VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT | mm.def_flags
    if mm.map_count > SYSCTL_MAX_MAP_COUNT:
        return -ENOMEM
    if not security_vm_enough_memory(th, mm, pglen):
        return -ENOMEM
    v = find_vma(mm, addr - 1) if addr else None
    if v is not None and v.vm_end == addr and v.vm_start < addr and \
            can_vma_merge_after(v, flags, None, None, None, addr >> PAGE_SHIFT):
        await vma_start_write(th, v)
        v.vm_end = addr + length
        th.charge(k.costs.vma_op)
    else:
        v = await vm_area_alloc(th, mm, addr, addr + length, flags, addr >> PAGE_SHIFT)
        if v is None:
            vm_unacct_memory(k, mm, pglen)
            return -ENOMEM
        vma_link_tree(mm, v)
        th.charge(k.costs.vma_op)
    vm_stat_account(mm, flags, pglen)
    return 0


async def sys_brk(th: "Thread", mm: MmStruct, brk: int) -> int:
    """brk(2): the new program break, or the old one when the request cannot be met."""
    await mmap_write_lock(th, mm, "__do_sys_brk")
    try:
        origbrk = mm.brk
        if brk < mm.start_brk:
            return origbrk
        newbrk, oldbrk = PAGE_ALIGN(brk), PAGE_ALIGN(mm.brk)
        if oldbrk == newbrk:
            mm.brk = brk
            return brk
        if brk <= mm.brk:
            mm.brk = brk
            vma = find_vma(mm, newbrk)
            if vma is not None and vma.vm_start < oldbrk:
                if await do_vmi_align_munmap(th, mm, vma, max(newbrk, vma.vm_start), oldbrk) < 0:
                    mm.brk = origbrk
                    return origbrk
            return brk
        nxt = find_vma(mm, oldbrk)
        if nxt is not None and newbrk + PAGE_SIZE > vm_start_gap(nxt):
            return origbrk
        if await do_brk_flags(th, mm, oldbrk, newbrk - oldbrk) < 0:
            return origbrk
        mm.brk = brk
        return brk
    finally:
        await mmap_write_unlock(th, mm)


# --- mprotect ----------------------------------------------------------------------------------------------

async def do_mprotect(th: "Thread", mm: MmStruct, start: int, length: int, prot: int) -> int:
    """mprotect(2): 0 or -errno (EINVAL unaligned, ENOMEM over a hole, EACCES without VM_MAY*)."""
    k = th.machine
    if offset_in_page(start):
        return -EINVAL
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        return -EINVAL
    if not length:
        return 0
    length = PAGE_ALIGN(length)
    end = start + length
    if end <= start:
        return -ENOMEM
    newbits = calc_vm_prot_bits(prot)
    await mmap_write_lock(th, mm, "do_mprotect_pkey")
    try:
        vma = find_vma(mm, start)
        if vma is None or vma.vm_start > start:
            return -ENOMEM
        # The whole range must be mapped and allowed before anything changes.
        tmp = start
        for v in vmas_in_range(mm, start, end):
            if v.vm_start > tmp:
                return -ENOMEM
            if newbits & ~(v.vm_flags >> 4) & (VM_READ | VM_WRITE | VM_EXEC):
                return -EACCES  # VM_MAYREAD/VM_MAYWRITE/VM_MAYEXEC sit 4 bits above
            tmp = v.vm_end
        if tmp < end:
            return -ENOMEM
        for v in vmas_in_range(mm, start, end):
            s, e = max(start, v.vm_start), min(end, v.vm_end)
            err = await mprotect_fixup(th, mm, v, s, e, (v.vm_flags & ~VM_ACCESS_FLAGS) | newbits)
            if err < 0:
                return err
        return 0
    finally:
        await mmap_write_unlock(th, mm)
        th.charge(k.costs.syscall_entry)


async def mprotect_fixup(th: "Thread", mm: MmStruct, vma: VmAreaStruct, start: int, end: int, newflags: int) -> int:
    """``mprotect_fixup``: split out ``[start, end)``, charge if it becomes private writable, change the PTEs, merge."""
    from .memory import change_protection

    k = th.machine
    oldflags = vma.vm_flags
    if newflags == oldflags:
        return 0
    pages = (end - start) >> PAGE_SHIFT
    charged = 0
    if newflags & VM_WRITE and accountable_mapping(newflags) and not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
        if not security_vm_enough_memory(th, mm, pages):
            return -ENOMEM
        charged = pages
        newflags |= VM_ACCOUNT
    # split_vma: each cut fails past sysctl_max_map_count or when no vm_area_struct can be had;
    # a failure gives the charge back (mprotect_fixup's fail: label).
    if start > vma.vm_start:
        new = await __split_vma(th, mm, vma, start) if mm.map_count < SYSCTL_MAX_MAP_COUNT else None
        if new is None:
            vm_unacct_memory(k, mm, charged)
            return -ENOMEM
        vma = new
    if end < vma.vm_end:
        if mm.map_count >= SYSCTL_MAX_MAP_COUNT or await __split_vma(th, mm, vma, end) is None:
            vm_unacct_memory(k, mm, charged)
            return -ENOMEM
    await vma_start_write(th, vma)
    vma.vm_flags = newflags
    vma_set_page_prot(vma)
    vm_stat_account(mm, oldflags, -pages)
    vm_stat_account(mm, newflags, pages)
    await change_protection(th, vma, start, end)
    await vma_merge_neighbours(th, mm, vma)
    return 0


# --- the mm's life ---------------------------------------------------------------------------------------------

def _layout(k: Any) -> Layout:
    lay = getattr(k, "mm_layout", None)
    if lay is None:
        lay = k.mm_layout = Layout(k.config.layout)
    return lay


async def mm_alloc(th: "Thread") -> MmStruct | None:
    """``mm_alloc`` + ``mm_init``: an empty address space with its pgd, or None (ENOMEM)."""
    from .memory import pgd_alloc

    k = th.machine
    ok, obj = await slab_alloc(th, "mm_struct")
    if not ok:
        return None
    k.mm_serial = getattr(k, "mm_serial", 0) + 1
    mm = MmStruct(k, _layout(k), k.mm_serial)
    mm.slab_obj = obj
    if not await pgd_alloc(th, mm):
        await slab_free(th, "mm_struct", obj)
        return None
    return mm


async def setup_new_exec(th: "Thread", mm: MmStruct) -> bool:
    """The address space of a fresh ``execve``: the initial stack VMA and an empty heap."""
    lay = mm.layout
    top = lay.stack_top
    stack = await vm_area_alloc(th, mm, top - INITIAL_STACK, top, VM_STACK_DEFAULT_FLAGS | VM_GROWSDOWN | VM_ACCOUNT,
                                (top - INITIAL_STACK) >> PAGE_SHIFT)
    if stack is None:
        return False
    if not security_vm_enough_memory(th, mm, stack.pages()):
        await slab_free(th, "vm_area_struct", stack.slab_obj)
        return False
    vma_link_tree(mm, stack)
    vm_stat_account(mm, stack.vm_flags, stack.pages())
    mm.start_stack = top - 0xC80  # argv/envp/auxv sit just below the top
    mm.arg_start = mm.start_stack + 0x100
    mm.arg_end = mm.arg_start + 0x10
    mm.env_start = mm.arg_end
    mm.env_end = top - 0x20
    mm.start_code = lay.elf_et_dyn_base
    mm.end_code = mm.start_code
    mm.start_data = mm.end_data = mm.start_code
    mm.start_brk = mm.brk = mm.start_code + 0x5000  # just past a small image's bss
    return True


def mmget(mm: MmStruct) -> None:
    """``mmget``: another user (a CLONE_VM thread)."""
    assert mm.mm_users > 0, f"mmget on a dead {mm!r}"
    mm.mm_users += 1


async def mmput(th: "Thread", mm: MmStruct) -> None:
    """``mmput``: drop a user; the last one tears the address space down (``exit_mmap``) and frees it."""
    assert mm.mm_users > 0, f"mmput on a dead {mm!r}"
    mm.mm_users -= 1
    if mm.mm_users == 0:
        from .memory import exit_mmap

        await exit_mmap(th, mm)
        mm.mm_count -= 1  # mmdrop: the reference the users held together
        await slab_free(th, "mm_struct", mm.slab_obj)
        mm.slab_obj = None


async def dup_mmap(th: "Thread", oldmm: MmStruct) -> MmStruct | None:
    """``dup_mm`` / ``dup_mmap``: the child's copy-on-write address space, or None (ENOMEM)."""
    from .memory import copy_page_range, vma_needs_copy
    from .rmap import anon_vma_fork
    from .tlb import flush_tlb_mm

    k = th.machine
    mm = await mm_alloc(th)
    if mm is None:
        return None
    await mmap_write_lock(th, oldmm, "dup_mmap")
    # mmap_write_lock_nested(mm, SINGLE_DEPTH_NESTING): the child's lock, a second of the class.
    await mm.mmap_lock._down(th, False, "dup_mmap", subclass=1)
    oldmm.tlb_flush_pending += 1  # the write-protect below is flushed once, at the end
    ok = True
    try:
        mm.total_vm, mm.locked_vm, mm.pinned_vm = oldmm.total_vm, 0, oldmm.pinned_vm
        mm.data_vm, mm.exec_vm, mm.stack_vm = oldmm.data_vm, oldmm.exec_vm, oldmm.stack_vm
        for f in ("start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
                  "arg_start", "arg_end", "env_start", "env_end", "mmap_base", "hiwater_rss", "hiwater_vm"):
            setattr(mm, f, getattr(oldmm, f))
        mm.hiwater_rss = get_mm_rss(oldmm)
        mm.hiwater_vm = oldmm.total_vm
        for mpnt in oldmm.vmas():
            await vma_start_write(th, mpnt)
            if mpnt.vm_flags & VM_DONTCOPY:
                vm_stat_account(mm, mpnt.vm_flags, -mpnt.pages())
                continue
            if mpnt.vm_flags & VM_ACCOUNT:
                if not security_vm_enough_memory(th, mm, mpnt.pages()):
                    ok = False
                    break
            tmp = await vm_area_dup(th, mpnt, mm)
            if tmp is None:
                ok = False
                break
            tmp.vm_flags &= ~VM_LOCKED
            if tmp.vm_flags & VM_WIPEONFORK:
                tmp.anon_vma = None
            elif mpnt.anon_vma is not None:
                if not await anon_vma_fork(th, tmp, mpnt):
                    await slab_free(th, "vm_area_struct", tmp.slab_obj)
                    ok = False
                    break
            vma_link_tree(mm, tmp)
            th.charge(k.costs.vma_op)
            if tmp.vm_file is not None:
                get_file(tmp.vm_file)
                vma_link_file(tmp)
            if not tmp.vm_flags & VM_WIPEONFORK and vma_needs_copy(tmp, mpnt):
                if not await copy_page_range(th, tmp, mpnt):
                    ok = False
                    break
        if ok:
            await flush_tlb_mm(th, oldmm)
            # The checker's view: the child sees what the parent had written (private mappings).
            mm.shadow = dict(oldmm.shadow)
    finally:
        oldmm.tlb_flush_pending -= 1
        await mmap_write_unlock(th, mm)
        await mmap_write_unlock(th, oldmm)
    if not ok:
        await mmput(th, mm)
        return None
    return mm


__all__ = [name for name in dir() if name.isupper() or name.startswith(("vm_", "do_", "mm", "find_", "sys_", "Mm", "Vm", "Layout"))]
