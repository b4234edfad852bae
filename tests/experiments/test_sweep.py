"""Parameter sweeps (smpmem.experiments.sweep): typed parameters, the grid, the table, failures, re-runs, Dask."""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import orjson
import pytest

from conftest import BROKEN
from smpmem.experiments import ExperimentError, parse_param, parse_seeds, run_sweep
from smpmem.experiments._common import figures_of
from smpmem.experiments.cli import add_commands


WIS = """
name = "pf"
[machine]
cpus = 1
ram = "128MiB"
[run]
duration = "600us"
events = []
[[process]]
name = "wis"
builtin = "page_fault1"
params = { mode = "processes", tasks = 1, size = "256KiB" }
"""


def sweep_cli(*argv: object) -> int:
    """Run ``smpmem sweep ...`` through a parser built the way smpmem.cli builds it."""
    parser = argparse.ArgumentParser(prog="smpmem")
    sub = parser.add_subparsers(dest="command", required=True)
    handlers = add_commands(sub)
    args = parser.parse_args([str(a) for a in argv])
    return handlers[args.command](args)


def rows(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))


class TestParams:
    def test_values_are_typed_by_the_schema(self):
        """Ints for int fields, booleans for bool fields, strings for sizes; a bare name finds its section."""
        assert parse_param("cpus=1,2,4").values == (1, 2, 4)
        assert parse_param("machine.cpus=8").path == "machine.cpus"
        assert parse_param("tunables.split_ptlock=true,false").values == (True, False)
        assert parse_param("machine.ram=64MiB,1GiB").values == ("64MiB", "1GiB")
        assert parse_param("run.schedule=fifo,pct").values == ("fifo", "pct")
        assert parse_param("costs.clear_page=100,200").values == (100, 200)
        assert parse_param("process[0].threads=1,2").values == (1, 2)
        assert parse_param("process[0].params.iterations=10").values == (10,)

    def test_bad_parameters_are_named(self):
        """An unknown field, a value the schema refuses, or a malformed spec raise ExperimentError naming it."""
        with pytest.raises(ExperimentError, match="did you mean 'cpus'"):
            parse_param("machine.cpu=1")
        with pytest.raises(ExperimentError, match=r"machine.cpus: 'x' is not allowed"):
            parse_param("cpus=1,x")
        with pytest.raises(ExperimentError, match="PATH=V1,V2"):
            parse_param("cpus")
        with pytest.raises(ExperimentError, match="no field 'nope'"):
            parse_param("nope=1")

    def test_linked_paths_take_the_same_value(self):
        """``a+b=1,2`` sets both paths at every point; a value one of them refuses is named."""
        p = parse_param("machine.cpus+process[0].params.tasks=1,2")
        assert (p.path, p.values, p.also) == ("machine.cpus", (1, 2), ("process[0].params.tasks",))
        assert p.overrides(2) == {"machine.cpus": 2, "process[0].params.tasks": 2}
        with pytest.raises(ExperimentError, match="tunables.split_ptlock: '1' is not allowed"):
            parse_param("machine.cpus+tunables.split_ptlock=1")

    def test_seeds(self):
        """A count is 1..N; ranges are inclusive; lists and combinations keep their order without repeats."""
        assert parse_seeds("3") == [1, 2, 3]
        assert parse_seeds("5..7") == [5, 6, 7]
        assert parse_seeds("1,7,9") == [1, 7, 9]
        assert parse_seeds("1..3,2,10") == [1, 2, 3, 10]
        with pytest.raises(ExperimentError):
            parse_seeds("9..1")


