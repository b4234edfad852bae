"""Loading a scenario: TOML text -> :class:`Scenario`, or one :class:`ScenarioError`.

The pipeline: read the file; ``tomllib`` parses it (a syntax error names
line and column); overrides are merged in; pydantic validates the structure
and ``_check.py`` the relations between fields. Every failure becomes a
:class:`ScenarioError` whose problems carry the dotted path, the line found
by scanning the text (``_toml_pos.py``), and a message rewritten from
pydantic's: what was given, what is allowed, and for an unknown key the
closest known one. Pydantic's documentation URLs never reach the user.
"""

from __future__ import annotations

import re
import tomllib
import types
from pathlib import Path
from typing import Any, Mapping, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, ValidationError

from ._check import did_you_mean
from ._errors import Loc, Problem, ScenarioError, dotted
from ._paths import scenario_dir
from ._schema import STEP_TYPES, Scenario
from ._toml_pos import key_lines, line_of
from ._units import Unit, show

__all__ = ["load_scenario", "parse_scenario"]


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read and validate the scenario file at ``path``; raise :class:`ScenarioError` if it is wrong.

    ``overrides`` replace values of the file before validation, by dotted
    path (``{"run.seed": 7, "process[0].count": 4}``) or as nested tables
    (``{"run": {"seed": 7}}``); a problem in one says "(override)".
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ScenarioError("no such file", str(path)) from None
    except IsADirectoryError:
        raise ScenarioError("is a directory, not a scenario file", str(path)) from None
    except UnicodeDecodeError as e:
        raise ScenarioError(f"is not UTF-8 text (byte {e.start}): a scenario is a TOML file", str(path)) from None
    except OSError as e:
        raise ScenarioError(f"cannot read: {e.strerror or e}", str(path)) from None
    return parse_scenario(text, str(path), overrides)


def parse_scenario(text: str, source: str = "<string>", overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Validate the scenario in ``text``; ``source`` names it in errors and gives the default name."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError([_syntax_problem(str(e))], source) from None

    overridden: list[Loc] = []
    if overrides:
        problems = _apply_overrides(data, overrides, overridden)
        if problems:
            raise ScenarioError(problems, source)
    data.setdefault("name", _default_name(source))

    lines: dict[Loc, int] = {}

    def origin(loc: Loc) -> str | None:
        return "override" if any(tuple(loc[: len(o)]) == o for o in overridden) else None

    def line(loc: Loc) -> int | None:
        if not lines:  # scanned only when there is something to point at
            lines.update(key_lines(text))
        return line_of(lines, loc)

    try:
        with scenario_dir(_source_dir(source)):
            return Scenario.model_validate(data)
    except ValidationError as e:
        problems = _explained(e, data)
        raise ScenarioError(problems).located(source, line, origin) from None
    except ScenarioError as e:  # from the cross-field checks
        raise e.located(source, line, origin) from None


# --- helpers -------------------------------------------------------------------

def _source_dir(source: str) -> Path | None:
    """The directory relative host paths are read from: the scenario file's (None for ``<string>``)."""
    if source.startswith("<"):
        return None
    return Path(source).resolve().parent


def _default_name(source: str) -> str:
    if source.startswith("<"):
        return "scenario"
    stem = Path(source).stem
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", stem).strip("-.") or "scenario"
    return name[:100]


_TOML_AT = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)\s*$", re.S)


def _syntax_problem(msg: str) -> Problem:
    m = _TOML_AT.match(msg)
    if not m:
        return Problem((), f"not valid TOML: {msg}")
    what, line, col = m.group(1), int(m.group(2)), int(m.group(3))
    what = what[:1].lower() + what[1:]
    return Problem((), f"not valid TOML: {what} (column {col})", line=line)


_INDEX = re.compile(r"^([^\[\]]+)((?:\[\d+\])*)$")


def _parse_dotted(path: str) -> list[Any] | None:
    """``"process[0].count"`` -> ``["process", 0, "count"]``; None when malformed."""
    out: list[Any] = []
    for part in path.split("."):
        m = _INDEX.match(part.strip())
        if not m:
            return None
        out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return out


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], done: list[Loc]) -> list[Problem]:
    """Merge ``overrides`` into ``data`` in place (nested tables merge key by key); record each path set in ``done``."""
    problems: list[Problem] = []
    items: list[tuple[list[Any], Any]] = []

    def flatten(prefix: list[Any], mapping: Mapping[str, Any]) -> None:
        for k, v in mapping.items():
            sub = _parse_dotted(str(k))
            if sub is None:
                problems.append(Problem(tuple(prefix), f"override {k!r} is not a dotted path such as 'run.seed' or "
                                                       f"'process[0].count'", origin="override"))
            elif isinstance(v, Mapping) and v:
                flatten(prefix + sub, v)
            else:
                items.append((prefix + sub, v))

    flatten([], overrides)
    for path, value in items:
        node: Any = data
        for j, el in enumerate(path):
            last = j == len(path) - 1
            if isinstance(el, int):
                if not isinstance(node, list) or el >= len(node):
                    have = len(node) if isinstance(node, list) else 0
                    problems.append(Problem(tuple(path[: j + 1]), f"override refers to entry {el}, but there "
                                                                   f"{'is' if have == 1 else 'are'} {have}",
                                            origin="override"))
                    break
            elif not isinstance(node, dict):
                problems.append(Problem(tuple(path[:j]), f"override {dotted(path)!r} goes inside a value that is "
                                                         f"not a table", origin="override"))
                break
            if last:
                node[el] = value
                done.append(tuple(path))
            elif isinstance(el, int):
                node = node[el]
            else:
                node = node.setdefault(el, [] if isinstance(path[j + 1], int) else {})
    return problems


