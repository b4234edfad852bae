"""/proc/swaps: models ``swap_start`` / ``swap_next`` / ``swap_show`` (mm/swapfile.c).

A header line, then one line per swap area in use (``SWP_USED``: on, or
being switched off), in order of type: the name padded to 40 columns (one
space at least), ``partition`` or ``file`` (a swap file on a filesystem:
``S_ISBLK`` of the area's inode), size and pages in use in KiB — the header
page is not counted in the size — and the priority. Columns are separated
by tabs, with one more tab after a number below 10 000 000, as
``swap_show`` does. The name is escaped as ``seq_file_path`` does
(space, tab, newline and backslash as ``\\ooo``).
"""

from __future__ import annotations

from typing import Any

from ..mm.swap import SWP_USED

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
PAGE_KB = 4


def mangle_path(name: str, esc: str = " \t\n\\") -> str:
    """``mangle_path`` (fs/seq_file.c): each character of ``esc`` as a backslash and three octal digits."""
    return "".join(f"\\{ord(c):03o}" if c in esc else c for c in name)


def swap_show(name: str, partition: bool, pages: int, inuse_pages: int, prio: int) -> str:
    """One area's line, as ``swap_show`` prints it."""
    path = mangle_path(name)
    size, inuse = pages * PAGE_KB, inuse_pages * PAGE_KB
    pad = 40 - len(path) if len(path) < 40 else 1
    kind = "partition" if partition else "file\t"
    return (f"{path}{' ' * pad}{kind}\t{size}\t{chr(9) if size < 10_000_000 else ''}"
            f"{inuse}\t{chr(9) if inuse < 10_000_000 else ''}{prio}\n")


def render_swaps(kernel: Any) -> str:
    """The text of /proc/swaps (the header alone on a machine without swap)."""
    sw = getattr(kernel, "swap", None)
    out = [HEADER]
    for si in (sw.swap_info if sw is not None else ()):
        if si is None or not si.flags & SWP_USED:
            continue
        out.append(swap_show(si.name, not si.is_file, si.pages, si.inuse_pages, si.prio))
    return "".join(out)
