"""/proc/meminfo: models ``meminfo_proc_show`` (fs/proc/meminfo.c) with ``si_meminfo`` (mm/show_mem.c).

The whole file, in the kernel's order, with the lines of the reference's
live file (x86_64); the i386 layout adds the CONFIG_HIGHMEM lines
(HighTotal, HighFree, LowTotal, LowFree) and has no DirectMap1G.

Where the figures come from:

- the page allocator: MemTotal (managed pages), MemFree, MemAvailable
  (``si_mem_available``), the highmem split;
- node and zone counters (``mod_node_page_state`` by the LRU, slab, page
  cache, writeback, page-table and stack code): Active/Inactive, Unevictable,
  Mlocked, Dirty, Writeback, AnonPages, Mapped, Shmem, slab, KernelStack
  (KiB), PageTables, the THP lines, Balloon;
- ``kernel.page_alloc.meminfo_sources`` for what is not a counter (Buffers,
  SwapCached, SwapTotal/Free, Zswap, Committed_AS, VmallocUsed, Percpu,
  the hugetlb pool); 0 until a subsystem registers it;
- the tunables (CommitLimit), the vmalloc range (VmallocTotal: ``kernel.vmalloc``)
  and the layout (DirectMap*).
"""

from __future__ import annotations

from typing import Any

from ..mm.zone import (
    NODE_STAT_INDEX,
    NR_MLOCK,
    ZONE_STAT_ITEMS,
)

PAGE_KB = 4
HPAGE_KB = 2048
# VMALLOC_END - VMALLOC_START in KiB: x86_64 4-level paging (32 TiB - 1 KiB, as printed by 6.x);
# i386 PAE with the default 3G/1G split and 896 MiB lowmem (120 MiB).
VMALLOC_TOTAL_KB = {"x86_64": 34359738367, "i386": 122880}


def vmalloc_total_kb(kernel: Any) -> int:
    """``VMALLOC_TOTAL >> 10``: the vmalloc model's range when it is booted, else the layout's default."""
    vm = getattr(kernel, "vmalloc", None)
    return vm.vmalloc_total >> 10 if vm is not None else VMALLOC_TOTAL_KB[kernel.page_alloc.layout]


def _kb(label: str, pages: int) -> str:
    """``show_val_kb``: the label padded to 16 characters, pages in KiB right-aligned in 8."""
    return f"{label:<16}{pages * PAGE_KB:>8} kB\n"