# --- pydantic errors -> problems --------------------------------------------------

def _explained(e: ValidationError, data: Any) -> list[Problem]:
    """One problem per pydantic error, less a missing key that a misspelt sibling already explains."""
    errors = e.errors(include_url=False)
    problems = [_problem(err, data) for err in errors]
    meant: set[Loc] = set()
    for err, p in zip(errors, problems):
        if err["type"] == "extra_forbidden" and "did you mean" in p.message:
            m = re.search(r"did you mean '([^']+)'", p.message)
            if m:
                meant.add(p.loc[:-1] + (m.group(1),))
    return [p for err, p in zip(errors, problems) if not (err["type"] == "missing" and p.loc in meant)]


def _strip(t: Any) -> Any:
    """Remove Annotated and Optional wrappers."""
    while True:
        origin = get_origin(t)
        if origin is not None and getattr(t, "__metadata__", None) is not None:
            t = get_args(t)[0]
            continue
        if origin is Union or origin is types.UnionType:
            args = [a for a in get_args(t) if a is not type(None)]
            if len(args) == 1:
                t = args[0]
                continue
        return t


def _metadata(t: Any) -> list[Any]:
    """Constraint metadata of an annotation, through Optional and Annotated layers."""
    out: list[Any] = []
    while True:
        meta = getattr(t, "__metadata__", None)
        if meta is not None:
            out.extend(meta)
            t = get_args(t)[0]
            continue
        origin = get_origin(t)
        if origin is Union or origin is types.UnionType:
            args = [a for a in get_args(t) if a is not type(None)]
            if len(args) == 1:
                t = args[0]
                continue
        return out


def _is_step_union(t: Any) -> bool:
    t = _strip(t)
    return get_origin(t) in (Union, types.UnionType) and all(a in STEP_TYPES.values() for a in get_args(t))


class _Site:
    """Where a pydantic error points: the user-facing loc and the schema there."""

    def __init__(self, loc: Loc, data: Any) -> None:
        self.loc: list[Any] = []
        self.model: type[BaseModel] | None = None  # model holding the last key
        self.meta: list[Any] = []  # constraints of the value at loc
        self.annotation: Any = None
        typ: Any = Scenario
        node: Any = data
        for el in loc:
            t = _strip(typ)
            if _is_step_union(t):
                op = node.get("op") if isinstance(node, dict) else None
                if isinstance(el, str) and el in STEP_TYPES and el == op:
                    typ = STEP_TYPES[el]
                    continue
            if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(el, str):
                self.model = t
                f = t.model_fields.get(el)
                self.loc.append(el)
                node = node.get(el) if isinstance(node, dict) else None
                if f is None:
                    typ, self.meta, self.annotation = None, [], None
                else:
                    typ, self.meta, self.annotation = f.annotation, list(f.metadata) + _metadata(f.annotation), f.annotation
                continue
            origin = get_origin(t)
            if isinstance(el, int) and origin in (list, tuple):
                self.loc.append(el)
                node = node[el] if isinstance(node, list) and 0 <= el < len(node) else None
                typ = get_args(t)[0] if get_args(t) else None
                self.meta, self.annotation = _metadata(typ), typ
                self.model = None
                continue
            if origin is dict and isinstance(el, str):
                self.loc.append(el)
                node = node.get(el) if isinstance(node, dict) else None
                typ = get_args(t)[1] if get_args(t) else None
                self.meta, self.annotation = _metadata(typ), typ
                continue
            # A union member's name or other internal segment: not part of the user's path.
            if isinstance(el, int) or (isinstance(node, dict) and el in node):
                self.loc.append(el)

    def bounds(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.meta:
            for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt"), (MinLen, "min_length"), (MaxLen, "max_length")):
                if isinstance(m, cls):
                    out[key] = getattr(m, key)
            if hasattr(m, "metadata"):  # a FieldInfo inside Annotated
                for mm in m.metadata:
                    for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt")):
                        if isinstance(mm, cls):
                            out[key] = getattr(mm, key)
        return out

    def unit(self) -> Unit | None:
        return next((m for m in self.meta if isinstance(m, Unit)), None)


_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string (in quotes)", "float_type": "a number", "float_parsing": "a number",
    "list_type": "a list [ … ]", "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
}


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if isinstance(value, str):
        return f"the string {show(value)}"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list {show(value)}"
    return show(value)


