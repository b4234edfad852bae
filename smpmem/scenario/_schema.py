"""The scenario schema: typed, frozen pydantic models of a scenario file.

Sections: ``[machine]`` (CPUs, RAM, zones, disks, swap, files), ``[tunables]``
(the kernel's sysctls under their own names and defaults), ``[costs]``
(overrides of :class:`smpmem.sim.costs.CostModel`), ``[run]`` and
``[[process]]`` (each a program of steps or a built-in). Every field carries
its meaning (``description``) and unit (``json_schema_extra``): the reference
``docs/scenarios.md`` is generated from them by :mod:`smpmem.scenario.docs`.

Checks that involve one field live here (types, ranges, units, alignment).
Checks across fields — zones inside RAM, a region touched before it is
mapped, a file that does not exist — live in ``_check.py`` and run after
the structure is valid, from :meth:`Scenario._cross_check`.

Every model forbids unknown keys, is frozen and strict: ``"60"`` is not an
integer and ``1`` is not ``true``. Sizes and times are the exception by
design: they accept strings with units (``_units.py``) and hold ints.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from smpmem.sim.costs import DEFAULT_COSTS, CostModel
from smpmem.trace import catalog

from ._paths import host_file
from ._units import GiB, KiB, MiB, PAGE_SIZE, TiB, Bandwidth, SignedSize, Size, Time, show


INT_MAX = 2**31 - 1  # a sysctl of C type int
I64_MAX = 2**63 - 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def F(default: Any = ..., *, doc: str, unit: str | None = None, type: str | None = None,
      default_doc: str | None = None, **kw: Any) -> Any:
    """A field with its meaning and, for the docs, its unit / type / default in words."""
    extra = {k: v for k, v in (("unit", unit), ("type", type), ("default_doc", default_doc)) if v is not None}
    return Field(default, description=doc, json_schema_extra=extra or None, **kw)


def _no_bool(v: Any) -> Any:
    # Literal[0, 1] alone would take true as 1 (True == 1); the kernel's value is an integer.
    if isinstance(v, bool):
        raise ValueError(f"expected an integer, got the boolean {show(v)} (write 0 or 1)")
    return v


NoBool = BeforeValidator(_no_bool)


def _pattern(regex: str, what: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(v: str) -> str:
        if not compiled.fullmatch(v):
            raise ValueError(f"expected {what}, got {show(v)}")
        return v

    return AfterValidator(check)


# --- [machine] ---------------------------------------------------------------

ZONE_NAMES = ("DMA", "DMA32", "Normal", "HighMem")  # zone_type order: lower zones first

# Physical ranges of each zone type, as arch/x86 sets them up (no PCI hole modelled).
# i386: ZONE_NORMAL ends at 896 MiB, where lowmem ends (the 3G/1G split minus vmalloc space).
ZONE_LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    "x86_64": {"DMA": (0, 16 * MiB), "DMA32": (16 * MiB, 4 * GiB), "Normal": (4 * GiB, 1 << 62)},
    "i386": {"DMA": (0, 16 * MiB), "Normal": (16 * MiB, 896 * MiB), "HighMem": (896 * MiB, 1 << 62)},
}
RAM_MAX = {"x86_64": 1 * TiB, "i386": 64 * GiB}  # i386: PAE's 36-bit physical addresses
CPUS_MAX = {"x86_64": 256, "i386": 64}  # i386: NR_CPUS_RANGE_END with X86_BIGSMP


class Zone(_Model):
    """One zone of an explicit physical layout (``[[machine.zone]]``)."""

    name: Literal["DMA", "DMA32", "Normal", "HighMem"] = F(
        doc="Zone type. x86_64 has DMA, DMA32 and Normal; i386 has DMA, Normal and HighMem.")
    start: Size(align=PAGE_SIZE) = F(doc="First physical address of the zone.", unit="bytes")
    size: Size(above=0, align=PAGE_SIZE) = F(doc="Length of the zone (its spanned pages × 4 KiB).", unit="bytes")
    node: int = F(0, ge=0, le=63, doc="NUMA node the zone belongs to; it must lie inside that node's share of RAM.")

    @property
    def end(self) -> int:
        return self.start + self.size


DISK_PRESETS: dict[str, dict[str, Any]] = {
    # A SATA-class SSD: ~100 us per 4 KiB request, 500 MiB/s, NCQ depth 32.
    "ssd": {"latency": 100_000, "bandwidth": 500 * MiB, "queue_depth": 32},
    # A 7200 rpm disk: ~8 ms seek + rotation, 150 MiB/s streaming, one request at a time (one head).
    "hdd": {"latency": 8_000_000, "bandwidth": 150 * MiB, "queue_depth": 1},
}


class Disk(_Model):
    """A block device (``[[machine.disk]]``) holding swap areas and files."""

    name: Annotated[str, _pattern(r"[a-z][a-z0-9]{0,31}", 'a device name such as "sda", "vdb" or "nvme0n1" '
                                                           "(lower-case letters and digits, starting with a letter)")] = F(
        doc='Device name as in /proc/diskstats: "sda", "nvme0n1".')
    preset: Literal["ssd", "hdd"] = F("ssd", doc="Device class the defaults of latency, bandwidth and queue_depth come from.")
    latency: Time() = F(DISK_PRESETS["ssd"]["latency"], unit="ns", default_doc="from preset: ssd 100us, hdd 8ms",
                        doc="Service time of one request before its data moves (seek, flash access).")
    bandwidth: Bandwidth() = F(DISK_PRESETS["ssd"]["bandwidth"], unit="bytes/s",
                               default_doc="from preset: ssd 500MiB, hdd 150MiB",
                               doc='Transfer rate. A size meaning per second: "500MiB" or "500MiB/s".')
    queue_depth: int = F(DISK_PRESETS["ssd"]["queue_depth"], ge=1, le=65535, unit="requests",
                         default_doc="from preset: ssd 32, hdd 1",
                         doc="Requests the device serves at once; more wait in the queue.")
    size: Optional[Size(above=0, align=512)] = F(None, unit="bytes", default_doc="unset: large enough for its swap and files",
                                                 doc="Capacity; the swap areas and files on the disk must fit in it.")
    error_sectors: list[Annotated[int, Field(ge=0, le=I64_MAX)]] = F(
        [], unit="sectors", doc="512-byte sectors whose reads and writes fail with an I/O error (error injection).")
    error_rate: float = F(0.0, ge=0.0, le=1.0, unit="probability",
                          doc="Chance that any one request fails with an I/O error (error injection), drawn from the run's seed.")

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            preset = data.get("preset", "ssd")
            if isinstance(preset, str) and preset in DISK_PRESETS:
                data = {**DISK_PRESETS[preset], **data}
        return data


class Swap(_Model):
    """A swap area (``[[machine.swap]]``), enabled at boot as by ``swapon``."""

    name: Annotated[str, _pattern(r"\S{1,64}", "a swap area name without spaces, such as \"/dev/sda2\" or \"/swapfile\"")] = F(
        doc='Name shown in /proc/swaps. Under /dev/ (e.g. "/dev/sda2") the area is a partition at the end '
            'of the disk; any other path (e.g. "/swapfile") is a swap file, preallocated on the disk\'s '
            'filesystem after the [[machine.file]] files, its pages mapped to sectors by swap extents.')
    size: Size(min=40 * KiB, align=PAGE_SIZE) = F(
        doc="Size of the area, header page included (mkswap's minimum is 40 KiB).", unit="bytes")
    disk: Optional[str] = F(None, default_doc="the first declared disk",
                            doc="The [[machine.disk]] the area lives on.")
    priority: Optional[Annotated[int, Field(ge=-32768, le=32767)]] = F(
        None, default_doc="automatic: -2, -3, … in declaration order",
        doc="Swap priority: higher is used first, equal priorities are used round-robin. "
            "swapon -p takes 0 … 32767; unset, the kernel assigns -2, -3, … in swapon order.")


class File(_Model):
    """A file that exists at boot (``[[machine.file]]``), not yet in the page cache."""

    path: Annotated[str, _pattern(r"/[^\0]*[^/\0]|/[^/\0]", 'an absolute path such as "/data/db"')] = F(
        doc="Absolute path steps refer to it by.")
    size: Size() = F(doc="Length of the file.", unit="bytes")
    disk: Optional[str] = F(None, default_doc="the first declared disk", doc="The [[machine.disk]] the file lives on.")


class Machine(_Model):
    """The simulated hardware: ``[machine]``."""

    cpus: int = F(4, ge=1, le=256, doc="Number of CPUs (at most 64 for i386, NR_CPUS with X86_BIGSMP).", unit="CPUs")
    layout: Literal["x86_64", "i386"] = F(
        "x86_64", doc="Architecture of the physical memory layout: x86_64 zones DMA (0–16 MiB), DMA32 (16 MiB–4 GiB), "
                     "Normal (above 4 GiB); i386 zones DMA (0–16 MiB), Normal (16–896 MiB, lowmem), HighMem (above 896 MiB).")
    ram: Size(min=1 * MiB, max=1 * TiB, align=PAGE_SIZE) = F(
        1 * GiB, unit="bytes",
        doc="Physical memory, from address 0 with no holes. Up to 1 TiB on x86_64 and 64 GiB on i386 (PAE: "
            "36-bit physical addresses; the kernel's page tables then have three levels).")
    nodes: int = F(1, ge=1, le=64, unit="nodes",
                   doc="NUMA nodes. RAM is split evenly in address order (node 0 first), "
                       "CPUs round-robin; each node has its own kswapd and zones.")
    zone: list[Zone] = F([], type="list of tables", default_doc="the layout's standard zones",
                         doc="An explicit zone layout; unset, the layout's standard zones are cut from each node's RAM. "
                             "Zones are page-aligned, do not overlap, lie inside their node's RAM and follow the zone "
                             "order (DMA below DMA32 below Normal below HighMem); RAM outside every zone is a hole.")
    disk: list[Disk] = F([], type="list of tables", doc="Block devices.")
    swap: list[Swap] = F([], type="list of tables", doc="Swap areas, enabled at boot.")
    file: list[File] = F([], type="list of tables", doc="Files that exist at boot.")

    def node_ranges(self) -> list[tuple[int, int]]:
        """Physical ``[start, end)`` of each node: equal page-aligned shares, the last takes the rest."""
        share = (self.ram // self.nodes) // PAGE_SIZE * PAGE_SIZE
        return [(i * share, self.ram if i == self.nodes - 1 else (i + 1) * share) for i in range(self.nodes)]

    def zone_layout(self) -> list[Zone]:
        """The zones the machine boots with: the explicit ones, or the layout's standard zones per node."""
        if self.zone:
            return sorted(self.zone, key=lambda z: z.start)
        out = []
        for nid, (lo, hi) in enumerate(self.node_ranges()):
            for name, (zlo, zhi) in ZONE_LIMITS[self.layout].items():
                s, e = max(lo, zlo), min(hi, zhi)
                if e > s:
                    out.append(Zone(name=name, start=s, size=e - s, node=nid))
        return out

    def swap_priorities(self) -> list[int]:
        """Each swap area's priority: the given one, or the kernel's automatic -2, -3, … in order."""
        auto = -1
        out = []
        for s in self.swap:
            if s.priority is None:
                auto -= 1
                out.append(auto)
            else:
                out.append(s.priority)
        return out

    def disk_of(self, name: str | None) -> Disk | None:
        """The named disk, or the first disk for ``None``."""
        if name is None:
            return self.disk[0] if self.disk else None
        return next((d for d in self.disk if d.name == name), None)


