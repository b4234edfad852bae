"""Page frames: models ``struct page`` (include/linux/mm_types.h, page-flags.h) and ``mem_map``.

Modelled: the state of a frame that is in use — flags (the ``PG_*`` bits of
include/linux/page-flags.h, in the kernel's bit order), ``_refcount``,
``_mapcount``, ``mapping``, ``index``, ``private``, LRU membership, the order
of the block it heads, the zone it belongs to, and a content ``token``
written by its owner (DESIGN.md §6). ``pfn_to_page`` / ``page_to_pfn`` go
through :class:`MemMap`.

Simplified: a free frame has no ``struct page`` object at all. Free memory is
described per buddy block by its zone (``Zone.buddy``, the analogue of
``PageBuddy`` + ``page_private`` = order), so a free frame costs no Python
memory. A :class:`Page` exists from the moment the allocator hands the frame
out (``prep_new_page``) until it comes back (``free_pages_prepare``). A block
of order > 0 gets one object for its first frame; tail pages are created on
demand by :meth:`MemMap.pfn_to_page`, with ``lru`` pointing at the head (the
kernel overlays ``compound_head`` on ``lru.next`` the same way). Section,
node and zone bits are not packed into ``flags``: the zone is a field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, final

if TYPE_CHECKING:
    from .zone import Zone

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
STRUCT_PAGE_SIZE = 64  # sizeof(struct page) on x86_64: what mem_map costs per frame

# --- enum pageflags (include/linux/page-flags.h, 6.12, x86_64 Debian config) ---
PG_locked = 0
PG_writeback = 1
PG_referenced = 2
PG_uptodate = 3
PG_dirty = 4
PG_lru = 5
PG_head = 6
PG_waiters = 7
PG_active = 8
PG_workingset = 9
PG_owner_priv_1 = 10
PG_owner_2 = 11
PG_arch_1 = 12
PG_reserved = 13
PG_private = 14
PG_private_2 = 15
PG_reclaim = 16
PG_swapbacked = 17
PG_unevictable = 18
PG_mlocked = 19
PG_hwpoison = 20
__NR_PAGEFLAGS = 21
PG_readahead = PG_reclaim
PG_swapcache = PG_owner_priv_1
PG_anon_exclusive = PG_owner_2

PAGEFLAGS_MASK = (1 << __NR_PAGEFLAGS) - 1
# Flags a page must not have when it is freed (PAGE_FLAGS_CHECK_AT_FREE).
PAGE_FLAGS_CHECK_AT_FREE = (
    1 << PG_lru | 1 << PG_locked | 1 << PG_private | 1 << PG_private_2
    | 1 << PG_writeback | 1 << PG_reserved | 1 << PG_active | 1 << PG_unevictable | 1 << PG_mlocked
)
# Flags cleared when a page is prepared for freeing or allocation (PAGE_FLAGS_CHECK_AT_PREP).
PAGE_FLAGS_CHECK_AT_PREP = PAGEFLAGS_MASK & ~(1 << PG_hwpoison)

PAGE_FLAG_NAMES: tuple[tuple[int, str], ...] = tuple(
    (1 << bit, name) for bit, name in enumerate((
        "locked", "writeback", "referenced", "uptodate", "dirty", "lru", "head", "waiters",
        "active", "workingset", "owner_priv_1", "owner_2", "arch_1", "reserved", "private",
        "private_2", "reclaim", "swapbacked", "unevictable", "mlocked", "hwpoison")))


def show_page_flags(flags: int) -> str:
    """``%pGp``-style rendering of the PG bits: ``lru|active`` (``0x0`` when none)."""
    names = [n for bit, n in PAGE_FLAG_NAMES if flags & bit]
    return "|".join(names) if names else "0x0"


@final
class Page:
    """The ``struct page`` of one frame that is in use.

    Fields and who may write them once the allocator has handed the page out:

    - ``pfn``: fixed.
    - ``flags``: ``PG_*`` bits; atomic bitops in the kernel (any holder).
    - ``_refcount``: references; the allocator sets 1, ``put_page`` drops.
    - ``_mapcount``: page-table mappings minus one (-1: unmapped); rmap.
    - ``mapping``, ``index``: owner (anon_vma or address_space) and offset; owner.
    - ``private``: owner-private word (buffer heads, swap entry); owner.
    - ``lru``: LRU list membership, owned by ``lruvec->lru_lock`` holders;
      on a tail page, the head page (``compound_head``).
    - ``order``: order of the block this page heads (0 for a tail page).
    - ``token``: content written by the owner (DESIGN.md §6); copied on COW,
      swapped out and in with the page.
    - ``zone``: the zone the frame belongs to (``page_zone``); fixed.
    """

    __slots__ = ("pfn", "flags", "_refcount", "_mapcount", "mapping", "index", "private",
                 "lru", "order", "token", "zone")

    def __init__(self, pfn: int, zone: "Zone", order: int = 0) -> None:
        self.pfn = pfn
        self.flags = 0
        self._refcount = 0
        self._mapcount = -1
        self.mapping: Any = None
        self.index = 0
        self.private: Any = 0
        self.lru: Any = None
        self.order = order
        self.token: Any = None
        self.zone = zone

    def __repr__(self) -> str:
        return (f"<Page pfn=0x{self.pfn:x} order={self.order} refcount={self._refcount} "
                f"mapcount={self._mapcount + 1} flags={show_page_flags(self.flags)}>")


def page_to_pfn(page: Page) -> int:
    return page.pfn


def page_zone(page: Page) -> "Zone":
    return page.zone


def page_to_nid(page: Page) -> int:
    return page.zone.node


def PageTail(page: Page) -> bool:
    """A tail page of a higher-order block: its ``lru`` word holds the head (``compound_head``)."""
    return type(page.lru) is Page


def compound_head(page: Page) -> Page:
    """The head page of the block ``page`` belongs to (itself for a head or order-0 page)."""
    lru = page.lru
    return lru if type(lru) is Page else page


def PageHead(page: Page) -> bool:
    return bool(page.flags & (1 << PG_head))


def PageCompound(page: Page) -> bool:
    return PageHead(page) or PageTail(page)


def page_count(page: Page) -> int:
    return compound_head(page)._refcount


def page_mapcount(page: Page) -> int:
    return page._mapcount + 1


def get_page(page: Page) -> None:
    """Take a reference (``get_page``): the page must already have one."""
    head = compound_head(page)
    assert head._refcount > 0, f"get_page on a free page pfn 0x{page.pfn:x}"
    head._refcount += 1


def page_bad_reason(page: Page, check_flags: int) -> str | None:
    """Why ``page`` is not in the state expected at free or at allocation (``page_bad_reason``).

    The later test wins, as in the kernel (the reason printed is the last one found).
    """
    reason = None
    if page._mapcount != -1:
        reason = "nonzero mapcount"
    if page.mapping is not None:
        reason = "non-NULL mapping"
    if page._refcount != 0:
        reason = "nonzero _refcount"
    if page.flags & check_flags:
        reason = ("PAGE_FLAGS_CHECK_AT_PREP flag(s) set" if check_flags == PAGE_FLAGS_CHECK_AT_PREP
                  else "PAGE_FLAGS_CHECK_AT_FREE flag(s) set")
    return reason


def bad_free_page_reason(page: Page) -> str | None:
    """``free_page_is_bad``: the reason a page handed back to the allocator is corrupt, or None."""
    return page_bad_reason(page, PAGE_FLAGS_CHECK_AT_FREE)


class MemMap:
    """``mem_map``: ``pfn_to_page`` for the frames that are in use.

    Holds a :class:`Page` per allocated block head (and per tail page asked
    for); a free frame has no entry. ``lookup_head`` finds the allocated block
    containing a pfn by trying each alignment, as ``find_buddy_page_pfn``
    walks orders.
    """

    __slots__ = ("pages", "tails", "max_order")

    def __init__(self, max_order: int) -> None:
        self.pages: dict[int, Page] = {}  # pfn -> Page of every frame in use that has an object
        self.tails: dict[int, list[int]] = {}  # head pfn -> pfns of its tail objects (rare)
        self.max_order = max_order

    def __len__(self) -> int:
        return len(self.pages)

    def __iter__(self) -> Iterator[Page]:
        return iter(self.pages.values())

    def get(self, pfn: int) -> Page | None:
        """The page object of ``pfn`` if one exists (no tail creation)."""
        return self.pages.get(pfn)

    def lookup_head(self, pfn: int) -> Page | None:
        """The allocated head page whose block contains ``pfn``, or None (the frame is not in use)."""
        pages = self.pages
        page = pages.get(pfn)
        if page is not None:
            return compound_head(page)
        for k in range(1, self.max_order + 1):
            head = pages.get(pfn & ~((1 << k) - 1))
            if head is not None and type(head.lru) is not Page and head.pfn + (1 << head.order) > pfn:
                return head
        return None

    def pfn_to_page(self, pfn: int) -> Page:
        """``pfn_to_page`` for a frame in use; a tail page is created on first use.

        Raises ``LookupError`` for a frame that is free or reserved (the model
        keeps no ``struct page`` for those).
        """
        page = self.pages.get(pfn)
        if page is not None:
            return page
        head = self.lookup_head(pfn)
        if head is None:
            raise LookupError(f"pfn 0x{pfn:x} is not allocated: the model keeps no struct page for free frames")
        tail = Page(pfn, head.zone, 0)
        tail.lru = head  # compound_head
        self.pages[pfn] = tail
        self.tails.setdefault(head.pfn, []).append(pfn)
        return tail

    def drop_block(self, head: Page, order: int) -> None:
        """Forget the head and any tail objects of a block being freed."""
        pages = self.pages
        del pages[head.pfn]
        if self.tails:
            for p in self.tails.pop(head.pfn, ()):
                del pages[p]


__all__ = [
    "MemMap", "Page", "PAGE_SHIFT", "PAGE_SIZE", "STRUCT_PAGE_SIZE", "bad_free_page_reason",
    "compound_head", "get_page", "page_bad_reason", "page_count", "page_mapcount", "page_to_nid",
    "page_to_pfn", "page_zone", "show_page_flags", "PageCompound", "PageHead", "PageTail",
]
