"""Checks across fields of a structurally valid scenario.

Each check appends a :class:`Problem` with the path of the field to blame
and a message saying what was given and what is allowed; nothing raises
here. The checks, by section:

- machine: i386 limits (64 GiB with PAE, 64 CPUs); each node at least
  1 MiB; explicit zones allowed by the layout, on an existing node, inside
  RAM and their node, not overlapping, one of each type per node, in zone
  order, with some lowmem; unique disk, swap and file names; swap and
  files on a declared disk and fitting in it; error sectors on the disk.
- tunables: ``*_bytes`` and ``*_ratio`` not both set (the kernel keeps one);
  ``dirty_bytes`` at least two pages; ``pcp_high`` ≥ ``pcp_batch``;
  ``min_free_kbytes`` below RAM.
- processes: affinity CPUs exist; exactly one of program and builtin;
  the program walked in order with the regions and files that exist at
  each step (see :func:`_walk`); a known builtin's params valid and the
  program it expands to walked the same way (an unknown name is left to
  the runner, which lists the known ones).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ._errors import Loc, Problem, dotted
from ._units import MiB, PAGE_SIZE, fmt_size

if TYPE_CHECKING:
    from ._schema import Machine, Process, Scenario


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` was most likely meant to be (difflib), or None."""
    choices = list(choices)
    same_case = [c for c in choices if c.lower() == word.lower()]
    hit = same_case or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return hit[0] if hit else None


def did_you_mean(word: str, choices: Sequence[str], quote: Any = repr) -> str:
    """``"; did you mean 'ram'?"`` for the closest choice, or ``""``."""
    hit = closest(word, choices)
    return f"; did you mean {quote(hit)}?" if hit is not None else ""


def _rng(lo: int, hi: int) -> str:
    return f"[{fmt_size(lo)}, {fmt_size(hi)})"


class _Report:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._seen: set[Loc] = set()

    def __call__(self, loc: Loc, message: str) -> None:
        if loc not in self._seen:
            self._seen.add(loc)
            self.problems.append(Problem(tuple(loc), message))


def check(sc: "Scenario") -> list[Problem]:
    """Every cross-field problem in ``sc``, in the order the file gives them."""
    report = _Report()
    _check_machine(sc.machine, report)
    _check_tunables(sc, report)
    for i, proc in enumerate(sc.process):
        _check_process(sc, i, proc, report)
    return report.problems


# --- machine -----------------------------------------------------------------

