"""Schedule exploration (smpmem.experiments.explore): the broken protocol is found and replays; correct ones pass."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib

import orjson

from conftest import BROKEN, ROOT
from smpmem.experiments.cli import add_commands
from smpmem.experiments.explore import dump_toml, failure_kind, run_explore
from smpmem.scenario import load_scenario

CORRECT = {"tunables.tlb_skip_shootdown": False}


def explore_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="smpmem")
    sub = parser.add_subparsers(dest="command", required=True)
    handlers = add_commands(sub)
    args = parser.parse_args([str(a) for a in argv])
    return handlers[args.command](args)


class TestBrokenProtocol:
    def test_caught_within_200_seeds_and_the_replay_fails_the_same_way(self, tmp_path):
        """explore finds a failing seed below 200; `smpmem run SCENARIO --seed N` in a new process fails identically."""
        res = run_explore(BROKEN, range(1, 201), stop_first=True, out=tmp_path / "ex", jobs=2)
        assert res.smallest is not None and res.smallest <= 200
        err = res.results[res.smallest]["error"]
        assert err.startswith("ModelBug: stale TLB entry after a shootdown")
        assert res.seeds_run[: res.seeds_run.index(res.smallest) + 1] == list(range(1, res.smallest + 1))
        assert res.replay_same and (res.replay_dir / "events.jsonl").stat().st_size > 0
        assert res.replay_command == f"python -m smpmem run {BROKEN} --seed {res.smallest}"
        out = tmp_path / "replay"
        p = subprocess.run([sys.executable, "-m", "smpmem", "run", str(BROKEN), "--seed", str(res.smallest),
                            "--dir", str(out), "-q"], cwd=ROOT, capture_output=True, text=True)
        assert p.returncode == 1
        info = orjson.loads((out / "run.json").read_bytes())
        assert info["status"] == "failed" and info["error"] == err
        # The replay is the explored run itself, event for event.
        assert (out / "events.jsonl").read_bytes() == (res.replay_dir / "events.jsonl").read_bytes()

    def test_fifo_order_hides_the_bug(self, tmp_path):
        """In FIFO order main always wins the race, so plain runs pass: only a perturbed schedule shows the bug."""
        for seed in (1, 2, 3):
            sc = load_scenario(BROKEN, overrides={"run.schedule": "fifo", "run.seed": seed, "run.events": []})
            from smpmem.run import run_scenario

            assert run_scenario(sc, out_dir=tmp_path / f"f{seed}").status == "completed"

    def test_cli_reports_the_smallest_seed_and_exits_1(self, tmp_path, capsys):
        """`smpmem explore ... --stop-first` prints the smallest failing seed, its error and the replay command."""
        assert explore_cli("explore", BROKEN, "--seeds", "1..50", "--stop-first", "-j", "2",
                           "--out", tmp_path / "ex") == 1
        out = capsys.readouterr().out
        assert "failed the invariants check; the smallest is" in out
        assert "replay: python -m smpmem run" in out and "the replay failed the same way" in out
        info = orjson.loads((tmp_path / "ex" / "explore.json").read_bytes())
        assert info["smallest"] == info["found"][0]


class TestCorrectProtocol:
    def test_the_same_scenario_with_the_shootdown_passes_200_seeds(self, tmp_path, capsys):
        """With tlb_skip_shootdown off the race is harmless: 200 PCT seeds, no failure of any kind."""
        res = run_explore(BROKEN, range(1, 201), check="any", out=tmp_path / "ex", jobs=2, overrides=CORRECT)
        assert len(res.seeds_run) == 200 and res.found == [] and res.smallest is None
        assert not any((tmp_path / "ex" / "runs").iterdir())  # runs that completed are not kept

    def test_shootdown_heavy_threads_pass_200_seeds(self, shootdowns, tmp_path):
        """Threads racing mprotect, munmap and reads of shared pages break no invariant under 200 PCT seeds."""
        res = run_explore(shootdowns, range(1, 201), check="any", out=tmp_path / "ex", jobs=2)
        assert len(res.seeds_run) == 200 and res.found == []

    def test_the_checker_sees_the_broken_variant_of_that_workload(self, shootdowns, tmp_path):
        """The same shootdown-heavy workload with the IPIs skipped fails: the pass above is not vacuous."""
        res = run_explore(shootdowns, range(1, 4), out=tmp_path / "ex", jobs=2,
                          overrides={"tunables.tlb_skip_shootdown": True})
        assert res.found and "stale TLB entry" in res.results[res.found[0]]["error"]

    def test_cli_exit_0_when_nothing_is_found(self, tmp_path, capsys):
        """No failing seed: status 0 and a line saying so."""
        sc = tmp_path / "ok.toml"
        sc.write_text(BROKEN.read_text().replace("tlb_skip_shootdown = true", "tlb_skip_shootdown = false"))
        assert explore_cli("explore", sc, "--seeds", "10", "--out", tmp_path / "ex") == 0
        assert "no seed failed the invariants check" in capsys.readouterr().out


class TestReport:
    def test_replay_toml_when_the_scenario_does_not_run_that_way(self, tiny, tmp_path):
        """A FIFO scenario gets replay.toml (schedule pct, debug_vm, overrides) and a command naming it."""
        res = run_explore(tiny, [1, 2], out=tmp_path / "ex", jobs=2,
                          overrides={"tunables.tlb_skip_shootdown": True, "process[0].count": 1})
        assert res.smallest is None  # one process: no other CPU to leave stale
        from smpmem.experiments.explore import _replay_command

        cmd = _replay_command(load_scenario(tiny), str(tiny), tmp_path, {"run.schedule": "pct", "run.debug_vm": True,
                                                                        "process[0].count": 1}, 7)
        assert cmd == f"python -m smpmem run {tmp_path / 'replay.toml'} --seed 7"
        sc = load_scenario(tmp_path / "replay.toml")
        assert sc.run.schedule == "pct" and sc.process[0].count == 1 and sc.name == "tiny"

    def test_dump_toml_round_trips_scenarios(self):
        """The replay writer reads back equal for every shipped scenario."""
        for p in sorted((ROOT / "scenarios").glob("*.toml")):
            data = tomllib.loads(p.read_text())
            assert tomllib.loads(dump_toml(data)) == data, p.name

    def test_failure_kinds(self):
        """ModelBug, assertions and the final invariant check are invariant failures; deadlocks are other."""
        assert failure_kind("failed", "ModelBug: data loss") == "invariant"
        assert failure_kind("failed", "invariant 'lru_counts' broken: x") == "invariant"
        assert failure_kind("failed", "Deadlock: every actor is blocked") == "other"
        assert failure_kind("completed", None) is None

    def test_bad_seeds_exit_2(self, capsys):
        """A malformed --seeds is one line on stderr and status 2."""
        assert explore_cli("explore", BROKEN, "--seeds", "1..x") == 2
        assert "--seeds" in capsys.readouterr().err
