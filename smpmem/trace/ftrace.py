"""The ftrace ``trace`` file: models kernel/trace/trace.c and kernel/trace/trace_output.c.

Renders JSON records (see ``catalog``) as the text of
``/sys/kernel/tracing/trace`` with the nop tracer, and reads such text back.

Header (trace.c ``s_show``, ``print_event_info``, ``print_func_help_header``
and ``print_func_help_header_irq``): ``# tracer: nop``, the entries line
(``entries-in-buffer/entries-written: N/M   #P:ncpus``; M - N events were
lost), and the column legend, 12 lines with irq-info on, 6 with it off.

Event line (trace_output.c ``trace_print_context``)::

    "%16s-%-7d [%03d] " + 5 latency chars (irq-info only) + " %5lu.%06lu: " + "<event>: " + body

- Latency chars (``trace_print_lat_fmt``) come from optional record keys:
  ``irqs_off`` (``d``), ``hardirq``/``softirq`` (``h``/``s``, both ``H``)
  and ``preempt_count`` (low nibble: preempt depth, high nibble:
  migrate-disable depth); a record with none of them prints ``.....``.
- Time: ``ts`` ns rounded to the nearest microsecond (``ns2usecs``), then
  seconds and microseconds.
- Comm: pid 0 prints ``<idle>`` and a record without a comm ``<...>``, as
  ``trace_find_cmdline`` does. Any other comm is cut to 15 characters
  (``TASK_COMM_LEN`` - 1, as ``set_task_comm`` would) and every character
  outside ``[a-zA-Z0-9-]`` becomes ``-`` (``kworker/u8:2`` →
  ``kworker-u8-2``): the kernel's trace-vmscan-postprocess.pl and
  trace-pagealloc-postprocess.pl match the comm with ``[a-zA-Z0-9-]*`` and
  would otherwise read ``kworker/u8:2-211`` as process ``2``, pid 211.
  Their ``(.*)-([0-9]*)$`` split still finds the pid after the last ``-``.
- No tgid column (record-tgid off, the default).

Options of :func:`render_ftrace`: ``irq_info=False`` drops the latency
column, as ``echo 0 > options/irq-info`` does; trace-pagealloc-postprocess.pl
has no latency group in its line regex and matches nothing otherwise.
``compat_writepage=True`` adds, after each ``mm_vmscan_write_folio`` line, a
line for the same record as the pre-5.18 event::

    mm_vmscan_writepage: page=%p pfn=<pfn in decimal> flags=<reclaim flags>

because trace-vmscan-postprocess.pl in 6.12 counts reclaim writes only from
lines named ``mm_vmscan_writepage`` and parses them with its default regex
``page=([0-9a-f]*) pfn=([0-9]*) flags=([A-Z_|]*)`` (decimal pfn), so the
6.x ``mm_vmscan_write_folio`` lines alone give zero write I/O. No real
kernel prints this line; it is off by default.

:func:`parse_ftrace` reads event lines back into records. Bodies are mapped
back to fields through the catalog's ``TP_printk`` format for the events in
``_INVERSE``; ``%p`` values cannot be un-hashed and come back as the 16 hex
digit strings. Other events keep their text under ``body``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import gfp
from .catalog import lookup
from .events import lock as _lock
from .events.filemap import PAGE_SHIFT

Record = Mapping[str, Any]

TASK_COMM_LEN = 16
_COMM_BAD = re.compile(r"[^a-zA-Z0-9-]")


# --- Rendering ------------------------------------------------------------------

def sanitize_comm(comm: str | None, pid: int) -> str:
    """The comm column: ``<idle>`` for pid 0, ``<...>`` if unknown, else cut to 15 chars of [a-zA-Z0-9-]."""
    if pid == 0:
        return "<idle>"
    if not comm:
        return "<...>"
    return _COMM_BAD.sub("-", comm[:TASK_COMM_LEN - 1])


def latency_flags(record: Record) -> str:
    """The 5 irq-info characters (trace_output.c ``trace_print_lat_fmt``) from optional record keys."""
    irqs = "d" if record.get("irqs_off") else "."
    hard, soft = record.get("hardirq"), record.get("softirq")
    irq = "H" if hard and soft else "h" if hard else "s" if soft else "."
    pc = int(record.get("preempt_count", 0))
    depth = f"{pc & 0xF:x}" if pc & 0xF else "."
    migrate = f"{pc >> 4:x}" if pc & 0xF0 else "."
    return f"{irqs}.{irq}{depth}{migrate}"


def format_ts(ts_ns: int) -> str:
    """``" %5lu.%06lu"`` without the leading space: ns rounded to us (trace.c ``ns2usecs``)."""
    usecs = (ts_ns + 500) // 1000
    return f"{usecs // 1_000_000:5d}.{usecs % 1_000_000:06d}"


def line_prefix(record: Record, *, irq_info: bool = True) -> str:
    """Everything before ``<event>: `` (trace_output.c ``trace_print_context``)."""
    pid = int(record["pid"])
    comm = sanitize_comm(record.get("comm"), pid)
    lat = latency_flags(record) if irq_info else ""
    return f"{comm:>16}-{pid:<7d} [{int(record['cpu']):03d}] {lat} {format_ts(int(record['ts']))}: "


def event_line(record: Record, *, irq_info: bool = True) -> str:
    """One event line: prefix, ``<event>: ``, and the catalog's rendering of the TP_printk body."""
    ev = lookup(record["event"])
    return f"{line_prefix(record, irq_info=irq_info)}{ev.name}: {ev.body(record)}"


