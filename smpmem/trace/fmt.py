"""Value renderers that mirror the kernel's trace output helpers.

``hash_ptr`` stands for ``%p`` (lib/vsprintf.c ``ptr_to_id``: a 32-bit hash
shown as 16 hex digits; NULL prints as zeros). The kernel keys its hash with a
per-boot secret; smpmem uses a fixed multiplicative hash so that the same run
renders the same text. ``print_flags`` and ``print_symbolic`` follow
``trace_print_flags_seq`` and ``trace_print_symbols_seq``.
"""

from __future__ import annotations

from typing import Sequence

_MASK64 = (1 << 64) - 1


def hash_ptr(addr: int) -> str:
    """``%p``: a 32-bit hash of the address, zero-padded to 16 hex digits."""
    if not addr:
        return "0000000000000000"
    h = ((addr & _MASK64) * 0x9E3779B97F4A7C15) & _MASK64
    return f"{(h >> 32) ^ (h & 0xFFFFFFFF):016x}"


def print_flags(value: int, table: Sequence[tuple[int, str]], sep: str = "|") -> str:
    """``__print_flags``: each table entry whose whole mask is still set, in order; leftovers as hex."""
    if not value:
        return ""
    out: list[str] = []
    for mask, name in table:
        if mask and (value & mask) == mask:
            out.append(name)
            value &= ~mask
            if not value:
                break
    if value:
        out.append(f"0x{value:x}")
    return sep.join(out)


def print_symbolic(value: int, table: Sequence[tuple[int, str]]) -> str:
    """``__print_symbolic``: the exact match, else ``0x%lx``."""
    for v, name in table:
        if v == value:
            return name
    return f"0x{value:x}"