def _check_machine(m: "Machine", report: _Report) -> None:
    from ._schema import CPUS_MAX, RAM_MAX, ZONE_LIMITS, ZONE_NAMES

    M: Loc = ("machine",)
    if m.ram > RAM_MAX[m.layout]:
        report(M + ("ram",), f"must be at most {fmt_size(RAM_MAX[m.layout])} with layout \"i386\" "
                             f"(PAE's 36-bit physical addresses), got {fmt_size(m.ram)}")
    if m.cpus > CPUS_MAX[m.layout]:
        report(M + ("cpus",), f"must be at most {CPUS_MAX[m.layout]} with layout {m.layout!r} (NR_CPUS), got {m.cpus}")
    share = m.ram // m.nodes
    if share < 1 * MiB:
        report(M + ("nodes",), f"{m.nodes} nodes leave {fmt_size(share)} of RAM each; each node needs at least 1MiB")

    # Zones.
    allowed = list(ZONE_LIMITS[m.layout])
    nodes = m.node_ranges()
    for i, z in enumerate(m.zone):
        Z = M + ("zone", i)
        if z.name not in allowed:
            report(Z + ("name",), f"zone {z.name!r} does not exist with layout {m.layout!r} "
                                  f"(allowed: {', '.join(allowed)})")
        if z.node >= m.nodes:
            report(Z + ("node",), f"node {z.node} does not exist: machine.nodes is {m.nodes} (nodes 0 … {m.nodes - 1})")
        elif z.end > m.ram:
            report(Z + ("size",), f"zone {z.name} {_rng(z.start, z.end)} ends beyond machine.ram ({fmt_size(m.ram)}); "
                                  f"a zone must lie inside RAM")
        else:
            lo, hi = nodes[z.node]
            if z.start < lo or z.end > hi:
                report(Z + ("start",), f"zone {z.name} {_rng(z.start, z.end)} is not inside node {z.node}'s RAM "
                                       f"{_rng(lo, hi)}")
    order = sorted(range(len(m.zone)), key=lambda i: (m.zone[i].start, i))
    for a, b in zip(order, order[1:]):
        za, zb = m.zone[a], m.zone[b]
        if zb.start < za.end:
            report(M + ("zone", b, "start"), f"zone {zb.name} {_rng(zb.start, zb.end)} overlaps machine.zone[{a}] "
                                             f"({za.name} {_rng(za.start, za.end)}); zones must not overlap")
    for nid in range(m.nodes):
        in_node = [i for i in order if m.zone[i].node == nid]
        first: dict[str, int] = {}
        for i in in_node:
            z = m.zone[i]
            if z.name in first:
                report(M + ("zone", i, "name"), f"node {nid} already has a {z.name} zone (machine.zone[{first[z.name]}]); "
                                                f"a node has at most one zone of each type")
            first.setdefault(z.name, i)
        ranks = [(ZONE_NAMES.index(m.zone[i].name), i) for i in in_node]
        for (ra, ia), (rb, ib) in zip(ranks, ranks[1:]):
            if rb < ra:
                report(M + ("zone", ib, "name"),
                       f"zone {m.zone[ib].name} lies above zone {m.zone[ia].name} (machine.zone[{ia}]); zones must "
                       f"follow the order {', '.join(allowed)} from low to high addresses")
    if m.zone and all(z.name == "HighMem" for z in m.zone):
        report(M + ("zone",), "needs a lowmem zone (DMA, DMA32 or Normal): the kernel cannot allocate its own "
                              "memory from HighMem alone")

    # Disks, swap areas, files.
    disk_names = [d.name for d in m.disk]
    for i, d in enumerate(m.disk):
        if d.name in disk_names[:i]:
            report(M + ("disk", i, "name"), f"disk {d.name!r} is declared twice (first at machine.disk[{disk_names.index(d.name)}])")
        if d.size is not None:
            sectors = d.size // 512
            for j, s in enumerate(d.error_sectors):
                if s >= sectors:
                    report(M + ("disk", i, "error_sectors", j), f"sector {s} is beyond the disk's {sectors} sectors "
                                                                  f"({fmt_size(d.size)})")
    used: dict[str, int] = {}
    for kind, key in (("swap", "name"), ("file", "path")):
        entries = getattr(m, kind)
        names = [getattr(e, key) for e in entries]
        for i, e in enumerate(entries):
            E = M + (kind, i)
            if names[i] in names[:i]:
                report(E + (key,), f"{kind} {names[i]!r} is declared twice (first at machine.{kind}[{names.index(names[i])}])")
            if not m.disk:
                report(E + ("disk",), f"no disk is declared: add a [[machine.disk]] (e.g. name = \"sda\") for the {kind} to live on")
                continue
            d = m.disk_of(e.disk)
            if d is None:
                report(E + ("disk",), f"no disk named {e.disk!r}{did_you_mean(e.disk, disk_names)} "
                                      f"(declared disks: {', '.join(disk_names)})")
                continue
            used[d.name] = used.get(d.name, 0) + e.size
            if d.size is not None and used[d.name] > d.size:
                report(E + ("size",), f"does not fit on disk {d.name!r}: its swap areas and files need "
                                      f"{fmt_size(used[d.name])} by this one, the disk holds {fmt_size(d.size)}")


# --- tunables ----------------------------------------------------------------

