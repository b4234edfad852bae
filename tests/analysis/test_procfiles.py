"""Readers of kernel /proc text and the lock_stat table (smpmem/analysis/_procfiles.py)."""

from __future__ import annotations

from rundirs import REF

from smpmem.analysis._procfiles import (
    LOCK_STAT_WIDTH,
    LockRow,
    parse_lock_stat,
    parse_meminfo,
    parse_vmstat,
    parse_zoneinfo,
    render_lock_stat,
)


class TestZoneinfo:
    def test_live_reference(self) -> None:
        """The live 6.18 zoneinfo parses into five zones with their watermarks, stats and pagesets."""
        zones = parse_zoneinfo((REF / "live-zoneinfo.txt").read_text())
        assert [(z["node"], z["zone"]) for z in zones] == [(0, "DMA"), (0, "DMA32"), (0, "Normal"),
                                                            (0, "Movable"), (0, "Device")]
        dma32 = zones[1]
        assert (dma32["free"], dma32["min"], dma32["low"], dma32["high"], dma32["managed"]) == (
            772915, 14385, 17981, 21577, 772915)
        assert dma32["protection"] == [0, 0, 512, 512, 512]
        assert dma32["stats"]["nr_free_pages"] == 772915
        assert dma32["pagesets"][1] == {"cpu": 1, "count": 0, "high": 8990, "batch": 63, "high_min": 8990,
                                        "high_max": 48307, "vm_stats_threshold": 24}
        assert dma32["start_pfn"] == 4096 and dma32["node_unreclaimable"] == 0
        assert zones[0]["node_stats"]["nr_inactive_file"] == 327 and zones[1]["node_stats"] == {}

    def test_meminfo_and_vmstat(self) -> None:
        """meminfo in kB (HugePages_* as counts) and vmstat name/value pairs."""
        m = parse_meminfo((REF / "live-meminfo.txt").read_text())
        assert (m["MemTotal"], m["Hugepagesize"], m["HugePages_Total"]) == (24684084, 2048, 0)
        v = parse_vmstat((REF / "live-vmstat.txt").read_text())
        assert v["nr_free_pages"] == 880257 and len(v) == 192


class TestLockStat:
    def test_layout(self) -> None:
        """Header and rows in seq_header/seq_stats widths; times in µs rounded as snprint_time does."""
        text = render_lock_stat([LockRow("&zone->lock", 3, 4, 1_004, 2_995, 10_000, 5, 9, 100, 900, 4_321)])
        lines = text.splitlines()
        assert lines[0] == "lock_stat version 0.4"
        assert lines[1] == "-" * LOCK_STAT_WIDTH and lines[3] == "-" * LOCK_STAT_WIDTH and lines[4] == ""
        assert len(lines[2]) == 40 + 12 * 15 and lines[2].startswith(" " * 30 + "class name")
        row = lines[5]
        assert row[:41] == " " * 29 + "&zone->lock:"
        assert row[41:].split() == ["3", "4", "1.00", "3.00", "10.00", "2.50", "5", "9", "0.10", "0.90", "4.32",
                                    "0.48"]

    def test_round_trip_and_rw(self) -> None:
        """parse_lock_stat reads rows back (10 ns resolution), sums -R/-W rows and skips contention points."""
        text = render_lock_stat([LockRow("a", 1, 2, 10, 20, 30, 3, 4, 40, 50, 60)])
        text += "                               ---------\n" \
                "                                       a              2          [<00000000d830b83c>] x+0x1/0x2\n"
        assert parse_lock_stat(text) == [LockRow("a", 1, 2, 10, 20, 30, 3, 4, 40, 50, 60)]
        rw = (" " * 24 + "&mm->mmap_lock-W:" + "%14d %14d %14s %14s %14s %14s %14d %14d %14s %14s %14s %14s\n" % (
            1, 2, "1.00", "2.00", "3.00", "1.50", 3, 4, "0.10", "0.20", "0.30", "0.07")
            + " " * 24 + "&mm->mmap_lock-R:" + "%14d %14d %14s %14s %14s %14s %14d %14d %14s %14s %14s %14s\n" % (
            0, 1, "0.50", "0.50", "0.50", "0.50", 0, 6, "0.05", "0.40", "0.60", "0.10"))
        (row,) = parse_lock_stat(rw)
        assert row == LockRow("&mm->mmap_lock", 1, 3, 500, 2000, 3500, 3, 10, 50, 400, 900)

    def test_unknown_figures_print_dash(self) -> None:
        """A figure the run did not record prints as '-'."""
        row = render_lock_stat([LockRow("x", contentions=1, wait_total=1000)]).splitlines()[5]
        assert row[41:].split() == ["-", "1", "-", "-", "1.00", "1.00", "-", "-", "-", "-", "-", "-"]
