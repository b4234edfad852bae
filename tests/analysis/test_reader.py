"""The tolerant reader of run directories (smpmem/analysis/_reader.py): damaged logs, missing run.json."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import orjson
import pytest
from rundirs import ev, write_run

from smpmem.analysis import DamagedLogWarning, RunDirError, analyze, load


def _lines(n: int) -> list[bytes]:
    return [orjson.dumps(ev(1000 * i, i % 2, 10, "t", "tlb_flush", reason=2, pages=1)) + b"\n" for i in range(n)]


class TestDamage:
    def test_truncated_last_line(self, tmp_path: Path) -> None:
        """A last line cut mid-record (no newline) is skipped with a warning naming line 6; lines 1-5 are read."""
        raw = b"".join(_lines(5)) + b'{"ts":5000,"cpu":1,"pid":10,"comm":"t","ev'
        run = load(write_run(tmp_path / "r", [], raw=raw))
        with pytest.warns(DamagedLogWarning, match=r"events.jsonl line 6: truncated last line"):
            recs = list(run.iter_events())
        assert len(recs) == 5
        assert [d.line for d in run.damage] == [6]

    def test_corrupt_middle_line(self, tmp_path: Path) -> None:
        """A corrupt line 3 is skipped with a warning naming it; the lines after it are still analysed."""
        lines = _lines(6)
        lines[2] = b'{"ts":2000,"cpu":0,"pid":10,,,garbage\n'
        d = write_run(tmp_path / "r", [], raw=b"".join(lines))
        with pytest.warns(DamagedLogWarning, match=r"events.jsonl line 3: not valid JSON"):
            rep = analyze(d, plots=False)
        assert rep.data["events"] == 5
        assert rep.data["damage"] == ["events.jsonl line 3: not valid JSON (corrupt line skipped)"]
        md = (d / "report.md").read_text()
        assert "## Damaged input" in md and "| 3 | not valid JSON (corrupt line skipped) |" in md

    def test_record_without_header(self, tmp_path: Path) -> None:
        """Valid JSON that is not an event record (no ts/cpu/event) is skipped and reported."""
        raw = b"".join(_lines(2)) + b'[1, 2, 3]\n{"event": "x"}\n' + b"".join(_lines(1))
        run = load(write_run(tmp_path / "r", [], raw=raw))
        with pytest.warns(DamagedLogWarning):
            assert len(list(run.iter_events())) == 3
        assert [(d.line, d.reason.split(" (")[0]) for d in run.damage] == [
            (3, "not an event record"), (4, "not an event record")]

    def test_blank_lines_are_not_damage(self, tmp_path: Path) -> None:
        """Blank lines are skipped silently."""
        raw = _lines(1)[0] + b"\n   \n" + _lines(1)[0]
        run = load(write_run(tmp_path / "r", [], raw=raw))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(list(run.iter_events())) == 2
        assert run.damage == []

    def test_warnings_are_capped(self, tmp_path: Path) -> None:
        """Only the first 20 damaged lines warn; all are recorded."""
        raw = b"".join(b"bad\n" for _ in range(30)) + b"".join(_lines(2))
        run = load(write_run(tmp_path / "r", [], raw=raw))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert len(list(run.iter_events())) == 2
        assert len(caught) == 20 and len(run.damage) == 30


class TestRunDir:
    def test_missing_run_json(self, tmp_path: Path) -> None:
        """A directory without run.json is a RunDirError naming the missing file."""
        (tmp_path / "r").mkdir()
        with pytest.raises(RunDirError, match=str(tmp_path / "r" / "run.json")):
            load(tmp_path / "r")

    def test_missing_directory(self, tmp_path: Path) -> None:
        """A path that does not exist is a RunDirError naming it."""
        with pytest.raises(RunDirError, match="no such run directory"):
            load(tmp_path / "nope")

    def test_corrupt_run_json(self, tmp_path: Path) -> None:
        """An unparsable run.json is a RunDirError, not a traceback."""
        d = tmp_path / "r"
        d.mkdir()
        (d / "run.json").write_text("{not json")
        with pytest.raises(RunDirError, match="not valid JSON"):
            load(d)

    def test_gzip_events(self, tmp_path: Path) -> None:
        """events.jsonl.gz is read like events.jsonl."""
        d = write_run(tmp_path / "r", [])
        (d / "events.jsonl").unlink()
        (d / "events.jsonl.gz").write_bytes(gzip.compress(b"".join(_lines(4))))
        assert len(list(load(d).iter_events())) == 4

    def test_no_events_file(self, tmp_path: Path) -> None:
        """A run without events.jsonl has no events (and no error)."""
        d = write_run(tmp_path / "r", [])
        (d / "events.jsonl").unlink()
        assert list(load(d).iter_events()) == []

    def test_last_ts_reads_the_tail(self, tmp_path: Path) -> None:
        """last_ts() is the ts of the last complete line, ignoring a truncated tail."""
        raw = b"".join(_lines(3)) + b'{"ts":99'
        assert load(write_run(tmp_path / "r", [], raw=raw)).last_ts() == 2000
