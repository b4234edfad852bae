"""/proc/slabinfo: models ``slab_show`` / ``cache_show`` / ``print_slabinfo_header`` (mm/slab_common.c), version 2.1.

Caches are listed as ``slab_caches`` is walked: ``list_add`` puts each new
cache at the head, so the newest comes first and the kmalloc caches, made
at boot, come last. The columns are SLAB's ``get_slabinfo``: objects in the
per-CPU and shared array caches count as active; ``tunables`` are the
arrays' limit, batchcount and shared factor; ``sharedavail`` the objects in
the shared arrays. Readable by ``slabtop -o`` and ``vmstat -m``.
"""

from __future__ import annotations

from typing import Any

HEADER = (
    "slabinfo - version: 2.1\n"
    "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
    " : tunables <limit> <batchcount> <sharedfactor>"
    " : slabdata <active_slabs> <num_slabs> <sharedavail>\n"
)


def cache_line(cachep: Any) -> str:
    """One ``cache_show`` line."""
    s = cachep.slabinfo()
    return (f"{cachep.name:<17} {s.active_objs:6d} {s.num_objs:6d} {cachep.size:6d} {s.objects_per_slab:4d} "
            f"{1 << s.cache_order:4d} : tunables {s.limit:4d} {s.batchcount:4d} {s.shared:4d}"
            f" : slabdata {s.active_slabs:6d} {s.num_slabs:6d} {s.shared_avail:6d}\n")


def render_slabinfo(kernel: Any) -> str:
    """The text of /proc/slabinfo (the header alone before the slab allocator is up)."""
    sa = getattr(kernel, "slab", None)
    if sa is None:
        return HEADER
    return HEADER + "".join(cache_line(c) for c in reversed(sa.slab_caches))
