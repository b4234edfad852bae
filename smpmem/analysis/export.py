"""Exports of a run's events: ftrace text, CSV and Parquet (Perfetto JSON is in ``perfetto``).

All three stream events.jsonl through the tolerant reader (damaged lines
are skipped with a warning, as for ``analyze``):

- **ftrace**: the kernel's ``trace`` file, each line rendered by the event
  catalog through :mod:`smpmem.trace.ftrace` (``event_line``, ``header``),
  so the kernel's post-processing scripts and ``parse_ftrace`` read it. The
  header needs the number of entries, so lines go to a temporary file first
  and the header is written in front. An event the catalog cannot render
  (unknown name, missing field) gets a ``field=value`` body and is counted.
- **csv**: one row per event; the header is the union of every record's
  keys (the common header first, then fields in order of first appearance).
- **parquet** (needs pyarrow): the same table with a type per column
  inferred in a first pass (int64, uint64 for addresses above 2^63, float64,
  bool, else string; lists and dicts as JSON text).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from ..trace.ftrace import compat_writepage_line, event_line, header, line_prefix
from ._reader import HEADER_KEYS, Run

FORMATS = ("ftrace", "perfetto", "csv", "parquet")
DEFAULT_NAMES = {"ftrace": "trace.txt", "perfetto": "trace.perfetto.json", "csv": "events.csv",
                 "parquet": "events.parquet"}


class ExportError(Exception):
    """An export that cannot be made (a missing optional dependency, an unwritable path)."""


@dataclass
class ExportResult:
    path: Path
    events: int  # records exported
    lines: int = 0  # output lines or rows (ftrace: + compat lines)
    notes: list[str] = field(default_factory=list)


def export(run: Run, fmt: str, out: str | os.PathLike[str] | None = None, **options: Any) -> ExportResult:
    """Export ``run``'s events as ``fmt`` (one of FORMATS) to ``out`` (default: RUN_DIR/<DEFAULT_NAMES>)."""
    path = Path(out) if out is not None else run.dir / DEFAULT_NAMES[fmt]
    if fmt == "ftrace":
        return export_ftrace(run, path, **options)
    if fmt == "csv":
        return export_csv(run, path)
    if fmt == "parquet":
        return export_parquet(run, path)
    if fmt == "perfetto":
        from .perfetto import export_perfetto

        return export_perfetto(run, path)
    raise ExportError(f"unknown export format {fmt!r} (use one of {', '.join(FORMATS)})")


# --- ftrace -----------------------------------------------------------------------------

def _generic_line(rec: dict[str, Any], irq_info: bool) -> str:
    body = " ".join(f"{k}={v}" for k, v in rec.items() if k not in HEADER_KEYS)
    return f"{line_prefix(rec, irq_info=irq_info)}{rec['event']}: {body}"


