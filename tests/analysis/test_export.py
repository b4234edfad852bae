"""Exports (smpmem/analysis/export.py): ftrace text that parses back, CSV and Parquet tables."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rundirs import SMALL_EVENTS, ev, write_run

from smpmem.analysis import load
from smpmem.analysis.export import ExportError, export
from smpmem.trace.ftrace import parse_ftrace, sanitize_comm

# Fields printed as hashed pointers: they come back as hash strings, not values.
HASHED = {"lock_addr", "ptr", "shr", "page"}


class TestFtrace:
    def test_round_trip(self, small: Path, tmp_path: Path) -> None:
        """Every exported line parses back to its record: header, and every field the body prints."""
        res = export(load(small), "ftrace", tmp_path / "trace.txt")
        text = res.path.read_text()
        back = parse_ftrace(text)
        assert len(back) == len(SMALL_EVENTS) == res.events
        compared = 0
        for orig, got in zip(SMALL_EVENTS, back):
            assert got["event"] == orig["event"]
            assert (got["cpu"], got["pid"]) == (orig["cpu"], orig["pid"])
            assert got["ts"] == (orig["ts"] + 500) // 1000 * 1000
            assert got["comm"] == sanitize_comm(orig["comm"], orig["pid"])
            for k, v in got.items():
                if k in orig and k not in HASHED and k not in ("ts", "comm"):
                    assert v == orig[k], (orig["event"], k)
                    compared += 1
        assert compared > 100

    def test_header(self, small: Path, tmp_path: Path) -> None:
        """The header counts the entries and the CPUs (from run.json's config)."""
        text = export(load(small), "ftrace", tmp_path / "t").path.read_text()
        assert text.startswith("# tracer: nop\n#\n")
        assert f"# entries-in-buffer/entries-written: {len(SMALL_EVENTS)}/{len(SMALL_EVENTS)}   #P:4\n" in text

    def test_compat_writepage(self, small: Path, tmp_path: Path) -> None:
        """--compat-writepage adds one mm_vmscan_writepage line per write_folio, counted in the header."""
        text = export(load(small), "ftrace", tmp_path / "t", compat_writepage=True).path.read_text()
        assert text.count("mm_vmscan_writepage: ") == 1
        assert f"entries-written: {len(SMALL_EVENTS) + 1}/{len(SMALL_EVENTS) + 1}" in text
        assert len(parse_ftrace(text)) == len(SMALL_EVENTS)

    def test_out_dash_writes_standard_output(self, small: Path, tmp_path: Path) -> None:
        """`export RUN --format ftrace --out -` prints the trace (for a pipe into the kernel's scripts), the
        summary on stderr, and leaves no file behind."""
        import subprocess
        import sys

        ref = export(load(small), "ftrace", tmp_path / "ref.txt").path.read_text()
        before = set(small.iterdir())
        p = subprocess.run([sys.executable, "-m", "smpmem", "export", str(small), "--format", "ftrace", "--out", "-"],
                           capture_output=True, text=True, check=True, timeout=120)
        assert p.stdout == ref
        assert p.stderr.startswith("wrote standard output: ") and set(small.iterdir()) == before

    def test_unknown_event_is_generic(self, tmp_path: Path) -> None:
        """An event the catalog does not know is written as field=value and noted."""
        d = write_run(tmp_path / "r", [ev(1000, 0, 5, "a", "mystery_event", x=1, y="z")])
        res = export(load(d), "ftrace", tmp_path / "t")
        assert "mystery_event: x=1 y=z" in res.path.read_text()
        assert res.notes and "field=value" in res.notes[0]


class TestTables:
    def test_csv(self, small: Path, tmp_path: Path) -> None:
        """One row per event; the header is the common header then every field, each once."""
        res = export(load(small), "csv", tmp_path / "e.csv")
        rows = list(csv.reader(res.path.open()))
        head = rows[0]
        assert head[:5] == ["ts", "cpu", "pid", "comm", "event"] and len(head) == len(set(head))
        assert set(head) == {k for e in SMALL_EVENTS for k in e}
        assert len(rows) == len(SMALL_EVENTS) + 1
        first = dict(zip(head, rows[1]))
        assert first["event"] == "mm_vmscan_kswapd_wake" and first["zid"] == "1" and first["nr_scanned"] == ""

    def test_parquet(self, small: Path, tmp_path: Path) -> None:
        """Parquet keeps types: ints as int64, lock addresses above 2^63 as uint64, names as strings."""
        pq = pytest.importorskip("pyarrow.parquet")
        res = export(load(small), "parquet", tmp_path / "e.parquet")
        t = pq.read_table(res.path)
        assert t.num_rows == len(SMALL_EVENTS)
        assert str(t.schema.field("ts").type) == "int64"
        assert str(t.schema.field("lock_addr").type) == "uint64"
        assert str(t.schema.field("comm").type) == "string"
        d = t.to_pydict()
        i = d["event"].index("contention_end")
        assert d["wait_ns"][i] == 2000 and d["lock_addr"][i] == 0xFFFF888000123400

    def test_parquet_without_pyarrow(self, small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without pyarrow the parquet export is a clear ExportError."""
        import builtins

        real = builtins.__import__

        def fake(name: str, *a, **k):  # type: ignore[no-untyped-def]
            if name.startswith("pyarrow"):
                raise ImportError(name)
            return real(name, *a, **k)

        monkeypatch.setattr(builtins, "__import__", fake)
        with pytest.raises(ExportError, match="needs pyarrow"):
            export(load(small), "parquet", tmp_path / "e.parquet")

    def test_mixed_types_become_strings(self, tmp_path: Path) -> None:
        """A column holding ints and strings (a %ps address or a symbol) is a string column."""
        pq = pytest.importorskip("pyarrow.parquet")
        d = write_run(tmp_path / "r", [ev(1, 0, 1, "a", "page_fault_kernel", address=4096, ip="__clear_user",
                                          error_code=2),
                                       ev(2, 0, 1, "a", "page_fault_kernel", address="copy_page", ip=0x1000,
                                          error_code=2)])
        t = pq.read_table(export(load(d), "parquet", tmp_path / "x.parquet").path)
        assert t.to_pydict()["address"] == ["4096", "copy_page"]


KERNEL_SOURCE_TOOL = Path(__file__).parents[3] / "shared/tools/kernel-source"


def _vmscan_script() -> Path:
    import shutil
    import subprocess

    if not KERNEL_SOURCE_TOOL.is_file() or shutil.which("perl") is None:
        pytest.skip("needs shared/tools/kernel-source and perl for the kernel's post-processing script")
    out = subprocess.run(["bash", str(KERNEL_SOURCE_TOOL)], capture_output=True, text=True, check=True, timeout=900)
    return Path(out.stdout.strip().splitlines()[-1]) / "Documentation/trace/postprocess/trace-vmscan-postprocess.pl"


def test_kernel_vmscan_script_agrees_with_report(small: Path, tmp_path: Path) -> None:
    """trace-vmscan-postprocess.pl on the ftrace export gives the report's reclaim figures."""
    import subprocess

    from smpmem.analysis import analyze

    script = _vmscan_script()
    trace = export(load(small), "ftrace", tmp_path / "t.txt", compat_writepage=True).path.read_text()
    out = subprocess.run(["perl", str(script)], input=trace, capture_output=True, text=True, check=True,
                         timeout=120).stdout
    summary = {}
    for line in out.splitlines():
        key, sep, val = line.partition(":")
        if sep and val.strip().isdigit():
            summary[key.strip()] = int(val)
    r = analyze(small, plots=False).data["reclaim"]
    k, d = r["kswapd"], r["direct"]
    assert summary["Direct reclaims"] == d["reclaims"] == 2
    assert (summary["Direct reclaim file pages scanned"], summary["Direct reclaim anon pages scanned"]) == (
        d["scanned"][1], d["scanned"][0])
    assert summary["Direct reclaim pages reclaimed"] == d["reclaimed_total"]
    assert summary["Wake kswapd requests"] == r["wakeup_kswapd"]
    assert summary["Kswapd wakeups"] == k["wakes"]
    assert (summary["Kswapd file pages scanned"], summary["Kswapd anon pages scanned"]) == (
        k["scanned"][1], k["scanned"][0])
    assert (summary["Kswapd file pages reclaimed"], summary["Kswapd anon pages reclaimed"]) == (
        k["reclaimed"][1], k["reclaimed"][0])
    assert summary["Kswapd reclaim write anon async I/O"] == k["writes"][0]