def _check_tunables(sc: "Scenario", report: _Report) -> None:
    t = sc.tunables
    T: Loc = ("tunables",)
    for b, r in (("dirty_bytes", "dirty_ratio"), ("dirty_background_bytes", "dirty_background_ratio")):
        nb, nr = getattr(t, b), getattr(t, r)
        if nb and nr:
            report(T + (b,), f"set {b} or {r}, not both: the kernel keeps one and zeroes the other "
                             f"(got {b} = {fmt_size(nb)}, {r} = {nr})")
    if 0 < t.dirty_bytes < 2 * PAGE_SIZE:
        report(T + ("dirty_bytes",), f"must be 0 (unused) or at least 2 pages (8KiB), got {t.dirty_bytes}")
    if t.pcp_batch is not None and t.pcp_high is not None and t.pcp_high < t.pcp_batch:
        report(T + ("pcp_high",), f"must be at least pcp_batch ({t.pcp_batch}), got {t.pcp_high}")
    if t.min_free_kbytes is not None and t.min_free_kbytes * 1024 >= sc.machine.ram:
        report(T + ("min_free_kbytes",), f"{t.min_free_kbytes} KiB is not less than machine.ram "
                                         f"({sc.machine.ram // 1024} KiB)")


# --- processes ---------------------------------------------------------------

def _check_process(sc: "Scenario", i: int, p: "Process", report: _Report) -> None:
    P: Loc = ("process", i)
    n = sc.machine.cpus
    if p.cpus is not None:
        if not p.cpus:
            report(P + ("cpus",), "must name at least one CPU (leave it out to allow every CPU)")
        for j, c in enumerate(p.cpus):
            if c >= n:
                report(P + ("cpus", j), f"CPU {c} does not exist: machine.cpus is {n} (CPUs 0 … {n - 1})")
            elif c in p.cpus[:j]:
                report(P + ("cpus", j), f"CPU {c} is listed twice")
    if p.program is not None and p.builtin is not None:
        report(P + ("builtin",), "give either program or builtin, not both")
    elif p.program is None and p.builtin is None:
        report(P, "needs a program (a list of steps) or a builtin (the name of a built-in program)")
    if p.params and p.builtin is None:
        report(P + ("params",), "params are only for a builtin program")
    files = {f.path: f.size for f in sc.machine.file}
    if p.program is not None:
        _walk(p.program, P + ("program",), _Scope(files=files), report)
    elif p.builtin is not None:
        _check_builtin(p, P, files, report)


def _check_builtin(p: "Process", P: Loc, files: dict[str, int | None], report: _Report) -> None:
    """Expand the built-in program with its params and check the steps it gives like a written program."""
    from smpmem.workload._builtins import BUILTINS, BuiltinError, builtin_program, resolved_params

    if p.builtin not in BUILTINS:
        return  # the name is the runner's to refuse (the CLI does, with the known names): the language has none
    try:
        steps = builtin_program(p.builtin or "", p.params)
        params = resolved_params(p.builtin or "", p.params)
    except BuiltinError as e:
        report(P + e.loc, e.message)
        return
    if params != p.params:
        # Host paths (a trace) made absolute, as a replay step's file is: the loaded scenario no longer
        # depends on the directory it was loaded from. Set once, while the scenario is being validated.
        object.__setattr__(p, "params", params)
    inner = _Report()
    _walk(steps, ("program",), _Scope(files=dict(files)), inner)
    for prob in inner.problems:
        report(P + ("params",), f"the program builtin {p.builtin!r} makes of these params is wrong at "
                                f"{dotted(prob.loc)}: {prob.message}")


@dataclass
class _Region:
    size: int
    kind: str  # "mmap" or "malloc"
    where: Loc
    prot: str | None  # None once a part of it was mprotected differently
    piece: bool = False  # a for_each piece of a bigger region


@dataclass
class _Scope:
    """What exists at one point of a program: regions by name, files by path."""

    files: dict[str, int | None]
    regions: dict[str, _Region] = field(default_factory=dict)
    gone: dict[str, tuple[str, Loc]] = field(default_factory=dict)  # name -> ("unmapped" | "freed", where)

    def copy(self) -> "_Scope":
        return _Scope(dict(self.files), dict(self.regions), dict(self.gone))


