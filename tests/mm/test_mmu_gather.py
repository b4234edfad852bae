"""mmu_gather: a partial flush followed by freed page tables still flushes, and time never runs backwards."""

from smpmem.run import run_scenario
from smpmem.scenario import parse_scenario

SCENARIO = """
[machine]
cpus = 2
ram = "256MiB"
[run]
duration = "50ms"
events = ["tlb:tlb_flush"]
[[process]]
name = "pf"
builtin = "page_fault1"
params = { size = "4MiB", iterations = 3 }
"""


def test_unmapping_more_pages_than_one_batch_completes(tmp_path):
    """munmap of 1024 touched pages (more than one gather batch) ends normally with sane virtual time."""
    res = run_scenario(parse_scenario(SCENARIO, "pf.toml"), out_dir=tmp_path / "run")
    assert res.status == "completed", res.error
    assert 0 < res.virtual_ns < 50_000_000
    import orjson

    flushes = [orjson.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_bytes().splitlines()]
    assert flushes, "munmap flushed no TLB"
    assert all(r["pages"] == -1 or 0 < r["pages"] <= 1024 for r in flushes), \
        {r["pages"] for r in flushes}
    ts = [r["ts"] for r in flushes]
    assert ts == sorted(ts)
