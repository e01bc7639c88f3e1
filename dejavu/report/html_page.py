"""The report page's HTML: parts of the page (tables in their own scroll box, figures with
captions) and the page itself (a table of contents over its parts, in reading order). One
self-contained file: no script, no font or style from the network, every image inline."""

from __future__ import annotations

import html
import math
import numbers
import re

import pandas as pd

Section = tuple[str, str]  # (title, HTML body)
Part = tuple[str, list[Section]]  # (title, its sections)

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:0 1em 2em;"
    "line-height:1.45;overflow-wrap:anywhere;color:#1a1a1a}"
    "h1{margin-bottom:.2em}h2{border-bottom:2px solid #ccc;margin-top:2em}"
    "h3{margin-bottom:.3em}"
    ".scroll{overflow-x:auto;max-width:100%;margin:.5em 0}"
    "table.t{border-collapse:collapse;font-size:12px;overflow-wrap:normal}"
    "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd;white-space:nowrap}"
    "img{max-width:100%;height:auto}figure{margin:1em 0}"
    "figcaption{font-size:13px;color:#444;max-width:80ch}"
    "pre{font-size:11px;background:#f6f6f6;padding:.5em;overflow-x:auto;max-width:100%}"
    "nav.toc{background:#f6f6f6;padding:.5em 1em;font-size:14px}"
    "nav.toc ol{margin:.2em 0}nav.toc ol ol{font-size:13px}"
    "ul.verdict li{margin:.3em 0}li.yes b:last-child{color:#b2182b}"
    ".headline{font-size:17px}.note{font-size:13px;color:#444}"
)


def by_interval(table: pd.DataFrame) -> pd.DataFrame:
    """Each number that has an interval (columns X, X_ci_low, X_ci_high) and its interval
    as text rounded to what the interval supports (`verdict.decimals`), row by row."""
    from .verdict import decimals
    out = table.copy()
    for column in table.columns:
        low, high = f"{column}_ci_low", f"{column}_ci_high"
        if low not in table or high not in table:
            continue
        digits = [decimals(a, b) for a, b in zip(table[low], table[high])]
        for name in (column, low, high):
            out[name] = [_number(v, d) for v, d in zip(table[name], digits)]
    return out


def _number(value, digits: int) -> str:
    """A number to `digits` decimals; an empty cell, or anything else as it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, numbers.Real) else str(value)


def table_html(table: pd.DataFrame, floats: str = "{:.3f}") -> str:
    """A table in its own horizontal scroll box (a wide one never widens the page), each
    number with an interval rounded to what the interval supports, the others to `floats`."""
    if table.empty:
        return "<p><i>none</i></p>"
    body = by_interval(table).to_html(index=False, float_format=floats.format, border=0,
                                      classes="t", na_rep="")
    return f"<div class='scroll'>{body}</div>"


def figure(b64: str, caption: str = "") -> str:
    """A base64 PNG (`figures.figure_png`) embedded in the page, with what to look for."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure><img alt='' src='data:image/png;base64,{b64}'>{cap}</figure>"


def anchor(title: str) -> str:
    """An id for a title: lower case, runs of other characters as one dash."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "part"


def render(parts: list[Part], title: str = "Déjà vu memorization report") -> str:
    """The page: its title, the first part (the verdict), the table of contents (each part
    and its sections), then the other parts. Parts without a section are left out."""
    parts = [(name, sections) for name, sections in parts if sections]
    used: dict[str, int] = {}

    def unique(text: str) -> str:
        base = anchor(text)
        used[base] = used.get(base, 0) + 1
        return base if used[base] == 1 else f"{base}-{used[base]}"

    ids = [(unique(name), [unique(t) for t, _ in sections]) for name, sections in parts]
    toc = "".join(
        f"<li><a href='#{pid}'>{html.escape(name)}</a><ol>"
        + "".join(f"<li><a href='#{sid}'>{html.escape(t)}</a></li>"
                  for sid, (t, _) in zip(sids, sections)) + "</ol></li>"
        for (pid, sids), (name, sections) in zip(ids, parts))
    shown = [f"<h2 id='{pid}'>{html.escape(name)}</h2>"
             + "".join(f"<section><h3 id='{sid}'>{html.escape(t)}</h3>{content}</section>"
                       for sid, (t, content) in zip(sids, sections))
             for (pid, sids), (name, sections) in zip(ids, parts)]
    nav = f"<nav class='toc'><b>Contents</b><ol>{toc}</ol></nav>"
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{''.join(shown[:1])}{nav}{''.join(shown[1:])}"
            f"</body></html>")
