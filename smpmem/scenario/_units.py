"""Units in scenario files: sizes (bytes), times (ns), bandwidths (bytes/s).

A size is an integer number of bytes or a string with a binary suffix, as
the kernel's ``memparse()`` reads ``mem=`` and ``crashkernel=``: ``K``/``k``,
``M``, ``G``, ``T`` and their ``KiB``, ``MiB``, ``GiB``, ``TiB`` spellings
all mean powers of 1024. ``KB``/``MB``/``GB``/``TB`` are refused as
ambiguous (is ``MB`` 10^6 or 2^20?) with a hint to write the binary form.
A time is an integer number of nanoseconds or a string in ``ns``, ``us``
(``µs``), ``ms`` or ``s``. A bandwidth is a size per second: ``"500MiB"``
or ``"500MiB/s"``.

Fractions are accepted when they come to a whole number of bytes or
nanoseconds (``"1.5GiB"``, ``"1.5s"``); anything else is an error naming
what was given and what is allowed. The parsers raise ``ValueError`` with a
message meant for a person; the schema turns that into a field error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any, Callable

from pydantic import BeforeValidator

PAGE_SIZE = 4096

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
PiB = 1 << 50
EiB = 1 << 60

SIZE_MAX = EiB  # no simulated quantity comes near; keeps every value a 64-bit integer
TIME_MAX = 10**18  # ns: about 31 years of virtual time

_SIZE_SUFFIX = {
    "": 1, "b": 1,
    "k": KiB, "kib": KiB,
    "m": MiB, "mib": MiB,
    "g": GiB, "gib": GiB,
    "t": TiB, "tib": TiB,
    "p": PiB, "pib": PiB,
    "e": EiB, "eib": EiB,
}
_AMBIGUOUS = {"kb": "KiB", "mb": "MiB", "gb": "GiB", "tb": "TiB", "pb": "PiB", "eb": "EiB"}

_TIME_SUFFIX = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

_NUMBER = re.compile(r"^\s*([+-]?)\s*(\d+(?:_\d+)*(?:\.\d+)?)\s*([A-Za-zµμ]*)\s*$")

SIZE_HINT = 'an integer number of bytes or a string such as "4KiB", "16 MiB", "2M" or "1G"'
TIME_HINT = 'an integer number of nanoseconds or a string such as "200ns", "5us", "10ms" or "1.5s"'
BANDWIDTH_HINT = 'bytes per second: an integer or a string such as "500MiB" or "500MiB/s"'


def show(value: Any) -> str:
    """A value as the user would have written it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {show(v)}" for k, v in list(value.items())[:4])
        return "{ " + inner + (", … }" if len(value) > 4 else " }") if value else "{}"
    if isinstance(value, list):
        inner = ", ".join(show(v) for v in value[:6])
        return "[" + inner + (", …]" if len(value) > 6 else "]")
    if value is None:
        return "nothing"
    return str(value)


def _kind(value: Any) -> str:
    """How a wrongly typed value reads in an error: 'the string "x"', 'a table'."""
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if isinstance(value, str):
        return f"the string {show(value)}"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return show(value)