def compat_writepage_line(record: Record, *, irq_info: bool = True) -> str:
    """The pre-5.18 ``mm_vmscan_writepage`` line for a write_folio record, pfn in decimal (see module doc)."""
    body = (f"page={gfp.page_ptr(record['pfn'])} pfn={record['pfn']} "
            f"flags={gfp.show_reclaim_flags(record['reclaim_flags'])}")
    return f"{line_prefix(record, irq_info=irq_info)}mm_vmscan_writepage: {body}"


def header(entries: int, written: int, ncpus: int, *, irq_info: bool = True,
           tracer: str = "nop") -> str:
    """The header lines (trace.c ``print_event_info`` and ``print_func_help_header[_irq]``)."""
    lines = [f"# tracer: {tracer}", "#",
             f"# entries-in-buffer/entries-written: {entries}/{written}   #P:{ncpus}", "#"]
    if irq_info:
        pad = "#" + " " * 30
        lines += [pad + "  _-----=> irqs-off/BH-disabled",
                  pad + " / _----=> need-resched",
                  pad + "| / _---=> hardirq/softirq",
                  pad + "|| / _--=> preempt-depth",
                  pad + "||| / _-=> migrate-disable",
                  pad + "|||| /     delay",
                  "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
                  "#              | |         |   |||||     |         |"]
    else:
        lines += ["#           TASK-PID     CPU#     TIMESTAMP  FUNCTION",
                  "#              | |         |         |         |"]
    return "\n".join(lines) + "\n"


def event_lines(records: Iterable[Record], *, irq_info: bool = True,
                compat_writepage: bool = False) -> list[str]:
    """Event lines in record order (plus compat writepage lines if asked)."""
    out: list[str] = []
    for r in records:
        out.append(event_line(r, irq_info=irq_info))
        if compat_writepage and r["event"] == "mm_vmscan_write_folio":
            out.append(compat_writepage_line(r, irq_info=irq_info))
    return out


def render_ftrace(records: Iterable[Record], *, ncpus: int | None = None, irq_info: bool = True,
                  compat_writepage: bool = False, lost: int = 0) -> str:
    """The whole ``trace`` file for ``records``.

    ``ncpus`` defaults to the highest cpu seen + 1; ``lost`` events make
    entries-written exceed entries-in-buffer. Every emitted line (compat lines
    included) counts as an entry.
    """
    recs = list(records)
    lines = event_lines(recs, irq_info=irq_info, compat_writepage=compat_writepage)
    if ncpus is None:
        ncpus = max((int(r["cpu"]) for r in recs), default=0) + 1
    text = header(len(lines), len(lines) + lost, ncpus, irq_info=irq_info)
    return text + "".join(line + "\n" for line in lines)


def write_ftrace(records: Iterable[Record], path: str | Path, **options: Any) -> Path:
    """Write :func:`render_ftrace` output to ``path``; options as for render_ftrace."""
    p = Path(path)
    p.write_text(render_ftrace(records, **options))
    return p