# --- [tunables] --------------------------------------------------------------

def _ratio(default: int, doc: str, lo: int = 0, hi: int = 100, unit: str = "% of available memory") -> Any:
    return F(default, ge=lo, le=hi, doc=doc, unit=unit)


class Tunables(_Model):
    """The kernel's sysctls (``/proc/sys/vm/*``) and model switches: ``[tunables]``."""

    min_free_kbytes: Optional[Annotated[int, Field(ge=0, le=INT_MAX)]] = F(
        None, unit="KiB", default_doc="computed as the kernel does",
        doc="Memory the VM keeps free: sets each zone's min watermark in proportion to its size (low and high "
            "sit above it). Unset, computed as init_per_zone_wmark_min() does: sqrt(lowmem KiB × 16), "
            "clamped to 128 … 262144.")
    watermark_scale_factor: int = F(
        10, ge=1, le=3000, unit="1/10000 of memory",
        doc="kswapd's aggressiveness: the gap between the min, low and high watermarks as a fraction of the "
            "zone's memory (10 = 0.1%).")
    swappiness: int = F(
        60, ge=0, le=200, unit="relative cost",
        doc="Relative I/O cost of swapping anon pages against reclaiming file pages: 100 = equal; "
            "lower prefers file pages; 0 swaps only when file pages are nearly gone.")
    dirty_ratio: int = _ratio(
        20, "Dirty memory, as a percentage of available (free + reclaimable) memory, above which a writing "
            "process is throttled in balance_dirty_pages(). 0 when dirty_bytes is set (the kernel zeroes one when "
            "the other is written).")
    dirty_background_ratio: int = _ratio(
        10, "Dirty memory, as a percentage of available memory, above which the flusher starts background writeback. "
            "0 when dirty_background_bytes is set.")
    dirty_bytes: Size() = F(
        0, unit="bytes", doc="The dirty limit in bytes instead of dirty_ratio; 0 = unused. At least 2 pages when set.")
    dirty_background_bytes: Size() = F(
        0, unit="bytes", doc="The background writeback threshold in bytes instead of dirty_background_ratio; 0 = unused.")
    dirty_expire_centisecs: int = F(
        3000, ge=0, le=INT_MAX, unit="1/100 s",
        doc="Age at which dirty data is old enough for the flusher's next periodic wakeup to write it out.")
    dirty_writeback_centisecs: int = F(
        500, ge=0, le=INT_MAX, unit="1/100 s",
        doc="Interval of the flusher's periodic wakeups (wb_workfn); 0 disables periodic writeback.")
    vfs_cache_pressure: int = F(
        100, ge=0, le=INT_MAX, unit="% (relative)",
        doc="How hard reclaim shrinks the dentry and inode caches relative to the page cache: 100 = fair share, "
            "below keeps them longer, 0 never reclaims them.")
    lowmem_reserve_ratio: list[Annotated[int, Field(ge=0, le=INT_MAX)]] = F(
        [256, 256, 32, 0], min_length=4, max_length=4, unit="1/n", type="list of 4 integers ≥ 0",
        doc="Per zone type DMA, DMA32, Normal, HighMem: how much of a lower zone is kept from allocations that "
            "could have used a higher zone: (pages of the higher zones) / ratio. 0 = no protection. "
            "Entries for zones the layout lacks are ignored.")
    pcp_batch: Optional[Annotated[int, Field(ge=1, le=INT_MAX)]] = F(
        None, unit="pages", default_doc="zone_batchsize()",
        doc="Pages moved between a per-CPU list and the buddy lists at once (pcp->batch). Unset: zone_batchsize(): "
            "managed pages / 1024 capped at 256, divided by 4, rounded to 2^n − 1 (63 for zones of 1 GiB or more).")
    pcp_high: Optional[Annotated[int, Field(ge=1, le=INT_MAX)]] = F(
        None, unit="pages", default_doc="zone_highsize()",
        doc="Pages a per-CPU list may hold before it frees a batch back (pcp->high). Unset: zone_highsize(): "
            "the zone's low watermark shared among the node's CPUs, at least 4 × batch.")
    tlb_entries: int = F(64, ge=1, le=65536, unit="entries", doc="Entries in each CPU's TLB for 4 KiB pages.")
    split_ptlock: bool = F(
        True, doc="Split page-table locks (CONFIG_SPLIT_PTE_PTLOCKS): a ptl per page-table page; "
                  "false: one mm->page_table_lock for the whole address space.")
    per_vma_lock: bool = F(
        False, doc="Per-VMA locks (CONFIG_PER_VMA_LOCK, Linux 6.4+): page faults lock the VMA instead of taking "
                   "mmap_lock for read.")
    lazy_vfree_threshold_pages: Optional[Annotated[int, Field(ge=0, le=INT_MAX)]] = F(
        None, unit="pages", default_doc="lazy_max_pages()",
        doc="Pages of lazily freed vmalloc areas allowed before a purge with a global TLB flush. Unset: "
            "lazy_max_pages(): 32 MiB of pages × fls(number of CPUs) (24576 pages for 4 CPUs).")
    overcommit_memory: Annotated[Literal[0, 1, 2], NoBool] = F(
        0, doc="0: heuristic overcommit (refuse only obvious overcommits); 1: always overcommit; "
               "2: strict accounting against CommitLimit = swap + overcommit_ratio% of RAM.")
    overcommit_ratio: int = F(50, ge=0, le=INT_MAX, unit="% of RAM", doc="Share of RAM in CommitLimit when overcommit_memory = 2.")
    page_cluster: int = F(
        3, ge=0, le=31, unit="log2 pages",
        doc="Swap readahead: at most 2^page_cluster pages are read from swap in one attempt (3 = 8 pages; VMA "
            "readahead at most 32); 0 disables readahead.")
    vma_ra_enabled: bool = F(
        True, doc="/sys/kernel/mm/swap/vma_ra_enabled: swap readahead reads the swap entries of the PTEs around "
                  "the fault (swap_vma_readahead) instead of the swap slots around the faulting entry "
                  "(swap_cluster_readahead). Either way the window adapts to readahead hits, up to 2^page_cluster "
                  "pages; a swap area on a disk of preset \"hdd\" turns VMA readahead off, as in the kernel.")
    oom_kill_allocating_task: Annotated[Literal[0, 1], NoBool] = F(
        0, doc="0: the OOM killer scans for the task with the highest badness; 1: it kills the task whose "
               "allocation failed.")
    tlb_skip_shootdown: bool = F(
        False, doc="DEBUG, a deliberately broken protocol: flush_tlb_mm_range() changes the page tables and "
                   "flushes the local TLB but sends no shootdown IPIs, so other CPUs keep stale translations of "
                   "unmapped or write-protected pages. With run.debug_vm the TLB check reports it (ModelBug); "
                   "scenarios/broken-shootdown.toml uses it to test `smpmem explore`. Never set it otherwise.")

    @model_validator(mode="before")
    @classmethod
    def _bytes_zero_ratio(cls, data: Any) -> Any:
        # As in the kernel, a nonzero *_bytes reads back the matching *_ratio as 0.
        # Both set explicitly is reported by _check.py.
        if isinstance(data, dict):
            for b, r in (("dirty_bytes", "dirty_ratio"), ("dirty_background_bytes", "dirty_background_ratio")):
                if data.get(b) not in (None, 0, "0") and r not in data:
                    data = {**data, r: 0}
        return data