class TestSweep:
    def test_grid_table_summary_and_plots(self, tiny, tmp_path):
        """A 2×2 grid × 2 seeds: one run directory and one table row per point, summary per combination, plots."""
        sr = run_sweep(tiny, ["cpus=1,2", "tunables.pcp_batch=15,31"], seeds=[1, 2], out=tmp_path / "sw", jobs=2)
        assert [(r["machine.cpus"], r["tunables.pcp_batch"], r["seed"]) for r in sr.rows] == [
            (c, b, s) for c in (1, 2) for b in (15, 31) for s in (1, 2)]
        assert all(r["status"] == "completed" for r in sr.rows)
        assert (sr.dir / "cpus=2_pcp_batch=31_seed=2" / "run.json").exists()
        table = rows(sr.dir / "results.csv")
        assert len(table) == 8 and float(table[0]["ops_per_sec"]) > 0 and int(table[0]["pgfault"]) > 0
        assert {"lock_wait_ns", "lock_contentions", "nr_tlb_local_flush_one"} <= set(table[0])
        summary = rows(sr.dir / "summary.csv")
        assert len(summary) == 4 and summary[0]["runs"] == "2"
        assert (sr.dir / "results.parquet").exists()
        assert (sr.dir / "plots" / "ops_per_sec.png").stat().st_size > 1000
        # Two CPUs do about twice the operations of one per simulated second.
        ops = {(r["machine.cpus"], r["seed"]): r["ops_per_sec"] for r in sr.rows if r["tunables.pcp_batch"] == 15}
        assert ops[(2, 1)] > 1.5 * ops[(1, 1)]

    def test_will_it_scale_figures(self, tmp_path):
        """A will-it-scale built-in swept over CPUs = tasks: ops/s are its counted operations, and they scale."""
        sc = tmp_path / "pf.toml"
        sc.write_text(WIS)
        sr = run_sweep(sc, ["machine.cpus+process[0].params.tasks=1,2"], out=tmp_path / "sw", jobs=2, plots=False)
        one, two = sr.rows
        assert one["status"] == two["status"] == "completed"
        assert one["ops"] > 100 and 1.6 < two["ops_per_sec"] / one["ops_per_sec"] < 2.1
        cfg = orjson.loads((sr.dir / two["dir"] / "run.json").read_bytes())
        assert cfg["config"]["process"][0]["params"]["tasks"] == 2 and cfg["wis"]["tasks"]
        late = figures_of(cfg, warmup_ns=300_000)  # --warmup: the windows start later, fewer operations count
        assert 0 < late["ops"] < two["ops"] and late["ops_per_sec"] > 0

    def test_a_failing_point_does_not_sink_the_sweep_and_rerun_skips_done_points(self, tmp_path):
        """A point failing in the model and one that cannot boot are rows with their errors; a re-run skips done points."""
        out = tmp_path / "sw"
        grid = ["tunables.tlb_skip_shootdown=false,true", "machine.ram=32MiB,4MiB"]
        sr = run_sweep(BROKEN, grid, seeds=[1], out=out, jobs=2, plots=False)
        by = {(r["tunables.tlb_skip_shootdown"], r["machine.ram"]): r for r in sr.rows}
        assert by[(False, "32MiB")]["status"] == "completed"
        assert by[(True, "32MiB")]["status"] == "failed" and "stale TLB entry" in by[(True, "32MiB")]["error"]
        assert by[(False, "4MiB")]["status"] == "failed" and "BootError" in by[(False, "4MiB")]["error"]
        assert sr.ran == 4 and len(sr.failed) == 3
        assert "4MiB" in (out / "results.csv").read_text()
        again = run_sweep(BROKEN, grid, seeds=[1], out=out, jobs=2, plots=False)
        # The model's failure left a run.json saying "failed": done. The machine that cannot boot left
        # no run.json: it is tried again.
        assert again.skipped == 2 and again.ran == 2
        assert [r["status"] for r in again.rows] == [r["status"] for r in sr.rows]
        shutil.rmtree(out / "tlb_skip_shootdown=false_ram=32MiB_seed=1")
        third = run_sweep(BROKEN, ["tunables.tlb_skip_shootdown=false,true", "machine.ram=32MiB"], seeds=[1],
                          out=out, jobs=2, plots=False)
        assert third.ran == 1 and third.skipped == 1

    def test_local_pool_and_dask_cluster_give_identical_tables(self, tiny, tmp_path):
        """The same 2×2 sweep on the local process pool and on a Dask LocalCluster (2 workers) writes the same table."""
        distributed = pytest.importorskip("distributed")
        args = [tiny, "-p", "cpus=1,2", "-p", "tunables.pcp_batch=15,31", "--seeds", "1", "--no-plots", "-q"]
        assert sweep_cli("sweep", *args, "--jobs", "2", "--out", tmp_path / "local") == 0
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            assert sweep_cli("sweep", *args, "--scheduler", cluster.scheduler_address,
                             "--out", tmp_path / "dask") == 0
        local = (tmp_path / "local" / "results.csv").read_bytes()
        assert local == (tmp_path / "dask" / "results.csv").read_bytes()
        assert (tmp_path / "local" / "summary.csv").read_bytes() == (tmp_path / "dask" / "summary.csv").read_bytes()
        assert len(local.splitlines()) == 5

    def test_cli_errors_exit_2(self, tiny, tmp_path, capsys):
        """A parameter the schema refuses, or a scheduler address that cannot work, is one line on stderr and status 2."""
        assert sweep_cli("sweep", tiny, "-p", "cpus=one", "--out", tmp_path / "x") == 2
        assert "smpmem: --param machine.cpus: 'one' is not allowed" in capsys.readouterr().err
        pytest.importorskip("distributed")
        assert sweep_cli("sweep", tiny, "-p", "cpus=1", "--scheduler", "tpc://127.0.0.1:9", "--out",
                         tmp_path / "y") == 2
        assert "cannot connect" in capsys.readouterr().err
