"""Comparing two runs (smpmem/analysis/compare.py): counters and lock figures, largest changes first."""

from __future__ import annotations

import math
from pathlib import Path

from rundirs import write_run

from smpmem.analysis import load
from smpmem.analysis.compare import Diff, compare, render_compare


def _run(d: Path, counters: dict[str, int], locks: dict[str, dict[str, int]], vns: int = 1000) -> Path:
    return write_run(d, [], {"scenario": d.name, "seed": 1, "virtual_ns": vns, "events": 0,
                             "counters": counters, "locks": locks})


def test_order_largest_relative_first(tmp_path: Path) -> None:
    """A figure new in B comes first, then by |relative change|, then by absolute change; equal last."""
    a = load(_run(tmp_path / "a", {"pgfault": 100, "pgscan_kswapd": 10, "pgfree": 1000, "allocstall_normal": 0},
                  {"zone->lock": {"contentions": 5, "acquisitions": 100}}))
    b = load(_run(tmp_path / "b", {"pgfault": 110, "pgscan_kswapd": 30, "pgfree": 1000, "allocstall_normal": 4},
                  {"zone->lock": {"contentions": 50, "acquisitions": 100}}))
    order = [(d.kind, d.name) for d in compare(a, b)]
    assert order[:4] == [("counter", "allocstall_normal"), ("lock", "zone->lock contentions"),
                         ("counter", "pgscan_kswapd"), ("counter", "pgfault")]
    assert set(order[4:]) == {("counter", "pgfree"), ("lock", "zone->lock acquisitions"), ("run", "virtual_ns"),
                              ("run", "events")}


def test_rel_and_render(tmp_path: Path) -> None:
    """Relative change is (B−A)/|A| ('new' when A is zero); equal rows hidden unless asked; --limit cuts."""
    assert Diff("counter", "x", 10, 15).rel == 0.5
    assert math.isinf(Diff("counter", "x", 0, 3).rel) and Diff("counter", "x", 3, None).rel == -1.0
    a = load(_run(tmp_path / "a", {"pgfault": 100, "pswpin": 7}, {}))
    b = load(_run(tmp_path / "b", {"pgfault": 150, "pswpout": 2}, {}))
    text = render_compare(a, b, compare(a, b))
    rows = [line for line in text.splitlines() if line.startswith("| counter:")]
    assert [r.split("|")[1].strip() for r in rows] == ["counter: pswpout", "counter: pswpin", "counter: pgfault"]
    assert [c.strip() for c in rows[0].split("|")[2:6]] == ["-", "2", "2", "new"]
    assert [c.strip() for c in rows[1].split("|")[2:6]] == ["7", "-", "-7", "-100.0%"]
    assert [c.strip() for c in rows[2].split("|")[2:6]] == ["100", "150", "50", "+50.0%"]
    assert "2 equal figure(s) not shown (--all shows them)." in text
    limited = render_compare(a, b, compare(a, b), limit=1)
    assert "2 more differing figure(s) not shown (--limit)" in limited