# --- Parsing --------------------------------------------------------------------

_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\((?:\s*\d+|-------)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<lat>[dDbX.][Nnp.][ZzHhs.][0-9a-f.][0-9a-f.])\s+)?"
    r"(?P<secs>\d+)\.(?P<usecs>\d{6}):\s(?P<event>\w+):\s?(?P<body>.*)$")

# One entry per conversion of the event's TP_printk, in order: None (ignore),
# a field name (decoded by the conversion: %d/%u decimal, %x hex, %p/%s/%pS
# text), or (field, decoder). Two conversions naming one field are OR-ed
# (major:minor of a dev_t). Names starting with "_" go to _POST only.
Spec = Sequence[str | tuple[str, Callable[[str], Any]] | None]

_gfp = ("gfp_flags", gfp.parse_gfp_flags)
_rflags = ("reclaim_flags", gfp.parse_reclaim_flags)
_ps = gfp.unsym
_major = lambda s: int(s) << gfp.MINORBITS  # noqa: E731
_hex_long = lambda s: gfp.s64(int(s, 16))  # noqa: E731  (a long printed with 0x%lx)
_FOLIO: Spec = ("name", "ino", "index")
_WORK: Spec = ("name", ("sb_dev", _major), "sb_dev", "nr_pages", "sync_mode", "for_kupdate",
               "range_cyclic", "for_background", ("reason", lambda s: gfp.unsymbolic(s, gfp.WB_WORK_REASON)),
               "cgroup_ino")
_PAGE_CACHE: Spec = (("s_dev", _major), "s_dev", "i_ino", "pfn",
                     ("index", lambda s: int(s) >> PAGE_SHIFT), "order")
_SLAB: Spec = (("call_site", _ps), "ptr", "bytes_req", "bytes_alloc", _gfp, "node")

