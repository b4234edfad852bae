"""Reading a finished run directory: run.json, events.jsonl, proc/ and snapshots/.

The reader is the only place that opens a run's files. It never imports the
model (``smpmem.sim``, ``smpmem.mm``): a run directory is data.

``events.jsonl`` is read as a stream, one ``orjson.loads`` per line, no
list of records kept. It is tolerant, as DESIGN.md §8 asks: a line that is
not a JSON object with the common header (``ts``, ``cpu``, ``pid``,
``event``) is skipped with a :class:`DamagedLogWarning` naming its line
number, and recorded in :attr:`Run.damage` so reports can say what was
skipped. A last line without its newline that does not parse is reported as
truncated (a run killed mid-line). Blank lines are skipped silently.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

import orjson

from ._procfiles import parse_meminfo, parse_vmstat, parse_zoneinfo

if TYPE_CHECKING:  # pragma: no cover
    import pandas

EVENT_FILES = ("events.jsonl", "events.jsonl.gz", "events.jsonl.xz", "events.jsonl.bz2")
HEADER_KEYS = ("ts", "cpu", "pid", "comm", "event")
MAX_WARNINGS = 20  # individual warnings issued per pass; the rest are counted in Damage


class RunDirError(Exception):
    """A run directory that cannot be analysed (missing or unreadable run.json, no such directory)."""


class DamagedLogWarning(UserWarning):
    """A line of events.jsonl was skipped: corrupt, truncated or without the common header."""


@dataclass(frozen=True)
class Damage:
    """One skipped line of events.jsonl."""

    line: int  # 1-based line number in events.jsonl
    reason: str

    def __str__(self) -> str:
        return f"events.jsonl line {self.line}: {self.reason}"


def _open_events(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".xz":
        return lzma.open(path, "rb")
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    return open(path, "rb", buffering=1 << 20)


class Run:
    """A finished run directory, opened for reading.

    ``run`` is run.json as a dict, ``counters`` its vmstat counters,
    ``locks`` its per-class lock figures. ``events`` is a pandas DataFrame
    of every readable event, built on first use (pandas is needed only
    there); ``iter_events()`` streams the same records as dicts.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise RunDirError(f"{self.dir}: no such run directory")
        rj = self.dir / "run.json"
        if not rj.is_file():
            raise RunDirError(f"{rj}: missing run.json (not a run directory, or the run did not finish)")
        try:
            run = orjson.loads(rj.read_bytes())
        except orjson.JSONDecodeError as e:
            raise RunDirError(f"{rj}: not valid JSON ({e})") from None
        if not isinstance(run, dict):
            raise RunDirError(f"{rj}: not a JSON object")
        self.run: dict[str, Any] = run
        self.counters: dict[str, int] = dict(run.get("counters") or {})
        self.locks: dict[str, dict[str, int]] = dict(run.get("locks") or {})
        self.damage: list[Damage] = []
        self._events_df: pandas.DataFrame | None = None

    # --- run.json ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.run.get("scenario") or self.dir.name)

    @property
    def virtual_ns(self) -> int:
        return int(self.run.get("virtual_ns") or 0)

    @property
    def ncpus(self) -> int | None:
        cpus = ((self.run.get("config") or {}).get("machine") or {}).get("cpus")
        return int(cpus) if cpus else None

    # --- events.jsonl -----------------------------------------------------------

    @property
    def events_path(self) -> Path | None:
        for name in EVENT_FILES:
            p = self.dir / name
            if p.is_file():
                return p
        return None

    def iter_events(self, *, warn: bool = True) -> Iterator[dict[str, Any]]:
        """Every readable record of events.jsonl, in file order (streaming).

        Skipped lines are appended to :attr:`damage` (cleared at the start of
        each pass) and, unless ``warn`` is false, reported with
        ``warnings.warn(..., DamagedLogWarning)`` (the first MAX_WARNINGS).
        """
        self.damage = []
        path = self.events_path
        if path is None:
            return
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        lineno = 0
        with _open_events(path) as fh:
            for line in fh:
                lineno += 1
                try:
                    rec = loads(line)
                except decode_error:
                    if not line.strip():
                        continue
                    if not line.endswith(b"\n"):
                        reason = "truncated last line (no newline; the run was probably killed mid-line)"
                    else:
                        reason = "not valid JSON (corrupt line skipped)"
                    self._damaged(lineno, reason, warn)
                    continue
                if type(rec) is not dict or "event" not in rec or "ts" not in rec or "cpu" not in rec:
                    self._damaged(lineno, "not an event record (no ts/cpu/event; skipped)", warn)
                    continue
                yield rec

    def _damaged(self, lineno: int, reason: str, warn: bool) -> None:
        d = Damage(lineno, reason)
        self.damage.append(d)
        if warn and len(self.damage) <= MAX_WARNINGS:
            warnings.warn(str(d), DamagedLogWarning, stacklevel=3)

    def last_ts(self) -> int | None:
        """The ts of the last complete record, read from the file's tail (None if unknown)."""
        path = self.events_path
        if path is None or path.suffix != ".jsonl":
            return None
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 65536))
            tail = fh.read()
        for line in reversed(tail.split(b"\n")):
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("ts"), int):
                return rec["ts"]
        return None

    @property
    def events(self) -> "pandas.DataFrame":
        """All readable events as a pandas DataFrame (built once, on first use; needs pandas)."""
        if self._events_df is None:
            try:
                import pandas as pd
            except ImportError:  # pragma: no cover - depends on the environment
                raise ImportError("Run.events needs pandas: pip install 'smpmem[analysis]'") from None
            recs = list(self.iter_events())
            cols = list(HEADER_KEYS)
            seen = set(cols)
            for r in recs:
                for k in r:
                    if k not in seen:
                        seen.add(k)
                        cols.append(k)
            self._events_df = pd.DataFrame.from_records(recs, columns=cols)
        return self._events_df

    # --- proc/ and snapshots/ ---------------------------------------------------

    @property
    def proc_dir(self) -> Path:
        return self.dir / "proc"

    def snapshots(self) -> list[tuple[int, Path]]:
        """Periodic snapshots as (ts_ns, directory), in time order."""
        d = self.dir / "snapshots"
        if not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            if p.is_dir() and p.name.isdigit():
                out.append((int(p.name), p))
        return sorted(out)

    def proc_states(self, name: str) -> list[tuple[int, Path]]:
        """Every copy of /proc file ``name``: the snapshots' and the end's (at virtual_ns), in time order."""
        out = [(ts, d / name) for ts, d in self.snapshots() if (d / name).is_file()]
        end = self.proc_dir / name
        if end.is_file():
            t_end = self.virtual_ns
            if not out or out[-1][0] < t_end:
                out.append((t_end, end))
        return out

    def zoneinfo_timeline(self) -> list[tuple[int, list[dict[str, Any]]]]:
        """Parsed zoneinfo at every snapshot and at the end: [(ts, [zone dicts])]."""
        return [(ts, parse_zoneinfo(p.read_text())) for ts, p in self.proc_states("zoneinfo")]

    def vmstat_timeline(self) -> list[tuple[int, dict[str, int]]]:
        """Parsed vmstat at every snapshot and at the end: [(ts, {name: value})]."""
        return [(ts, parse_vmstat(p.read_text())) for ts, p in self.proc_states("vmstat")]

    def meminfo(self) -> dict[str, int] | None:
        """proc/meminfo at the end, in kB (None if the run has none)."""
        p = self.proc_dir / "meminfo"
        return parse_meminfo(p.read_text()) if p.is_file() else None


def load(run_dir: str | os.PathLike[str]) -> Run:
    """Open a run directory for analysis (raises :class:`RunDirError` if run.json is missing)."""
    return Run(run_dir)
