"""Dirty accounting, the flusher and dirty throttling (smpmem/mm/page_writeback.py), measured from the event log."""

from __future__ import annotations

import re

import pytest

from filemap_support import disk, fs_kernel, records, run
from smpmem.mm.dcache import vfs_open
from smpmem.mm.filemap import ksys_sync, vfs_read, vfs_write
from smpmem.mm.lru import LRU_INACTIVE_FILE, lru_add_drain
from smpmem.mm.page import Page, PG_dirty, PG_locked, PG_reclaim, PG_writeback
from smpmem.mm.page_writeback import (
    CLEAN,
    DIRTY,
    DIRTY_WRITEBACK,
    END_WRITEBACK,
    END_WRITEBACK_ERROR,
    SET_DIRTY,
    START_WRITEBACK,
    WRITEBACK,
    WRITEBACK_STATES,
    IllegalTransition,
    Pageout,
    check_writeback_counts,
    domain_dirty_limits,
    global_dirty_limits,
    global_dirtyable_memory,
    page_wb_state,
    pos_ratio_polynom,
    wakeup_flusher_threads,
    wb_transition,
    writeback_single_page,
)
from smpmem.mm.pagemap import folio_lock
from smpmem.mm.zone import NR_FILE_DIRTY
from smpmem.proc.vmstat import vmstat_items

MiB = 1 << 20
SEC = 1_000_000_000


def _page() -> Page:
    return Page(0x1234, None, 0)  # type: ignore[arg-type]


class TestStateTable:
    def test_the_whole_life_of_a_page(self) -> None:
        """clean → dirty → writeback → redirtied during writeback → dirty again at completion → writeback → clean."""
        p = _page()
        steps = [(SET_DIRTY, DIRTY), (START_WRITEBACK, WRITEBACK), (SET_DIRTY, DIRTY_WRITEBACK),
                 (END_WRITEBACK, DIRTY), (START_WRITEBACK, WRITEBACK), (END_WRITEBACK, CLEAN)]
        seen = []
        for event, state in steps:
            wb_transition(p, event)
            seen.append((page_wb_state(p), bool(p.flags & (1 << PG_dirty)), bool(p.flags & (1 << PG_writeback))))
        assert seen == [(DIRTY, True, False), (WRITEBACK, False, True), (DIRTY_WRITEBACK, True, True),
                        (DIRTY, True, False), (WRITEBACK, False, True), (CLEAN, False, False)]

    def test_an_error_leaves_the_page_dirty(self) -> None:
        """The end of a failed write takes writeback back to dirty: the data is never dropped."""
        p = _page()
        wb_transition(p, SET_DIRTY)
        wb_transition(p, START_WRITEBACK)
        wb_transition(p, END_WRITEBACK_ERROR)
        assert page_wb_state(p) == DIRTY

    @pytest.mark.parametrize("state,event", [(CLEAN, START_WRITEBACK), (CLEAN, END_WRITEBACK),
                                             (DIRTY, END_WRITEBACK), (DIRTY_WRITEBACK, START_WRITEBACK)])
    def test_illegal_moves_raise_and_change_nothing(self, state: str, event: str) -> None:
        """An event the state does not allow raises IllegalTransition naming both, and the flags stay."""
        p = _page()
        path = {CLEAN: [], DIRTY: [SET_DIRTY], DIRTY_WRITEBACK: [SET_DIRTY, START_WRITEBACK, SET_DIRTY]}[state]
        for e in path:
            wb_transition(p, e)
        before = p.flags
        with pytest.raises(IllegalTransition, match=re.escape(f"{event}' is not allowed in state '{state}")):
            wb_transition(p, event)
        assert p.flags == before

    def test_table_is_closed(self) -> None:
        """Every state the table moves to is a state of the table."""
        assert {s for moves in WRITEBACK_STATES.values() for s in moves.values()} <= set(WRITEBACK_STATES)


