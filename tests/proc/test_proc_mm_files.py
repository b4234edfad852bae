"""/proc buddyinfo, zoneinfo, pagetypeinfo, meminfo and vmstat against the reference's live files."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mm"))
from page_alloc_support import boot, run  # noqa: E402

from smpmem.mm import page_alloc as PA  # noqa: E402
from smpmem.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL  # noqa: E402
from smpmem.proc import (  # noqa: E402
    render_buddyinfo,
    render_meminfo,
    render_pagetypeinfo,
    render_vmstat,
    render_zoneinfo,
)

REF = Path(__file__).resolve().parents[3] / "shared" / "reference"
if not REF.exists():
    REF = Path("/work/shared/reference")
RENDER = {"buddyinfo": render_buddyinfo, "zoneinfo": render_zoneinfo, "pagetypeinfo": render_pagetypeinfo,
          "meminfo": render_meminfo, "vmstat": render_vmstat}


def live(name: str) -> str:
    return (REF / f"live-{name}.txt").read_text()


def shape(text: str) -> list[str]:
    """The lines with every number (and the padding before it) replaced by N."""
    return [re.sub(r" *\d+", " N", line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def kernel():
    """A machine like the live one (x86_64, 2 CPUs, 24 GiB) after some allocations on both CPUs."""
    k = boot('[machine]\ncpus = 2\nram = "24GiB"\n[run]\ndebug_vm = false\n')

    async def work(th):
        pages = [await PA.alloc_pages(th, GFP_KERNEL if i % 3 else GFP_HIGHUSER_MOVABLE, i % 4) for i in range(300)]
        for p in pages[::2]:
            await PA.free_pages(th, p, p.order)
        return pages[1::2]

    trio.run(lambda: run(k, work, work))
    return k


# vmstat also has CONFIG_DEBUG_TLBFLUSH's and CONFIG_PER_VMA_LOCK_STATS's counters (the TLB and VMA-lock
# models count them); the live kernel lacks those options.
DEBUG_TLBFLUSH = {"nr_tlb_remote_flush N", "nr_tlb_remote_flush_received N", "nr_tlb_local_flush_all N",
                  "nr_tlb_local_flush_one N", "vma_lock_success N", "vma_lock_abort N", "vma_lock_retry N",
                  "vma_lock_miss N"}


@pytest.mark.parametrize("name", sorted(RENDER))
def test_same_lines_as_the_live_file(kernel, name: str) -> None:
    """Each file has exactly the live file's lines, in order, once numbers are set aside."""
    assert [s for s in shape(RENDER[name](kernel)) if s not in DEBUG_TLBFLUSH] == shape(live(name))


def test_buddyinfo_columns(kernel) -> None:
    """buddyinfo: 'Node %d, zone %8s ' then eleven '%6lu ' columns, the zone's nr_free per order."""
    lines = render_buddyinfo(kernel).splitlines()
    zones = [z for z in kernel.page_alloc.zones if z.populated()]
    assert len(lines) == len(zones)
    for line, z in zip(lines, zones):
        head = f"Node {z.node}, zone {z.name:>8} "
        assert line.startswith(head)
        cols = line[len(head):]
        assert len(cols) == 77 and all(re.fullmatch(r" *\d+ ", cols[i:i + 7]) for i in range(0, 77, 7))
        assert [int(c) for c in cols.split()] == [a.nr_free for a in z.free_area]