def export_ftrace(run: Run, path: Path, *, irq_info: bool = True, compat_writepage: bool = False) -> ExportResult:
    """Write the run's events as the kernel's ``trace`` text (see module doc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".body.tmp")
    n = lines = generic = 0
    max_cpu = -1
    try:
        with open(tmp, "w", buffering=1 << 20) as body:
            for rec in run.iter_events():
                n += 1
                cpu = rec["cpu"]
                if cpu > max_cpu:
                    max_cpu = cpu
                try:
                    line = event_line(rec, irq_info=irq_info)
                except Exception:
                    line = _generic_line(rec, irq_info)
                    generic += 1
                body.write(line)
                body.write("\n")
                lines += 1
                if compat_writepage and rec["event"] == "mm_vmscan_write_folio":
                    body.write(compat_writepage_line(rec, irq_info=irq_info))
                    body.write("\n")
                    lines += 1
        ncpus = run.ncpus or max_cpu + 1
        with open(path, "w", buffering=1 << 20) as fh, open(tmp) as body:
            fh.write(header(lines, lines, max(ncpus, 1), irq_info=irq_info))
            while chunk := body.read(1 << 20):
                fh.write(chunk)
    finally:
        tmp.unlink(missing_ok=True)
    res = ExportResult(path, n, lines)
    if generic:
        res.notes.append(f"{generic} event(s) not in the catalog or missing fields: written as field=value")
    return res


# --- tables ----------------------------------------------------------------------------

def _columns(run: Run) -> list[str]:
    cols = list(HEADER_KEYS)
    seen = set(cols)
    for rec in run.iter_events(warn=False):
        for k in rec:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols


def _cell(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return orjson.dumps(v).decode()
    return v


def export_csv(run: Run, path: Path) -> ExportResult:
    """One row per event, header = union of keys (two streaming passes)."""
    cols = _columns(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", newline="", buffering=1 << 20) as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for rec in run.iter_events():
            w.writerow([_cell(rec.get(c)) for c in cols])
            n += 1
    return ExportResult(path, n, n + 1)


_I64 = 2**63 - 1


def _infer(run: Run) -> dict[str, str]:
    """Column → arrow type name from one pass (see module doc)."""
    kinds: dict[str, set[str]] = {}
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    for c in HEADER_KEYS:
        kinds[c] = set()
    for rec in run.iter_events(warn=False):
        for k, v in rec.items():
            ks = kinds.get(k)
            if ks is None:
                ks = kinds[k] = set()
            t = type(v)
            if t is int:
                ks.add("int")
                if v < lo.get(k, 0):
                    lo[k] = v
                if v > hi.get(k, 0):
                    hi[k] = v
            elif t is bool:
                ks.add("bool")
            elif t is float:
                ks.add("float")
            elif v is None:
                continue
            else:
                ks.add("str")
    out = {}
    for k, ks in kinds.items():
        if ks == {"bool"}:
            out[k] = "bool"
        elif ks == {"int"}:
            if lo.get(k, 0) >= -_I64 - 1 and hi.get(k, 0) <= _I64:
                out[k] = "int64"
            elif lo.get(k, 0) >= 0 and hi.get(k, 0) < 2**64:
                out[k] = "uint64"
            else:
                out[k] = "string"
        elif ks and ks <= {"int", "float"}:
            out[k] = "float64"
        elif not ks:
            out[k] = "int64" if k in ("ts", "cpu", "pid") else "string"
        else:
            out[k] = "string"
    return out


def _batches(run: Run, cols: list[str], size: int) -> Iterator[dict[str, list[Any]]]:
    batch: dict[str, list[Any]] = {c: [] for c in cols}
    n = 0
    for rec in run.iter_events():
        for c in cols:
            batch[c].append(rec.get(c))
        n += 1
        if n == size:
            yield batch
            batch = {c: [] for c in cols}
            n = 0
    if n:
        yield batch


def export_parquet(run: Run, path: Path, batch_rows: int = 65536) -> ExportResult:
    """The events as a Parquet table (needs pyarrow; typed columns, see module doc)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("parquet export needs pyarrow: pip install pyarrow "
                          "(or pip install 'smpmem[analysis]')") from None
    types = _infer(run)
    cols = list(types)
    arrow = {"int64": pa.int64(), "uint64": pa.uint64(), "float64": pa.float64(), "bool": pa.bool_(),
             "string": pa.string()}
    schema = pa.schema([(c, arrow[types[c]]) for c in cols])

    def conv(c: str, vals: list[Any]) -> Any:
        if types[c] == "string":
            vals = [None if v is None else v if isinstance(v, str) else
                    orjson.dumps(v).decode() if isinstance(v, (list, dict)) else str(v) for v in vals]
        elif types[c] == "float64":
            vals = [None if v is None else float(v) for v in vals]
        return pa.array(vals, type=arrow[types[c]])

    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with pq.ParquetWriter(path, schema) as w:
        for b in _batches(run, cols, batch_rows):
            w.write_batch(pa.record_batch([conv(c, b[c]) for c in cols], schema=schema))
            n += len(b["ts"])
    return ExportResult(path, n, n)
