"""The calibration programs (calibration/*.c) build, run and report what calibrate.py reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAL = ROOT / "calibration"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or not Path("/proc/vmstat").exists(),
                                reason="needs gcc and a Linux /proc")


@pytest.fixture(scope="module")
def bins(tmp_path_factory) -> Path:
    sys.path.insert(0, str(CAL))
    import calibrate

    out = tmp_path_factory.mktemp("bin")
    calibrate.build(out)
    return out


class TestPrograms:
    def test_page_fault1_reports_operations_cpu_time_and_vmstat(self, bins):
        """One task for 50 ms: operations counted, CPU time per operation, and pgfault close to the operations."""
        p = subprocess.run([str(bins / "page_fault1"), "-t", "1", "-s", "0.05", "-z", str(1 << 20)],
                           capture_output=True, text=True, check=True)
        r = json.loads(p.stdout)
        assert r["test"] == "page_fault1" and r["tasks"] == 1 and r["ops"] > 1000
        assert 0 < r["cpu_ns_per_op"] < 100_000 and 0 < r["concurrency"] <= 1.2
        assert 0.9 * r["ops"] < r["vmstat"]["pgfault"] < 1.2 * r["ops"] + 200
        assert set(r["interrupts"]) == {"TLB", "CAL", "RES"}

    def test_threads_mode_shares_one_address_space(self, bins):
        """tlb_flush2 with 2 threads: each operation is one write fault and one read fault, in one mm."""
        p = subprocess.run([str(bins / "tlb_flush2"), "-t", "2", "-m", "thread", "-s", "0.05"],
                           capture_output=True, text=True, check=True)
        r = json.loads(p.stdout)
        assert r["mode"] == "threads" and r["ops"] > 100
        assert 1.5 * r["ops"] < r["vmstat"]["pgfault"] < 2.5 * r["ops"] + 200

    def test_micro_prints_runs_best_and_median(self, bins):
        """A microbenchmark prints every run, the best and the median."""
        p = subprocess.run([str(bins / "micro"), "syscall", "-r", "3"], capture_output=True, text=True, check=True)
        r = json.loads(p.stdout)
        assert len(r["runs"]) == 3 and r["ns"] == min(r["runs"]) and 10 < r["ns"] < 10_000

    def test_measured_json_matches_the_defaults(self):
        """Every cost measured.json derives is the default in smpmem/sim/costs.py (the defaults were copied from it)."""
        from smpmem.sim.costs import DEFAULT_COSTS

        derived = json.loads((CAL / "measured.json").read_text())["derived"]
        assert {k: v["value"] for k, v in derived.items()} == {k: getattr(DEFAULT_COSTS, k) for k in derived}
