"""Benchmark of the engine at scale: 64 CPUs, 16 GiB of simulated RAM, 1,000 processes, to completion.

Each process maps 256 KiB, writes every page (a fault each), works 20 us and
unmaps it, three times, then exits; the run ends when the last one has
exited. Every event is logged (JSON Lines to a file), the invariant checks
are off (``debug_vm = false``, as for a measurement run). Reported: wall
time, events logged, events per wall-clock second, peak RSS of the process
that ran it, and how the cost grows with CPUs, processes and RAM (one
iteration per process in the series: each point is a fresh interpreter).
Reclaim is not part of it: mm/vmscan.py has not landed yet (no kswapd, no
direct reclaim); 16 GiB is far more than 1,000 × 256 KiB anyway.

    python -m bench --only scale
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = """
name = "scale"
[machine]
cpus = {cpus}
ram = "{ram}"
[run]
duration = "60s"
debug_vm = false
[[process]]
name = "p"
count = {procs}
program = [ {{ op = "loop", count = {iterations}, body = [
  {{ op = "mmap", name = "b", size = "256KiB" }},
  {{ op = "touch", region = "b", write = true }},
  {{ op = "compute", ns = "20us" }},
  {{ op = "munmap", region = "b" }} ] }} ]
"""


@dataclass
class Point:
    cpus: int
    procs: int
    ram: str
    iterations: int
    status: str = ""
    wall_s: float = 0.0
    events: int = 0
    virtual_ms: float = 0.0
    rss_mb: float = 0.0
    switches: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else 0.0


def child(cpus: int, procs: int, ram: str, iterations: int) -> None:
    """Run one configuration in this interpreter and print its figures as JSON (called in a subprocess)."""
    import resource

    from smpmem.run import run_scenario
    from smpmem.scenario import parse_scenario

    sc = parse_scenario(SCENARIO.format(cpus=cpus, procs=procs, ram=ram, iterations=iterations), "<bench>")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_scenario(sc, out_dir=Path(d) / "run")
        wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"status": res.status, "reason": res.reason, "wall_s": wall, "events": res.events,
                      "virtual_ms": res.virtual_ns / 1e6, "rss_mb": rss_kb / 1024,
                      "switches": res.kernel.sim.switches}))


def run_point(p: Point) -> Point:
    code = f"from bench.scale import child; child({p.cpus}, {p.procs}, {p.ram!r}, {p.iterations})"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    p.status, p.wall_s, p.events = r["status"], r["wall_s"], r["events"]
    p.virtual_ms, p.rss_mb, p.switches = r["virtual_ms"], r["rss_mb"], r["switches"]
    return p


def show(title: str, points: list[Point]) -> None:
    print(f"\n{title}")
    print(f"  {'CPUs':>5} {'procs':>6} {'RAM':>6} {'status':>10} {'wall s':>8} {'events':>10} {'events/s':>10} "
          f"{'us/event':>9} {'virtual ms':>11} {'peak RSS MB':>12}")
    for p in points:
        per = 1e6 * p.wall_s / p.events if p.events else 0.0
        print(f"  {p.cpus:>5} {p.procs:>6} {p.ram:>6} {p.status:>10} {p.wall_s:>8.2f} {p.events:>10,} "
              f"{p.events_per_s:>10,.0f} {per:>9.1f} {p.virtual_ms:>11.3f} {p.rss_mb:>12.1f}")


def main() -> None:
    head = run_point(Point(64, 1000, "16GiB", 3))
    show("64 CPUs, 16 GiB, 1,000 processes x 3 iterations (every event logged)", [head])
    assert head.status == "completed", f"the scale run did not complete: {head.status}"
    show("growth with CPUs (1,000 processes, 16 GiB, 1 iteration)",
         [run_point(Point(c, 1000, "16GiB", 1)) for c in (8, 16, 32, 64)])
    show("growth with processes (64 CPUs, 16 GiB, 1 iteration)",
         [run_point(Point(64, n, "16GiB", 1)) for n in (125, 250, 500, 1000)])
    show("growth with RAM (64 CPUs, 1,000 processes, 1 iteration): cost follows events, not RAM",
         [run_point(Point(64, 1000, r, 1)) for r in ("1GiB", "4GiB", "16GiB", "64GiB")])


if __name__ == "__main__":
    main()
