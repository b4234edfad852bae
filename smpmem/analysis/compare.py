"""Side-by-side comparison of two runs: vmstat counters, lock_stat figures and run totals.

Only run.json is read (counters, locks, virtual time, event count), so
comparing is instant whatever the size of the logs. Rows are ordered by
the size of the relative difference, largest first: a figure that is zero
in one run and not in the other comes first (an infinite ratio), then
|B − A| / |A|, ties broken by the absolute difference. Equal figures are
left out unless asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._reader import Run

LOCK_FIELDS = ("contentions", "acquisitions", "waittime_total", "waittime_max", "holdtime_total",
               "con_bounces", "acq_bounces")


@dataclass(frozen=True)
class Diff:
    kind: str  # "run", "counter" or "lock"
    name: str
    a: int | float | None  # None: absent from run A
    b: int | float | None

    @property
    def delta(self) -> float:
        return (self.b or 0) - (self.a or 0)

    @property
    def rel(self) -> float:
        """(B − A) / |A|; ±inf when A is 0 and B is not; 0 when equal."""
        a, b = self.a or 0, self.b or 0
        if a == b:
            return 0.0
        if a == 0:
            return math.copysign(math.inf, b)
        return (b - a) / abs(a)


def compare(a: Run, b: Run) -> list[Diff]:
    """Every figure of either run, largest relative difference first (see module doc)."""
    rows: list[Diff] = []
    for key in ("virtual_ns", "events"):
        rows.append(Diff("run", key, a.run.get(key), b.run.get(key)))
    names = list(a.counters) + [k for k in b.counters if k not in a.counters]
    for k in names:
        rows.append(Diff("counter", k, a.counters.get(k), b.counters.get(k)))
    classes = list(a.locks) + [k for k in b.locks if k not in a.locks]
    for cls in classes:
        fa, fb = a.locks.get(cls) or {}, b.locks.get(cls) or {}
        for f in LOCK_FIELDS:
            if f in fa or f in fb:
                rows.append(Diff("lock", f"{cls} {f}", fa.get(f), fb.get(f)))
    return sorted(rows, key=lambda d: (-abs(d.rel), -abs(d.delta), d.kind, d.name))


def _fmt(v: int | float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) and not v.is_integer() else str(int(v))


def _rel(d: Diff) -> str:
    r = d.rel
    if math.isinf(r):
        return "new" if r > 0 else "gone"
    return f"{100 * r:+.1f}%"


def render_compare(a: Run, b: Run, diffs: list[Diff], *, show_equal: bool = False, limit: int = 0) -> str:
    """A Markdown report: which runs, then the table (padded, so it reads in a terminal too)."""
    shown = [d for d in diffs if show_equal or d.rel != 0]
    hidden_equal = sum(1 for d in diffs if d.rel == 0) if not show_equal else 0
    cut = 0
    if limit and len(shown) > limit:
        cut = len(shown) - limit
        shown = shown[:limit]
    head = ["figure", "A", "B", "B − A", "change"]
    body = [[f"{d.kind}: {d.name}", _fmt(d.a), _fmt(d.b), _fmt(d.delta), _rel(d)] for d in shown]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                                 for i, c in enumerate(cells)) + " |"

    out = [f"# smpmem compare", "",
           f"- **A**: {a.dir} ({a.name}, seed {a.run.get('seed', '?')}, {a.run.get('status', '?')})",
           f"- **B**: {b.dir} ({b.name}, seed {b.run.get('seed', '?')}, {b.run.get('status', '?')})", ""]
    if body:
        out += [line(head), "| " + " | ".join(("-" * widths[0]) if i == 0 else ("-" * (widths[i] - 1) + ":")
                                              for i in range(len(head))) + " |"]
        out += [line(r) for r in body]
    else:
        out.append("The two runs have the same counters and lock figures.")
    notes = []
    if cut:
        notes.append(f"{cut} more differing figure(s) not shown (--limit)")
    if hidden_equal:
        notes.append(f"{hidden_equal} equal figure(s) not shown (--all shows them)")
    if notes:
        out += ["", "; ".join(notes) + "."]
    return "\n".join(out) + "\n"
