"""show_gfp_flags and the other flag tables (smpmem/trace/gfp.py, include/trace/events/mmflags.h)."""

from __future__ import annotations

import pytest

from smpmem.trace import gfp


class TestComposites:
    @pytest.mark.parametrize(("value", "expected"), [
        (gfp.GFP_KERNEL, 0xCC0), (gfp.GFP_KERNEL_ACCOUNT, 0x400CC0), (gfp.GFP_NOFS, 0xC40),
        (gfp.GFP_NOIO, 0xC00), (gfp.GFP_ATOMIC, 0x820), (gfp.GFP_NOWAIT, 0x2800),
        (gfp.GFP_USER, 0x100CC0), (gfp.GFP_HIGHUSER, 0x100CC2),
        (gfp.GFP_HIGHUSER_MOVABLE, 0x100CCA), (gfp.GFP_TRANSHUGE_LIGHT, 0x1C20CA),
        (gfp.GFP_TRANSHUGE, 0x1C24CA),
    ])
    def test_x86_values(self, value: int, expected: int) -> None:
        """Each composite has the x86-64 value listed in FORMATS.md §1."""
        assert value == expected


class TestShowGfpFlags:
    def test_kernel_zero(self) -> None:
        """0xdc0 prints as the composite first, then the leftover bit."""
        assert gfp.show_gfp_flags(0xDC0) == "GFP_KERNEL|__GFP_ZERO"

    def test_zero_is_none(self) -> None:
        """A zero mask prints ``none``, not an empty string."""
        assert gfp.show_gfp_flags(0) == "none"

    def test_highuser_movable_zero(self) -> None:
        """GFP_HIGHUSER_MOVABLE wins over GFP_HIGHUSER and GFP_USER, __GFP_ZERO follows."""
        assert (gfp.show_gfp_flags(gfp.GFP_HIGHUSER_MOVABLE | gfp.GFP_BIT.ZERO)
                == "GFP_HIGHUSER_MOVABLE|__GFP_ZERO")

    def test_transhuge_before_highuser(self) -> None:
        """GFP_TRANSHUGE is tried first, so a THP fault mask prints as one name."""
        assert gfp.show_gfp_flags(gfp.GFP_TRANSHUGE) == "GFP_TRANSHUGE"

    def test_unnamed_bit_is_hex(self) -> None:
        """A bit with no table entry (NO_OBJ_EXT) is printed as 0x%lx after the names."""
        assert gfp.show_gfp_flags(gfp.GFP_KERNEL | gfp.GFP_BIT.NO_OBJ_EXT) == "GFP_KERNEL|0x1000000"

    def test_reclaim_bits_alone(self) -> None:
        """Both reclaim bits without IO/FS print as GFP_NOIO, the first entry that fits."""
        assert gfp.show_gfp_flags(gfp.GFP_BIT.RECLAIM) == "GFP_NOIO"

    @pytest.mark.parametrize("value", [0, 0xDC0, 0x100CCA, 0x1C24CA, 0x2800, 0x820 | 0x1000000])
    def test_parse_inverts(self, value: int) -> None:
        """parse_gfp_flags gives back the mask show_gfp_flags printed."""
        assert gfp.parse_gfp_flags(gfp.show_gfp_flags(value)) == value


class TestOtherTables:
    def test_reclaim_flags(self) -> None:
        """trace_reclaim_flags prints FILE|ASYNC or ANON|ASYNC, 0 prints RECLAIM_WB_NONE."""
        assert gfp.show_reclaim_flags(gfp.trace_reclaim_flags(True)) == "RECLAIM_WB_FILE|RECLAIM_WB_ASYNC"
        assert gfp.show_reclaim_flags(gfp.trace_reclaim_flags(False)) == "RECLAIM_WB_ANON|RECLAIM_WB_ASYNC"
        assert gfp.show_reclaim_flags(0) == "RECLAIM_WB_NONE"

    def test_lru_and_zone_names(self) -> None:
        """LRU and zone names are the kernel's strings at the kernel's indices."""
        assert gfp.symbolic(gfp.LRU_INACTIVE_FILE, gfp.LRU_NAMES) == "inactive_file"
        assert gfp.symbolic(gfp.ZONE_NORMAL, gfp.ZONE_TYPE) == "Normal"
        assert gfp.symbolic(9, gfp.ZONE_TYPE) == "0x9"

    def test_tlb_reasons(self) -> None:
        """The TLB flush reasons are numbered as enum tlb_flush_reason."""
        assert [name for _, name in gfp.TLB_FLUSH_REASON] == [
            "flush on task switch", "remote shootdown", "local shootdown",
            "local mm shootdown", "remote ipi send"]

    def test_page_ptr_is_vmemmap_hash(self) -> None:
        """page_ptr hashes the struct page address in vmemmap, 64 bytes per pfn."""
        from smpmem.trace.fmt import hash_ptr
        assert gfp.page_ptr(0x1A2B3) == hash_ptr(0xFFFFEA0000000000 + 0x1A2B3 * 64)
        assert len(gfp.page_ptr(0)) == 16 and gfp.page_ptr(0) != "0" * 16