class TestDirtyLimits:
    def test_thresholds_follow_the_kernel_formula(self) -> None:
        """thresh = ratio×PAGE_SIZE/100 × dirtyable / PAGE_SIZE (per-PAGE_SIZE precision); vmstat shows the same."""
        k = fs_kernel(tunables="dirty_ratio = 20\ndirty_background_ratio = 10")
        avail = global_dirtyable_memory(k)
        bg, thresh = global_dirty_limits(k)
        assert thresh == (20 * 4096 // 100) * avail // 4096 and bg == (10 * 4096 // 100) * avail // 4096
        v = dict(vmstat_items(k))
        assert (v["nr_dirty_background_threshold"], v["nr_dirty_threshold"]) == (bg, thresh)

    def test_bytes_settings_and_the_half_rule(self) -> None:
        """dirty_bytes / dirty_background_bytes are used in pages (rounded up); bg_thresh ≥ thresh becomes thresh/2."""
        k = fs_kernel(tunables='dirty_bytes = "8MiB"\ndirty_background_bytes = "16MiB"')
        assert domain_dirty_limits(k, 10**6) == (1024, 2048)

    def test_pos_ratio_polynom(self) -> None:
        """pos_ratio is 1.0 (1024) at the setpoint, 2.0 far below it, near 0 at the limit."""
        assert pos_ratio_polynom(1000, 1000, 2000) == 1024
        assert 2040 <= pos_ratio_polynom(1000, 0, 2000) <= 2048
        assert pos_ratio_polynom(1000, 1999, 2000) < 10


def _throttle_run() -> tuple:
    k = fs_kernel(disk='name = "sda"\nbandwidth = "20MiB"', files="",
                  tunables='dirty_bytes = "8MiB"\ndirty_background_bytes = "4MiB"', events="writeback:*")

    async def dd(th):
        f = await vfs_open(th, "/out", create=True)
        t0 = th.sim.now
        assert await vfs_write(th, f, 0, 24 * MiB) == 24 * MiB
        return th.sim.now - t0

    took = run(k, dd)[0]
    return k, records(k), took


@pytest.fixture(scope="module")
def log() -> tuple:
    """One throttled run shared by the TestThrottle checks."""
    return _throttle_run()


class TestThrottle:
    def test_background_writeback_starts_at_the_background_threshold(self, log) -> None:
        """The first background writeback_start comes when dirty pages just passed bg_thresh."""
        _k, recs, _ = log
        start = next(r for r in recs if r["event"] == "writeback_start" and r["for_background"])
        before = [r for r in recs if r["event"] == "global_dirty_state" and r["ts"] <= start["ts"]][-1]
        bg = before["background_thresh"]
        assert bg == 1024
        assert bg < before["nr_dirty"] <= bg + 64
        assert start["reason"] == 0 and start["sync_mode"] == 0

    def test_writer_is_paused_only_above_the_freerun_ceiling(self, log) -> None:
        """Every balance_dirty_pages event has dirty above (bg + thresh) / 2; the first is just above it."""
        _k, recs, _ = log
        bdp = [r for r in recs if r["event"] == "balance_dirty_pages"]
        freerun = (1024 + 2048) // 2
        assert bdp and all(r["dirty"] > freerun for r in bdp)
        assert bdp[0]["dirty"] <= freerun + 64
        assert any(r["pause"] > 0 for r in bdp)
        assert all(r["bdi"] == "8:0" and r["limit"] >= 2048 for r in bdp)

    def test_dirty_memory_stays_near_dirty_ratio(self, log) -> None:
        """Dirty plus writeback pages never go past the limit (thresh) by more than one ratelimit batch."""
        _k, recs, _ = log
        peak = max(r["nr_dirty"] + r["nr_writeback"] for r in recs if r["event"] == "global_dirty_state")
        assert 1536 < peak <= 2048 + 32

    def test_writer_slows_to_the_disk(self, log) -> None:
        """24 MiB through an 8 MiB dirty limit onto a 20 MiB/s disk takes at least the 16 MiB the disk must take first."""
        _k, _recs, took = log
        assert took >= 16 * SEC // 20 * 95 // 100


class TestFlusher:
    def test_kupdate_writes_old_data(self) -> None:
        """With no pressure, a dirty page is written by the periodic flush after dirty_expire_centisecs."""
        k = fs_kernel(tunables="dirty_expire_centisecs = 100\ndirty_writeback_centisecs = 50",
                      events="writeback:writeback_start,writeback:wbc_writepage")

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 4096)
            t0 = th.sim.now
            await th.sleep_for(3 * SEC)
            return t0, bool(f.f_mapping.i_pages[0].flags & (1 << PG_dirty))

        t0, dirty = run(k, t)[0]
        wrote = [r for r in records(k) if r["event"] == "wbc_writepage"]
        assert not dirty and len(wrote) == 1 and wrote[0]["for_kupdate"] == 1
        assert SEC <= wrote[0]["ts"] - t0 <= 1.5 * SEC + 10**7
        starts = [r for r in records(k) if r["event"] == "writeback_start"]
        assert all(r["reason"] == 3 and r["for_kupdate"] for r in starts)  # periodic

    def test_no_periodic_writeback_when_disabled(self) -> None:
        """dirty_writeback_centisecs = 0: the flusher never wakes for old data; the page stays dirty."""
        k = fs_kernel(tunables="dirty_expire_centisecs = 100\ndirty_writeback_centisecs = 0")

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 4096)
            await th.sleep_for(3 * SEC)
            return bool(f.f_mapping.i_pages[0].flags & (1 << PG_dirty))

        assert run(k, t)[0]

    def test_wakeup_flusher_threads_writes_everything(self) -> None:
        """wakeup_flusher_threads (reclaim's hook) writes all dirty pages now, whatever their age."""
        k = fs_kernel(events="writeback:writeback_start")

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 16 * 4096)
            wakeup_flusher_threads(k)
            await th.sleep_for(SEC // 10)
            return sum(p.vm_stat[NR_FILE_DIRTY] for p in k.page_alloc.nodes), disk(k).writes

        dirty, writes = run(k, t)[0]
        assert dirty == 0 and writes == 1
        assert records(k)[0]["reason"] == 1  # vmscan

    def test_sync_writes_every_file(self) -> None:
        """sync() writes and waits for the dirty pages of every file."""
        k = fs_kernel(files='[[machine.file]]\npath = "/a"\nsize = "64KiB"\n[[machine.file]]\npath = "/b"\nsize = "64KiB"\n')

        async def t(th):
            for path in ("/a", "/b"):
                f = await vfs_open(th, path)
                await vfs_write(th, f, 0, 65536)
            await ksys_sync(th)
            m = dict(vmstat_items(k))
            return m["nr_dirty"], m["nr_writeback"], m["nr_written"]

        assert run(k, t)[0] == (0, 0, 32)

    def test_reclaim_writeback_of_one_page(self) -> None:
        """writeback_single_page(for_reclaim): async write, page unlocked, then clean and rotated to the inactive tail."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_read(th, f, 0, 8 * 4096)
            await vfs_write(th, f, 4096, 4096, token=8)
            await lru_add_drain(th)
            page = f.f_mapping.i_pages[1]
            page._refcount += 1
            await folio_lock(th, page)
            r = await writeback_single_page(th, page, for_reclaim=True)
            during = bool(page.flags & (1 << PG_writeback)), bool(page.flags & (1 << PG_reclaim)), \
                bool(page.flags & (1 << PG_locked))
            await th.sleep_for(SEC // 100)
            page._refcount -= 1
            lru = page.zone.zone_pgdat.lruvec.lists[page.lru]
            return r, during, page.flags & ((1 << PG_dirty) | (1 << PG_writeback)), next(iter(lru)) is page, page.lru

        r, during, flags, at_tail, lru = run(k, t)[0]
        assert r is Pageout.SUCCESS and during == (True, True, False)
        assert flags == 0 and at_tail and lru == LRU_INACTIVE_FILE
        assert k.vmstat["pgrotated"] == 1
        assert dict(vmstat_items(k))["nr_vmscan_write"] == 1


class TestInvariants:
    def test_counts_check_catches_a_lost_dirty_page(self) -> None:
        """check_writeback_counts compares NR_FILE_DIRTY with the tagged pages and names the mismatch."""
        k = fs_kernel()

        async def t(th):
            f = await vfs_open(th, "/data")
            await vfs_write(th, f, 0, 4096)

        run(k, t)
        assert check_writeback_counts(k) is None
        k.page_alloc.nodes[0].vm_stat[NR_FILE_DIRTY] += 1
        assert "NR_FILE_DIRTY 2 but 1" in check_writeback_counts(k)

    def test_same_seed_same_log(self) -> None:
        """Two runs of the throttled writer produce identical event logs."""
        a = [(r["ts"], r["event"], r["pid"]) for r in _throttle_run()[1]]
        b = [(r["ts"], r["event"], r["pid"]) for r in _throttle_run()[1]]
        assert a == b

