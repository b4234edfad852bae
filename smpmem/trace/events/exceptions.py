"""x86 page fault events: arch/x86/include/asm/trace/exceptions.h (Linux 6.12).

Class x86_exceptions: ``address`` and ``ip`` print with ``%ps``. A record
carries each as an int (a user address, printed ``0x%lx`` as the kernel does
when no symbol matches) or as a symbol string (``__clear_user``).
``page_fault_user`` when the faulting context was user mode, else
``page_fault_kernel`` (arch/x86/mm/fault.c ``trace_page_fault_entries``).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..catalog import define
from ..gfp import sym

Rec = Mapping[str, Any]


def _render_fault(r: Rec) -> str:
    """Class x86_exceptions (exceptions.h)."""
    return f"address={sym(r['address'])} ip={sym(r['ip'])} error_code=0x{r['error_code']:x}"


_FIELDS = ("address", "ip", "error_code")
_FMT = '"address=%ps ip=%ps error_code=0x%lx"'

page_fault_user = define(
    "exceptions", "page_fault_user", _FIELDS, fmt=_FMT, render=_render_fault,
    doc="A page fault in user mode (error_code: gfp.X86_PF_* bits).",
)
page_fault_kernel = define(
    "exceptions", "page_fault_kernel", _FIELDS, fmt=_FMT, render=_render_fault,
    doc="A page fault in kernel mode (e.g. copy_to_user touching an unmapped user page).",
)
