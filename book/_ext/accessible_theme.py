"""Sphinx extension (listed in _config.yml): two fixes to the HTML the theme and Sphinx write,
so that the built book passes axe-core's WCAG 2.1 A/AA rules (tests/book/test_book.py).

- The sidebar's table of contents (pydata-sphinx-theme) opens a chapter's sections with a
  ``<details><summary>`` whose only content is a decorative chevron: a control without a name
  ("summary-name"). Each such ``<summary>`` gets ``aria-label="Sections of <chapter>"``.
- The bibliography (docutils) is a ``<div role="list">`` of ``role="doc-biblioentry"``
  entries; DPUB-ARIA 1.1 deprecated that role, and a list must hold list items
  ("aria-required-children"). The entries become ``role="listitem"``.

Both at ``html-page-context``, on the HTML Sphinx is about to write: the theme's toctree
function is wrapped (the template renders the sidebar after this event), the body rewritten.
"""
from __future__ import annotations

import functools
from typing import Any

_BIBLIOENTRY = 'role="doc-biblioentry"'


def name_toc_toggles(toc: Any) -> Any:
    """Every ``<summary>`` of the theme's toctree without a name gets one, in ``aria-label``.

    After an entry's link: "Sections of <the link's text>"; otherwise "Sections". ``toc``: the
    BeautifulSoup the theme's ``generate_toctree_html`` returns (changed in place and returned),
    or its HTML as a string (a string is returned).
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(toc, "html.parser") if isinstance(toc, str) else toc
    for summary in soup.find_all("summary"):
        if summary.get("aria-label") or summary.get_text(strip=True):
            continue
        entry = summary.parent.parent if summary.parent is not None else None
        link = entry.find("a", recursive=False) if entry is not None else None
        title = " ".join(link.get_text(" ", strip=True).split()) if link is not None else ""
        summary["aria-label"] = f"Sections of {title}" if title else "Sections"
    return str(soup) if isinstance(toc, str) else soup


def list_bibliography_entries(body: str) -> str:
    """The bibliography's ``doc-biblioentry`` roles as ``listitem`` (the children a list needs)."""
    return body.replace(_BIBLIOENTRY, 'role="listitem"')


def on_page_context(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context`` handler (after the theme's own): wraps the toctree function, fixes the body."""
    generate = context.get("generate_toctree_html")
    if generate is not None and not getattr(generate, "_names_toggles", False):
        @functools.wraps(generate)
        def generate_named(*args: Any, **kwargs: Any) -> Any:
            out = generate(*args, **kwargs)
            return name_toc_toggles(out) if hasattr(out, "find_all") or isinstance(out, str) else out

        generate_named._names_toggles = True
        context["generate_toctree_html"] = generate_named
    if isinstance(context.get("body"), str):
        context["body"] = list_bibliography_entries(context["body"])


def setup(app: Any) -> dict[str, Any]:
    # after pydata-sphinx-theme's add_toctree_functions (default priority 500)
    app.connect("html-page-context", on_page_context, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
