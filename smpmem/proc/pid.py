"""/proc/PID files of live processes: ``maps``, ``smaps``, ``status``, ``stat``, ``cmdline``.

Models fs/proc/task_mmu.c (``show_map_vma``, ``show_smap``, ``smaps_account``,
``show_smap_vma_flags``, ``task_mem``) and fs/proc/array.c
(``proc_pid_status``, ``do_task_stat``) of Linux 6.12, byte for byte in
layout, so that ``pmap -x`` (which reads smaps, stat, status and cmdline)
and psutil can read a run's snapshot. Fields the model has no notion of
(credentials, signals, capabilities, seccomp) print what an unprivileged-less
root shell's child shows, as in the live examples of shared/reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..mm.memory import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_PROTNONE, _PAGE_SPECIAL, PTE_PFN_SHIFT
from ..mm.mmap import (
    VM_FLAG_MNEMONICS, VM_LOCKED, MmStruct, VmAreaStruct, get_mm_rss, vm_flags_str,
)
from ..mm.page import PG_dirty, PG_referenced, PG_swapbacked, page_mapcount
from ..mm.rmap import PageAnon
from ..trace.gfp import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS

if TYPE_CHECKING:
    from ..kernel import Kernel

PSS_SHIFT = 12
USER_HZ = 100
RLIM_INFINITY = 18446744073709551615


def live_processes(k: "Kernel") -> list[Any]:
    """Processes with a live thread and an address space, by pid."""
    return [p for _, p in sorted(k.processes.items()) if p.mm is not None and not p.mm.dead and p.live_threads]


# --- maps ------------------------------------------------------------------------------------------------

def _file_info(f: Any) -> tuple[str, int, int, int]:
    """(path, major, minor, inode) of a mapped file, whatever object the page cache uses."""
    path = getattr(f, "path", None) or getattr(f, "f_path", None) or ""
    inode = getattr(f, "f_inode", None)
    ino = getattr(inode, "i_ino", None) if inode is not None else None
    if ino is None:
        ino = getattr(f, "i_ino", 0)
    dev: Any = getattr(f, "dev", None)
    if dev is None and inode is not None:
        dev = getattr(getattr(inode, "i_sb", None), "s_dev", 0)
    if isinstance(dev, tuple):
        major, minor = dev
    else:
        dev = int(dev or 0)
        major, minor = dev >> 20, dev & 0xFFFFF  # MAJOR()/MINOR() of a kernel dev_t
    return str(path), major, minor, int(ino)


def vma_name(mm: MmStruct, vma: VmAreaStruct) -> str | None:
    """``get_vma_name``: the file's path, [heap], [stack], or nothing."""
    if vma.vm_file is not None:
        return _file_info(vma.vm_file)[0]
    if vma.vm_start <= mm.brk and vma.vm_end >= mm.start_brk:
        return "[heap]"
    if vma.vm_start <= mm.start_stack <= vma.vm_end:
        return "[stack]"
    return None


def show_map_vma(mm: MmStruct, vma: VmAreaStruct) -> str:
    """One line of /proc/PID/maps (``show_vma_header_prefix`` + name, padded as ``seq_pad``)."""
    ptr = 4 if mm.layout.arch == "i386" else 8
    width = 25 + ptr * 6 - 1
    if vma.vm_file is not None:
        _, major, minor, ino = _file_info(vma.vm_file)
        pgoff = vma.vm_pgoff << 12
    else:
        major = minor = ino = 0
        pgoff = 0
    line = (f"{vma.vm_start:08x}-{vma.vm_end:08x} {vm_flags_str(vma.vm_flags)} {pgoff:08x} "
            f"{major:02x}:{minor:02x} {ino} ")
    name = vma_name(mm, vma)
    if name is not None:
        line = line.ljust(width) + " " + name
    return line + "\n"


def render_maps(k: "Kernel", proc: Any) -> str:
    mm = proc.mm
    return "".join(show_map_vma(mm, v) for v in mm.mm_mt.values())


# --- smaps -------------------------------------------------------------------------------------------------

