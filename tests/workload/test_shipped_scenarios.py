"""Every shipped scenario (scenarios/*.toml) validates and runs to completion with a short duration."""

from pathlib import Path

import orjson
import pytest

from smpmem.run import run_scenario
from smpmem.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
SHORT = 1_000_000  # 1 ms of virtual time


def broken_on_purpose(path: Path) -> bool:
    """A scenario that switches on a deliberately broken protocol (a DEBUG tunable) is for `smpmem explore`: it may fail."""
    return load_scenario(path).tunables.tlb_skip_shootdown


RUNNABLE = [p for p in SCENARIOS if not broken_on_purpose(p)]


def test_shipped_set() -> None:
    """The scenarios DESIGN.md promises are all shipped."""
    names = {p.stem for p in SCENARIOS}
    assert {"quickstart", "zone-lock-contention", "mmap-lock-threads", "tlb-shootdown-storm", "fork-cow",
            "kmap-highmem-i386", "dirty-throttle", "page-cache-streaming-vs-hot-set", "reclaim-kswapd-vs-direct",
            "swap-thrash", "oom"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_says_what_it_shows(path: Path) -> None:
    """The file opens with a comment of a few lines saying what it shows, validates, and has a description."""
    lines = path.read_text().splitlines()
    comment = [ln for ln in lines[: next(i for i, ln in enumerate(lines) if not ln.startswith("#"))]]
    assert len(comment) >= 2 and sum(len(ln) for ln in comment) > 100
    assert load_scenario(path).description


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.stem)
class TestShipped:
    def test_runs(self, path: Path, tmp_path: Path) -> None:
        """With run.duration at 1 ms it runs to completion and leaves run.json and events.jsonl."""
        sc = load_scenario(path, overrides={"run.duration": SHORT})
        res = run_scenario(sc, out_dir=tmp_path, source=str(path))
        assert (tmp_path / "run.json").exists() and (tmp_path / "events.jsonl").exists()
        info = orjson.loads((tmp_path / "run.json").read_bytes())
        assert (res.status, res.error) == ("completed", None), res.reason
        assert info["status"] == "completed"


class TestReclaimScenariosReachReclaim:
    """The scenarios whose comments promise reclaim show it when run in full."""

    def test_hot_set_survives_the_stream(self, tmp_path: Path) -> None:
        """page-cache-streaming-vs-hot-set: reclaim scans and takes stream pages only; the hot file is never read again."""
        path = ROOT / "scenarios" / "page-cache-streaming-vs-hot-set.toml"
        res = run_scenario(load_scenario(path), out_dir=tmp_path, source=str(path))
        assert res.status == "completed", res.error
        c = orjson.loads((tmp_path / "run.json").read_bytes())["counters"]
        assert c["pgscan_kswapd"] > 0 and c["pgscan_direct"] > 0
        assert c["pgscan_file"] == c["pgsteal_file"] > 0 and c["pgdeactivate"] == 0
        hot_reads = 0
        for line in (tmp_path / "events.jsonl").read_bytes().splitlines():
            r = orjson.loads(line)
            if r["event"] == "block_bio_queue" and r["comm"] == "hot":
                hot_reads += r["nr_sector"]
        assert hot_reads == 2 + 8 * 2048  # its inode block and 8 MiB: the first pass only
        meminfo = (tmp_path / "proc" / "meminfo").read_text()
        active_file = int(next(ln.split()[1] for ln in meminfo.splitlines() if ln.startswith("Active(file):")))
        assert active_file >= 8 * 1024 - 16  # the hot set, still cached

    def test_script_reaches_reclaim(self, tmp_path: Path) -> None:
        """script-grow-until-pressure.py: kswapd wakes and anonymous pages are scanned, reclaimed and swapped out."""
        from smpmem.workload.script import load_script

        script = load_script(ROOT / "scenarios" / "script-grow-until-pressure.py")
        res = run_scenario(script.scenario, out_dir=tmp_path, script=script)
        assert res.status == "completed", res.error
        c = orjson.loads((tmp_path / "run.json").read_bytes())["counters"]
        assert c["pgscan_kswapd"] > 0 and c["pgsteal_kswapd"] > 0 and c["pgsteal_anon"] > 0 and c["pswpout"] > 0
        wakes = sum(1 for ln in (tmp_path / "events.jsonl").read_bytes().splitlines()
                    if b'"mm_vmscan_kswapd_wake"' in ln)
        assert wakes > 0