def fmt_size(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it: ``1GiB``, ``1536KiB``, ``100``."""
    if n == 0:
        return "0"
    sign = "-" if n < 0 else ""
    m = abs(n)
    for unit, scale in (("EiB", EiB), ("PiB", PiB), ("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if m and m % scale == 0:
            return f"{sign}{m // scale}{unit}"
    return f"{n} bytes"


def fmt_time(ns: int) -> str:
    """``ns`` nanoseconds in the largest unit that divides it: ``10ms``, ``1500us``."""
    if ns == 0:
        return "0"
    for unit, scale in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if ns and ns % scale == 0:
            return f"{ns // scale}{unit}"
    return f"{ns}ns"


def _split(text: str) -> tuple[int, Fraction, str] | None:
    m = _NUMBER.match(text)
    if not m:
        return None
    sign, digits, suffix = m.groups()
    return (-1 if sign == "-" else 1), Fraction(digits.replace("_", "")), suffix


def parse_size(value: Any, *, signed: bool = False) -> int:
    """Bytes from an int or a size string; raises ValueError saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        if isinstance(value, float):
            raise ValueError(f"expected a size, {SIZE_HINT}; got the float {value!r} (write a string such as \"{value:g}M\" for a fractional size)")
        raise ValueError(f"expected a size, {SIZE_HINT}; got {_kind(value)}")
    if isinstance(value, int):
        n = value
    else:
        parts = _split(value)
        if parts is None:
            raise ValueError(f"expected a size, {SIZE_HINT}; got {show(value)}")
        sign, number, suffix = parts
        key = suffix.lower()
        if key in _AMBIGUOUS:
            raise ValueError(
                f"{show(value)} is ambiguous: {suffix} could mean 10^n or 2^n bytes; "
                f"write {_AMBIGUOUS[key]} (binary, as the kernel's memparse reads it) or a plain number of bytes"
            )
        if key not in _SIZE_SUFFIX:
            raise ValueError(f"unknown size unit {suffix!r} in {show(value)}; allowed: B, K/KiB, M/MiB, G/GiB, T/TiB, P/PiB, E/EiB (all binary)")
        exact = sign * number * _SIZE_SUFFIX[key]
        if exact.denominator != 1:
            raise ValueError(f"{show(value)} is not a whole number of bytes")
        n = int(exact)
    if n < 0 and not signed:
        raise ValueError(f"a size must not be negative, got {show(value)}")
    return n


def parse_time(value: Any) -> int:
    """Nanoseconds from an int or a time string; raises ValueError saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        if isinstance(value, float):
            raise ValueError(f"expected a time, {TIME_HINT}; got the float {value!r} (a bare number means nanoseconds; write a string such as \"{value:g}s\")")
        raise ValueError(f"expected a time, {TIME_HINT}; got {_kind(value)}")
    if isinstance(value, int):
        n = value
    else:
        parts = _split(value)
        if parts is None:
            raise ValueError(f"expected a time, {TIME_HINT}; got {show(value)}")
        sign, number, suffix = parts
        if suffix == "":
            raise ValueError(f"{show(value)} has no unit; write ns, us, ms or s (or an integer of nanoseconds without quotes)")
        if suffix not in _TIME_SUFFIX:
            raise ValueError(f"unknown time unit {suffix!r} in {show(value)}; allowed: ns, us (or µs), ms, s")
        exact = sign * number * _TIME_SUFFIX[suffix]
        if exact.denominator != 1:
            raise ValueError(f"{show(value)} is not a whole number of nanoseconds")
        n = int(exact)
    if n < 0:
        raise ValueError(f"a time must not be negative, got {show(value)}")
    return n


@dataclass(frozen=True)
class Unit:
    """Annotation metadata on a unit field: what it measures and its bounds (for checks and docs)."""

    kind: str  # "size", "signed size", "time", "bandwidth"
    unit: str  # "bytes", "ns", "bytes/s"
    min: int | None = None
    max: int | None = None
    align: int | None = None
    above: int | None = None  # strictly greater than

    def allowed(self) -> str:
        """The bounds in words, for docs: '≥ 1MiB, multiple of 4KiB'."""
        fmt = fmt_time if self.kind == "time" else fmt_size
        out = []
        hi = None if self.max in (SIZE_MAX, TIME_MAX) else self.max
        lo = None if self.min == -SIZE_MAX else self.min
        if self.above is not None:
            out.append(f"> {fmt(self.above)}")
        if lo and hi is not None:
            out.append(f"{fmt(lo)} … {fmt(hi)}")
        elif lo:  # ≥ 0 goes without saying
            out.append(f"≥ {fmt(lo)}")
        elif hi is not None:
            out.append(f"≤ {fmt(hi)}")
        if self.align:
            out.append(f"multiple of {fmt(self.align)}")
        return ", ".join(out)


def _checker(spec: Unit, parse: Callable[[Any], int]) -> Callable[[Any], int]:
    fmt = fmt_time if spec.kind == "time" else fmt_size

    def check(value: Any) -> int:
        n = parse(value)
        given = show(value) if isinstance(value, str) else fmt(n)
        exact = "" if given.endswith(" bytes") or spec.kind == "time" else f" ({n} bytes)"
        if spec.above is not None and n <= spec.above:
            raise ValueError(f"must be greater than {fmt(spec.above)}, got {given}")
        if spec.min is not None and n < spec.min:
            raise ValueError(f"must be at least {fmt(spec.min)}, got {given}")
        if spec.max is not None and n > spec.max:
            raise ValueError(f"must be at most {fmt(spec.max)}, got {given}")
        if spec.align and n % spec.align:
            raise ValueError(f"must be a multiple of {fmt(spec.align)}{' (page-aligned)' if spec.align == PAGE_SIZE else ''}, got {given}{exact}")
        return n

    return check


def Size(*, min: int | None = 0, max: int = SIZE_MAX, align: int | None = None, above: int | None = None) -> Any:
    """An int field of bytes that also accepts size strings."""
    spec = Unit("size", "bytes", None if above is not None else min, max, align, above)
    return Annotated[int, BeforeValidator(_checker(spec, parse_size)), spec]


def SignedSize() -> Any:
    """An int field of bytes that may be negative (``brk`` deltas): ``"-4KiB"``."""
    spec = Unit("signed size", "bytes", -SIZE_MAX, SIZE_MAX)
    return Annotated[int, BeforeValidator(_checker(spec, lambda v: parse_size(v, signed=True))), spec]


def Time(*, min: int | None = 0, max: int = TIME_MAX, above: int | None = None) -> Any:
    """An int field of nanoseconds that also accepts time strings."""
    spec = Unit("time", "ns", None if above is not None else min, max, None, above)
    return Annotated[int, BeforeValidator(_checker(spec, parse_time)), spec]


def _parse_bandwidth(value: Any) -> int:
    if isinstance(value, str) and value.rstrip().endswith("/s"):
        value = value.rstrip()[:-2]
    try:
        return parse_size(value)
    except ValueError as e:
        raise ValueError(str(e).replace(SIZE_HINT, BANDWIDTH_HINT).replace("a size", "a bandwidth")) from None


def Bandwidth(*, above: int | None = 0) -> Any:
    """An int field of bytes per second: ``"500MiB"`` or ``"500MiB/s"``."""
    spec = Unit("bandwidth", "bytes/s", None, SIZE_MAX, None, above)
    return Annotated[int, BeforeValidator(_checker(spec, _parse_bandwidth)), spec]