# --- [costs] -----------------------------------------------------------------

def _cost_docs() -> dict[str, str]:
    """Each cost's meaning: the comment beside its field in sim/costs.py."""
    try:
        src = inspect.getsource(CostModel)
    except (OSError, TypeError):
        return {}
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s*(\w+)\s*:\s*\w+\s*=[^#\n]*#\s*(.*)$", src, re.M)}


def _cost_fields() -> dict[str, Any]:
    docs = _cost_docs()
    out: dict[str, Any] = {}
    for name, value in DEFAULT_COSTS.as_dict().items():
        if isinstance(value, int) and not isinstance(value, bool):
            out[name] = (Time(), F(value, unit="ns", doc=docs.get(name, "")))
        else:
            out[name] = (type(value), F(value, doc=docs.get(name, "")))
    return out


class _CostsBase(_Model):
    def cost_model(self) -> CostModel:
        """The :class:`CostModel` with this table's values."""
        return CostModel(**self.model_dump())

    def overrides(self) -> dict[str, int]:
        """Only the costs the scenario set."""
        return {k: getattr(self, k) for k in sorted(self.model_fields_set)}


Costs = create_model(  # type: ignore[call-overload]
    "Costs", __base__=_CostsBase, __doc__="Overrides of the cost model (``[costs]``): nanoseconds per operation.",
    **_cost_fields(),
)


# --- [run] -------------------------------------------------------------------

def _split_globs(value: Any) -> Any:
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()] or [value]
    return value


