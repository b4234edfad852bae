"""Benchmark of the engine at scale: 64 CPUs, 16 GiB of simulated RAM, 1,000 processes, reclaim active.

The headline run: each of 1,000 processes reads its own 18 MiB slice of an
18 GiB file through the page cache (18 GiB of reads into 16 GiB of RAM:
kswapd wakes, and allocators that outrun it reclaim directly), then maps
256 KiB, writes every page (a fault each), works 20 us and unmaps it, three
times, and exits; the run ends when the last one has. Every event is logged
(JSON Lines to a file); the invariant checks are off (``debug_vm = false``,
as for a measurement run). Reported: wall time, events logged, events per
wall-clock second, peak RSS of the process that ran it, and the reclaim
counters that show reclaim was active.

Then how the cost grows with CPUs, processes and RAM, on the anonymous part
alone (no file, one iteration per process; each point a fresh
interpreter): the wall time should follow the number of events, not the
size of RAM.

    python -m bench --only scale      (about 5 minutes on 2 cores)
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

RECLAIM_SCENARIO_HEAD = """
name = "scale-reclaim"
[machine]
cpus = {cpus}
ram = "{ram}"
[[machine.disk]]
name = "sda"
preset = "ssd"
[[machine.file]]
path = "/data/big"
size = "{file_mib}MiB"
[run]
duration = "600s"
debug_vm = false
"""
RECLAIM_PROCESS = """
[[process]]
name = "p{i}"
program = [
  {{ op = "read", file = "/data/big", offset = "{off}MiB", size = "{mib}MiB" }},
  {{ op = "loop", count = {iterations}, body = [
    {{ op = "mmap", name = "b", size = "256KiB" }},
    {{ op = "touch", region = "b", write = true }},
    {{ op = "compute", ns = "20us" }},
    {{ op = "munmap", region = "b" }} ] }} ]
"""
RECLAIM_COUNTERS = ("pgpgin", "pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct",
                    "allocstall_normal", "allocstall_movable", "pageoutrun")


def reclaim_scenario(cpus: int, procs: int, ram: str, iterations: int, read_mib: int) -> str:
    """Every process reads its own ``read_mib`` MiB slice of one file, then runs the anonymous loop."""
    text = RECLAIM_SCENARIO_HEAD.format(cpus=cpus, ram=ram, file_mib=procs * read_mib)
    return text + "".join(RECLAIM_PROCESS.format(i=i, off=i * read_mib, mib=read_mib, iterations=iterations)
                          for i in range(procs))


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
    read_mib: int = 0  # per process; 0: no file (the anonymous loop alone)
    status: str = ""
    wall_s: float = 0.0
    events: int = 0
    virtual_ms: float = 0.0
    rss_mb: float = 0.0
    switches: int = 0
    reclaim: dict | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else 0.0


def child(cpus: int, procs: int, ram: str, iterations: int, read_mib: int = 0) -> None:
    """Run one configuration in this interpreter and print its figures as JSON (called in a subprocess)."""
    import resource

    from smpmem.run import run_scenario
    from smpmem.scenario import parse_scenario

    text = (reclaim_scenario(cpus, procs, ram, iterations, read_mib) if read_mib else
            SCENARIO.format(cpus=cpus, procs=procs, ram=ram, iterations=iterations))
    sc = parse_scenario(text, "<bench>")
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_scenario(sc, out_dir=Path(d) / "run")
        wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    vm = res.kernel.vmstat
    print(json.dumps({"status": res.status, "reason": res.reason, "wall_s": wall, "events": res.events,
                      "virtual_ms": res.virtual_ns / 1e6, "rss_mb": rss_kb / 1024,
                      "switches": res.kernel.sim.switches,
                      "reclaim": {k: vm.get(k, 0) for k in RECLAIM_COUNTERS}}))


def run_point(p: Point) -> Point:
    code = f"from bench.scale import child; child({p.cpus}, {p.procs}, {p.ram!r}, {p.iterations}, {p.read_mib})"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    p.status, p.wall_s, p.events = r["status"], r["wall_s"], r["events"]
    p.virtual_ms, p.rss_mb, p.switches = r["virtual_ms"], r["rss_mb"], r["switches"]
    p.reclaim = r.get("reclaim")
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
    head = run_point(Point(64, 1000, "16GiB", 3, read_mib=18))
    show("64 CPUs, 16 GiB, 1,000 processes: 18 GiB read through the page cache, then 3 x (map, fault in, "
         "unmap 256 KiB); every event logged", [head])
    print("  reclaim: " + ", ".join(f"{k} {v:,}" for k, v in (head.reclaim or {}).items()))
    assert head.status == "completed", f"the scale run did not complete: {head.status}"
    show("growth with CPUs (1,000 processes, 16 GiB, 1 iteration)",
         [run_point(Point(c, 1000, "16GiB", 1)) for c in (8, 16, 32, 64)])
    show("growth with processes (64 CPUs, 16 GiB, 1 iteration)",
         [run_point(Point(64, n, "16GiB", 1)) for n in (125, 250, 500, 1000)])
    show("growth with RAM (64 CPUs, 1,000 processes, 1 iteration): cost follows events, not RAM",
         [run_point(Point(64, 1000, r, 1)) for r in ("1GiB", "4GiB", "16GiB", "64GiB")])


if __name__ == "__main__":
    main()
