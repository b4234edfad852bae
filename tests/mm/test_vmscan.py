"""Page reclaim (smpmem/mm/vmscan.py): kswapd against direct reclaim, LRU aging, swappiness, events and counters."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "trace"))

from reclaim_support import boot, events_named, machine, read_file, records, run_threads, run_toml  # noqa: E402

from smpmem.mm.lru import LRU_ACTIVE_FILE, LRU_INACTIVE_FILE  # noqa: E402
from smpmem.mm.page import PG_active, PG_lru  # noqa: E402
from smpmem.mm.zone import NR_ISOLATED_ANON, NR_ISOLATED_FILE  # noqa: E402

FILES = {"/data/a": "64MiB", "/data/b": "64MiB"}


class TestKswapdVsDirect:
    def test_slow_allocator_is_served_by_kswapd(self) -> None:
        """A reader allocating page cache slower than kswapd reclaims it never enters direct reclaim."""
        k = boot(machine(ram="64MiB", swap=None, files=FILES), events="vmscan:*")
        run_threads(k, lambda th: read_file(th, "/data/a", gap_ns=400_000))
        v = k.vmstat
        assert v["pgscan_kswapd"] > 1000 and v["pgsteal_kswapd"] > 1000
        assert v["allocstall_movable"] == 0 and v["pgscan_direct"] == 0
        recs = records(k)
        assert events_named(recs, "mm_vmscan_wakeup_kswapd") and events_named(recs, "mm_vmscan_kswapd_wake")
        assert not events_named(recs, "mm_vmscan_direct_reclaim_begin")
        assert v["pageoutrun"] == len(events_named(recs, "mm_vmscan_kswapd_wake"))

    def test_fast_allocators_stall_in_direct_reclaim(self) -> None:
        """Two readers allocating faster than kswapd reclaims stall in direct reclaim: allocstall and begin/end events."""
        k = boot(machine(ram="64MiB", swap=None, files=FILES), events="vmscan:*")
        run_threads(k, lambda th: read_file(th, "/data/a"), lambda th: read_file(th, "/data/b"))
        v = k.vmstat
        assert v["allocstall_movable"] > 0 and v["pgscan_direct"] > 0 and v["pgsteal_direct"] > 0
        recs = records(k)
        begins = events_named(recs, "mm_vmscan_direct_reclaim_begin")
        ends = events_named(recs, "mm_vmscan_direct_reclaim_end")
        assert len(begins) == len(ends) == v["allocstall_movable"]
        assert {r["comm"] for r in begins} <= {"t0", "t1"}
        assert all(r["gfp_flags"] & 0x400 for r in begins)  # __GFP_DIRECT_RECLAIM
        # Each stall is the allocating task's own time, summed per task.
        by_pid: dict[int, int] = {}
        for b, e in zip(sorted(begins, key=lambda r: (r["pid"], r["ts"])), sorted(ends, key=lambda r: (r["pid"], r["ts"]))):
            assert b["pid"] == e["pid"] and e["ts"] >= b["ts"]
            by_pid[b["pid"]] = by_pid.get(b["pid"], 0) + e["ts"] - b["ts"]
        assert set(k.vmscan.direct_stall_ns) == set(by_pid) and sum(k.vmscan.direct_stall_ns.values()) > 0
        assert sum(e["nr_reclaimed"] for e in ends) == v["pgsteal_direct"]

    def test_kswapd_sleeps_when_balanced(self) -> None:
        """Once allocations stop, kswapd naps HZ/10, finds the node balanced and goes to sleep (mm_vmscan_kswapd_sleep)."""
        k = boot(machine(ram="64MiB", swap=None, files=FILES), events="vmscan:*")

        async def reader_then_idle(th):  # type: ignore[no-untyped-def]
            await read_file(th, "/data/a", gap_ns=400_000)
            await th.sleep_for(300_000_000)

        run_threads(k, reader_then_idle)
        recs = [r for r in records(k) if r["comm"] == "kswapd0"]
        assert recs[-1]["event"] == "mm_vmscan_kswapd_sleep" and recs[-1]["nid"] == 0
        wakes = events_named(recs, "mm_vmscan_kswapd_wake")
        assert wakes and all(w["nid"] == 0 and w["order"] == 0 for w in wakes)
        assert k.vmstat["kswapd_low_wmark_hit_quickly"] + k.vmstat["kswapd_high_wmark_hit_quickly"] > 0


class TestLru:
    def test_hot_working_set_survives_streaming(self) -> None:
        """Pages read twice are active; a file streamed through the inactive list evicts itself, not them."""
        k = boot(machine(ram="64MiB", swap=None, files={"/hot": "8MiB", "/stream": "128MiB"}))
        out: dict[str, int] = {}

        async def work(th):  # type: ignore[no-untyped-def]
            from smpmem.mm.dcache import vfs_open

            from smpmem.mm.lru import lru_add_drain

            await read_file(th, "/hot", passes=2)
            await lru_add_drain(th)  # the last activations still wait in this CPU's batch
            hot = (await vfs_open(th, "/hot")).f_inode.i_mapping
            out["before"] = hot.nrpages
            out["active_before"] = sum(1 for p in hot.i_pages.values() if p.flags & (1 << PG_active))
            reads_before = k.vmstat["pgpgin"]
            await read_file(th, "/stream")
            out["streamed_kib"] = (k.vmstat["pgpgin"] - reads_before) // 2
            out["after"] = hot.nrpages
            in_before = k.vmstat["pgpgin"]
            await read_file(th, "/hot")
            out["hot_reread_kib"] = (k.vmstat["pgpgin"] - in_before) // 2

        run_threads(k, work)
        assert out["before"] == out["active_before"] == 2048
        assert out["streamed_kib"] >= 128 * 1024 - 64  # the stream came from disk: it did not fit
        assert out["after"] >= 0.95 * out["before"], out
        assert out["hot_reread_kib"] <= 0.05 * 8192, out
        assert k.vmstat["pgsteal_kswapd"] + k.vmstat["pgsteal_direct"] > 15000

    @pytest.mark.parametrize("swappiness", [0, 100, 200])
    def test_swappiness_balances_anon_and_file(self, swappiness: int, tmp_path: Path) -> None:
        """Swappiness 0 reclaims file pages only; higher values scan a larger share of anonymous pages."""
        res, c, _ = run_toml(tmp_path, _swappiness_scenario(swappiness), events="vmscan:*")
        assert res.status == "completed"
        share = c["pgscan_anon"] / max(1, c["pgscan_anon"] + c["pgscan_file"])
        _SHARES[swappiness] = share
        if swappiness == 0:
            assert c["pgscan_anon"] == 0 and c["pswpout"] == 0 and c["pgscan_file"] > 0
        if len(_SHARES) == 3:
            assert _SHARES[0] < _SHARES[100] < _SHARES[200], _SHARES

    def test_no_swap_no_anon_scanning(self, tmp_path: Path) -> None:
        """Without swap, anonymous lists are never scanned (get_scan_count: SCAN_FILE), whatever swappiness says."""
        text = _swappiness_scenario(200).replace('[[machine.swap]]\nname = "/dev/sda2"\nsize = "64MiB"\n', "")
        res, c, recs = run_toml(tmp_path, text, events="vmscan:*")
        assert c["pgscan_anon"] == 0 and c["pgscan_file"] > 0 and c["pswpout"] == 0
        lrus = {r["lru"] for r in events_named(recs, "mm_vmscan_lru_isolate")}
        assert lrus and lrus <= {LRU_INACTIVE_FILE, LRU_ACTIVE_FILE}

    def test_nothing_left_isolated(self, tmp_path: Path) -> None:
        """After a reclaim-heavy run every isolated folio is back: NR_ISOLATED_* are zero and lists match counters."""
        res, c, _ = run_toml(tmp_path, _swappiness_scenario(100), events="vmscan:*")
        k = res.kernel
        for pgdat in k.page_alloc.nodes:
            assert pgdat.vm_stat[NR_ISOLATED_ANON] == pgdat.vm_stat[NR_ISOLATED_FILE] == 0
            lv = pgdat.lruvec
            assert all(len(lst) == lv.nr_pages[i] for i, lst in enumerate(lv.lists))
            assert all(p.flags & (1 << PG_lru) for lst in lv.lists for p in lst)


_SHARES: dict[int, float] = {}


def _swappiness_scenario(swappiness: int) -> str:
    return machine(ram="64MiB", swap="64MiB", files={"/data/f": "16MiB"}, tunables=f"swappiness = {swappiness}") + '''
[[process]]
name = "filer"
program = [ { op = "read", file = "/data/f" }, { op = "read", file = "/data/f" } ]
[[process]]
name = "anon"
program = [ { op = "mmap", name = "a", size = "16MiB" }, { op = "touch", region = "a", write = true },
            { op = "touch", region = "a" } ]
[[process]]
name = "pressure"
start = "60ms"
program = [ { op = "mmap", name = "p", size = "32MiB" }, { op = "touch", region = "p", write = true } ]
'''


class TestShrinkers:
    def test_shrink_node_asks_the_shrinkers(self) -> None:
        """Every shrink_node calls shrink_slab at its priority: mm_shrink_slab_start/_end and slabs_scanned."""
        from smpmem.mm.shrinker import register_shrinker

        k = boot(machine(ram="64MiB", swap=None, files=FILES), events="vmscan:*")
        objects = {"n": 100_000, "scanned": 0}

        async def scan(th, sc):  # type: ignore[no-untyped-def]
            objects["scanned"] += sc.nr_to_scan
            freed = sc.nr_to_scan // 2
            objects["n"] -= freed
            return freed

        register_shrinker(k, "test-cache", lambda sc: objects["n"], scan, symbol="test_cache_scan")
        run_threads(k, lambda th: read_file(th, "/data/a"), lambda th: read_file(th, "/data/b"))
        recs = records(k)
        starts = [r for r in events_named(recs, "mm_shrink_slab_start") if r["shrink"] == "test_cache_scan"]
        ends = [r for r in events_named(recs, "mm_shrink_slab_end") if r["shrink"] == "test_cache_scan"]
        assert starts and len(starts) == len(ends)
        assert {r["pid"] for r in starts} >= {k.vmscan.kswapds[0].pid}
        assert all(0 <= r["priority"] <= 12 for r in starts)
        assert k.vmstat["slabs_scanned"] >= objects["scanned"] > 0
        assert objects["n"] < 100_000


class TestDirtyFilePages:
    def test_reclaim_leaves_dirty_pages_to_the_flusher(self) -> None:
        """Dirty file pages met by reclaim wake the flusher (reason vmscan), get PG_reclaim and rotate when written."""
        from smpmem.mm.zone import NODE_STAT_INDEX

        tun = ("dirty_ratio = 80\ndirty_background_ratio = 70\ndirty_expire_centisecs = 100000\n"
               "dirty_writeback_centisecs = 0")
        k = boot(machine(ram="48MiB", swap=None, tunables=tun), events="vmscan:*,writeback:writeback_start")

        async def write_then_read(th):  # type: ignore[no-untyped-def]
            from smpmem.mm.dcache import vfs_open
            from smpmem.mm.filemap import vfs_read, vfs_write

            f = await vfs_open(th, "/data/w", True)
            pos = 0
            while pos < 64 << 20:
                pos += await vfs_write(th, f, pos, 64 << 10)
            got = 0
            while got < pos:  # every page read checks the token written last
                got += await vfs_read(th, f, got, 64 << 10)
            return got

        assert run_threads(k, write_then_read) == [64 << 20]
        recs = records(k)
        shrinks = events_named(recs, "mm_vmscan_lru_shrink_inactive")
        assert sum(r["nr_dirty"] for r in shrinks) > 0
        assert any(r["reason"] == 1 for r in events_named(recs, "writeback_start"))  # WB_REASON_VMSCAN
        node = k.page_alloc.nodes[0].vm_stat
        immediate = node[NODE_STAT_INDEX["nr_vmscan_immediate_reclaim"]]
        assert immediate > 0 and k.vmstat["pgrotated"] == immediate
        assert node[NODE_STAT_INDEX["nr_written"]] == node[NODE_STAT_INDEX["nr_dirtied"]] == 16384


class TestTracePostprocess:
    def test_vmscan_postprocess_reproduces_counters(self, tmp_path: Path) -> None:
        """The kernel's trace-vmscan-postprocess.pl on the run's ftrace export reproduces pgscan/pgsteal and the reclaim writes."""
        from kernel_scripts import VMSCAN, run_script

        from smpmem.trace.ftrace import render_ftrace

        text = (Path(__file__).parents[2] / "scenarios" / "reclaim-kswapd-vs-direct.toml").read_text()
        res, c, recs = run_toml(tmp_path, text, events="vmscan:*")
        assert res.status == "completed"
        report = run_script(VMSCAN, render_ftrace(recs, compat_writepage=True))

        def field(label: str) -> float:
            m = re.search(rf"^{re.escape(label)}:\s+([0-9.]+)", report, re.M)
            assert m, f"{label!r} missing from the report:\n{report}"
            return float(m.group(1))

        assert field("Direct reclaims") == c["allocstall_movable"] > 0
        assert field("Direct reclaim pages scanned") == c["pgscan_direct"]
        assert field("Direct reclaim pages reclaimed") == c["pgsteal_direct"]
        assert field("Kswapd pages scanned") == c["pgscan_kswapd"]
        assert field("Kswapd pages reclaimed") == c["pgsteal_kswapd"]
        assert (field("Direct reclaim file pages scanned") + field("Kswapd file pages scanned")) == c["pgscan_file"]
        assert (field("Direct reclaim anon pages scanned") + field("Kswapd anon pages scanned")) == c["pgscan_anon"]
        writes = sum(field(f"{who} write {kind} async I/O") for who in ("Direct reclaim", "Kswapd reclaim")
                     for kind in ("anon", "file"))
        assert writes == c["nr_vmscan_write"] >= c["pswpout"] > 0
        assert field("Wake kswapd requests") > 0 and field("Kswapd wakeups") >= 1
