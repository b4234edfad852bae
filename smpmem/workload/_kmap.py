"""The ``kmap`` step: a system call that maps user pages into the kernel one by one (mm/highmem.c's users).

On a 32-bit kernel a HighMem page has no permanent kernel address, so code
that copies to or from a user page it pinned — a driver filling a
scatter-gather list, a filesystem or pipe copying a page, ``process_vm_readv``
— maps it first: ``kmap()`` takes an entry of the shared pkmap pool under
``kmap_lock`` (and, when the pool wraps, flushes the pool from every CPU's
TLB, or sleeps when every entry is in use), ``kmap_atomic()`` (kmap_local)
a per-CPU fixmap slot with no lock and a local flush only. The step does
what such a system call does: ``get_user_pages`` (fault the range in and
look the pages up), then per ``batch`` of pages: map each, spend ``hold``
per page copying, unmap each. On x86_64, or for lowmem pages, the mapping
is free (``page_address``).

Simplified: the pages are not pinned (no FOLL_PIN reference): the model's
``mm:rss-and-mapcounts`` invariant counts every reference as a mapping.
Nothing may unmap or reclaim them while they are kmapped — true of the
shipped scenarios, which have no memory pressure and no concurrent munmap.

Kept outside ``mm/`` because no kernel path of the model kmaps user pages
yet; it uses only :mod:`smpmem.mm.highmem`'s interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..mm.memory import _PAGE_SPECIAL, PTE_PFN_SHIFT, pte_lookup, pte_present
from ._program import ProgramError, handler
from ._syscalls import _proc, _region, touch

if TYPE_CHECKING:
    from ..sim import Thread

PAGE_SHIFT = 12


async def get_user_pages(th: "Thread", mm: Any, start: int, size: int, write: bool) -> list[Any]:
    """``get_user_pages``: fault ``[start, start+size)`` in and look its pages up (None for a hole); not pinned."""
    await touch(th, start, size, write)
    k = th.machine
    pages = []
    for vpn in range(start >> PAGE_SHIFT, ((start + size - 1) >> PAGE_SHIFT) + 1):
        pte = pte_lookup(mm, vpn)
        if not pte_present(pte):
            pages.append(None)  # reclaimed between the fault and the walk: the kernel would retry
            continue
        if pte & _PAGE_SPECIAL:
            pages.append(k.zero_page)
            continue
        pages.append(k.page_alloc.mem_map.pages[pte >> PTE_PFN_SHIFT])
    return pages


@handler("kmap")
async def _kmap(th: "Thread", step: Any) -> None:
    from ..mm.highmem import kmap, kmap_atomic, kunmap, kunmap_atomic

    k = th.machine
    if getattr(k, "highmem", None) is None:
        raise ProgramError("the kmap step needs the highmem model (kernel.highmem), which this build does not boot")
    proc = _proc(th)
    r = _region(th, step.region)
    size = step.size if step.size is not None else r.size - step.offset
    if size <= 0:
        return
    th.charge(k.costs.syscall_entry)
    pages = await get_user_pages(th, proc.mm, r.addr + step.offset, size, step.write)
    real = [p for p in pages if p is not None]
    for i in range(0, len(real), step.batch):
        chunk = real[i:i + step.batch]
        if step.atomic:
            for page in chunk:
                addr = kmap_atomic(th, page)
                th.charge(step.hold)
                await th.sync()
                kunmap_atomic(th, addr)
        else:
            for page in chunk:
                await kmap(th, page)
            th.charge(step.hold * len(chunk))
            await th.sync()
            for page in chunk:
                await kunmap(th, page)
