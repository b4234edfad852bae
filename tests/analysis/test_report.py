"""The analysis report (smpmem/analysis/report.py) on a hand-computed run, figure by figure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rundirs import SMALL_EVENTS, small_run, write_run

from smpmem.analysis import analyze, load


# 16 MiB written and read back in ~14 MiB of usable RAM: the read pass faults swapped-out pages back in.
SWAPIN_TOML = """
name = "swapin"
[machine]
cpus = 2
ram = "32MiB"
[[machine.disk]]
name = "sda"
preset = "ssd"
[[machine.swap]]
name = "/dev/sda2"
size = "64MiB"
[run]
seed = 1
[[process]]
name = "p"
program = [
  { op = "mmap", name = "ws", size = "16MiB" },
  { op = "touch", region = "ws", write = true },
  { op = "touch", region = "ws" },
]
"""


@pytest.fixture
def report(small: Path):  # type: ignore[no-untyped-def]
    return analyze(small)


class TestReclaim:
    def test_direct_reclaim_stalls(self, report) -> None:  # type: ignore[no-untyped-def]
        """Two direct reclaims of 10 µs and 30 µs give count 2, p50 10 µs, p99 and max 30 µs (nearest rank)."""
        d = report.data["reclaim"]["direct"]
        assert (d["reclaims"], d["stall_p50_ns"], d["stall_p99_ns"], d["stall_max_ns"], d["stall_total_ns"]) == (
            2, 10_000, 30_000, 30_000, 40_000)
        md = report.to_markdown()
        assert "2 stall(s) (begin/end pairs per task): p50 10.0 µs, p99 30.0 µs, max 30.0 µs, total 40.0 µs" in md

    def test_kswapd_scanned_and_reclaimed(self, report) -> None:  # type: ignore[no-untyped-def]
        """kswapd scanned 16 anon + 32 file and reclaimed 8 + 30 pages: efficiency 79.2 %."""
        k = report.data["reclaim"]["kswapd"]
        assert k["scanned"] == [16, 32] and k["reclaimed"] == [8, 30]
        assert k["scanned_total"] == 48 and k["reclaimed_total"] == 38
        assert k["efficiency"] == pytest.approx(38 / 48)
        md = report.to_markdown()
        assert "| pages scanned, total | 48 | 10 |" in md
        assert "| pages reclaimed, total | 38 | 5 |" in md
        assert "| reclaim efficiency (reclaimed/scanned) | 79.2% | 50.0% |" in md

    def test_direct_scanned_and_reclaimed(self, report) -> None:  # type: ignore[no-untyped-def]
        """Direct reclaim by pid 100 scanned 10 file pages and reclaimed 5."""
        d = report.data["reclaim"]["direct"]
        assert d["scanned"] == [0, 10] and d["reclaimed"] == [0, 5] and d["efficiency"] == 0.5

    def test_kswapd_wakes_sleeps_and_awake_time(self, report) -> None:  # type: ignore[no-untyped-def]
        """2 wakes, 1 re-wake while awake, 1 sleep; awake 8 µs + 63 µs (still awake at the log's end)."""
        k = report.data["reclaim"]["kswapd"]
        assert (k["wakes"], k["rewakes"], k["sleeps"], k["awake_ns"]) == (2, 1, 1, 71_000)
        assert "kswapd: 2 wake(s), 1 re-wake(s) while awake, 1 sleep(s); awake 71.0 µs" in report.to_markdown()

    def test_allocstall_balance_and_writes(self, report) -> None:  # type: ignore[no-untyped-def]
        """allocstall sums the per-zone counters; anon/file balance and reclaim writes are by flags."""
        r = report.data["reclaim"]
        assert r["allocstall"] == 2
        assert r["balance"] == {"scanned": [16, 42], "reclaimed": [8, 35]}
        assert r["kswapd"]["writes"] == [1, 0] and r["direct"]["writes"] == [0, 0]
        assert r["wakeup_kswapd"] == 1

    def test_direct_reclaimers_table(self, report) -> None:  # type: ignore[no-untyped-def]
        """Per-task direct reclaim rows, most stalled first."""
        md = report.to_markdown()
        assert "| 101 | stress | 1 | 30.0 µs | 30.0 µs | 0 | 0 |" in md
        assert "| 100 | stress | 1 | 10.0 µs | 10.0 µs | 5 | 1 |" in md
        assert md.index("| 101 | stress") < md.index("| 100 | stress")


class TestLocks:
    def test_lock_stat_row(self, report) -> None:  # type: ignore[no-untyped-def]
        """The lock_stat row merges run.json totals with min/max from the events (µs, 2 decimals)."""
        row = next(line for line in report.to_markdown().splitlines() if line.strip().startswith("zone->lock:"))
        assert row.index(":") == 40
        assert row[41:].split() == ["1", "1", "2.00", "2.00", "2.00", "2.00", "1", "2",
                                    "1.00", "3.00", "4.00", "2.00"]

    def test_lock_data_and_top_table(self, report) -> None:  # type: ignore[no-untyped-def]
        """The most-contended table shows contention rate and wait figures."""
        z = report.data["locks"]["zone->lock"]
        assert (z["contentions"], z["acquisitions"], z["wait_total"], z["hold_min"], z["hold_max"]) == (
            1, 2, 2_000, 1_000, 3_000)
        assert "| zone->lock | 1 | 2 | 50.0% | 2.0 µs | 2.0 µs | 2.0 µs | 100.0% |" in report.to_markdown()

    def test_sorted_by_wait_time(self, tmp_path: Path) -> None:
        """Classes are listed by total wait time, largest first, not by contention count."""
        run = {"scenario": "t", "seed": 1, "virtual_ns": 1000, "locks": {
            "a_lock": {"contentions": 100, "acquisitions": 200, "waittime_total": 10, "waittime_max": 1},
            "b_lock": {"contentions": 1, "acquisitions": 2, "waittime_total": 5000, "waittime_max": 5000}}}
        rep = analyze(write_run(tmp_path / "r", [], run), plots=False)
        md = rep.to_markdown()
        assert md.index("b_lock:") < md.index("a_lock:")


class TestOtherSections:
    def test_tlb_and_ipis(self, report) -> None:  # type: ignore[no-untyped-def]
        """Flushes by reason and IPIs sent/received/handled per CPU."""
        t = report.data["tlb"]
        assert t["reasons"] == {"remote ipi send": {"flushes": 1, "pages": 1, "full": 0},
                                "remote shootdown": {"flushes": 2, "pages": 2, "full": 0}}
        assert t["ipi_sent"] == {1: 2} and t["ipi_received"] == {2: 1, 3: 1} and t["ipi_handled"] == {2: 1, 3: 1}
        assert "| 1 | 1 | 2 | 0 | 0 |" in report.to_markdown()

    def test_faults_minor_and_major(self, report) -> None:  # type: ignore[no-untyped-def]
        """A page-cache add before the fault's rss_stat makes it major; the others are minor."""
        f = report.data["faults"]
        assert f[100] == {"comm": "stress", "user": 2, "kernel": 0, "major": 1, "minor": 1}
        assert f[101] == {"comm": "stress", "user": 1, "kernel": 0, "major": 0, "minor": 1}
        assert "From events: 3 fault(s), 1 major. vmstat: pgfault 3, pgmajfault 1." in report.to_markdown()

    def test_swapin_fault_is_major(self, tmp_path: Path) -> None:
        """A swap-in read (block_bio_queue R) by the faulting task makes its fault major, even after reclaim shrank its RSS."""
        from rundirs import ev

        from smpmem.trace import gfp

        B, K = (1, 200, "burst"), (0, 50, "kswapd0")
        anon, swapents = gfp.MM_ANONPAGES, gfp.MM_SWAPENTS
        bio = dict(dev=0x800000, nr_sector=8)
        events = [
            ev(1_000, *B, "page_fault_user", address=0x7F0000001000, ip=0x401000, error_code=6),  # minor
            ev(1_500, *B, "rss_stat", mm_id=9, curr=1, member=anon, size=8192),
            ev(2_000, *B, "page_fault_user", address=0x7F0000000000, ip=0x401000, error_code=4),  # swap-in
            ev(2_100, *B, "rss_stat", mm_id=9, curr=1, member=anon, size=4096),  # direct reclaim unmaps its own page
            ev(2_100, *B, "rss_stat", mm_id=9, curr=1, member=swapents, size=8192),
            ev(2_200, *B, "block_bio_queue", sector=80, rwbs="W", **bio),  # ... and writes it out
            ev(2_300, *K, "block_bio_queue", sector=88, rwbs="R", **bio),  # another task's read
            ev(2_400, *B, "block_bio_queue", sector=96, rwbs="R", **bio),  # swap_read_folio: major
            ev(2_500, *B, "block_bio_queue", sector=104, rwbs="R", **bio),  # swap readahead, same fault
            ev(3_000, *B, "rss_stat", mm_id=9, curr=1, member=anon, size=8192),
            ev(3_000, *B, "rss_stat", mm_id=9, curr=1, member=swapents, size=4096),
            ev(4_000, *B, "page_fault_user", address=0x7F0000002000, ip=0x401000, error_code=6),  # minor
            ev(4_100, *B, "block_bio_queue", sector=112, rwbs="RA", **bio),  # readahead does not make it major
            ev(4_500, *B, "rss_stat", mm_id=9, curr=1, member=anon, size=12288),
            ev(5_000, *B, "block_bio_queue", sector=120, rwbs="R", **bio),  # after the fault: read(2)
        ]
        run = {"scenario": "t", "seed": 1, "virtual_ns": 10_000, "counters": {"pgfault": 3, "pgmajfault": 1}}
        rep = analyze(write_run(tmp_path / "r", events, run), plots=False)
        assert rep.data["faults"][200] == {"comm": "burst", "user": 3, "kernel": 0, "major": 1, "minor": 2}
        assert "From events: 3 fault(s), 1 major. vmstat: pgfault 3, pgmajfault 1." in rep.to_markdown()

    def test_file_fault_is_major_when_it_adds_its_own_page(self, tmp_path: Path) -> None:
        """With mm_filemap_fault logged, only the add of the faulting page makes a fault major, not async readahead."""
        from rundirs import ev

        from smpmem.trace import gfp

        R = (1, 300, "reader")
        dev = gfp.mkdev(8, 1)

        def add(ts: int, index: int) -> dict:  # type: ignore[type-arg]
            return ev(ts, *R, "mm_filemap_add_to_page_cache", pfn=0x1000 + index, i_ino=12, index=index, s_dev=dev,
                      order=0)

        def fault(ts: int, index: int | None) -> list:  # type: ignore[type-arg]
            out = [ev(ts, *R, "page_fault_user", address=0x7F0000000000 + 4096 * (index or 0), ip=0x401000,
                      error_code=4)]
            if index is not None:
                out.append(ev(ts + 10, *R, "mm_filemap_fault", i_ino=12, s_dev=dev, index=index))
            return out

        rss = [ev(ts, *R, "rss_stat", mm_id=5, curr=1, member=gfp.MM_FILEPAGES, size=4096 * n)
               for n, ts in enumerate((1_900, 2_900, 3_900), start=1)]
        events = [
            *fault(1_000, 0), add(1_100, 0), add(1_100, 1), add(1_100, 2), rss[0],  # a miss: sync readahead, major
            *fault(2_000, 2), add(2_100, 8), add(2_100, 9), rss[1],  # a hit on a PG_readahead page: minor
            *fault(3_000, None), add(3_100, 20), rss[2],  # no mm_filemap_fault logged: any add makes it major
        ]
        rep = analyze(write_run(tmp_path / "r", events), plots=False)
        assert rep.data["faults"][300] == {"comm": "reader", "user": 3, "kernel": 0, "major": 2, "minor": 1}

    def test_model_run_major_faults_agree_with_pgmajfault(self, tmp_path: Path) -> None:
        """A model run that swaps pages out and faults them back: the report's major faults equal pgmajfault."""
        from smpmem.run import run_scenario
        from smpmem.scenario import parse_scenario

        sc = parse_scenario(SWAPIN_TOML)
        res = run_scenario(sc, out_dir=tmp_path / "run")
        assert res.status == "completed", res.error
        rep = analyze(res.dir, plots=False)
        c = load(res.dir).counters
        assert c["pgmajfault"] > 100 and c["pswpin"] > c["pgmajfault"]  # swap readahead read more than faulted
        assert sum(t["major"] for t in rep.data["faults"].values()) == c["pgmajfault"]

    def test_model_run_file_mapping_major_faults_agree_with_pgmajfault(self, tmp_path: Path) -> None:
        """A model run touching a file mapping front to back: filemap_fault logs mm_filemap_fault, so only the
        faults that read their own page count as major (not those whose page async readahead brought in)."""
        from smpmem.run import run_scenario
        from smpmem.scenario import parse_scenario

        sc = parse_scenario('''
[machine]
cpus = 1
ram = "64MiB"
[[machine.disk]]
name = "sda"
[[machine.file]]
path = "/data"
size = "4MiB"
[[process]]
name = "mapper"
program = [ { op = "mmap", name = "m", size = "4MiB", file = "/data" }, { op = "touch", region = "m" } ]
''')
        res = run_scenario(sc, out_dir=tmp_path / "run")
        assert res.status == "completed", res.error
        rep = analyze(res.dir, plots=False)
        c = load(res.dir).counters
        assert c["pgfault"] >= 1024 and 1 <= c["pgmajfault"] < 16  # readahead windows, not a read per page
        assert sum(t["major"] for t in rep.data["faults"].values()) == c["pgmajfault"]

    def test_faults_per_process_with_tids(self, tmp_path: Path) -> None:
        """When run.json lists each process's thread ids, faults are summed per process."""
        import orjson

        d = small_run(tmp_path / "s")
        info = orjson.loads((d / "run.json").read_bytes())
        info["processes"] = [{"pid": 100, "comm": "stress", "threads": 2, "tids": [100, 101]}]
        (d / "run.json").write_bytes(orjson.dumps(info))
        md = analyze(d, plots=False).to_markdown()
        assert "Faults per process (threads summed by run.json processes[].tids)" in md
        assert "| 100 | stress | 3 | 3 | 0 | 2 | 1 |" in md

    def test_writeback_by_whom(self, report) -> None:  # type: ignore[no-untyped-def]
        """The flusher wrote writeback_start.nr_pages − writeback_written.nr_pages = 24 pages."""
        w = report.data["writeback"]
        assert w["flusher_pages"] == {0: 24} and w["flusher_works"] == {0: 1}
        assert w["reclaim_writes"] == {"kswapd": [1, 0], "direct": [0, 0]}
        assert "| background | 1 | 24 |" in report.to_markdown()

    def test_zone_timeline(self, report) -> None:  # type: ignore[no-untyped-def]
        """Zone figures come from the snapshots' and the end's zoneinfo."""
        z = report.data["zones"]["Node 0 DMA32"]
        assert [p[:2] for p in z["timeline"]] == [(0, 5000), (40_000, 3000), (90_000, 1500), (100_000, 4500)]
        assert (z["min"], z["low"], z["high"], z["free_lowest"], z["lowest_at"]) == (1000, 2000, 4000, 1500, 90_000)
        assert (z["below_low"], z["below_min"]) == (1, 0)
        assert "| 90.0 µs | 3000 | 1500 <low |" in report.to_markdown()

    def test_counters(self, report) -> None:  # type: ignore[no-untyped-def]
        """Non-zero event counters are listed with their rate; nr_* separately; zeros counted."""
        md = report.to_markdown()
        assert "| pgscan_kswapd | 48 | 480 k/s |" in md
        assert "| nr_free_pages | 4500 |" in md
        assert "2 counter(s) are zero and not shown." in md

    def test_event_counts(self, report) -> None:  # type: ignore[no-untyped-def]
        """Every event is counted once."""
        assert report.data["events"] == len(SMALL_EVENTS)
        assert sum(report.data["counts"].values()) == len(SMALL_EVENTS)


class TestEmptySections:
    def test_each_section_says_it_has_no_data(self, tmp_path: Path) -> None:
        """A run with no events and no counters keeps every section, each with a one-line 'no data' note."""
        rep = analyze(write_run(tmp_path / "empty", []), plots=True)
        titles = [s.title for s in rep.sections]
        assert titles == ["vmstat counters", "Reclaim", "Writeback", "Lock contention", "TLB flushes and IPIs",
                          "Page faults", "Zones: free pages vs watermarks", "Page allocator and OOM",
                          "CPU activity", "Events"]
        md = rep.to_markdown()
        for phrase in ("No vmstat counters", "No reclaim in this run", "No writeback in this run",
                       "No lock figures", "No TLB flushes or IPIs", "No page faults", "No zoneinfo",
                       "No page allocator or OOM events", "No events, so no CPU activity", "No events in events.jsonl"):
            assert phrase in md
        assert not (tmp_path / "empty" / "plots").exists() or not list((tmp_path / "empty" / "plots").iterdir())


class TestFiles:
    def test_writes_md_html_and_plots(self, small: Path) -> None:
        """analyze writes report.md, report.html and one PNG per plot."""
        analyze(small)
        assert (small / "report.md").read_text().startswith("# smpmem run report: small")
        names = sorted(p.name for p in (small / "plots").iterdir())
        assert names == ["cpu_heatmap.png", "dirty.png", "kswapd.png", "lockwait.png", "lru.png", "zones.png"]
        for p in (small / "plots").iterdir():
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "![free pages vs watermarks per zone](plots/zones.png)" in (small / "report.md").read_text()

    def test_html_is_self_contained(self, small: Path) -> None:
        """report.html embeds every plot as a data: URI and references nothing on the network or disk."""
        analyze(small)
        html = (small / "report.html").read_text()
        assert html.count('src="data:image/png;base64,') == 6
        assert not re.search(r'(src|href)="(?!data:|#)', html)
        assert "http://" not in html and "https://" not in html
        assert "<script" not in html

    def test_out_dir(self, small: Path, tmp_path: Path) -> None:
        """--out puts the report and plots elsewhere, leaving the run directory untouched."""
        analyze(small, tmp_path / "elsewhere")
        assert (tmp_path / "elsewhere" / "report.html").is_file()
        assert not (small / "report.md").exists()

    def test_no_plots(self, tmp_path: Path) -> None:
        """plots=False writes the report without a plots directory."""
        d = small_run(tmp_path / "s")
        analyze(d, plots=False)
        assert (d / "report.md").is_file() and not (d / "plots").exists()


def test_load_api(small: Path) -> None:
    """load() gives run.json, counters, locks, streamed events and a DataFrame of them."""
    run = load(small)
    assert run.run["seed"] == 7 and run.counters["pgscan_kswapd"] == 48
    assert run.locks["zone->lock"]["acquisitions"] == 2
    assert sum(1 for _ in run.iter_events()) == len(SMALL_EVENTS)
    df = run.events
    assert len(df) == len(SMALL_EVENTS)
    assert list(df.columns[:5]) == ["ts", "cpu", "pid", "comm", "event"]
    assert int(df[df.event == "mm_vmscan_direct_reclaim_end"].nr_reclaimed.sum()) == 5
