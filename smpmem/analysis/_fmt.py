"""Number and time formatting shared by the report, the plots and the CLI."""

from __future__ import annotations

import math
import re

_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ns|us|µs|ms|s)?\s*$")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, None: 1}


def parse_time(text: str) -> int:
    """``"15ms"``, ``"2.5us"``, ``"1s"``, ``"1200"`` (ns) → integer ns; ValueError if malformed."""
    m = _TIME.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a time (use e.g. 15ms, 250us, 1.5s or plain ns)")
    return int(round(float(m[1]) * _UNIT_NS[m[2]]))


def fmt_dur(ns: float | int | None) -> str:
    """A duration for people: ``850 ns``, ``10.0 µs``, ``1.25 ms``, ``2.500 s``."""
    if ns is None:
        return "-"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.3f} s"


def pct(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` (``-`` when whole is 0)."""
    if not whole:
        return "-"
    return f"{100.0 * part / whole:.1f}%"


def percentile(sorted_values: list[int], p: float) -> int | None:
    """Nearest-rank percentile: the smallest value with at least p% of values at or below it."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def time_unit(span_ns: int) -> tuple[str, float]:
    """A plot axis unit for a span: (label, ns per unit)."""
    if span_ns < 2_000_000:
        return "µs", 1e3
    if span_ns < 2_000_000_000:
        return "ms", 1e6
    return "s", 1e9


def rate(count: int, ns: int) -> str:
    """``count`` per second of virtual time."""
    if ns <= 0:
        return "-"
    r = count * 1e9 / ns
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if r >= div:
            return f"{r / div:.3g} {suffix}/s"
    return f"{r:.3g}/s"