def _check_glob(glob: str) -> str:
    try:
        catalog.select([glob])
    except ValueError as e:
        raise ValueError(str(e)) from None
    return glob


class Run(_Model):
    """How long and how the scenario runs: ``[run]``."""

    duration: Time(above=0) = F(100_000_000, unit="ns", doc="Virtual time the run lasts; processes still running are then killed.")
    seed: int = F(1, ge=0, le=2**64 - 1, doc="Seed of every random stream in the run; the same seed gives the same event log.")
    events: Annotated[list[Annotated[str, AfterValidator(_check_glob)]], BeforeValidator(_split_globs)] = F(
        ["*"], type='list of strings, or one comma-separated string', default_doc='"*" (all)',
        doc='Events to log, as trace-cmd -e globs: "kmem:*", "vmscan:mm_vmscan_*", "!lock:*" removes. '
            "[] logs none (counters and /proc snapshots still work). Each glob must match an event.")
    snapshot_interval: Optional[Time(above=0)] = F(
        None, unit="ns", default_doc="unset: only at the end",
        doc="Virtual time between /proc snapshots written during the run.")
    debug_vm: bool = F(True, doc="Check the invariants (no page lost, TLBs coherent, refcounts) after every event, "
                                 "like CONFIG_DEBUG_VM. Slower; on by default.")
    max_events: Optional[Annotated[int, Field(ge=1, le=I64_MAX)]] = F(
        None, unit="events", default_doc="unset: no limit", doc="Stop the run after this many logged events.")
    schedule: Literal["fifo", "pct"] = F(
        "fifo", doc='Order of wake-ups due at the same virtual instant. "fifo": the order they were queued in '
                    '(the default; the event log depends only on the seed\'s random streams). "pct": schedule '
                    "exploration after PCT: each thread gets a random priority drawn from the seed, and at "
                    "pct_depth − 1 random moments the thread being scheduled drops below all others; the "
                    "highest priority goes first. Used by `smpmem explore` to find interleavings that break an "
                    "invariant; still deterministic for one seed.")
    pct_depth: int = F(3, ge=1, le=64, unit="change points + 1",
                       doc="PCT's bug depth d (schedule = \"pct\" only): d − 1 priority change points per run.")

    def selected_events(self) -> list[catalog.EventType]:
        """The event types ``events`` selects (none for ``[]``)."""
        return catalog.select(self.events) if self.events else []


