"""Zones (smpmem/mm/zone.py): watermarks, lowmem_reserve, pcp sizes and thresholds against a real zoneinfo."""

from __future__ import annotations

from smpmem.mm.zone import (
    PglistData,
    Zone,
    ZoneTypes,
    calculate_min_free_kbytes,
    build_zonelists,
    calculate_normal_threshold,
    calculate_totalreserve_pages,
    order_to_pindex,
    pindex_to_order,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
    zone_batchsize,
    zone_set_pageset_high_and_batch,
)
from smpmem.trace.gfp import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE

# The zones of shared/reference/live-zoneinfo.txt: managed pages per zone, 2 CPUs, min_free_kbytes 67584.
LIVE_MANAGED = {"DMA": 3840, "DMA32": 772915, "Normal": 131072, "Movable": 0, "Device": 0}


def live_node() -> PglistData:
    types = ZoneTypes("x86_64")
    p = PglistData(0, [0, 1])
    for idx, name in enumerate(types.names):
        z = Zone(None, p, idx, name, 0, 1 if LIVE_MANAGED[name] else 0, 2,
                 highmem=types.is_highmem_idx(idx), movable=idx == types.ZONE_MOVABLE)
        z.managed_pages = LIVE_MANAGED[name]
        p.node_zones.append(z)
    return p


class TestAgainstLiveZoneinfo:
    def test_watermarks(self) -> None:
        """__setup_per_zone_wmarks reproduces the live min/low/high/promo of every zone."""
        p = live_node()
        setup_per_zone_wmarks([p], 67584, 10)
        got = {z.name: z._watermark for z in p.node_zones}
        assert got == {"DMA": [71, 88, 105, 122], "DMA32": [14385, 17981, 21577, 25173],
                       "Normal": [2439, 3048, 3657, 4266], "Movable": [32, 32, 32, 32], "Device": [0, 0, 0, 0]}

    def test_lowmem_reserve(self) -> None:
        """setup_per_zone_lowmem_reserve reproduces the live protection: lines."""
        p = live_node()
        setup_per_zone_lowmem_reserve([p], [256, 256, 32, 0, 0])
        assert [z.lowmem_reserve for z in p.node_zones] == [
            [0, 3019, 3531, 3531, 3531], [0, 0, 512, 512, 512], [0] * 5, [0] * 5, [0] * 5]

    def test_pcp_batch_high_and_threshold(self) -> None:
        """zone_batchsize, zone_highsize and calculate_normal_threshold reproduce the live pagesets."""
        p = live_node()
        setup_per_zone_wmarks([p], 67584, 10)
        got = {}
        for z in p.node_zones[:3]:
            zone_set_pageset_high_and_batch(z, 2)
            got[z.name] = (z.pageset_batch, z.pageset_high_min, z.pageset_high_max, calculate_normal_threshold(z, 2))
        assert got == {"DMA": (1, 44, 240, 4), "DMA32": (63, 8990, 48307, 24), "Normal": (31, 1524, 8192, 16)}

    def test_totalreserve_pages(self) -> None:
        """calculate_totalreserve_pages: per zone its largest lowmem_reserve plus high, capped at managed."""
        p = live_node()
        setup_per_zone_wmarks([p], 67584, 10)
        setup_per_zone_lowmem_reserve([p], [256, 256, 32, 0, 0])
        assert calculate_totalreserve_pages([p]) == (3531 + 105) + (512 + 21577) + 3657


class TestFormulas:
    def test_min_free_kbytes_from_lowmem(self) -> None:
        """calculate_min_free_kbytes: sqrt(lowmem KiB × 16), e.g. 4096 KiB for 1 GiB of lowmem."""
        types = ZoneTypes("x86_64")
        p = PglistData(0, [0])
        for idx, name in enumerate(types.names):
            z = Zone(None, p, idx, name, 0, 262144 if name == "DMA32" else 0, 1)
            z.managed_pages = z.spanned_pages
            p.node_zones.append(z)
        build_zonelists([p])
        assert calculate_min_free_kbytes([p], types) == 4096

    def test_batchsize_rounds_to_power_of_two_minus_one(self) -> None:
        """zone_batchsize is 2^n - 1, 63 for zones of 1 GiB or more, at least 1."""
        for managed, batch in [(0, 0), (1024, 0), (16384, 3), (262144, 63), (1 << 24, 63)]:
            z = Zone(None, PglistData(0, [0]), 0, "DMA", 0, 0, 1)
            z.managed_pages = managed
            assert zone_batchsize(z) == batch, managed

    def test_pcp_list_index(self) -> None:
        """order_to_pindex: three lists per order up to 3, then the two THP lists."""
        assert order_to_pindex(MIGRATE_UNMOVABLE, 0) == 0
        assert order_to_pindex(MIGRATE_MOVABLE, 3) == 10
        assert order_to_pindex(MIGRATE_MOVABLE, 9) == 13 and order_to_pindex(MIGRATE_UNMOVABLE, 9) == 12
        assert [pindex_to_order(i) for i in range(14)] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [9, 9]

    def test_layout_zone_types(self) -> None:
        """x86_64 has DMA, DMA32, Normal, Movable, Device; i386 DMA, Normal, HighMem, Movable."""
        assert ZoneTypes("x86_64").names == ("DMA", "DMA32", "Normal", "Movable", "Device")
        t = ZoneTypes("i386")
        assert t.names == ("DMA", "Normal", "HighMem", "Movable") and t.ZONE_DMA32 is None