_INVERSE: dict[str, Spec] = {
    "contention_begin": ("lock_addr", ("flags", lambda s: gfp.parse_flag_names(s, _lock._LCB, ""))),
    "contention_end": ("lock_addr", "ret"),
    "lock_release": ("lock_addr", "name"),
    "kmalloc": (*_SLAB, None),
    "kmem_cache_alloc": (*_SLAB, ("accounted", lambda s: s == "true")),
    "kfree": (("call_site", _ps), "ptr"),
    "kmem_cache_free": (("call_site", _ps), "ptr", "name"),
    "mm_page_free": (None, "pfn", "order"),
    "mm_page_free_batched": (None, "pfn"),
    "mm_page_alloc": ("_page", "pfn", "order", "migratetype", _gfp),
    "mm_page_alloc_zone_locked": ("_page", "pfn", "order", "migratetype", "percpu_refill"),
    "mm_page_pcpu_drain": (None, "pfn", "order", "migratetype"),
    "mm_page_alloc_extfrag": (None, "pfn", "alloc_order", "fallback_order", None,
                              "alloc_migratetype", "fallback_migratetype", None, "change_ownership"),
    "rss_stat": ("mm_id", "curr", ("member", lambda s: gfp.unsymbolic(s, gfp.TRACE_MM_PAGES)), "size"),
    "mm_vmscan_kswapd_sleep": ("nid",),
    "mm_vmscan_kswapd_wake": ("nid", "order"),
    "mm_vmscan_wakeup_kswapd": ("nid", "order", _gfp),
    "mm_vmscan_direct_reclaim_begin": ("order", _gfp),
    "mm_vmscan_memcg_reclaim_begin": ("order", _gfp),
    "mm_vmscan_memcg_softlimit_reclaim_begin": ("order", _gfp),
    "mm_vmscan_direct_reclaim_end": ("nr_reclaimed",),
    "mm_vmscan_memcg_reclaim_end": ("nr_reclaimed",),
    "mm_vmscan_memcg_softlimit_reclaim_end": ("nr_reclaimed",),
    "mm_vmscan_node_reclaim_begin": ("nid", "order", _gfp),
    "mm_vmscan_node_reclaim_end": ("nr_reclaimed",),
    "mm_shrink_slab_start": (("shrink", _ps), "shr", "nid", "nr_objects_to_shrink", _gfp,
                             "cache_items", "delta", "total_scan", "priority"),
    "mm_shrink_slab_end": (("shrink", _ps), "shr", "nid", "unused_scan", "new_scan",
                           "total_scan", "retval"),
    "mm_vmscan_lru_isolate": ("highest_zoneidx", "order", "nr_requested", "nr_scanned",
                              "nr_skipped", "nr_taken",
                              ("lru", lambda s: gfp.unsymbolic(s, gfp.LRU_NAMES))),
    "mm_vmscan_write_folio": (None, "pfn", _rflags),
    "mm_vmscan_lru_shrink_inactive": ("nid", "nr_scanned", "nr_reclaimed", "nr_dirty",
                                      "nr_writeback", "nr_congested", "nr_immediate",
                                      "nr_activate0", "nr_activate1", "nr_ref_keep",
                                      "nr_unmap_fail", "priority", _rflags),
    "mm_vmscan_lru_shrink_active": ("nid", "nr_taken", "nr_active", "nr_deactivated",
                                    "nr_referenced", "priority", _rflags),
    "tlb_flush": ("pages", None, "reason"),
    "page_fault_user": (("address", _ps), ("ip", _ps), "error_code"),
    "page_fault_kernel": (("address", _ps), ("ip", _ps), "error_code"),
    "oom_score_adj_update": ("task_pid", "task_comm", "oom_score_adj"),
    "mark_victim": ("task_pid", "task_comm", "total_vm", "anon_rss", "file_rss", "shmem_rss",
                    "uid", "pgtables", "oom_score_adj"),
    "reclaim_retry_zone": ("node", ("zone_idx", lambda s: gfp.unsymbolic(s, gfp.ZONE_TYPE)),
                           "order", "reclaimable", "available", "min_wmark",
                           "no_progress_loops", ("wmark_check", lambda s: bool(int(s)))),
    "vm_unmapped_area": ("_addr", "_err", "total_vm", "flags", "length", "low_limit",
                         "high_limit", "align_mask", "align_offset"),
    "alloc_vmap_area": ("addr", "size", "align", "vstart", "vend", "failed"),
    "purge_vmap_area_lazy": ("start", "end", "npurged"),
    "free_vmap_area_noflush": ("va_start", "nr_lazy", "nr_lazy_max"),
    "mm_filemap_add_to_page_cache": _PAGE_CACHE,
    "mm_filemap_delete_from_page_cache": _PAGE_CACHE,
    "mm_filemap_fault": (("s_dev", _major), "s_dev", "i_ino", ("index", lambda s: int(s) >> PAGE_SHIFT)),
    "writeback_dirty_folio": _FOLIO,
    "folio_wait_writeback": _FOLIO,
    "global_dirty_state": ("nr_dirty", "nr_writeback", "background_thresh", "dirty_thresh",
                           "dirty_limit", "nr_dirtied", "nr_written"),
    "balance_dirty_pages": ("bdi", "limit", "setpoint", "dirty", "bdi_setpoint", "bdi_dirty",
                            "dirty_ratelimit", "task_ratelimit", "dirtied", "dirtied_pause",
                            "paused", "pause", "period", "think", "cgroup_ino"),
    **{f"writeback_{w}": _WORK for w in ("queue", "exec", "start", "written", "wait")},
    "wbc_writepage": ("name", "nr_to_write", "pages_skipped", "sync_mode", "for_kupdate",
                      "for_background", "for_reclaim", "range_cyclic",
                      ("range_start", _hex_long), ("range_end", _hex_long), "cgroup_ino"),
}


def _fix_page_alloc(v: dict[str, Any]) -> None:
    """A NULL page means the allocation failed: pfn back to -1 (kmem.h prints pfn=0x0)."""
    if v.pop("_page") == "0" * 16:
        v["pfn"] = -1


def _fix_unmapped_area(v: dict[str, Any]) -> None:
    """``addr=0x0 err=-12`` back to addr -12 (mmap.h)."""
    addr, err = v.pop("_addr"), v.pop("_err")
    v["addr"] = err if err else addr


_POST: dict[str, Callable[[dict[str, Any]], None]] = {
    "mm_page_alloc": _fix_page_alloc,
    "mm_page_alloc_zone_locked": _fix_page_alloc,
    "vm_unmapped_area": _fix_unmapped_area,
}