# --- [[process]] and its steps ----------------------------------------------

Prot = Literal["none", "r", "w", "x", "rw", "rx", "wx", "rwx"]
MAP_FLAGS = ("private", "shared", "anonymous", "fixed", "fixed_noreplace", "populate", "noreserve", "locked")


def _norm_prot(value: Any) -> Any:
    """``"rw"``, ``"r-x"``, ``"wr"``, ``"---"`` -> canonical ``"rw"``, ``"rx"``, ``"rw"``, ``"none"``."""
    if not isinstance(value, str):
        return value
    v = value.strip().lower().replace("-", "")
    if v in ("", "none"):
        return "none"
    if set(v) <= set("rwx") and len(set(v)) == len(v):
        return "".join(c for c in "rwx" if c in v)
    raise ValueError(f'expected a protection: "none" or letters from "rwx" such as "r", "rw", "rx", got {show(value)}')


def _norm_flags(value: Any) -> Any:
    """``"private|anonymous"``, ``"MAP_SHARED"`` -> canonical ``"private|anonymous"``, ``"shared"``."""
    if not isinstance(value, str):
        return value
    parts = [p.strip().lower().removeprefix("map_") for p in value.split("|") if p.strip()]
    unknown = [p for p in parts if p not in MAP_FLAGS]
    if unknown:
        import difflib

        hint = difflib.get_close_matches(unknown[0], MAP_FLAGS, n=1)
        dym = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown mmap flag {unknown[0]!r}{dym} (allowed, joined with '|': {', '.join(MAP_FLAGS)})")
    if ("private" in parts) == ("shared" in parts):
        raise ValueError(f"flags need exactly one of 'private' or 'shared', got {show(value)}")
    return "|".join(f for f in MAP_FLAGS if f in parts)


FilePath = Annotated[str, _pattern(r"/[^\0]*[^/\0]|/[^/\0]", 'an absolute path such as "/data/db"')]
RegionName = Annotated[str, _pattern(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", "a region name: a letter or _, then letters, "
                                                                          "digits, _ . or -")]


class _Step(_Model):
    """Base of the steps; ``op`` tells them apart."""


class Compute(_Step):
    """Run on the CPU without touching shared memory (user-mode work)."""

    op: Literal["compute"]
    ns: Time() = F(doc="CPU time to spend.", unit="ns")


class LockStep(_Step):
    """Hold a named kernel lock for a while: a contended critical section, for runtime demos."""

    op: Literal["lock"]
    name: Annotated[str, Field(min_length=1, max_length=64)] = F(doc='Lock name, e.g. "zone->lock" or "demo".')
    hold: Time() = F(doc="How long the lock is held once taken.", unit="ns")


