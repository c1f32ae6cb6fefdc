"""Every Markdown file in results/ also as a standalone HTML page, for the Snakemake report.

The report embeds HTML items and renders them in place; Markdown items are download-only
there. So each writer of a results/ Markdown file calls ``write_markdown``, which writes the
``.md`` and, beside it, the same text as ``.html``: one page with its own style sheet, no
scripts and nothing fetched from the web (the report is read offline).
"""
from __future__ import annotations

import html
from pathlib import Path

from .io import write_text

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; line-height: 1.45; margin: 1.2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def _title(markdown: str, fallback: str) -> str:
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def render_html(markdown: str, fallback_title: str) -> str:
    """The Markdown as a whole HTML document (CommonMark plus pipe tables)."""
    from markdown_it import MarkdownIt  # here: only the verbs that write results/ need it

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    title = html.escape(_title(markdown, fallback_title))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def write_markdown(path: str | Path, markdown: str) -> None:
    """Write results/<...>.md and its HTML rendering results/<...>.html."""
    path = Path(path)
    write_text(path, markdown)
    write_text(path.with_suffix(".html"), render_html(markdown, path.stem))
