"""Importing this package registers every event type in the catalog."""

from . import lock, sched  # noqa: F401
from . import exceptions, filemap, kmem, mmap, oom, tlb, vmalloc, vmscan, writeback  # noqa: F401
from . import block  # noqa: F401
from . import mm  # noqa: F401  (signal_generate, task_newtask, mm_cow)
from . import highmem  # noqa: F401  (kmap_high, kunmap_high, flush_all_zero_pkmaps, kmap_atomic)
