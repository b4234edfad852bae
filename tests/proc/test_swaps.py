"""/proc/swaps (smpmem/proc/swaps.py) against mm/swapfile.c swap_show, and in a run with swap in use."""

from __future__ import annotations

from pathlib import Path

import pytest

from smpmem.proc import render_swaps
from smpmem.proc.snapshot import FILES
from smpmem.proc.swaps import HEADER, swap_show
from smpmem.scenario import parse_scenario

# 16 MiB written in ~14 MiB of usable RAM, then the process sits on it: swap is in use when the run stops.
# The small area has the higher priority, so it fills first.
SWAP_IN_USE = """
name = "swaps"
[machine]
cpus = 2
ram = "32MiB"
[[machine.disk]]
name = "sda"
preset = "ssd"
[[machine.swap]]
name = "/dev/sda2"
size = "64MiB"
[[machine.swap]]
name = "/dev/sda3"
size = "8MiB"
priority = 5
[run]
seed = 1
duration = "150ms"
[[process]]
name = "p"
program = [
  { op = "mmap", name = "ws", size = "16MiB" },
  { op = "touch", region = "ws", write = true },
  { op = "compute", ns = "1s" },
]
"""


class TestFormat:
    def test_header(self) -> None:
        """The header is swap_show's SEQ_START_TOKEN line, tabs and all."""
        assert HEADER == "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

    def test_partition_line(self) -> None:
        """Name padded to 40 columns, then partition, size and used in KiB with a second tab below 10^7, priority."""
        assert swap_show("/dev/sda2", True, 32767, 1024, -2) == (
            "/dev/sda2                               partition\t131068\t\t4096\t\t-2\n")

    def test_file_long_name_and_large_sizes(self) -> None:
        """A name of 40 characters or more gets one space; "file" is followed by a tab; large figures one tab."""
        name = "/" + "s" * 44
        assert swap_show(name, False, 4_000_000, 3_000_000, 10) == (
            f"{name} file\t\t16000000\t12000000\t10\n")

    def test_name_is_escaped(self) -> None:
        """seq_file_path escapes space, tab, newline and backslash as octal."""
        line = swap_show("/swap file\\x", False, 10, 0, -3)
        assert line.startswith("/swap\\040file\\134x" + " " * (40 - 18) + "file\t\t40\t\t0\t\t-3")

    def test_registered(self) -> None:
        """The snapshot of every run and of snapshot_interval holds swaps."""
        assert FILES["swaps"] is render_swaps

    def test_no_swap_header_only(self) -> None:
        """A machine without swap areas shows the header alone."""
        from smpmem.kernel import Kernel

        k = Kernel(parse_scenario('[machine]\ncpus = 1\nram = "32MiB"\n'))
        assert render_swaps(k) == HEADER


@pytest.fixture(scope="module")
def swap_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from smpmem.run import run_scenario

    res = run_scenario(parse_scenario(SWAP_IN_USE), out_dir=tmp_path_factory.mktemp("swaps") / "run")
    assert res.status == "completed", res.error
    return res.dir


class TestRun:
    def test_areas_and_usage_agree_with_meminfo(self, swap_run: Path) -> None:
        """proc/swaps lists both areas by type; sizes add up to SwapTotal, used to SwapTotal − SwapFree."""
        from smpmem.analysis._procfiles import parse_meminfo

        lines = (swap_run / "proc" / "swaps").read_text().splitlines(keepends=True)
        assert lines[0] == HEADER and len(lines) == 3
        rows = [ln.split() for ln in lines[1:]]
        assert [(r[0], r[1]) for r in rows] == [("/dev/sda2", "partition"), ("/dev/sda3", "partition")]
        size, used, prio = ([int(r[i]) for r in rows] for i in (2, 3, 4))
        assert lines[1:] == [swap_show(r[0], True, s // 4, u // 4, pr) for r, s, u, pr in zip(rows, size, used, prio)]
        assert size == [65532, 8188] and prio == [-2, 5]  # 64 MiB and 8 MiB less the header page
        m = parse_meminfo((swap_run / "proc" / "meminfo").read_text())
        assert sum(size) == m["SwapTotal"]
        assert sum(used) == m["SwapTotal"] - m["SwapFree"] > 0
        assert used[1] > 0  # the higher-priority area is used first

    def test_served_by_smpmem_proc(self, swap_run: Path, tmp_path: Path) -> None:
        """`smpmem proc` copies the model's swaps into the procfs tree as it is."""
        from smpmem.analysis import load
        from smpmem.analysis.procfs import write_proc_tree

        tree = write_proc_tree(load(swap_run), tmp_path / "procfs")
        assert "swaps" in tree.copied
        assert (tree.path / "swaps").read_text() == (swap_run / "proc" / "swaps").read_text()
