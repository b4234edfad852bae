"""Address space layout event: include/trace/events/mmap.h (Linux 6.12).

vm_unmapped_area: ``addr`` is the result of the search; an error value
(``IS_ERR_VALUE``, -4095..-1 as unsigned long) prints as ``addr=0x0`` and
``err=<errno>``. Records may carry the error as -12 or 2**64-12. The maple
tree events of mmap.h are not declared.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..gfp import s64, u64

Rec = Mapping[str, Any]
MAX_ERRNO = 4095


def _is_err_value(v: int) -> bool:
    """``IS_ERR_VALUE(x)``: x >= (unsigned long)-MAX_ERRNO (include/linux/err.h)."""
    return u64(v) >= u64(-MAX_ERRNO)


def _render_vm_unmapped_area(r: Rec) -> str:
    """vm_unmapped_area (mmap.h)."""
    addr = r["addr"]
    err = _is_err_value(addr)
    return (f"addr=0x{0 if err else u64(addr):x} err={s64(addr) if err else 0} "
            f"total_vm=0x{r['total_vm']:x} flags=0x{r['flags']:x} len=0x{r['length']:x} "
            f"lo=0x{r['low_limit']:x} hi=0x{r['high_limit']:x} "
            f"mask=0x{r['align_mask']:x} ofs=0x{r['align_offset']:x}")


vm_unmapped_area = define(
    "mmap", "vm_unmapped_area",
    ("addr", "total_vm", "flags", "length", "low_limit", "high_limit", "align_mask",
     "align_offset"),
    fmt=('"addr=0x%lx err=%ld total_vm=0x%lx flags=0x%lx len=0x%lx lo=0x%lx hi=0x%lx '
         'mask=0x%lx ofs=0x%lx"'),
    render=_render_vm_unmapped_area,
    doc="get_unmapped_area() searched [low_limit, high_limit) for `length` bytes.",
)