def test_pagetypeinfo_columns(kernel) -> None:
    """pagetypeinfo: '%-43s ' header, 'Node %4d, zone %8s, type %12s ' rows of '%6lu ', block counts '%12lu '."""
    text = render_pagetypeinfo(kernel)
    lines = text.splitlines()
    assert lines[:3] == ["Page block order: 9", "Pages per block:  512", ""]
    assert lines[3] == f"{'Free pages count per migrate type at order':<43} " + "".join(f"{o:6d} " for o in range(11))
    for line in lines[4:19]:
        assert re.fullmatch(r"Node {4}0, zone [ A-Za-z0-9]{8}, type [ A-Za-z]{12} ( {0,5}\d+ ){11}", line), line
    assert lines[20] == "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate "
    for line, z in zip(lines[21:], [z for z in kernel.page_alloc.zones if z.populated()]):
        counts = [int(c) for c in line[len(f"Node 0, zone {z.name:>8} "):].split()]
        assert sum(counts) == -(-(z.zone_end_pfn - z.zone_start_pfn) // 512) + (z.zone_start_pfn % 512 != 0) * 0
        assert re.fullmatch(r"Node 0, zone [ A-Za-z0-9]{8} ( {0,11}\d+ ){5}", line)


def test_zoneinfo_fields(kernel) -> None:
    """zoneinfo: '      %-12s %lu' counters, the watermarks, sizes and pagesets of each zone."""
    text = render_zoneinfo(kernel)
    for line in text.splitlines():
        m = re.fullmatch(r"      ([a-z_]+) +(\d+)", line)
        if m and len(m.group(1)) < 12:
            assert line[6:19] == f"{m.group(1):<12} "
    pa = kernel.page_alloc
    dma32 = pa.zones[1]
    block = text.split("Node 0, zone    DMA32\n")[1].split("Node 0, zone")[0]
    assert f"  pages free     {dma32.vm_stat[0]}\n" in block
    assert f"        min      {dma32.min_wmark_pages()}\n" in block
    assert f"        managed  {dma32.managed_pages}\n" in block
    assert f"        protection: ({', '.join(map(str, dma32.lowmem_reserve))})\n" in block
    pcp = dma32.per_cpu_pageset[1]
    assert (f"    cpu: 1\n              count:    {pcp.count}\n              high:     {pcp.high}\n"
            f"              batch:    {pcp.batch}\n") in block
    assert "  start_pfn:           4096\n" in block
    movable = text.split("Node 0, zone  Movable\n")[1]
    assert movable.split("\n")[-2] == "        protection: (0, 0, 0, 0, 0)"


def test_meminfo_columns_and_values(kernel) -> None:
    """meminfo: labels padded to 16, values in kB right-aligned in 8; MemTotal/MemFree from the zones."""
    text = render_meminfo(kernel)
    pa = kernel.page_alloc
    fields = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([A-Za-z0-9_()]+:) +(\d+)( kB)?", line)
        assert m, line
        fields[m.group(1)[:-1]] = int(m.group(2))
        if m.group(3) and len(m.group(2)) <= 8:
            assert len(line) == 27, line
    assert fields["MemTotal"] == pa.totalram_pages * 4
    assert fields["MemFree"] == sum(z.vm_stat[0] for z in pa.zones) * 4
    assert 0 < fields["MemAvailable"] <= fields["MemFree"]
    assert fields["DirectMap4k"] + fields["DirectMap2M"] + fields["DirectMap1G"] == 24 << 20


def test_vmstat_values(kernel) -> None:
    """vmstat: 'name value' in the kernel's order; zone counters summed; pgalloc and pgfree counted."""
    lines = render_vmstat(kernel).splitlines()
    values = dict(line.split(" ") for line in lines)
    pa = kernel.page_alloc
    assert int(values["nr_free_pages"]) == pa.nr_free_pages()
    assert int(values["pgalloc_dma32"]) + int(values["pgalloc_normal"]) == 2 * sum(1 << (i % 4) for i in range(300))
    assert int(values["pgfree"]) > int(values["pgalloc_normal"])
    assert int(values["nr_memmap_boot_pages"]) == pa.memmap_boot_pages
    assert int(values["numa_hit"]) == int(values["numa_local"]) == 600
    assert lines[-1] == "nr_unstable 0"


def test_i386_meminfo_has_the_highmem_lines() -> None:
    """On i386 meminfo adds HighTotal/HighFree/LowTotal/LowFree after Mlocked and has no DirectMap1G."""
    k = boot('[machine]\nlayout = "i386"\nram = "2GiB"\n')
    labels = [line.split(":")[0] for line in render_meminfo(k).splitlines()]
    i = labels.index("Mlocked")
    assert labels[i + 1:i + 5] == ["HighTotal", "HighFree", "LowTotal", "LowFree"]
    assert labels[-2:] == ["DirectMap4k", "DirectMap2M"]
    vm = render_vmstat(k)
    assert "pgalloc_high 0\n" in vm and "pgalloc_dma32" not in vm
    assert "Node 0, zone  HighMem\n" in render_zoneinfo(k)


def test_files_are_in_the_snapshot() -> None:
    """The memory files are part of a run's /proc snapshot."""
    from smpmem.proc.snapshot import FILES

    assert {"meminfo", "vmstat", "buddyinfo", "zoneinfo", "pagetypeinfo"} <= set(FILES)