def direct_map_kb(kernel: Any) -> dict[str, int]:
    """``arch_report_meminfo``: KiB of the direct map by page size, as ``init_mem_mapping`` splits it.

    The first MiB (the ISA range) uses 4 KiB pages; each RAM range is mapped
    with 4 KiB pages up to a 2 MiB boundary, 2 MiB pages up to a 1 GiB
    boundary, 1 GiB pages (x86_64), then 2 MiB and 4 KiB pages for the tail.
    i386 maps only lowmem, with 2 MiB pages at most (PAE).
    """
    pa = kernel.page_alloc
    lowmem_only = pa.layout == "i386"
    ranges: list[list[int]] = []
    for z in sorted(pa.populated, key=lambda z: z.zone_start_pfn):
        if lowmem_only and (z.is_highmem or z.is_movable):
            continue
        s, e = z.zone_start_pfn << 12, z.zone_end_pfn << 12
        if ranges and ranges[-1][1] >= s - 4096:
            ranges[-1][1] = max(ranges[-1][1], e)
        else:
            ranges.append([s, e])
    sizes = {"4k": 0, "2M": 0, "1G": 0}
    M1, M2, G1 = 1 << 20, 2 << 20, 1 << 30
    big = 0 if lowmem_only else G1
    for s, e in ranges:
        s = 0 if s <= 4096 else s
        if s < M1:
            end = min(e, M1)
            sizes["4k"] += end - s
            s = end
        while s < e:
            if big and s % G1 == 0 and s + G1 <= e:
                n = (e - s) // G1 * G1
                sizes["1G"] += n
            elif s % M2 == 0 and s + M2 <= e:
                lim = (s // G1 + 1) * G1 if big else e
                n = (min(e, lim) - s) // M2 * M2
                sizes["2M"] += n
            else:
                n = min(e, (s // M2 + 1) * M2) - s
                sizes["4k"] += n
            s += n
    return {k: v >> 10 for k, v in sizes.items()}


def render_meminfo(kernel: Any) -> str:
    """The text of /proc/meminfo."""
    pa = kernel.page_alloc
    src = pa.meminfo_sources
    nodes = pa.nodes

    def node(name: str) -> int:
        i = NODE_STAT_INDEX[name]
        return sum(p.vm_stat[i] for p in nodes)

    def zone(i: int) -> int:
        return sum(z.vm_stat[i] for z in pa.zones)

    totalram = pa.totalram_pages
    freeram = pa.nr_free_pages()
    bufferram = int(src.get("nr_blockdev_pages"))
    swapcache = int(src.get("total_swapcache_pages"))
    cached = max(node("nr_file_pages") - swapcache - bufferram, 0)
    ia, aa = node("nr_inactive_anon"), node("nr_active_anon")
    if_, af = node("nr_inactive_file"), node("nr_active_file")
    sreclaimable, sunreclaim = node("nr_slab_reclaimable"), node("nr_slab_unreclaimable")
    total_swap = int(src.get("total_swap_pages"))
    huge_total = int(src.get("nr_huge_pages"))
    commit_limit = (totalram - huge_total * (HPAGE_KB // PAGE_KB)) * kernel.tunables.overcommit_ratio // 100 + total_swap
    out = [
        _kb("MemTotal:", totalram),
        _kb("MemFree:", freeram),
        _kb("MemAvailable:", pa.si_mem_available()),
        _kb("Buffers:", bufferram),
        _kb("Cached:", cached),
        _kb("SwapCached:", swapcache),
        _kb("Active:", aa + af),
        _kb("Inactive:", ia + if_),
        _kb("Active(anon):", aa),
        _kb("Inactive(anon):", ia),
        _kb("Active(file):", af),
        _kb("Inactive(file):", if_),
        _kb("Unevictable:", node("nr_unevictable")),
        _kb("Mlocked:", zone(NR_MLOCK)),
    ]
    if pa.types.ZONE_HIGHMEM is not None:  # CONFIG_HIGHMEM
        th, fh = pa.totalhigh_pages(), pa.nr_free_highpages()
        out += [_kb("HighTotal:", th), _kb("HighFree:", fh), _kb("LowTotal:", totalram - th),
                _kb("LowFree:", freeram - fh)]
    out += [
        _kb("SwapTotal:", total_swap),
        _kb("SwapFree:", int(src.get("nr_swap_pages"))),
        _kb("Zswap:", int(src.get("zswap_total_pages"))),
        f"Zswapped:       {int(src.get('zswap_stored_pages')) * PAGE_KB:8d} kB\n",
        _kb("Dirty:", node("nr_dirty")),
        _kb("Writeback:", node("nr_writeback")),
        _kb("AnonPages:", node("nr_anon_pages")),
        _kb("Mapped:", node("nr_mapped")),
        _kb("Shmem:", node("nr_shmem")),
        _kb("KReclaimable:", sreclaimable + node("nr_kernel_misc_reclaimable")),
        _kb("Slab:", sreclaimable + sunreclaim),
        _kb("SReclaimable:", sreclaimable),
        _kb("SUnreclaim:", sunreclaim),
        f"KernelStack:    {node('nr_kernel_stack'):8d} kB\n",
        _kb("PageTables:", node("nr_page_table_pages")),
        _kb("SecPageTables:", node("nr_sec_page_table_pages")),
        _kb("NFS_Unstable:", 0),
        _kb("Bounce:", 0),
        _kb("WritebackTmp:", 0),
        _kb("CommitLimit:", commit_limit),
        _kb("Committed_AS:", int(src.get("vm_committed_as"))),
        f"VmallocTotal:   {vmalloc_total_kb(kernel):8d} kB\n",
        _kb("VmallocUsed:", int(src.get("vmalloc_nr_pages"))),
        _kb("VmallocChunk:", 0),
        _kb("Percpu:", int(src.get("pcpu_nr_pages"))),
        _kb("AnonHugePages:", node("nr_anon_transparent_hugepages")),
        _kb("ShmemHugePages:", node("nr_shmem_hugepages")),
        _kb("ShmemPmdMapped:", node("nr_shmem_pmdmapped")),
        _kb("FileHugePages:", node("nr_file_hugepages")),
        _kb("FilePmdMapped:", node("nr_file_pmdmapped")),
        _kb("Balloon:", node("nr_balloon_pages")),
        f"HugePages_Total:   {huge_total:5d}\n",
        f"HugePages_Free:    {int(src.get('free_huge_pages')):5d}\n",
        f"HugePages_Rsvd:    {int(src.get('resv_huge_pages')):5d}\n",
        f"HugePages_Surp:    {int(src.get('surplus_huge_pages')):5d}\n",
        f"Hugepagesize:   {HPAGE_KB:8d} kB\n",
        f"Hugetlb:        {huge_total * HPAGE_KB:8d} kB\n",
    ]
    dm = direct_map_kb(kernel)
    out.append(f"DirectMap4k:    {dm['4k']:8d} kB\n")
    out.append(f"DirectMap2M:    {dm['2M']:8d} kB\n")
    if pa.layout == "x86_64":
        out.append(f"DirectMap1G:    {dm['1G']:8d} kB\n")
    return "".join(out)


assert "nr_mlock" in ZONE_STAT_ITEMS
