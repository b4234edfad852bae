"""The mm tracepoint declarations (smpmem/trace/events/{kmem,vmscan,...}.py) render as the kernel does."""

from __future__ import annotations

import pytest
from mm_examples import EXAMPLES, MM_SUBSYSTEMS, addr_for_hash, expected_body

from smpmem.trace import gfp
from smpmem.trace.catalog import all_events, lookup
from smpmem.trace.fmt import hash_ptr

MM_EVENTS = [e for e in all_events() if e.subsystem in MM_SUBSYSTEMS]


class TestDeclarations:
    def test_every_event_has_an_example(self) -> None:
        """Each declared mm event has an example below, and each example names a declared event."""
        assert {e.name for e in MM_EVENTS} == set(EXAMPLES)

    def test_formats_listed_events_are_declared(self) -> None:
        """Every tracepoint FORMATS.md §2 lists for these subsystems is in the catalog."""
        listed = {
            "kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free", "mm_page_free",
            "mm_page_free_batched", "mm_page_alloc", "mm_page_alloc_zone_locked",
            "mm_page_pcpu_drain", "mm_page_alloc_extfrag", "rss_stat",
            "mm_vmscan_kswapd_sleep", "mm_vmscan_kswapd_wake", "mm_vmscan_wakeup_kswapd",
            "mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end",
            "mm_shrink_slab_start", "mm_shrink_slab_end", "mm_vmscan_lru_isolate",
            "mm_vmscan_write_folio", "mm_vmscan_lru_shrink_inactive",
            "mm_vmscan_lru_shrink_active", "mm_vmscan_node_reclaim_begin",
            "mm_vmscan_node_reclaim_end", "writeback_dirty_folio", "folio_wait_writeback",
            "global_dirty_state", "balance_dirty_pages", "writeback_start", "writeback_written",
            "wbc_writepage", "mm_filemap_add_to_page_cache", "mm_filemap_delete_from_page_cache",
            "tlb_flush", "page_fault_user", "page_fault_kernel", "oom_score_adj_update",
            "mark_victim", "reclaim_retry_zone", "vm_unmapped_area", "alloc_vmap_area",
            "purge_vmap_area_lazy", "free_vmap_area_noflush",
        }
        assert listed <= {e.name for e in MM_EVENTS}

    @pytest.mark.parametrize("event", sorted(EXAMPLES))
    def test_example_has_exactly_the_fields(self, event: str) -> None:
        """An example record supplies exactly the event's declared fields, no more, no fewer."""
        fields, _ = EXAMPLES[event]
        assert set(fields) == set(lookup(event).fields)

    @pytest.mark.parametrize("event", sorted(EXAMPLES))
    def test_fmt_is_a_c_string(self, event: str) -> None:
        """Each declaration carries the kernel's TP_printk format as quoted C string literals."""
        fmt = lookup(event).fmt
        assert fmt is not None and fmt.startswith('"') and fmt.endswith('"')


class TestRendering:
    @pytest.mark.parametrize("event", sorted(EXAMPLES))
    def test_renders_formats_example(self, event: str) -> None:
        """The example record renders the FORMATS.md example body exactly."""
        fields, body = EXAMPLES[event]
        assert lookup(event).body(fields) == expected_body(body, fields)

    def test_failed_page_alloc_prints_null_page(self) -> None:
        """A failed allocation (pfn -1UL) prints a NULL page and pfn=0x0, as kmem.h does."""
        for pfn in (-1, (1 << 64) - 1):
            body = lookup("mm_page_alloc").body(
                {"pfn": pfn, "order": 3, "gfp_flags": gfp.GFP_KERNEL, "migratetype": 0})
            assert body == "page=0000000000000000 pfn=0x0 order=3 migratetype=0 gfp_flags=GFP_KERNEL"

    def test_kmalloc_accounted_follows_gfp(self) -> None:
        """kmalloc's accounted is computed from __GFP_ACCOUNT at print time."""
        rec = {"call_site": "seq_read+0x1/0x2", "ptr": 0x1000, "bytes_req": 8, "bytes_alloc": 8,
               "gfp_flags": gfp.GFP_KERNEL, "node": 0}
        assert lookup("kmalloc").body(rec).endswith("gfp_flags=GFP_KERNEL node=0 accounted=false")

    def test_call_site_without_symbol(self) -> None:
        """An integer %pS/%ps value prints as 0x%lx, as the kernel does when no symbol matches."""
        body = lookup("kfree").body({"call_site": 0xFFFFFFFF81234567, "ptr": 0})
        assert body == "call_site=0xffffffff81234567 ptr=0000000000000000"

    def test_full_tlb_flush(self) -> None:
        """TLB_FLUSH_ALL (-1UL) prints pages:-1 whether the record holds -1 or 2**64-1."""
        for pages in (-1, (1 << 64) - 1):
            assert (lookup("tlb_flush").body({"reason": 1, "pages": pages})
                    == "pages:-1 reason:remote shootdown (1)")

    def test_unmapped_area_error(self) -> None:
        """An error address prints addr=0x0 and the errno in err (IS_ERR_VALUE)."""
        fields = dict(EXAMPLES["vm_unmapped_area"][0], addr=-12)
        assert lookup("vm_unmapped_area").body(fields).startswith("addr=0x0 err=-12 total_vm=")

    def test_extfrag_fragmenting(self) -> None:
        """fragmenting is 1 exactly when fallback_order < pageblock_order (9 on x86-64)."""
        fields = dict(EXAMPLES["mm_page_alloc_extfrag"][0], fallback_order=3)
        assert "pageblock_order=9 " in lookup("mm_page_alloc_extfrag").body(fields)
        assert " fragmenting=1 " in lookup("mm_page_alloc_extfrag").body(fields)

    def test_addr_for_hash_helper(self) -> None:
        """The test helper really builds an address with the wanted %p hash."""
        assert hash_ptr(addr_for_hash("00000000a3f1e2d4")) == "00000000a3f1e2d4"
