"""Benchmark of reclaim under sustained pressure: pages reclaimed and events per wall-clock second.

    python -m bench.reclaim [--ram 4GiB] [--duration 2200ms] [--events '*'] [--keep DIR]

A 4 GiB machine (4 CPUs, an NVMe-class disk with a 2 GiB swap area and a
512 MiB file) runs, with every event logged to a real file and the invariant checks off
(the speed of a measurement run): a "reader" reading a 512 MiB file once (clean
page cache, reclaimed first), an "anon" process that writes 2.5 GiB of
anonymous memory every 300 ms and a "churn" process that writes another
1.5 GiB every 60 ms: more than the RAM in all, so anonymous pages idle
between passes are swapped out and faulted back in. Once memory is full, kswapd reclaims in the background and
the allocating processes stall in direct reclaim as well. Prints the
virtual time simulated, the wall time, the reclaim counters
(pgscan/pgsteal for kswapd and direct reclaim, allocstall, pswpout,
pswpin) and the two figures: pages reclaimed (pgsteal_kswapd +
pgsteal_direct) per wall-clock second, and events per wall-clock second,
both for the whole run and for the window of sustained pressure (from the
first reclaimed page on; memory has to fill first, a million page faults
at 4 GiB), measured by a sampler actor that takes no CPU and changes nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

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
name = "reader"
program = [ {{ op = "read", file = "/data/stream" }} ]
[[process]]
name = "anon"
program = [
  {{ op = "mmap", name = "ws", size = "{anon}" }},
  {{ op = "loop", count = 100, body = [
      {{ op = "touch", region = "ws", write = true }},
      {{ op = "sleep", ns = "300ms" }},
  ] }},
]
[[process]]
name = "churn"
start = "{churn_start}"
program = [
  {{ op = "mmap", name = "buf", size = "{churn}" }},
  {{ op = "loop", count = 1000, body = [
      {{ op = "touch", region = "buf", write = true }},
      {{ op = "sleep", ns = "60ms" }},
  ] }},
]
'''


def _bytes(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for u, m in units.items():
        if text.endswith(u):
            return int(float(text[: -len(u)]) * m)
    return int(text)


def _attach_sampler(kernel: Any, samples: list[tuple[int, float, int, int]], every_ns: int) -> None:
    """Sample (virtual ns, wall s, pages reclaimed, events) every ``every_ns`` of virtual time.

    The sampler is a bare engine actor, as the /proc snapshot observer is: it
    takes no CPU and changes no state, so the run is the same with or without it.
    """
    from smpmem.sim import Actor

    orig = kernel.run

    async def run(setup: Any = None, until: int | None = None, before_teardown: Any = None) -> str:
        def setup2(k: Any) -> Any:
            r = setup(k) if setup is not None else None
            sim = k.sim
            v = k.vmstat

            async def sample() -> None:
                while True:
                    samples.append((sim.now, time.perf_counter(), v["pgsteal_kswapd"] + v["pgsteal_direct"],
                                    k.tracer.lines))
                    await sim.sleep(every_ns)

            sim.spawn(Actor(sim, "bench-sampler", daemon=True), sample)
            return r

        return await orig(setup2, until=until, before_teardown=before_teardown)

    kernel.run = run


def run(ram: str = "4GiB", duration: str = "2200ms", events: str = "*", keep: Path | None = None) -> dict[str, Any]:
    """One run; its figures, over the whole run and over the window of sustained pressure."""
    from smpmem.run import run_scenario
    from smpmem.scenario import parse_scenario

    ram_b = _bytes(ram)
    text = SCENARIO.format(ram=ram, swap=f"{ram_b // 2 >> 20}MiB", file=f"{ram_b // 8 >> 20}MiB",
                           anon=f"{ram_b * 5 // 8 >> 20}MiB", churn=f"{ram_b * 3 // 8 >> 20}MiB", churn_start="50ms",
                           duration=duration)
    sc = parse_scenario(text, overrides={"run.events": events})
    samples: list[tuple[int, float, int, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or Path(tmp) / "run"
        t = time.perf_counter()
        res = run_scenario(sc, out_dir=out, on_kernel=lambda k: _attach_sampler(k, samples, 5_000_000))
        wall = time.perf_counter() - t
    v = res.kernel.vmstat
    reclaimed = v["pgsteal_kswapd"] + v["pgsteal_direct"]
    # The pressure window: from the first sample after reclaim started to the last sample.
    start = next((s for s in samples if s[2] > 0), samples[-1] if samples else (0, t, 0, 0))
    end = samples[-1] if samples else start
    win_wall = max(end[1] - start[1], 1e-9)
    return {
        "status": res.status, "error": res.error, "virtual_ms": res.virtual_ns / 1e6, "wall_s": wall,
        "events": res.events,
        "pgscan_kswapd": v["pgscan_kswapd"], "pgscan_direct": v["pgscan_direct"],
        "pgsteal_kswapd": v["pgsteal_kswapd"], "pgsteal_direct": v["pgsteal_direct"],
        "allocstall_movable": v["allocstall_movable"], "pswpout": v["pswpout"], "pswpin": v["pswpin"],
        "reclaimed_per_s": reclaimed / wall, "events_per_s": res.events / wall,
        "fill_virtual_ms": start[0] / 1e6, "fill_wall_s": start[1] - t,
        "window_virtual_ms": (end[0] - start[0]) / 1e6, "window_wall_s": win_wall,
        "window_reclaimed_per_s": (end[2] - start[2]) / win_wall, "window_events_per_s": (end[3] - start[3]) / win_wall,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reclaim", description=__doc__.splitlines()[0])
    ap.add_argument("--ram", default="4GiB", help="RAM of the machine (the file is an eighth of it, swap half of it; "
                    "the two writers five eighths and three eighths)")
    ap.add_argument("--duration", default="2200ms", help="virtual time to simulate")
    ap.add_argument("--events", default="*", help="events to log (trace-cmd -e globs)")
    ap.add_argument("--keep", type=Path, help="write the run directory here and keep it")
    args = ap.parse_args([] if argv is None else argv)  # main() from `python -m bench`: the defaults
    r = run(args.ram, args.duration, args.events, args.keep)
    print(f"{args.ram} machine, {r['virtual_ms']:.0f} ms virtual in {r['wall_s']:.1f} s wall ({r['status']}), "
          f"{r['events']} events ({args.events})")
    print(f"  kswapd: pgscan {r['pgscan_kswapd']}, pgsteal {r['pgsteal_kswapd']}; direct: pgscan {r['pgscan_direct']}, "
          f"pgsteal {r['pgsteal_direct']}, allocstall {r['allocstall_movable']}; pswpout {r['pswpout']}, "
          f"pswpin {r['pswpin']}")
    print(f"  filling memory: {r['fill_virtual_ms']:.0f} ms virtual, {r['fill_wall_s']:.1f} s wall")
    print(f"  under pressure: {r['window_virtual_ms']:.0f} ms virtual, {r['window_wall_s']:.1f} s wall: "
          f"{r['window_reclaimed_per_s']:,.0f} pages reclaimed/s, {r['window_events_per_s']:,.0f} events/s")
    print(f"  whole run: {r['reclaimed_per_s']:,.0f} pages reclaimed/s, {r['events_per_s']:,.0f} events/s")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