def _region(scope: _Scope, name: str, loc: Loc, report: _Report, verb: str) -> _Region | None:
    r = scope.regions.get(name)
    if r is not None:
        return r
    if name in scope.gone:
        how, where = scope.gone[name]
        report(loc, f"{verb} region {name!r}, which was {how} at {dotted(where)}")
        return None
    here = sorted(scope.regions)
    known = f"regions mapped here: {', '.join(here)}" if here else "no region is mapped here: create one with an mmap or malloc step first"
    report(loc, f"no region named {name!r} is mapped at this point{did_you_mean(name, here)} ({known})")
    return None


def _file(scope: _Scope, path: str, loc: Loc, report: _Report) -> None:
    if path in scope.files:
        return
    here = sorted(scope.files)
    report(loc, f"no file {path!r} exists at this point{did_you_mean(path, here)} "
                f"(declare it as a [[machine.file]] or create it with a write step first)")


def _range(r: _Region, name: str, offset: int, size: int | None, loc: Loc, report: _Report, verb: str) -> None:
    """Check that ``[offset, offset+size)`` lies inside region ``r``."""
    if offset >= r.size:
        report(loc + ("offset",), f"{verb} beyond its mapping: offset {fmt_size(offset)} is at or past the end of "
                                  f"region {name!r} ({fmt_size(r.size)}, from {dotted(r.where)})")
    elif size is not None and offset + size > r.size:
        report(loc + ("size",), f"{verb} beyond its mapping: offset {fmt_size(offset)} + size {fmt_size(size)} = "
                                f"{fmt_size(offset + size)} exceeds region {name!r} ({fmt_size(r.size)}, "
                                f"from {dotted(r.where)})")


_PATTERN_ONLY = {"stride": ("strided",), "zipf_s": ("zipf",), "hot_fraction": ("random", "zipf")}


def _walk(steps: Sequence[Any], prefix: Loc, scope: _Scope, report: _Report, again: str = "") -> None:
    """Check ``steps`` in order against ``scope``, which they update as they map, free and create.

    ``again`` is set when a loop's body is walked a second time, to catch a
    body that frees what its next iteration uses; problems already reported
    at a path are not repeated.
    """
    exited: Loc | None = None
    for i, step in enumerate(steps):
        loc = prefix + (i,)
        if exited is not None:
            report(loc, f"is never reached: the program exits at {dotted(exited)}")
            return
        _step(step, loc, scope, report, again)
        if step.op == "exit":
            exited = loc