class Mss:
    """``struct mem_size_stats`` (bytes; pss fields << PSS_SHIFT)."""

    __slots__ = ("resident", "pss", "pss_dirty", "shared_clean", "shared_dirty", "private_clean",
                 "private_dirty", "referenced", "anonymous", "swap", "swap_pss", "pss_locked", "lazyfree")

    def __init__(self) -> None:
        for f in self.__slots__:
            setattr(self, f, 0)


def smap_gather_stats(k: "Kernel", mm: MmStruct, vma: VmAreaStruct) -> Mss:
    """``smap_gather_stats``: walk the VMA's PTEs (``smaps_pte_entry`` / ``smaps_account``)."""
    mss = Mss()
    pages_map = k.page_alloc.mem_map.pages
    v0, v1 = vma.vm_start >> 12, vma.vm_end >> 12
    locked = bool(vma.vm_flags & VM_LOCKED)
    size = 4096
    for idx in sorted(i for i in mm.ptes if (i << 9) < v1 and ((i + 1) << 9) > v0):
        for vpn, pte in mm.ptes[idx].ptes.items():
            if not v0 <= vpn < v1:
                continue
            if not pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
                mss.swap += size  # a swap entry (swp_swapcount taken as 1)
                mss.swap_pss += size << PSS_SHIFT
                continue
            if pte & _PAGE_SPECIAL:
                continue  # the zero page: vm_normal_page() is NULL, not counted
            page = pages_map.get(pte >> PTE_PFN_SHIFT)
            if page is None:
                continue
            young = bool(pte & _PAGE_ACCESSED)
            dirty = bool(pte & _PAGE_DIRTY)
            if PageAnon(page):
                mss.anonymous += size
                if not page.flags & (1 << PG_swapbacked) and not dirty and not page.flags & (1 << PG_dirty):
                    mss.lazyfree += size
            mss.resident += size
            if young or page.flags & (1 << PG_referenced):
                mss.referenced += size
            mapcount = page_mapcount(page)
            if page._refcount == 1:
                _accumulate(mss, page, size, size << PSS_SHIFT, dirty, locked, True)
            else:
                pss = size << PSS_SHIFT
                if mapcount >= 2:
                    pss //= mapcount
                _accumulate(mss, page, size, pss, dirty, locked, mapcount < 2)
    return mss


def _accumulate(mss: Mss, page: Any, size: int, pss: int, dirty: bool, locked: bool, private: bool) -> None:
    """``smaps_page_accumulate``."""
    mss.pss += pss
    if locked:
        mss.pss_locked += pss
    if dirty or page.flags & (1 << PG_dirty):
        mss.pss_dirty += pss
        if private:
            mss.private_dirty += size
        else:
            mss.shared_dirty += size
    elif private:
        mss.private_clean += size
    else:
        mss.shared_clean += size


def _kb(label: str, nbytes: int) -> str:
    """``SEQ_PUT_DEC``: the label, the value in kB right-aligned in 8 columns."""
    return f"{label}{nbytes >> 10:8d} kB\n"


def show_smap(k: "Kernel", mm: MmStruct, vma: VmAreaStruct) -> str:
    mss = smap_gather_stats(k, mm, vma)
    out = [show_map_vma(mm, vma),
           _kb("Size:           ", vma.vm_end - vma.vm_start),
           _kb("KernelPageSize: ", 4096),
           _kb("MMUPageSize:    ", 4096),
           _kb("Rss:            ", mss.resident),
           _kb("Pss:            ", mss.pss >> PSS_SHIFT),
           _kb("Pss_Dirty:      ", mss.pss_dirty >> PSS_SHIFT),
           _kb("Shared_Clean:   ", mss.shared_clean),
           _kb("Shared_Dirty:   ", mss.shared_dirty),
           _kb("Private_Clean:  ", mss.private_clean),
           _kb("Private_Dirty:  ", mss.private_dirty),
           _kb("Referenced:     ", mss.referenced),
           _kb("Anonymous:      ", mss.anonymous),
           _kb("KSM:            ", 0),
           _kb("LazyFree:       ", mss.lazyfree),
           _kb("AnonHugePages:  ", 0),
           _kb("ShmemPmdMapped: ", 0),
           _kb("FilePmdMapped:  ", 0),
           _kb("Shared_Hugetlb: ", 0),
           f"Private_Hugetlb: {0:7d} kB\n",
           _kb("Swap:           ", mss.swap),
           _kb("SwapPss:        ", mss.swap_pss >> PSS_SHIFT),
           _kb("Locked:         ", mss.pss_locked >> PSS_SHIFT),
           f"THPeligible:    {0:8d}\n",
           "VmFlags: " + "".join(f"{name} " for bit, name in VM_FLAG_MNEMONICS if vma.vm_flags & bit) + "\n"]
    return "".join(out)


