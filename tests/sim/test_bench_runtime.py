"""The runtime benchmark (bench/runtime.py) still runs: a smoke test at a tiny scale, not a timing."""

from __future__ import annotations

from bench import __main__ as bench_main
from bench import runtime


class TestBenchRuntime:
    def test_discovered_by_python_m_bench(self):
        """``python -m bench`` finds bench/runtime.py by its main()."""
        assert "runtime" in bench_main.discover()

    def test_models_agree_with_simpy_on_the_work_done(self):
        """The smpmem and SimPy versions of each model do the same number of operations."""
        delays = runtime.sleep_delays(10, 20)
        assert runtime.sleeps_smpmem(delays) == runtime.sleeps_simpy(delays) == 200
        assert runtime.spinlock_smpmem(16, 10) == runtime.spinlock_simpy(16, 10) == 160
        assert runtime.events_tracer(100) == 100
        events, acquisitions = runtime.events_spinlock_model(4, 10)
        assert acquisitions == 40 and events > 40

    def test_measure_reports_every_row(self, capsys):
        """At a tiny scale main() measures and prints all four rows with their targets."""
        results = runtime.main(scale=0.002)
        assert [r.target for r in results] == [250_000, 90_000, 400_000, None]
        assert all(r.smpmem > 0 for r in results)
        out = capsys.readouterr().out
        assert "virtual sleeps/s" in out and "smpmem/SimPy" in out
