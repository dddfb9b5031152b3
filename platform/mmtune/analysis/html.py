"""A tiny document model rendered twice: to Markdown (``report.md``) and to one self-contained HTML page
(``report.html``: CSS inline, PNGs inlined as base64 data URIs, no external asset).

The report builds a list of blocks once, so both files always say the same thing.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Link:
    text: str
    href: str


Cell = str | Link


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Warning:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    numeric: Sequence[bool] = field(default_factory=tuple)


@dataclass(frozen=True)
class Image:
    name: str  # file name of the PNG beside the report
    caption: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Paragraph | Warning | Bullets | Table | Image | Code


# ---------------------------------------------------------------------------------------------------- Markdown


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f"[{_md_escape(cell.text)}]({cell.href})"
    return _md_escape(cell)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Warning):
            out.append(f"> **warning:** {block.text}")
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            numeric = list(block.numeric) + [False] * (len(block.columns) - len(block.numeric))
            out.append("| " + " | ".join(_md_escape(c) for c in block.columns) + " |")
            out[-1] += "\n|" + "|".join("---:" if n else "---" for n in numeric) + "|"
            for row in block.rows:
                out[-1] += "\n| " + " | ".join(_md_cell(c) for c in row) + " |"
        elif isinstance(block, Image):
            out.append(f"![{block.caption}]({block.name})")
        elif isinstance(block, Code):
            out.append(f"```\n{block.text}\n```")
    return "\n\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------- HTML

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.86em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
figure { margin: 0.8em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
code { background: #f6f6f6; padding: 0 3px; }
""".strip()


def _inline(text: str) -> str:
    """Escape, then render `code` spans and **bold** (the only inline Markdown the report uses)."""
    parts = html.escape(str(text)).split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1 and (len(parts) % 2 == 1 or i < len(parts) - 1):
            out.append(f"<code>{part}</code>")
        else:
            bold = part.split("**")
            out.append("".join(f"<b>{b}</b>" if j % 2 == 1 else b for j, b in enumerate(bold)))
    return "".join(out)


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href, quote=True)}">{html.escape(cell.text)}</a>'
    return _inline(cell)


def to_html(blocks: Sequence[Block], title: str, images: Mapping[str, bytes]) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Warning):
            body.append(f'<p class="warning"><b>warning:</b> {_inline(block.text)}</p>')
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            numeric = list(block.numeric) + [False] * (len(block.columns) - len(block.numeric))
            head = "".join(f"<th>{_inline(c)}</th>" for c in block.columns)
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td class="num">{_html_cell(c)}</td>' if numeric[i] else f"<td>{_html_cell(c)}</td>"
                    for i, c in enumerate(row)
                )
                + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(images[block.name]).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(block.caption, quote=True)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            body.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
