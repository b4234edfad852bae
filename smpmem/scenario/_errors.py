"""The one error a scenario can raise: :class:`ScenarioError`, a list of problems.

Each :class:`Problem` names the dotted field path (``process[1].program[3].size``),
the line where the loader found it in the TOML text, and a message saying
what was given and what is allowed. ``str()`` of the error is what the CLI
prints before it exits with status 2: one line when there is one problem,
else a summary line and one line per problem.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

Loc = tuple[Any, ...]

MAX_SHOWN = 50


def dotted(loc: Sequence[Any]) -> str:
    """``("process", 1, "program", 3, "size")`` -> ``process[1].program[3].size``."""
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        else:
            key = str(el)
            if not key or any(not (c.isalnum() or c in "_-") for c in key):
                key = '"' + key.replace('"', '\\"') + '"'
            out += ("." if out else "") + key
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario: where (``loc``, ``line``) and what (``message``)."""

    loc: Loc
    message: str
    line: int | None = None
    origin: str | None = None  # "override" when the value came from overrides, not the file

    @property
    def path(self) -> str:
        return dotted(self.loc)

    def render(self, source: str) -> str:
        where = source
        if self.origin:
            where += f" ({self.origin})"
        elif self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.loc else f"{where}: {self.message}"


class ScenarioError(Exception):
    """A scenario file (or its overrides) is wrong; ``str()`` says where and why.

    ``problems`` lists every problem found, ``source`` names the file.
    """

    def __init__(self, problems: Iterable[Problem] | str, source: str = "<scenario>") -> None:
        if isinstance(problems, str):
            problems = [Problem((), problems)]
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(self.message)

    @property
    def message(self) -> str:
        ps = self.problems
        if len(ps) == 1:
            return ps[0].render(self.source)
        head = f"{self.source}: {len(ps)} errors in the scenario"
        lines = [head] + ["  " + p.render(self.source) for p in ps[:MAX_SHOWN]]
        if len(ps) > MAX_SHOWN:
            lines.append(f"  … and {len(ps) - MAX_SHOWN} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the problems when pickled (a sweep loads scenarios in worker processes).
        return (ScenarioError, (self.problems, self.source))

    def located(self, source: str, line_of: Any, origin_of: Any) -> "ScenarioError":
        """A copy with ``source`` named and lines filled in (``line_of(loc)``, ``origin_of(loc)``)."""
        out = []
        for p in self.problems:
            origin = origin_of(p.loc)
            out.append(replace(p, line=None if origin else (p.line or line_of(p.loc)), origin=origin))
        out.sort(key=lambda p: (p.line is None, p.line or 0))
        return ScenarioError(out, source)
