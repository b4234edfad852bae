"""Benchmark of reclaim under sustained pressure: pages reclaimed and events per wall-clock second.

    python -m bench.reclaim [--ram 4GiB] [--duration 200ms] [--events '*'] [--keep DIR]

A 4 GiB machine (4 CPUs, an SSD with a 2 GiB swap area and a 4 GiB file)
runs, with every event logged to a real file and the invariant checks off
(the speed of a measurement run): two "stream" processes reading the file,
so clean page cache has to be reclaimed all the time, and two "anon"
processes that each write 1.5 GiB of anonymous memory and then keep
writing and reading it at random, so anonymous pages are swapped out and
faulted back in. Once memory is full, kswapd reclaims in the background and
the allocating processes stall in direct reclaim as well. Prints the
virtual time simulated, the wall time, the reclaim counters
(pgscan/pgsteal for kswapd and direct reclaim, allocstall, pswpout,
pswpin) and the two figures: pages reclaimed (pgsteal_kswapd +
pgsteal_direct) per wall-clock second, and events per wall-clock second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SCENARIO = '''
name = "bench-reclaim"
[machine]
cpus = 4
ram = "{ram}"
[[machine.disk]]
name = "nvme0n1"
latency = "20us"
bandwidth = "3GiB"
queue_depth = 64
[[machine.swap]]
name = "/dev/nvme0n1p2"
size = "{swap}"
[[machine.file]]
path = "/data/stream"
size = "{file}"
[run]
duration = "{duration}"
seed = 1
debug_vm = false
[[process]]
name = "stream"
count = 2
program = [ {{ op = "loop", count = 100, body = [ {{ op = "read", file = "/data/stream" }} ] }} ]
[[process]]
name = "anon"
program = [
  {{ op = "mmap", name = "ws", size = "{anon}" }},
  {{ op = "loop", count = 100, body = [
      {{ op = "touch", region = "ws", write = true }},
      {{ op = "sleep", ns = "150ms" }},
  ] }},
]
[[process]]
name = "churn"
start = "{churn_start}"
program = [
  {{ op = "loop", count = 100, body = [
      {{ op = "mmap", name = "buf", size = "{churn}" }},
      {{ op = "touch", region = "buf", write = true }},
      {{ op = "munmap", region = "buf" }},
  ] }},
]
'''


def _bytes(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for u, m in units.items():
        if text.endswith(u):
            return int(float(text[: -len(u)]) * m)
    return int(text)


def run(ram: str = "4GiB", duration: str = "200ms", events: str = "*", keep: Path | None = None) -> dict[str, float]:
    """One run; its figures."""
    from smpmem.run import run_scenario
    from smpmem.scenario import parse_scenario

    ram_b = _bytes(ram)
    text = SCENARIO.format(ram=ram, swap=f"{ram_b // 2 >> 20}MiB", file=f"{ram_b // 4 >> 20}MiB",
                           anon=f"{ram_b // 2 >> 20}MiB", churn=f"{ram_b // 4 >> 20}MiB", churn_start="50ms",
                           duration=duration)
    sc = parse_scenario(text, overrides={"run.events": events})
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or Path(tmp) / "run"
        t = time.perf_counter()
        res = run_scenario(sc, out_dir=out)
        wall = time.perf_counter() - t
    v = res.kernel.vmstat
    reclaimed = v["pgsteal_kswapd"] + v["pgsteal_direct"]
    return {
        "status": res.status, "error": res.error, "virtual_ms": res.virtual_ns / 1e6, "wall_s": wall, "events": res.events,
        "pgscan_kswapd": v["pgscan_kswapd"], "pgscan_direct": v["pgscan_direct"],
        "pgsteal_kswapd": v["pgsteal_kswapd"], "pgsteal_direct": v["pgsteal_direct"],
        "allocstall_movable": v["allocstall_movable"], "pswpout": v["pswpout"], "pswpin": v["pswpin"],
        "reclaimed_per_s": reclaimed / wall, "events_per_s": res.events / wall,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reclaim", description=__doc__.splitlines()[0])
    ap.add_argument("--ram", default="4GiB", help="RAM of the machine (the file is as large; swap half of it)")
    ap.add_argument("--duration", default="200ms", help="virtual time to simulate")
    ap.add_argument("--events", default="*", help="events to log (trace-cmd -e globs)")
    ap.add_argument("--keep", type=Path, help="write the run directory here and keep it")
    args = ap.parse_args([] if argv is None else argv)  # main() from `python -m bench`: the defaults
    r = run(args.ram, args.duration, args.events, args.keep)
    print(f"{args.ram} machine, {r['virtual_ms']:.0f} ms virtual in {r['wall_s']:.1f} s wall ({r['status']}), "
          f"{r['events']} events ({args.events})")
    print(f"  kswapd: pgscan {r['pgscan_kswapd']}, pgsteal {r['pgsteal_kswapd']}; direct: pgscan {r['pgscan_direct']}, "
          f"pgsteal {r['pgsteal_direct']}, allocstall {r['allocstall_movable']}; pswpout {r['pswpout']}, "
          f"pswpin {r['pswpin']}")
    print(f"  pages reclaimed per wall-clock second: {r['reclaimed_per_s']:,.0f}")
    print(f"  events per wall-clock second: {r['events_per_s']:,.0f}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