def _range_words(b: dict[str, Any]) -> str:
    if "ge" in b and "le" in b:
        return f"between {b['ge']} and {b['le']}"
    lo = f"at least {b['ge']}" if "ge" in b else (f"greater than {b['gt']}" if "gt" in b else None)
    hi = f"at most {b['le']}" if "le" in b else (f"less than {b['lt']}" if "lt" in b else None)
    if lo and hi:
        return f"{lo} and {hi}"
    if "ge" in b:
        return f"at least {b['ge']}"
    if "gt" in b:
        return f"greater than {b['gt']}"
    if "le" in b:
        return f"at most {b['le']}"
    if "lt" in b:
        return f"less than {b['lt']}"
    return "in range"


def _problem(err: Mapping[str, Any], data: Any) -> Problem:
    site = _Site(tuple(err["loc"]), data)
    loc = tuple(site.loc)
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}

    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = list(site.model.model_fields) if site.model else []
        what = "section" if len(loc) == 1 else "key"
        return Problem(loc, f"unknown {what} {key!r}{did_you_mean(key, allowed)}"
                            + (f" (allowed: {', '.join(allowed)})" if allowed else ""))
    if kind == "missing":
        key = str(loc[-1]) if loc else "?"
        doc = ""
        if site.model is not None and key in site.model.model_fields:
            doc = site.model.model_fields[key].description or ""
        if doc[:2] != doc[:2].upper():  # keep acronyms: "CPU time", not "cPU time"
            doc = doc[:1].lower() + doc[1:]
        doc = doc.rstrip(".")
        return Problem(loc, "is required but missing" + (f": {doc}" if doc else ""))
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", value))
        ops = list(STEP_TYPES)
        return Problem(loc + ("op",), f"unknown op {show(tag)}{did_you_mean(tag, ops, show)} (allowed: {', '.join(ops)})")
    if kind == "union_tag_not_found":
        return Problem(loc, f"a step needs an op (one of: {', '.join(STEP_TYPES)}), got {_got(value)}")
    if kind == "literal_error":
        choices = [a for a in get_args(_strip(site.annotation))] if site.annotation is not None else []
        if not choices:
            choices_s = str(ctx.get("expected", ""))
        else:
            choices_s = ", ".join(show(c) for c in choices)
        hint = did_you_mean(value, [str(c) for c in choices], show) if isinstance(value, str) else ""
        return Problem(loc, f"got {show(value)}{hint} (allowed: {choices_s})")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        b = {**site.bounds(), **ctx}
        return Problem(loc, f"must be {_range_words(b)}, got {show(value)}")
    if kind in ("too_short", "too_long"):
        b = site.bounds()
        lo, hi = b.get("min_length"), b.get("max_length")
        n = len(value) if hasattr(value, "__len__") else "?"
        if lo is not None and lo == hi:
            need = f"exactly {lo} entries"
        elif lo is not None and hi is not None:
            need = f"{lo} to {hi} entries"
        elif lo is not None:
            need = f"at least {lo} entries"
        else:
            need = f"at most {hi} entries"
        return Problem(loc, f"needs {need}, got {n}: {show(value)}")
    if kind in ("string_too_short", "string_too_long"):
        return Problem(loc, f"must be {_range_words({'ge': ctx.get('min_length', 0), 'le': ctx.get('max_length', '…')})} "
                            f"characters long, got {show(value)}")
    if kind == "value_error":
        msg = str(ctx.get("error", err.get("msg", ""))) if ctx.get("error") is not None else str(err.get("msg", ""))
        msg = msg.removeprefix("Value error, ")
        return Problem(loc, msg)
    if kind in _TYPE_WORDS:
        want = _TYPE_WORDS[kind]
        u = site.unit()
        if u is not None:
            want = f"a {u.kind}"
        hint = ""
        if kind == "list_type" and isinstance(value, dict) and loc and all(isinstance(x, str) for x in loc):
            hint = f" (to declare entries write [[{dotted(loc)}]] with double brackets, one per entry)"
        elif kind in ("model_type", "dict_type") and isinstance(value, list) and loc and all(isinstance(x, str) for x in loc):
            hint = f" (write [{dotted(loc)}] with single brackets)"
        elif kind == "int_type" and isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            hint = " (write it without quotes)"
        elif kind == "bool_type" and isinstance(value, str):
            hint = " (write true or false without quotes)"
        return Problem(loc, f"expected {want}, got {_got(value)}{hint}")
    # Anything else: pydantic's own sentence, without its decorations.
    msg = str(err.get("msg", kind))
    msg = re.sub(r"\s*\[type=.*$", "", msg)
    msg = re.sub(r"https?://errors\.pydantic\.dev\S*", "", msg).strip()
    return Problem(loc, f"{msg[:1].lower() + msg[1:]}, got {show(value)}")
