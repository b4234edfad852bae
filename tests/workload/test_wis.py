"""will-it-scale built-ins and their ops/s figures (smpmem/workload/_builtins.py, _wis.py)."""

from pathlib import Path

import orjson
import pytest

from smpmem.run import run_scenario
from smpmem.scenario import parse_scenario
from smpmem.workload.wis import WILL_IT_SCALE, intervals, ops_per_sec, wis_summary


def wis_scenario(test: str, tasks: int, mode: str = "processes", cpus: int = 4, size: str = "1MiB",
                 duration: str = "2ms", events: str = "[]") -> str:
    return f"""
[machine]
cpus = {cpus}
ram = "512MiB"
[run]
duration = "{duration}"
events = {events}
[[process]]
name = "{test}"
builtin = "{test}"
params = {{ mode = "{mode}", tasks = {tasks}, size = "{size}" }}
"""


def run(text: str, tmp_path: Path, name: str):  # type: ignore[no-untyped-def]
    res = run_scenario(parse_scenario(text, f"{name}.toml"), out_dir=tmp_path / name)
    assert (res.status, res.error) == ("completed", None), res.reason
    return res


class TestScaling:
    def test_page_fault1_grows_with_tasks(self, tmp_path: Path) -> None:
        """page_fault1 in processes mode on 4 CPUs: total page faults per second grow from 1 to 2 to 4 tasks."""
        totals = {}
        for n in (1, 2, 4):
            r = ops_per_sec(run(wis_scenario("page_fault1", n), tmp_path, f"pf1-{n}"))
            assert len(r.tasks) == n and all(t.ops > 0 for t in r.tasks)
            totals[n] = r.total
        assert totals[1] < totals[2] < totals[4]
        assert totals[4] > 2 * totals[1]

    def test_ops_are_page_faults(self, tmp_path: Path) -> None:
        """Each page_fault1 op is one page written: the ops equal the task's anonymous page faults."""
        res = run(wis_scenario("page_fault1", 1, size="256KiB", duration="1ms",
                               events='["exceptions:page_fault_user"]'), tmp_path, "pf1-faults")
        [t] = ops_per_sec(res).tasks
        faults = sum(1 for line in (tmp_path / "pf1-faults" / "events.jsonl").read_bytes().splitlines()
                     if orjson.loads(line)["pid"] == t.pid)
        assert t.ops <= faults <= t.ops + 1  # the one in progress when the run ended is not counted yet


class TestShootdowns:
    def test_tlb_flush2_threads_shoot_down(self, tmp_path: Path) -> None:
        """tlb_flush2 in threads mode: each MADV_DONTNEED flushes the other threads' CPUs (remote flushes)."""
        res = run(wis_scenario("tlb_flush2", 2, mode="threads", cpus=2, size="64KiB", duration="1ms"), tmp_path, "t")
        assert res.kernel.vmstat["nr_tlb_remote_flush"] > 10
        assert ops_per_sec(res).ops > 10

    def test_tlb_flush2_processes_flush_locally(self, tmp_path: Path) -> None:
        """tlb_flush2 in processes mode: each task's mm runs on one CPU, so no flush needs an IPI."""
        res = run(wis_scenario("tlb_flush2", 2, mode="processes", cpus=2, size="64KiB", duration="1ms"), tmp_path, "p")
        assert res.kernel.vmstat["nr_tlb_remote_flush"] == 0
        assert res.kernel.vmstat["nr_tlb_local_flush_one"] > 10


@pytest.mark.parametrize("test", [t for t in WILL_IT_SCALE if t not in ("page_fault3", "tlb_flush3")])
@pytest.mark.parametrize("mode", ["processes", "threads"])
def test_each_builtin_counts(test: str, mode: str, tmp_path: Path) -> None:
    """Each will-it-scale built-in runs its tasks in both modes and every task counts operations."""
    size = "4KiB" if test == "brk1" else "64KiB"
    duration = "2ms" if test in ("page_fault2", "mmap2", "tlb_flush1") else "300us"  # the file is written first
    res = run(wis_scenario(test, 2, mode=mode, cpus=2, size=size, duration=duration), tmp_path, f"{test}-{mode}")
    r = ops_per_sec(res)
    assert len(r.tasks) == 2 and all(t.ops > 0 and t.ops_per_sec > 0 for t in r.tasks)
    tgids = {t.tgid for t in r.tasks}
    assert len(tgids) == (2 if mode == "processes" else 1)


@pytest.mark.parametrize("test", ["page_fault3", "tlb_flush3"])
def test_shared_file_builtins(test: str, tmp_path: Path) -> None:
    """The shared-file-mapping built-ins run their tasks and count operations."""
    res = run(wis_scenario(test, 2, cpus=2, size="64KiB", duration="2ms"), tmp_path, test)
    r = ops_per_sec(res)
    assert len(r.tasks) == 2 and all(t.ops > 0 for t in r.tasks)


class TestFigures:
    SUMMARY = {"sample_ns": 1_000_000, "tasks": [
        {"pid": 3, "tgid": 3, "comm": "a", "ops": 300, "start_ns": 0, "end_ns": 3_000_000, "finished": False,
         "samples": [[0, 0], [1_000_000, 100], [2_000_000, 200], [3_000_000, 300]]},
        {"pid": 4, "tgid": 4, "comm": "a", "ops": 50, "start_ns": 1_000_000, "end_ns": 2_000_000, "finished": True,
         "samples": [[1_000_000, 0], [2_000_000, 50]]},
    ]}

    def test_ops_per_sec(self) -> None:
        """Each task's rate is its ops over its own window; the total is their sum."""
        r = ops_per_sec({"wis": self.SUMMARY})
        assert [(t.pid, t.ops, t.window_ns, t.ops_per_sec) for t in r.tasks] == [
            (3, 300, 3_000_000, 100_000.0), (4, 50, 1_000_000, 50_000.0)]
        assert (r.total, r.min, r.max, r.ops) == (150_000.0, 50_000.0, 100_000.0, 350)

    def test_warmup(self) -> None:
        """With a warm-up, the ops before it are left out and the window starts there."""
        r = ops_per_sec(self.SUMMARY, warmup_ns=1_500_000)
        assert [(t.pid, t.ops, t.window_ns) for t in r.tasks] == [(3, 150, 1_500_000), (4, 25, 500_000)]

    def test_intervals(self) -> None:
        """intervals() gives will-it-scale's per-interval min, max and total of the tasks' increments."""
        assert intervals(self.SUMMARY, 1_000_000) == [
            (1_000_000, 0, 100, 100), (2_000_000, 50, 100, 150), (3_000_000, 0, 100, 100)]

    def test_no_counting_task(self, tmp_path: Path) -> None:
        """A run where no ops step ran has no wis summary, and asking for its ops/s says why."""
        res = run('[[process]]\nname = "p"\nprogram = [ { op = "compute", ns = 1000 } ]\n', tmp_path, "none")
        assert wis_summary(res.kernel) is None
        with pytest.raises(ValueError, match="no ops steps ran"):
            ops_per_sec({"processes": []})

    def test_summary_is_json(self, tmp_path: Path) -> None:
        """wis_summary() is plain JSON data that ops_per_sec reads back to the same figures."""
        res = run(wis_scenario("mmap1", 2, cpus=2, duration="200us"), tmp_path, "j")
        summary = wis_summary(res.kernel)
        back = orjson.loads(orjson.dumps({"wis": summary}))
        assert ops_per_sec(back) == ops_per_sec(res)
