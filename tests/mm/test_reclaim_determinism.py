"""Reproducibility of a whole machine under memory pressure (DESIGN.md §2).

The runtime's own guard (tests/sim/test_sim_determinism.py) drives the
engine alone; this one runs a full scenario through the CLI in two fresh
interpreters with different hash seeds, with kswapd and direct reclaim,
swap out and in, a COW fork, writeback and an fsync all under way, and
asks for byte-identical event logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]

MIX = """
name = "determinism-mix"
[machine]
cpus = 4
ram = "32MiB"
[[machine.disk]]
name = "sda"
[[machine.swap]]
name = "/dev/sda2"
size = "64MiB"
[[machine.file]]
path = "/data/stream"
size = "24MiB"
[run]
duration = "60ms"
[[process]]
name = "reader"
program = [ { op = "read", file = "/data/stream" } ]
[[process]]
name = "thrash"
count = 2
program = [
  { op = "mmap", name = "ws", size = "12MiB" },
  { op = "touch", region = "ws", write = true },
  { op = "fork", program = [ { op = "touch", region = "ws", pattern = "random", count = 256, write = true } ] },
  { op = "loop", count = 3, body = [
      { op = "touch", region = "ws", pattern = "random", count = 512, write = true },
      { op = "touch", region = "ws", pattern = "random", count = 512 },
  ] },
  { op = "munmap", region = "ws" },
]
[[process]]
name = "writer"
program = [
  { op = "open", file = "/data/out", create = true },
  { op = "write", file = "/data/out", size = "8MiB" },
  { op = "fsync", file = "/data/out" },
]
"""


def test_reclaim_run_is_byte_identical_across_processes(tmp_path: Path) -> None:
    """Same scenario and seed in two interpreters (PYTHONHASHSEED 1 and 2): the same events.jsonl, byte for byte."""
    scenario = tmp_path / "mix.toml"
    scenario.write_text(MIX)
    procs = []
    for hs in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hs, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "smpmem", "run", str(scenario), "--seed", "5", "--dir", str(tmp_path / hs),
               "--no-progress", "-q"]
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()
    a = (tmp_path / "1" / "events.jsonl").read_bytes()
    b = (tmp_path / "2" / "events.jsonl").read_bytes()
    c = orjson.loads((tmp_path / "1" / "run.json").read_bytes())["counters"]
    # The run did exercise what makes reclaim's order hard to keep: both reclaimers, swap, writeback.
    assert c["pgsteal_kswapd"] > 0 and c["pgsteal_direct"] > 0 and c["allocstall_movable"] > 0
    assert c["pswpout"] > 0 and c["nr_written"] > 0
    assert len(a.splitlines()) > 10_000
    assert a == b
