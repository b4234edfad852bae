"""The ``for_each`` step: a loop over the pieces of a region, C's ``for (i = 0; i < size; i += stride)``.

Each pass binds the current piece as a region called ``step.name`` (a
:class:`Region` of the thread's program, like one from mmap) and runs the
body, which can then touch, madvise or munmap one page at a time; the name's
previous binding, if any, comes back afterwards. Pure control flow: it
costs no virtual time of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._program import handler, run_steps
from ._syscalls import Region, _region, regions_of

if TYPE_CHECKING:
    from ..sim import Thread


@handler("for_each")
async def _for_each(th: "Thread", step: Any) -> None:
    r = _region(th, step.region)
    start = step.offset
    end = start + step.size if step.size is not None else r.size
    end = min(end, r.size)
    regions = regions_of(th)
    saved = regions.get(step.name)
    try:
        for off in range(start, end, step.stride):
            regions[step.name] = Region(r.addr + off, min(step.stride, end - off), r.kind)
            await run_steps(th, step.body)
    finally:
        regions = regions_of(th)
        if saved is not None:
            regions[step.name] = saved
        else:
            regions.pop(step.name, None)
