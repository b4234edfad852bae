"""A run's directory (smpmem/run.py): the kernel log it leaves, and the end-of-run invariant check."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from smpmem.run import run_scenario
from smpmem.scenario import parse_scenario

# 24 MiB written in ~14 MiB of usable RAM with 4 MiB of swap on a disk that fails 2 % of its requests:
# some swap writes fail ("Write-error on swap-device"), the swap area fills, and the OOM killer kills hog.
OOM_WITH_SWAP_ERRORS = """
name = "oomlog"
[machine]
cpus = 2
ram = "32MiB"
[[machine.disk]]
name = "sda"
preset = "ssd"
error_rate = 0.02
[[machine.swap]]
name = "/dev/sda2"
size = "4MiB"
[run]
seed = 1
[[process]]
name = "hog"
program = [
  { op = "mmap", name = "a", size = "12MiB" },
  { op = "mmap", name = "b", size = "12MiB" },
  { op = "touch", region = "a", write = true },
  { op = "touch", region = "b", write = true },
]
"""

QUIET = """
name = "quiet"
[machine]
cpus = 1
ram = "32MiB"
[run]
seed = 1
[[process]]
name = "p"
program = [{ op = "mmap", name = "a", size = "64KiB" }, { op = "touch", region = "a", write = true }]
"""

STAMP = re.compile(r"\[ {0,4}(\d+)\.(\d{6})\] ")


class TestDmesg:
    def test_oom_and_swap_errors_in_print_order(self, tmp_path: Path) -> None:
        """dmesg holds the swap write errors and the OOM killer's lines, in print order, stamped as dmesg does."""
        res = run_scenario(parse_scenario(OOM_WITH_SWAP_ERRORS), out_dir=tmp_path / "run")
        assert res.status == "completed", res.error
        lines = (res.dir / "dmesg").read_text().splitlines()
        stamps = [STAMP.match(ln) for ln in lines]
        assert lines and all(stamps)
        ts = [int(m.group(1)) * 1_000_000 + int(m.group(2)) for m in stamps]  # type: ignore[union-attr]
        assert ts == sorted(ts) and ts[-1] <= res.virtual_ns // 1000
        text = [ln[m.end():] for ln, m in zip(lines, stamps)]  # type: ignore[union-attr]
        errors = [t for t in text if t.startswith("Write-error on swap-device (")]
        assert errors and errors == res.kernel.swap.errors[-len(errors):]
        oom = [t for t in text if "oom-killer" in t or t.startswith("Out of memory")]
        assert oom == res.kernel.oom.messages
        assert re.fullmatch(r"hog invoked oom-killer: gfp_mask=0x[0-9a-f]+\(.*\), order=0, oom_score_adj=0", oom[0])
        assert oom[1].startswith("Out of memory: Killed process 3 (hog) total-vm:")
        assert text.index(errors[-1]) < text.index(oom[0])  # the swap area failed and filled before the kill
        info = orjson.loads((res.dir / "run.json").read_bytes())
        assert info["counters"]["oom_kill"] == 1

    def test_quiet_run_leaves_an_empty_log(self, tmp_path: Path) -> None:
        """A run in which the kernel printed nothing still leaves dmesg, empty."""
        res = run_scenario(parse_scenario(QUIET), out_dir=tmp_path / "run")
        assert res.status == "completed", res.error
        assert (res.dir / "dmesg").read_text() == ""


class TestFinalCheck:
    def test_swap_inconsistency_at_the_end_is_caught(self, tmp_path: Path) -> None:
        """A swap slot marked in use behind the allocator's back just before the final check fails the run."""
        text = QUIET.replace('[run]', '[[machine.disk]]\nname = "sda"\n[[machine.swap]]\nname = "/dev/sda2"\n'
                                      'size = "4MiB"\n[run]')

        def corrupt_before_final_check(kernel) -> None:  # type: ignore[no-untyped-def]
            at_switch = kernel.checks.run  # the engine keeps calling this one at every hand-off

            def final() -> None:
                si = kernel.swap.swap_info[0]
                si.swap_map[si.max - 1] = 1  # a reference nobody holds: only the full walk sees it
                at_switch()

            kernel.checks.run = final  # what run_scenario calls once the run has ended

        res = run_scenario(parse_scenario(text), out_dir=tmp_path / "run", on_kernel=corrupt_before_final_check)
        assert res.kernel.sim.switches & 511  # the sampled walk would have skipped this one
        assert (res.status, res.reason) == ("failed", "an invariant is broken at the end of the run")
        assert res.error is not None and "slots in use in swap_map but inuse_pages 0" in res.error
        assert orjson.loads((res.dir / "run.json").read_bytes())["status"] == "failed"