def _step(s: Any, loc: Loc, scope: _Scope, report: _Report, again: str) -> None:
    def rep(at: Loc, msg: str) -> None:
        report(at, msg + again)

    op = s.op
    if op == "mmap":
        flags = s.flags.split("|")
        if s.file is not None:
            _file(scope, s.file, loc + ("file",), rep)  # type: ignore[arg-type]
            if "anonymous" in flags:
                rep(loc + ("flags",), f"'anonymous' and file {s.file!r} exclude each other (got flags {s.flags!r})")
        elif "anonymous" not in flags:
            rep(loc + ("flags",), f"a mapping without a file needs 'anonymous' in flags (got {s.flags!r})")
        if ("fixed" in flags or "fixed_noreplace" in flags) and s.addr is None:
            rep(loc + ("flags",), "'fixed' needs an addr")
        scope.regions[s.name] = _Region(s.size, "mmap", loc, s.prot)
        scope.gone.pop(s.name, None)
    elif op == "malloc":
        scope.regions[s.name] = _Region(s.size, "malloc", loc, "rw")
        scope.gone.pop(s.name, None)
    elif op in ("munmap", "mprotect"):
        verb = "unmaps" if op == "munmap" else "changes the protection of"
        r = _region(scope, s.region, loc + ("region",), rep, verb)  # type: ignore[arg-type]
        if r is None:
            return
        if r.kind == "malloc":
            rep(loc + ("region",), f"region {s.region!r} comes from malloc at {dotted(r.where)}; "
                                   f"{op} needs a region from mmap" + ("; release it with free" if op == "munmap" else ""))
            return
        _range(r, s.region, s.offset, s.size, loc, rep, "unmaps" if op == "munmap" else "changes protection")  # type: ignore[arg-type]
        whole = s.offset == 0 and (s.size is None or s.size >= r.size)
        if op == "munmap" and whole:
            del scope.regions[s.region]
            scope.gone[s.region] = ("unmapped", loc)
        elif op == "mprotect":
            r.prot = s.prot if whole else None
    elif op == "free":
        r = _region(scope, s.name, loc + ("name",), rep, "frees")  # type: ignore[arg-type]
        if r is None:
            return
        if r.piece:
            rep(loc + ("name",), f"region {s.name!r} is a piece of a for_each walk ({dotted(r.where)}); free takes the "
                                 f"whole region from malloc")
            return
        if r.kind != "malloc":
            rep(loc + ("name",), f"region {s.name!r} comes from mmap at {dotted(r.where)}; release it with munmap")
            return
        del scope.regions[s.name]
        scope.gone[s.name] = ("freed", loc)
    elif op == "touch":
        r = _region(scope, s.region, loc + ("region",), rep, "touches")  # type: ignore[arg-type]
        for key, patterns in _PATTERN_ONLY.items():
            # Compared with the default, not model_fields_set, so resolved() data loads back.
            if getattr(s, key) != type(s).model_fields[key].default and s.pattern not in patterns:
                rep(loc + (key,), f"applies only to pattern {' or '.join(map(repr, patterns))} (pattern is {s.pattern!r})")
        if r is None:
            return
        _range(r, s.region, s.offset, s.size, loc, rep, "touches")  # type: ignore[arg-type]
        if r.prot == "none":
            rep(loc + ("region",), f"region {s.region!r} has protection \"none\": any access would fault (SIGSEGV)")
        elif s.write and r.prot is not None and "w" not in r.prot:
            rep(loc + ("write",), f"writes to region {s.region!r} whose protection is {r.prot!r}: the store would "
                                  f"fault (SIGSEGV)")
    elif op in ("madvise", "kmap"):
        verb = "advises" if op == "madvise" else "kmaps"
        r = _region(scope, s.region, loc + ("region",), rep, verb)  # type: ignore[arg-type]
        if r is not None:
            _range(r, s.region, s.offset, s.size, loc, rep, verb)  # type: ignore[arg-type]
            if op == "kmap" and r.prot == "none":
                rep(loc + ("region",), f"region {s.region!r} has protection \"none\": get_user_pages would fail (EFAULT)")
    elif op == "for_each":
        r = _region(scope, s.region, loc + ("region",), rep, "walks")  # type: ignore[arg-type]
        if r is None:
            return
        _range(r, s.region, s.offset, s.size, loc, rep, "walks")  # type: ignore[arg-type]
        length = (s.size if s.size is not None else r.size - s.offset)
        if length <= 0:
            return
        shadowed = scope.regions.get(s.name)
        scope.regions[s.name] = _Region(min(s.stride, length), r.kind, loc, r.prot, piece=True)
        _walk(s.body, loc + ("body",), scope, report, again)
        if length > s.stride and not again:
            scope.regions[s.name] = _Region(min(s.stride, length), r.kind, loc, r.prot, piece=True)
            _walk(s.body, loc + ("body",), scope, report, " (for the walk's second piece)")
        scope.regions.pop(s.name, None)
        scope.gone.pop(s.name, None)
        if shadowed is not None:
            scope.regions[s.name] = shadowed
    elif op in ("read", "fsync"):
        _file(scope, s.file, loc + ("file",), rep)  # type: ignore[arg-type]
    elif op == "open":
        if s.create:
            scope.files.setdefault(s.file, 0)
        else:
            _file(scope, s.file, loc + ("file",), rep)  # type: ignore[arg-type]
    elif op == "write":
        old = scope.files.get(s.file) or 0
        scope.files[s.file] = max(old, s.offset + s.size)
    elif op in ("fork", "spawn_threads"):
        _walk(s.program, loc + ("program",), scope.copy(), report, again)
    elif op == "loop":
        _walk(s.body, loc + ("body",), scope, report, again)
        if s.count > 1 and not again:
            _walk(s.body, loc + ("body",), scope, report, " (in the loop's second iteration)")
