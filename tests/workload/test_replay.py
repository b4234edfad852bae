"""Trace replay (smpmem/workload/_replay.py): reading lackey and plain traces, and replaying a real program's."""

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from smpmem.run import run_scenario
from smpmem.scenario import ScenarioError, parse_scenario
from smpmem.workload._replay import TraceError, read_trace

PROG = r"""
#include <stdlib.h>
#include <string.h>
int main(void) {
    char *buf = malloc(64 * 1024);
    memset(buf, 1, 64 * 1024);
    long sum = 0;
    for (int i = 0; i < 64 * 1024; i += 4096) sum += buf[i];
    free(buf);
    return sum == 16 ? 0 : 1;
}
"""


def pages_in(path: Path) -> set[int]:
    """The distinct 4 KiB pages a lackey trace touches, computed straight from its records."""
    pages = set()
    for line in path.read_text().splitlines():
        if line[:2] in ("I ", " L", " S", " M"):
            addr, size = line[2:].strip().split(",")
            a, n = int(addr, 16), int(size)
            pages.update(range(a >> 12, ((a + n - 1) >> 12) + 1))
    return pages


@pytest.fixture(scope="module")
def lackey_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lackey trace of a small C program (or /bin/true without a compiler), made on this machine."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind is not installed (apt-get install valgrind): no real trace to replay")
    d = tmp_path_factory.mktemp("lackey")
    target = "/bin/true"
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is not None:
        (d / "prog.c").write_text(PROG)
        subprocess.run([gcc, "-O0", "-o", str(d / "prog"), str(d / "prog.c")], check=True, capture_output=True)
        target = str(d / "prog")
    out = d / "prog.lackey"
    subprocess.run([valgrind, "--tool=lackey", "--trace-mem=yes", f"--log-file={out}", target], check=True,
                   capture_output=True, timeout=120)
    return out


class TestRealTrace:
    def test_distinct_pages(self, lackey_trace: Path, tmp_path: Path) -> None:
        """Replaying a real lackey trace leaves exactly the trace's distinct pages mapped, each faulted in once at least."""
        expected = pages_in(lackey_trace)
        assert len(expected) > 10
        sc = parse_scenario(f"""
[machine]
cpus = 2
ram = "256MiB"
[run]
duration = "1s"
events = ["exceptions:page_fault_user"]
[[process]]
name = "prog"
program = [ {{ op = "replay", file = "{lackey_trace}" }} ]
""", "replay.toml")
        res = run_scenario(sc, out_dir=tmp_path)
        assert (res.status, res.reason, res.error) == ("completed", "every process exited", None)
        [stats] = res.kernel.replays
        assert stats.pages == len(expected)
        assert stats.present == len(expected)
        # The faults the log shows, mapped back to trace pages, cover the trace's pages and nothing else of it.
        proc = res.kernel.processes[stats.pid]
        [m] = proc.replay_maps.values()
        model_pages = {m.translate(v) for v in expected}
        faults = set()
        for line in (tmp_path / "events.jsonl").read_bytes().splitlines():
            ev = orjson.loads(line)
            if ev["event"] == "page_fault_user" and ev["pid"] == stats.pid:
                faults.add(ev["address"] >> 12)
        assert faults & model_pages == model_pages
        in_clusters = {v for v in faults if any(lo + s <= v < hi + s for lo, hi, s in m.clusters)}
        assert in_clusters == model_pages

    def test_limit(self, lackey_trace: Path) -> None:
        """limit stops reading after that many records."""
        t = read_trace(str(lackey_trace), "lackey", limit=100)
        assert t.records == 100 and t.pages <= 100 * 2


class TestPlain:
    def test_coalescing(self, tmp_path: Path) -> None:
        """Consecutive accesses to a page coalesce, but a store after loads stays a second (write) access."""
        f = tmp_path / "t.txt"
        f.write_text("# comment\nR 0x1000\nR 1008 8\nW 0x1010\nW 0x1018\nR 0x2000\nW 0x2ffc 8\nR 0x1000\n")
        t = read_trace(str(f), "plain")
        runs = [(r >> 1, r & 1) for r in t.runs]
        assert runs == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 1), (1, 0)]
        assert (t.records, t.pages, t.clusters) == (7, 3, ((1, 4),))

    def test_clusters(self, tmp_path: Path) -> None:
        """Pages 2 MiB or more apart get separate mappings."""
        f = tmp_path / "t.txt"
        f.write_text("W 0x400000\nW 0x600000\nR 0x7ff000000\n")
        assert read_trace(str(f), "plain").clusters == ((0x400, 0x401), (0x600, 0x601), (0x7ff000, 0x7ff001))

    def test_bad_line(self, tmp_path: Path) -> None:
        """A malformed line is a TraceError naming the file and line."""
        f = tmp_path / "t.txt"
        f.write_text("R 0x1000\nX 0x2000\n")
        with pytest.raises(TraceError, match=r"t.txt:2: expected \"R ADDRESS \[SIZE\]\""):
            read_trace(str(f), "plain")

    def test_lackey_modify(self, tmp_path: Path) -> None:
        """A lackey M record is a load then a store; I records go when instructions is false."""
        f = tmp_path / "t.lackey"
        f.write_text("==7== Lackey\nI  0401000,3\n M 0403000,4\n")
        assert [(r >> 1, r & 1) for r in read_trace(str(f)).runs] == [(0x401, 0), (0x403, 0), (0x403, 1)]
        assert [(r >> 1, r & 1) for r in read_trace(str(f), instructions=False).runs] == [(0x403, 0), (0x403, 1)]

    def test_replays_on_i386(self, tmp_path: Path) -> None:
        """A trace with addresses above the i386 3 GiB user limit is replayed with its clusters relocated."""
        f = tmp_path / "t.txt"
        f.write_text("W 0x7ff000000\nR 0x7ff001000\nW 0x400000\n")
        sc = parse_scenario(f"""
[machine]
layout = "i386"
cpus = 1
ram = "256MiB"
[[process]]
name = "p"
builtin = "replay"
params = {{ file = "{f}", format = "plain", repeat = 2 }}
""", "i386.toml")
        res = run_scenario(sc, out_dir=tmp_path / "run")
        assert res.status == "completed" and res.error is None
        first, second = res.kernel.replays
        assert (first.pages, first.present, first.mappings, first.relocated) == (3, 3, 2, 1)
        assert second.present == 3

    def test_empty_trace_is_a_load_error(self, tmp_path: Path) -> None:
        """A trace with no records fails when the scenario loads."""
        f = tmp_path / "empty.lackey"
        f.write_text("==1== nothing\n")
        with pytest.raises(ScenarioError, match="has no lackey access records"):
            parse_scenario(f'[[process]]\nname = "p"\nprogram = [ {{ op = "replay", file = "{f}" }} ]\n')


def test_relative_trace_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative trace path is read from the scenario's directory, and loading makes it absolute (step and builtin)."""
    from smpmem.scenario import load_scenario

    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "t.txt").write_text("W 0x400000\n")
    (tmp_path / "s.toml").write_text('[[process]]\nname = "a"\nprogram = [ { op = "replay", file = "traces/t.txt", '
                                     'format = "plain" } ]\n[[process]]\nname = "b"\nbuiltin = "replay"\n'
                                     'params = { file = "traces/t.txt", format = "plain" }\n')
    monkeypatch.chdir("/")
    sc = load_scenario(tmp_path / "s.toml")
    want = str(tmp_path / "traces" / "t.txt")
    assert sc.process[0].program[0].file == want
    assert sc.process[1].params["file"] == want