class Mmap(_Step):
    """``mmap()``: create a named region (a VMA) in the address space."""

    op: Literal["mmap"]
    name: RegionName = F(doc="Region name that later steps use to refer to this mapping.")
    size: Size(above=0) = F(doc="Length (rounded up to whole pages by the kernel).", unit="bytes")
    prot: Annotated[Prot, BeforeValidator(_norm_prot)] = F(
        "rw", type='"none" or letters of "rwx"', doc="Protection: PROT_READ / PROT_WRITE / PROT_EXEC.")
    flags: Annotated[str, BeforeValidator(_norm_flags)] = F(
        "private|anonymous", type="'|'-separated flags",
        default_doc='"private|anonymous"; "private" with file',
        doc="MAP_* flags: exactly one of private or shared, plus any of " + ", ".join(MAP_FLAGS[2:]) + ".")
    file: Optional[FilePath] = F(None, default_doc="unset: anonymous",
                                 doc="File to map: a [[machine.file]] path or a file the program wrote earlier.")
    offset: Size(align=PAGE_SIZE) = F(0, unit="bytes", doc="Offset in the file (page-aligned).")
    addr: Optional[Size(align=PAGE_SIZE)] = F(None, unit="bytes", default_doc="unset: the kernel chooses",
                                              doc="Address hint (required with fixed).")

    @model_validator(mode="before")
    @classmethod
    def _file_default_flags(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("file") is not None and "flags" not in data:
            data = {**data, "flags": "private"}
        return data


class Munmap(_Step):
    """``munmap()`` of a region or a part of it."""

    op: Literal["munmap"]
    region: str = F(doc="Region to unmap (from an earlier mmap).")
    offset: Size(align=PAGE_SIZE) = F(0, unit="bytes", doc="Start of the part to unmap, from the region's start.")
    size: Optional[Size(above=0)] = F(None, unit="bytes", default_doc="unset: to the region's end", doc="Length to unmap.")


class Brk(_Step):
    """``brk()``: grow or shrink the heap."""

    op: Literal["brk"]
    delta: SignedSize() = F(doc='Change of the program break; negative shrinks: "-64KiB".', unit="bytes")


class Mprotect(_Step):
    """``mprotect()`` of a region or a part of it."""

    op: Literal["mprotect"]
    region: str = F(doc="Region to change (from an earlier mmap).")
    prot: Annotated[Prot, BeforeValidator(_norm_prot)] = F(type='"none" or letters of "rwx"', doc="New protection.")
    offset: Size(align=PAGE_SIZE) = F(0, unit="bytes", doc="Start of the part, from the region's start.")
    size: Optional[Size(above=0)] = F(None, unit="bytes", default_doc="unset: to the region's end", doc="Length of the part.")


class Malloc(_Step):
    """glibc ``malloc()``: from the brk heap up to 128 KiB (M_MMAP_THRESHOLD), else its own mmap."""

    op: Literal["malloc"]
    name: RegionName = F(doc="Region name that later steps use.")
    size: Size(above=0) = F(doc="Bytes requested.", unit="bytes")


class Free(_Step):
    """glibc ``free()`` of an earlier malloc."""

    op: Literal["free"]
    name: str = F(doc="Region to free (from an earlier malloc).")


class Touch(_Step):
    """Load from or store to the pages of a region: where page faults, TLB misses and reclaim pressure come from."""

    op: Literal["touch"]
    region: str = F(doc="Region to access (from an earlier mmap or malloc).")
    pattern: Literal["sequential", "random", "zipf", "strided", "reverse"] = F(
        "sequential", doc="Order of the accesses: sequential or reverse passes, strided steps, uniform random, "
                          "or zipf (a few hot pages take most accesses).")
    write: bool = F(False, doc="Stores (dirtying pages, breaking COW) instead of loads.")
    count: Optional[Annotated[int, Field(ge=1, le=I64_MAX)]] = F(
        None, unit="accesses", default_doc="one per page of the range",
        doc="Number of accesses; sequential, reverse and strided wrap around the range.")
    stride: Size(above=0) = F(PAGE_SIZE, unit="bytes", doc="Distance between accesses (strided only).")
    zipf_s: float = F(1.0, gt=0.0, le=10.0, doc="Zipf exponent s: page of rank k has weight 1/k^s (zipf only).")
    hot_fraction: float = F(1.0, gt=0.0, le=1.0, unit="fraction",
                            doc="Random and zipf accesses fall in this leading fraction of the range.")
    offset: Size() = F(0, unit="bytes", doc="Start of the range, from the region's start.")
    size: Optional[Size(above=0)] = F(None, unit="bytes", default_doc="unset: to the region's end", doc="Length of the range.")


class Read(_Step):
    """``read()`` from a file through the page cache."""

    op: Literal["read"]
    file: FilePath = F(doc="A [[machine.file]] path or a file the program wrote earlier.")
    offset: Size() = F(0, unit="bytes", doc="File position.")
    size: Optional[Size(above=0)] = F(None, unit="bytes", default_doc="unset: to the end of the file", doc="Bytes to read.")


class Write(_Step):
    """``write()`` to a file through the page cache (creating it if it does not exist)."""

    op: Literal["write"]
    file: FilePath = F(doc="Path of the file; a new path creates the file.")
    offset: Size() = F(0, unit="bytes", doc="File position.")
    size: Size(above=0) = F(doc="Bytes to write.", unit="bytes")


class Fsync(_Step):
    """``fsync()``: write back a file's dirty pages and wait for them."""

    op: Literal["fsync"]
    file: FilePath = F(doc="A file that exists at this point.")


class Open(_Step):
    """``open()`` a file (looking up its inode and dentry)."""

    op: Literal["open"]
    file: FilePath = F(doc="A file that exists at this point, unless create is set.")
    create: bool = F(False, doc="O_CREAT: create the file empty if it does not exist.")


class Fork(_Step):
    """``fork()``: a child with a copy-on-write copy of the address space runs ``program`` then exits."""

    op: Literal["fork"]
    program: list["Step"] = F(type="list of steps", doc="The child's steps; it sees the regions mapped before the fork.")


class SpawnThreads(_Step):
    """``clone(CLONE_VM)``: threads sharing the address space, each running ``program``."""

    op: Literal["spawn_threads"]
    count: int = F(ge=1, le=32768, unit="threads", doc="Number of threads.")
    program: list["Step"] = F(type="list of steps", doc="Each thread's steps; they see the regions mapped before.")


class Sleep(_Step):
    """Block for a while (nanosleep): the CPU runs something else."""

    op: Literal["sleep"]
    ns: Time() = F(doc="Time to sleep.", unit="ns")


class Loop(_Step):
    """Repeat ``body`` ``count`` times."""

    op: Literal["loop"]
    count: int = F(ge=1, le=I64_MAX, unit="iterations", doc="Number of iterations.")
    body: list["Step"] = F(type="list of steps", doc="Steps repeated.")


class Exit(_Step):
    """``exit()``: the process (or the thread or child running this program) ends."""

    op: Literal["exit"]
    code: int = F(0, ge=0, le=255, doc="Exit status.")


class Ops(_Step):
    """Count operations for the ops/s figures: will-it-scale's ``(*iterations) += n``.

    Each thread keeps its own count; run.json's ``wis`` entry and
    ``smpmem.workload.wis.ops_per_sec`` turn the counts into operations per
    simulated second, per task and in total (docs/programs.md).
    """

    op: Literal["ops"]
    n: int = F(1, ge=0, le=I64_MAX, unit="operations",
               doc="Operations completed since the task's previous ops step. The task's first ops step starts its "
                   "measurement (n = 0 marks the start without counting).")
    done: bool = F(False, doc="The task's measured work ends here: its ops/s window closes at this step, not at the "
                              "end of the run.")


class Madvise(_Step):
    """``madvise()`` of a region or a part of it (mm/madvise.c), under ``mmap_lock`` held for read."""

    op: Literal["madvise"]
    region: str = F(doc="Region to advise (from an earlier mmap or malloc, or a for_each piece).")
    advice: Literal["dontneed"] = F(
        "dontneed", doc="MADV_* advice. dontneed: unmap the range's pages (anonymous ones are freed and read back "
                        "as zeros, file ones come back from the page cache), flushing the TLB of every CPU that "
                        "uses the address space.")
    offset: Size(align=PAGE_SIZE) = F(0, unit="bytes", doc="Start of the range, from the region's start (page-aligned).")
    size: Optional[Size(above=0)] = F(None, unit="bytes", default_doc="unset: to the region's end", doc="Length of the range.")


class ForEach(_Step):
    """Run ``body`` once per ``stride``-sized piece of a region, in address order: C's ``for (i = 0; i < size; i += stride)``.

    Inside ``body`` the current piece is a region called ``name``, so the
    steps address one page (or stride) at a time, as will-it-scale's loops do.
    """

    op: Literal["for_each"]
    region: str = F(doc="Region to walk (from an earlier mmap or malloc).")
    name: RegionName = F("piece", doc="Region name of the current piece inside body.")
    stride: Size(above=0, align=PAGE_SIZE) = F(PAGE_SIZE, unit="bytes", doc="Size of each piece (whole pages); the "
                                                                             "last piece may be shorter.")
    offset: Size() = F(0, unit="bytes", doc="Start of the walk, from the region's start.")
    size: Optional[Size(above=0)] = F(None, unit="bytes", default_doc="unset: to the region's end",
                                      doc="Length of the walk.")
    body: list["Step"] = F(type="list of steps", doc="Steps run for each piece.")


class Kmap(_Step):
    """A system call that maps a region's pages into the kernel, as a 32-bit kernel must for HighMem pages.

    ``get_user_pages`` (fault in, pin), then per batch: ``kmap()`` each page
    (the shared pkmap pool under ``kmap_lock``) or ``kmap_atomic()`` (a
    per-CPU slot, no lock), ``hold`` per page of copying, unmap. Lowmem pages
    (every page on x86_64) need no mapping.
    """

    op: Literal["kmap"]
    region: str = F(doc="Region whose pages are mapped (from an earlier mmap or malloc).")
    offset: Size() = F(0, unit="bytes", doc="Start of the range, from the region's start.")
    size: Optional[Size(above=0)] = F(None, unit="bytes", default_doc="unset: to the region's end", doc="Length of the range.")
    atomic: bool = F(False, doc="kmap_atomic (kmap_local): a per-CPU slot, no lock, no global flush, one page at a "
                                "time; false: kmap from the shared pool.")
    batch: int = F(1, ge=1, le=512, unit="pages",
                   doc="Pages kmapped at once before copying (a scatter-gather list); kmap only. At most LAST_PKMAP.")
    hold: Time() = F(500, unit="ns", doc="Time spent copying each page while it is mapped.")
    write: bool = F(True, doc="Pin the pages for writing (FOLL_WRITE): write-fault them in; false: read faults.")


class Replay(_Step):
    """Replay a memory-access trace of a real program, at page granularity.

    The trace's touched pages are first mapped as anonymous memory (one
    mapping per cluster of pages, at the trace's own addresses when they
    are free, else where the kernel puts them); then its accesses are made
    in order, consecutive accesses to one page coalesced into one (a load
    then a store to the page stay two: a read fault, then a write). See
    docs/programs.md for the formats.
    """

    op: Literal["replay"]
    file: Annotated[str, AfterValidator(host_file)] = F(
        type="path", doc="Trace file on the machine running smpmem (not in the simulated one). A relative path is "
                         "read from the scenario file's directory.")
    format: Literal["lackey", "plain"] = F(
        "lackey", doc='"lackey": valgrind --tool=lackey --trace-mem=yes output (I, L, S, M records); '
                      '"plain": one access per line, "R ADDRESS" or "W ADDRESS" (hex, optional 0x and size).')
    limit: Optional[Annotated[int, Field(ge=1, le=I64_MAX)]] = F(
        None, unit="accesses", default_doc="unset: the whole trace", doc="Replay at most this many accesses "
                                                                          "(trace records) from the start of the trace.")
    instructions: bool = F(True, doc="Replay lackey's instruction fetches (I records) as loads of the code pages.")

    @model_validator(mode="after")
    def _readable(self) -> "Replay":
        # The whole trace is read now (and kept for the run), so a bad line is a load error, not a failed run.
        from smpmem.workload._replay import check_trace

        why = check_trace(self.file, self.format, self.limit, self.instructions)
        if why is not None:
            raise ValueError(why)
        return self


STEP_TYPES: dict[str, type[_Step]] = {
    cls.model_fields["op"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in (Compute, LockStep, Mmap, Munmap, Brk, Mprotect, Malloc, Free, Touch, Read, Write, Fsync, Open,
                Fork, SpawnThreads, Sleep, Loop, Exit, Ops, Madvise, ForEach, Kmap, Replay)
}

Step = Annotated[
    Union[Compute, LockStep, Mmap, Munmap, Brk, Mprotect, Malloc, Free, Touch, Read, Write, Fsync, Open,
          Fork, SpawnThreads, Sleep, Loop, Exit, Ops, Madvise, ForEach, Kmap, Replay],
    Field(discriminator="op"),
]

for _cls in (Fork, SpawnThreads, Loop, ForEach):
    _cls.model_rebuild()

COMM_LEN = 15  # TASK_COMM_LEN - 1


def _check_params(v: dict[str, Any]) -> dict[str, Any]:
    def walk(x: Any, where: str) -> None:
        if isinstance(x, bool) or x is None or isinstance(x, (str, float)):
            return
        if isinstance(x, int):
            if not -(2**63) <= x < 2**64:
                raise ValueError(f"{where} = {x} does not fit in 64 bits")
        elif isinstance(x, dict):
            for k, y in x.items():
                walk(y, f"{where}.{k}" if where else str(k))
        elif isinstance(x, list):
            for i, y in enumerate(x):
                walk(y, f"{where}[{i}]")
        else:
            raise ValueError(f"{where} is a {type(x).__name__}; params hold strings, numbers, booleans, lists and tables")

    walk(v, "")
    return v


def _check_comm(v: str) -> str:
    if not v:
        raise ValueError("a process name must not be empty")
    if len(v) > COMM_LEN:
        raise ValueError(f"{show(v)} is {len(v)} characters; a comm is at most {COMM_LEN} (TASK_COMM_LEN - 1)")
    return v


class Process(_Model):
    """A simulated user process: ``[[process]]``."""

    name: Annotated[str, AfterValidator(_check_comm)] = F(doc="Its comm, as in ps and the event log (at most 15 characters).")
    count: int = F(1, ge=1, le=32768, unit="processes", doc="Identical processes to start (pids assigned in order).")
    threads: int = F(1, ge=1, le=32768, unit="threads", doc="Threads per process, each running the program in one address space.")
    cpus: Optional[list[Annotated[int, Field(ge=0, le=INT_MAX)]]] = F(
        None, type="list of integers", default_doc="unset: any CPU",
        doc="CPU affinity (sched_setaffinity): the CPUs its threads may run on.")
    start: Time() = F(0, unit="ns", doc="Virtual time at which it starts.")
    oom_score_adj: int = F(0, ge=-1000, le=1000, doc="Added to its OOM badness; -1000 exempts it from the OOM killer.")
    program: Optional[list[Step]] = F(None, type="list of steps", default_doc="—",
                                      doc="Steps it runs, in order (see the step reference). Give program or builtin.")
    builtin: Optional[Annotated[str, _pattern(r"[A-Za-z_][A-Za-z0-9_.-]*", "a built-in program name")]] = F(
        None, default_doc="—", doc="Name of a built-in program from smpmem.workload instead of program.")
    params: Annotated[dict[str, Any], AfterValidator(_check_params)] = F({}, type="table", doc="Parameters passed to the built-in program.")


# --- the whole scenario ------------------------------------------------------

class Scenario(_Model):
    """A validated scenario: what :func:`load_scenario` returns."""

    name: Annotated[str, _pattern(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}",
                                  "a name of letters, digits, _ . + or - (it names the run directory: no spaces)")] = F(
        "scenario", default_doc="the file's name without .toml",
        doc="Names the run directory `logs/<name>-<seed>-<stamp>/`.")
    description: str = F("", doc="Free text, copied to run.json.")
    machine: Machine = F(Machine(), type="table", doc="The hardware.")
    tunables: Tunables = F(Tunables(), type="table", doc="sysctls and model switches.")
    costs: Costs = F(Costs(), type="table", doc="Cost model overrides.")  # type: ignore[valid-type]
    run: Run = F(Run(), type="table", doc="Run control.")
    process: list[Process] = F([], type="list of tables", doc="The processes.")

    @model_validator(mode="after")
    def _cross_check(self) -> "Scenario":
        from ._check import check
        from ._errors import ScenarioError

        problems = check(self)
        if problems:
            # Not a ValueError: pydantic lets it through untouched, with its paths.
            raise ScenarioError(problems)
        return self

    def resolved(self) -> dict[str, Any]:
        """The whole configuration as JSON-ready data, every default filled in and every unit an int.

        Zones are the layout the machine boots with and swap priorities the
        effective ones, so the result loads back into the same scenario.
        """
        out = self.model_dump(mode="json")
        out["machine"]["zone"] = [z.model_dump(mode="json") for z in self.machine.zone_layout()]
        for s, prio in zip(out["machine"]["swap"], self.machine.swap_priorities()):
            s["priority"] = prio
        for kind in ("swap", "file"):
            for entry in out["machine"][kind]:
                if entry["disk"] is None and self.machine.disk:
                    entry["disk"] = self.machine.disk[0].name
        return out

