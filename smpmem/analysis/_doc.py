"""A small document model for the report, rendered as Markdown, as self-contained HTML and as text.

A :class:`Report` is a title, a few header facts and :class:`Section`\\ s
made of blocks: :class:`Para`, :class:`Table`, :class:`Pre` (preformatted,
e.g. the lock_stat table) and :class:`Image` (a PNG file; embedded in the
HTML as base64, linked from the Markdown). The HTML has inline CSS, no
script and no network reference, so it opens in any browser from anywhere.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union


@dataclass
class Para:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    align: str = ""  # one char per column, "l" or "r"; default: first left, rest right

    def aligns(self) -> str:
        return self.align or ("l" + "r" * (len(self.columns) - 1))


@dataclass
class Pre:
    text: str


@dataclass
class Image:
    path: Path
    alt: str


Block = Union[Para, Table, Pre, Image]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def para(self, text: str) -> None:
        self.blocks.append(Para(text))

    def table(self, columns: list[str], rows: list[list[Any]], caption: str = "", align: str = "") -> None:
        self.blocks.append(Table(columns, rows, caption, align))


@dataclass
class Report:
    title: str
    facts: list[tuple[str, str]]
    sections: list[Section]
    data: dict[str, Any]

    def section(self, title: str) -> Section | None:
        return next((s for s in self.sections if s.title == title), None)

    # --- Markdown ---------------------------------------------------------------

    def to_markdown(self, base: Path | None = None) -> str:
        """Markdown; image links are relative to ``base`` (the report's directory) when given."""
        out = [f"# {self.title}", ""]
        out += [f"- **{k}**: {v}" for k, v in self.facts]
        out.append("")
        for s in self.sections:
            out += [f"## {s.title}", ""]
            for b in s.blocks:
                out += _md_block(b, base)
                out.append("")
        return "\n".join(out).rstrip() + "\n"

    # --- HTML -------------------------------------------------------------------

    def to_html(self) -> str:
        """One self-contained HTML page: inline CSS, PNGs as data: URIs, no scripts, no network."""
        e = html.escape
        parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                 f"<title>{e(self.title)}</title>", f"<style>{_CSS}</style></head><body>",
                 f"<h1>{e(self.title)}</h1>", '<dl class="facts">']
        for k, v in self.facts:
            parts.append(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>")
        parts.append("</dl>")
        parts.append('<nav><ol>' + "".join(f'<li><a href="#s{i}">{e(s.title)}</a></li>'
                                           for i, s in enumerate(self.sections)) + "</ol></nav>")
        for i, s in enumerate(self.sections):
            parts.append(f'<section id="s{i}"><h2>{e(s.title)}</h2>')
            for b in s.blocks:
                parts.append(_html_block(b))
            parts.append("</section>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


def _md_block(b: Block, base: Path | None) -> list[str]:
    if isinstance(b, Para):
        return [b.text]
    if isinstance(b, Pre):
        return ["```", b.text.rstrip("\n"), "```"]
    if isinstance(b, Image):
        p = b.path
        if base is not None:
            try:
                p = p.relative_to(base)
            except ValueError:
                pass
        return [f"![{b.alt}]({p.as_posix()})"]
    lines = []
    if b.caption:
        lines += [f"*{b.caption}*", ""]
    al = b.aligns()
    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in b.columns) + " |")
    lines.append("|" + "|".join("---:" if a == "r" else ":---" for a in al) + "|")
    for row in b.rows:
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    return lines


def _html_block(b: Block) -> str:
    e = html.escape
    if isinstance(b, Para):
        return f"<p>{e(b.text)}</p>"
    if isinstance(b, Pre):
        return f"<pre>{e(b.text)}</pre>"
    if isinstance(b, Image):
        data = base64.b64encode(b.path.read_bytes()).decode("ascii")
        return f'<figure><img alt="{e(b.alt)}" src="data:image/png;base64,{data}"><figcaption>{e(b.alt)}</figcaption></figure>'
    al = b.aligns()
    head = "".join(f'<th class="{a}">{e(c)}</th>' for a, c in zip(al, b.columns))
    body = "".join("<tr>" + "".join(f'<td class="{a}">{e(_cell(v))}</td>' for a, v in zip(al, row)) + "</tr>"
                   for row in b.rows)
    cap = f'<p class="cap">{e(b.caption)}</p>' if b.caption else ""
    return f"{cap}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#1d1d1f;background:#fff;line-height:1.45}
h1{border-bottom:3px solid #2c6fbb;padding-bottom:.2em}
h2{margin-top:2em;border-bottom:1px solid #ccd;padding-bottom:.15em;color:#1f4f86}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
nav ol{columns:3;font-size:.95em}
table{border-collapse:collapse;margin:.2em 0 .8em;font-size:.92em}
p.cap{font-style:italic;margin:.8em 0 .2em;color:#333}
th,td{border:1px solid #d0d4dc;padding:.25em .6em}
th{background:#eef2f8}td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}td.l,th.l{text-align:left}
tbody tr:nth-child(even){background:#f8f9fb}
pre{background:#f5f6f8;border:1px solid #d0d4dc;padding:.6em;overflow-x:auto;font-size:.8em}
figure{margin:1em 0}img{max-width:100%;border:1px solid #e0e0e0}
figcaption{font-size:.85em;color:#555}
"""