_CONV = re.compile(r"%(?P<width>-?\d*)(?P<len>ll|l|z|h)?(?P<conv>p[sS]?|[dusx])")
_CONV_RE = {"d": r"(-?\d+)", "u": r"(\d+)", "x": r"([0-9a-f]+)", "p": r"([0-9a-f]{16})",
            "ps": r"(\S+)", "pS": r"(\S+)", "s": r"(.*?)"}


def _c_string(fmt: str) -> str:
    """The TP_printk format with C string literal concatenation applied."""
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', fmt))


@cache
def body_regex(event: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regex for an event's body built from the catalog's TP_printk, and each group's conversion."""
    fmt = _c_string(lookup(event).fmt or "")
    parts, convs, pos = [], [], 0
    for m in _CONV.finditer(fmt):
        parts.append(re.escape(fmt[pos:m.start()]))
        conv = m["conv"]
        parts.append(_CONV_RE[conv] + (" *" if m["width"].startswith("-") else ""))
        convs.append(conv)
        pos = m.end()
    parts.append(re.escape(fmt[pos:]))
    return re.compile("".join(parts)), tuple(convs)


def _decode(text: str, conv: str, item: str | tuple[str, Callable[[str], Any]]) -> tuple[str, Any]:
    """One conversion's text as (field, value)."""
    if isinstance(item, tuple):
        return item[0], item[1](text)
    if conv in ("d", "u"):
        return item, int(text)
    if conv == "x":
        return item, int(text, 16)
    return item, text


def parse_body(event: str, body: str) -> dict[str, Any] | None:
    """Fields of an event from its rendered body, or None if the event is not invertible."""
    spec = _INVERSE.get(event)
    if spec is None:
        return None
    rx, convs = body_regex(event)
    m = rx.fullmatch(body)
    if m is None:
        raise ValueError(f"{event}: body does not match its TP_printk format: {body!r}")
    values: dict[str, Any] = {}
    for text, conv, item in zip(m.groups(), convs, spec, strict=True):
        if item is None:
            continue
        key, val = _decode(text, conv, item)
        values[key] = values[key] | val if key in values else val
    if event in _POST:
        _POST[event](values)
    return values


def _lat_keys(lat: str | None) -> dict[str, Any]:
    """Record keys for non-default latency characters (inverse of :func:`latency_flags`)."""
    if not lat:
        return {}
    out: dict[str, Any] = {}
    if lat[0] in "dD":
        out["irqs_off"] = True
    if lat[2] in "hH":
        out["hardirq"] = True
    if lat[2] in "sH":
        out["softirq"] = True
    pc = (int(lat[3], 16) if lat[3] != "." else 0) | ((int(lat[4], 16) << 4) if lat[4] != "." else 0)
    if pc:
        out["preempt_count"] = pc
    return out


def parse_line(line: str) -> dict[str, Any] | None:
    """One event line as a record; None for header, blank or unrecognised lines."""
    m = _LINE.match(line)
    if m is None or line.startswith("#"):
        return None
    rec: dict[str, Any] = {
        "ts": (int(m["secs"]) * 1_000_000 + int(m["usecs"])) * 1000,
        "cpu": int(m["cpu"]), "pid": int(m["pid"]), "comm": m["comm"].strip(),
        "event": m["event"],
    }
    rec.update(_lat_keys(m["lat"]))
    fields = parse_body(m["event"], m["body"]) if m["event"] in _INVERSE else None
    if fields is None:
        rec["body"] = m["body"]
    else:
        rec.update(fields)
    return rec


def parse_ftrace(text: str, *, keep_compat: bool = False) -> list[dict[str, Any]]:
    """Records from ``trace`` text (either layout).

    ``ts`` comes back in whole microseconds, ``comm`` as printed (sanitised),
    ``%p`` fields as their hash strings. ``mm_vmscan_writepage`` compat lines
    are dropped unless ``keep_compat`` (they repeat a write_folio record).
    """
    out = []
    for line in text.splitlines():
        rec = parse_line(line)
        if rec is None or (rec["event"] == "mm_vmscan_writepage" and not keep_compat):
            continue
        out.append(rec)
    return out