def render_smaps(k: "Kernel", proc: Any) -> str:
    mm = proc.mm
    return "".join(show_smap(k, mm, v) for v in mm.mm_mt.values())


# --- status ------------------------------------------------------------------------------------------------

def _cpumask_hex(cpus: list[int], nbits: int) -> str:
    """``%*pb``: the mask in hex, 32-bit groups separated by commas, the first group without leading zeros."""
    mask = 0
    for c in cpus:
        mask |= 1 << c
    groups = (nbits + 31) // 32
    parts = [f"{(mask >> (32 * g)) & 0xFFFFFFFF:08x}" for g in reversed(range(groups))]
    first_bits = nbits - 32 * (groups - 1)
    parts[0] = f"{int(parts[0], 16):0{(first_bits + 3) // 4}x}"
    return ",".join(parts)


def _cpulist(cpus: list[int]) -> str:
    """``%*pbl``: ranges such as ``0-3,8``."""
    out, i, s = [], 0, sorted(cpus)
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        out.append(str(s[i]) if i == j else f"{s[i]}-{s[j]}")
        i = j + 1
    return ",".join(out)


def task_mem(mm: MmStruct) -> str:
    """``task_mem`` (fs/proc/task_mmu.c)."""
    r = mm.rss_stat
    anon, file, shmem, swap = r[MM_ANONPAGES], r[MM_FILEPAGES], r[MM_SHMEMPAGES], r[MM_SWAPENTS]
    total_vm = mm.total_vm
    hiwater_vm = max(total_vm, mm.hiwater_vm)
    total_rss = anon + file + shmem
    hiwater_rss = max(total_rss, mm.hiwater_rss)
    text = min(((mm.end_code + 4095) & ~4095) - (mm.start_code & ~4095), mm.exec_vm << 12)
    lib = (mm.exec_vm << 12) - text

    def pg(label: str, pages: int) -> str:
        return f"{label}:\t{pages << 2:8d} kB\n"

    return (pg("VmPeak", hiwater_vm) + pg("VmSize", total_vm) + pg("VmLck", mm.locked_vm) + pg("VmPin", mm.pinned_vm)
            + pg("VmHWM", hiwater_rss) + pg("VmRSS", total_rss) + pg("RssAnon", anon) + pg("RssFile", file)
            + pg("RssShmem", shmem) + pg("VmData", mm.data_vm) + pg("VmStk", mm.stack_vm)
            + f"VmExe:\t{text >> 10:8d} kB\n" + f"VmLib:\t{lib >> 10:8d} kB\n"
            + f"VmPTE:\t{mm.pgtables_bytes >> 10:8d} kB\n" + pg("VmSwap", swap)
            + f"HugetlbPages:\t{0:8d} kB\n")


def _state(proc: Any) -> tuple[str, str]:
    running = any(t.on_cpu and t.cpu.current is t for t in proc.live_threads)
    return ("R", "R (running)") if running else ("S", "S (sleeping)")


