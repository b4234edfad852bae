"""Fixtures for the experiment tests: tiny scenarios (a few hundred microseconds of virtual time each)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "scenarios" / "broken-shootdown.toml"

# Two processes fault in, then unmap, 64 KiB each, five times: faults, zone->lock and lru_lock traffic.
# They exit on their own (the run does not end by killing them half-way through a munmap).
TINY = """
name = "tiny"
[machine]
cpus = 2
ram = "64MiB"
[run]
duration = "10ms"
events = []
[[process]]
name = "pf"
count = 2
program = [ { op = "loop", count = 5, body = [
  { op = "mmap", name = "buf", size = "64KiB" },
  { op = "touch", region = "buf", write = true },
  { op = "munmap", region = "buf" } ] } ]
"""

# Threads of one address space that read shared pages while one of them write-protects and
# unprotects them, and others map and unmap their own buffers: shootdowns on every mprotect and
# munmap, with many wake-ups at the same instant (identical programs). Correct protocol: no seed
# may fail.
SHOOTDOWNS = """
name = "shootdowns"
[machine]
cpus = 4
ram = "64MiB"
[run]
duration = "400us"
events = []
[[process]]
name = "app"
program = [
  { op = "mmap", name = "shared", size = "64KiB" },
  { op = "touch", region = "shared", write = true },
  { op = "spawn_threads", count = 3, program = [
      { op = "loop", count = 6, body = [
          { op = "touch", region = "shared", pattern = "random", count = 4 },
          { op = "lock", name = "gate", hold = "1us" },
          { op = "mmap", name = "mine", size = "32KiB" },
          { op = "touch", region = "mine", write = true },
          { op = "munmap", region = "mine" } ] } ] },
  { op = "loop", count = 6, body = [
      { op = "lock", name = "gate", hold = "1us" },
      { op = "mprotect", region = "shared", prot = "r" },
      { op = "touch", region = "shared", pattern = "random", count = 4 },
      { op = "mprotect", region = "shared", prot = "rw" },
      { op = "touch", region = "shared", write = true, pattern = "random", count = 2 } ] },
]
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


@pytest.fixture
def shootdowns(tmp_path: Path) -> Path:
    p = tmp_path / "shootdowns.toml"
    p.write_text(SHOOTDOWNS)
    return p
