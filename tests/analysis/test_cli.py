"""The analysis subcommands (smpmem/analysis/cli.py) through a parser built as smpmem.cli builds it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from rundirs import small_run, write_run

from smpmem.analysis.cli import add_commands


def test_add_commands_registers_four(tmp_path: Path) -> None:
    """add_commands adds analyze, proc, export and compare and returns a handler for each."""
    parser = argparse.ArgumentParser(prog="smpmem")
    handlers = add_commands(parser.add_subparsers(dest="command"))
    assert sorted(handlers) == ["analyze", "compare", "export", "proc"]
    assert all(callable(h) for h in handlers.values())


class TestErrors:
    def test_missing_run_json_exit_2(self, cli, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """Every command on a directory without run.json exits 2 with one stderr line naming run.json."""
        (tmp_path / "r").mkdir()
        for argv in (("analyze", tmp_path / "r"), ("proc", tmp_path / "r"),
                     ("export", tmp_path / "r", "--format", "csv"), ("compare", tmp_path / "r", tmp_path / "r")):
            assert cli(*argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1
            assert err.startswith("smpmem: ") and str(tmp_path / "r" / "run.json") in err

    def test_bad_time(self, cli, small: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """proc --at with a malformed time exits 2 and says what a time looks like."""
        assert cli("proc", small, "--at", "soon") == 2
        assert "--at: 'soon' is not a time" in capsys.readouterr().err

    def test_no_snapshot_before_time(self, cli, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """proc --at before any snapshot exits 2 and names the first snapshot."""
        d = small_run(tmp_path / "s")
        (d / "snapshots" / "0").rename(d / "snapshots" / "5000")
        assert cli("proc", d, "--at", "1us") == 2
        assert "the first snapshot is at 5000 ns" in capsys.readouterr().err

    def test_ftrace_options_only_for_ftrace(self, cli, small: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """--compat-writepage with another format is a usage error."""
        assert cli("export", small, "--format", "csv", "--compat-writepage") == 2
        assert "apply to --format ftrace only" in capsys.readouterr().err

    def test_damage_is_a_warning_line(self, cli, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """A damaged log line is reported as 'smpmem: warning: ... line N' and the command succeeds."""
        d = write_run(tmp_path / "r", [], raw=b'{"ts":1,"cpu":0,"pid":1,"comm":"a","event":"x"}\n{"ts":')
        assert cli("analyze", d, "--no-plots", "-q") == 0
        err = capsys.readouterr().err
        assert "smpmem: warning: events.jsonl line 2: truncated last line" in err


class TestCommands:
    def test_analyze_prints_and_writes(self, cli, small: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """analyze prints the report and writes report.md, report.html and plots."""
        assert cli("analyze", small) == 0
        out = capsys.readouterr().out
        assert out.startswith("# smpmem run report: small")
        assert f"wrote {small / 'report.md'}" in out
        assert (small / "report.html").is_file() and (small / "plots" / "zones.png").is_file()

    def test_export_default_paths(self, cli, small: Path) -> None:  # type: ignore[no-untyped-def]
        """Each export format has a default file name in the run directory."""
        for fmt, name in (("ftrace", "trace.txt"), ("perfetto", "trace.perfetto.json"), ("csv", "events.csv"),
                          ("parquet", "events.parquet")):
            assert cli("export", small, "--format", fmt) == 0
            assert (small / name).stat().st_size > 0

    def test_export_out(self, cli, small: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """--out names the output file."""
        assert cli("export", small, "-f", "ftrace", "--no-irq-info", "-o", tmp_path / "x" / "t.txt") == 0
        text = (tmp_path / "x" / "t.txt").read_text()
        assert "#           TASK-PID     CPU#     TIMESTAMP  FUNCTION" in text

    def test_proc_default_dirs(self, cli, small: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """proc writes RUN_DIR/procfs for the end and RUN_DIR/procfs-<ts> for a snapshot."""
        assert cli("proc", small) == 0
        assert (small / "procfs" / "zoneinfo").is_file()
        assert cli("proc", small, "--at", "50us") == 0
        assert (small / "procfs-40000" / "meminfo").is_file()
        assert "from snapshot 40000 (t = 40000 ns)" in capsys.readouterr().out

    def test_compare(self, cli, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        """compare prints both runs and the differing figures; --out also writes them."""
        a = small_run(tmp_path / "a")
        b = small_run(tmp_path / "b")
        assert cli("compare", a, b, "--out", tmp_path / "cmp.md") == 0
        out = capsys.readouterr().out
        assert "The two runs have the same counters and lock figures." in out
        assert (tmp_path / "cmp.md").read_text() == out


@pytest.mark.parametrize("cmd", ["analyze", "proc", "export", "compare"])
def test_help(cmd: str, capsys) -> None:  # type: ignore[no-untyped-def]
    """Each subcommand has --help."""
    parser = argparse.ArgumentParser(prog="smpmem")
    add_commands(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit) as e:
        parser.parse_args([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: smpmem " + cmd in capsys.readouterr().out