def render_status(k: "Kernel", proc: Any) -> str:
    """``proc_pid_status`` (fs/proc/array.c)."""
    mm = proc.mm
    ncpus = len(k.cpus)
    threads = proc.live_threads
    allowed = threads[0].allowed if threads and threads[0].allowed else list(range(ncpus))
    ppid = proc.parent.tgid if proc.parent is not None else 1
    sigpending = max(k.page_alloc.totalram_pages // 8 // 2, 1)  # max_threads / 2 (THREAD_SIZE 16 KiB)
    nodes = list(range(k.config.nodes))
    out = [
        f"Name:\t{proc.comm}\n", "Umask:\t0022\n", f"State:\t{_state(proc)[1]}\n",
        f"Tgid:\t{proc.tgid}\n", "Ngid:\t0\n", f"Pid:\t{proc.tgid}\n", f"PPid:\t{ppid}\n", "TracerPid:\t0\n",
        "Uid:\t0\t0\t0\t0\n", "Gid:\t0\t0\t0\t0\n", "FDSize:\t64\n", "Groups:\t \n",
        f"NStgid:\t{proc.tgid}\n", f"NSpid:\t{proc.tgid}\n", f"NSpgid:\t{proc.tgid}\n", f"NSsid:\t{proc.tgid}\n",
        "Kthread:\t0\n",
        task_mem(mm),
        "CoreDumping:\t0\n", "THP_enabled:\t1\n", "untag_mask:\t0xffffffffffffffff\n",
        f"Threads:\t{len(threads)}\n", f"SigQ:\t0/{sigpending}\n",
        "SigPnd:\t0000000000000000\n", "ShdPnd:\t0000000000000000\n", "SigBlk:\t0000000000000000\n",
        "SigIgn:\t0000000000000000\n", "SigCgt:\t0000000000000000\n",
        "CapInh:\t0000000000000000\n", "CapPrm:\t000001ffffffffff\n", "CapEff:\t000001ffffffffff\n",
        "CapBnd:\t000001ffffffffff\n", "CapAmb:\t0000000000000000\n", "NoNewPrivs:\t0\n", "Seccomp:\t0\n",
        "Seccomp_filters:\t0\n", "Speculation_Store_Bypass:\tvulnerable\n",
        "SpeculationIndirectBranch:\talways enabled\n",
        f"Cpus_allowed:\t{_cpumask_hex(allowed, ncpus)}\n", f"Cpus_allowed_list:\t{_cpulist(allowed)}\n",
        f"Mems_allowed:\t{_cpumask_hex(nodes, 1024)}\n", f"Mems_allowed_list:\t{_cpulist(nodes)}\n",
        f"voluntary_ctxt_switches:\t{sum(t.nr_voluntary for t in proc.threads)}\n",
        f"nonvoluntary_ctxt_switches:\t{sum(t.nr_involuntary for t in proc.threads)}\n",
    ]
    return "".join(out)


# --- stat ----------------------------------------------------------------------------------------------------

def render_stat(k: "Kernel", proc: Any) -> str:
    """``do_task_stat`` with ``whole`` (the thread group): 52 fields."""
    mm = proc.mm
    state, _ = _state(proc)
    ppid = proc.parent.tgid if proc.parent is not None else 1
    threads = proc.live_threads
    utime = sum(t.runtime_ns for t in proc.threads) // (10**9 // USER_HZ)
    start = proc.start_time // (10**9 // USER_HZ)
    cpu = threads[0].cpu.id if threads else 0
    f = [proc.tgid, f"({proc.comm})", state, ppid, proc.tgid, proc.tgid, 0, -1, 0,
         proc.min_flt, proc.cmin_flt, proc.maj_flt, proc.cmaj_flt, utime, 0, 0, 0, 20, 0, len(threads), 0,
         start, mm.total_vm << 12, get_mm_rss(mm), RLIM_INFINITY, mm.start_code, mm.end_code, mm.start_stack,
         0, 0, 0, 0, 0, 0, 1 if state == "S" else 0, 0, 0, 17, cpu, 0, 0, 0, 0, 0,
         mm.start_data, mm.end_data, mm.start_brk, mm.arg_start, mm.arg_end, mm.env_start, mm.env_end, 0]
    assert len(f) == 52
    return " ".join(str(x) for x in f) + "\n"


def render_cmdline(k: "Kernel", proc: Any) -> str:
    return proc.comm + "\0"


PID_FILES = {
    "maps": render_maps,
    "smaps": render_smaps,
    "status": render_status,
    "stat": render_stat,
    "cmdline": render_cmdline,
}


def snapshot_pids(k: "Kernel") -> dict[str, str]:
    """``<pid>/<file>`` for every live process."""
    out = {}
    for proc in live_processes(k):
        for name, fn in PID_FILES.items():
            out[f"{proc.tgid}/{name}"] = fn(k, proc)
    return out
