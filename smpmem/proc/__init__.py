"""Renderers of /proc files from a running kernel, in the kernel's exact formats.

Each file is a function ``render_X(kernel) -> str``. The memory files
(buddyinfo, zoneinfo, pagetypeinfo, meminfo, vmstat, slabinfo, swaps)
register themselves in :data:`smpmem.proc.snapshot.FILES`, so a run's
snapshot holds them.
"""

from .buddyinfo import render_buddyinfo as render_buddyinfo
from .meminfo import render_meminfo as render_meminfo
from .pagetypeinfo import render_pagetypeinfo as render_pagetypeinfo
from .slabinfo import render_slabinfo as render_slabinfo
from .swaps import render_swaps as render_swaps
from .vmstat import render_vmstat as render_vmstat
from .zoneinfo import render_zoneinfo as render_zoneinfo


def _register() -> None:
    from .snapshot import FILES

    for name, fn in (("meminfo", render_meminfo), ("vmstat", render_vmstat), ("buddyinfo", render_buddyinfo),
                     ("zoneinfo", render_zoneinfo), ("pagetypeinfo", render_pagetypeinfo),
                     ("slabinfo", render_slabinfo), ("swaps", render_swaps)):
        FILES.setdefault(name, fn)


_register()
