"""/proc/PID/maps, smaps, status and stat in the layout of the live examples (fs/proc/task_mmu.c, array.c)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from smpmem.kernel import Kernel
from smpmem.proc.snapshot import snapshot
from smpmem.scenario import parse_scenario

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
TOML = '''
[machine]
cpus = 2
ram = "128MiB"
[run]
duration = "1ms"
[[process]]
name = "demo"
program = [
  { op = "mmap", name = "a", size = "64KiB" },
  { op = "touch", region = "a", write = true },
  { op = "mmap", name = "s", size = "16KiB", flags = "shared|anonymous", prot = "r" },
  { op = "touch", region = "s" },
  { op = "malloc", name = "m", size = "100" },
  { op = "sleep", ns = "10ms" },
]
'''


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    import trio

    from smpmem.workload import start_processes

    k = Kernel(parse_scenario(TOML))
    out: dict[str, str] = {}

    async def main() -> None:
        await k.run(start_processes, until=1_000_000, before_teardown=lambda s: out.update(snapshot(k)))

    trio.run(main)
    return out


def _ref(name: str) -> str:
    p = REF / f"live-pid-{name}.txt"
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p.read_text()


def test_pid_files_present(files: dict[str, str]) -> None:
    """A live process has maps, smaps, status, stat and cmdline in the snapshot."""
    pid = min(int(n.split("/")[0]) for n in files if "/" in n)
    assert {f"{pid}/{f}" for f in ("maps", "smaps", "status", "stat", "cmdline")} <= set(files)


def test_maps_layout(files: dict[str, str]) -> None:
    """maps lines: address range, perms, offset, dev, inode, then the name in column 74 (seq_pad to 73)."""
    maps = next(v for n, v in files.items() if n.endswith("/maps"))
    line = re.compile(r"[0-9a-f]{8,}-[0-9a-f]{8,} [r-][w-][x-][ps] [0-9a-f]{8} [0-9a-f]{2}:[0-9a-f]{2} \d+ ")
    for ref_line in _ref("maps").splitlines()[:3]:
        assert line.match(ref_line)
    names = []
    for l in maps.splitlines():
        assert line.match(l), l
        if len(l) > 73:
            assert l[72] == " " and l[73] != " ", l
            names.append(l[73:])
        else:
            assert l.endswith(" ")
    assert names == ["[heap]", "/dev/zero (deleted)", "[stack]"]
    ref_named = [l for l in _ref("maps").splitlines() if l.endswith("[heap]")][0]
    assert ref_named.index("[heap]") == 73


def test_smaps_keys_and_widths(files: dict[str, str]) -> None:
    """Each smaps entry has the live example's keys in its order, values right-aligned the same way."""
    smaps = next(v for n, v in files.items() if n.endswith("/smaps"))
    ref = _ref("smaps").splitlines()
    ref_entry = ref[1:ref.index(next(l for l in ref if l.startswith("VmFlags"))) + 1]
    ours = smaps.splitlines()
    entry = ours[1:ours.index(next(l for l in ours if l.startswith("VmFlags"))) + 1]
    assert [l.split(":")[0] for l in entry] == [l.split(":")[0] for l in ref_entry]
    for a, b in zip(entry, ref_entry):
        if b.endswith(" kB") or b.startswith("THPeligible"):
            assert len(a) == len(b) or len(a.split()[1]) > 8, (a, b)
    assert "VmFlags: rd wr mr mw me ac \n" in smaps
    assert "VmFlags: rd sh mr mw me ms \n" in smaps


def test_status_keys_match_live(files: dict[str, str]) -> None:
    """status has the live example's lines in the same order; memory figures use '%8lu kB'."""
    status = next(v for n, v in files.items() if n.endswith("/status"))
    keys = [l.split(":")[0] for l in status.splitlines()]
    assert keys == [l.split(":")[0] for l in _ref("status").splitlines()]
    rss = re.search(r"^VmRSS:\t( *\d+) kB$", status, re.M)
    assert rss and len(rss.group(1)) == 8
    assert int(re.search(r"^RssAnon:\t *(\d+)", status, re.M).group(1)) >= 64 + 4  # the region and the heap header


def test_stat_52_fields(files: dict[str, str]) -> None:
    """stat has 52 fields like the live one; minflt counts the faults, rss the resident pages."""
    stat = next(v for n, v in files.items() if n.endswith("/stat"))
    f = stat.split()
    assert len(f) == len(_ref("stat").split()) == 52
    assert f[1] == "(demo)" and f[2] in "RS"
    assert int(f[9]) >= 16 + 4 + 1  # min_flt: 16 written pages, 4 shmem reads, the heap header
    assert int(f[23]) == 16 + 4 + 1  # rss in pages


@pytest.mark.skipif(shutil.which("pmap") is None or shutil.which("unshare") is None, reason="needs procps pmap and unshare")
def test_pmap_reads_the_snapshot(files: dict[str, str], tmp_path: Path) -> None:
    """procps' pmap -x reads the snapshot when it is bind-mounted on /proc in a private mount namespace."""
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (tmp_path / "uptime").write_text("1000.00 500.00\n")
    pid = min(int(n.split("/")[0]) for n in files if "/" in n)
    r = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount --bind {tmp_path} /proc && pmap -x {pid}"],
                       capture_output=True, text=True)
    if r.returncode != 0 and ("Operation not permitted" in r.stderr or "unshare failed" in r.stderr):
        pytest.skip(f"no private mount namespace here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{pid}:   demo"
    assert "zero (deleted)" in r.stdout and "[ stack ]" in r.stdout
    total = lines[-1].split()
    assert total[:2] == ["total", "kB"] and int(total[3]) == 4 * (16 + 4 + 1)
