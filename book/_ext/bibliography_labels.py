"""The bibliography's labels, author and year: a Sphinx extension for the book's build.

The chapters cite author-year ("Elhage et al. (2021)", ``bibtex_reference_style:
author_year`` in ``_config.yml``); with pybtex's stock styles the list at the back would
still label its entries [1], [2] ... This style labels each entry as it is cited:
"Elhage et al., 2021", entries sorted by first author, then year. ``_config.yml`` loads it (and
sets ``bibtex_default_style: authoryear``).
"""
from __future__ import annotations

from typing import Any, Iterator

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle


def author_year(entry: Any) -> str:
    """``"Elhage et al., 2021"``, ``"Olsson and Smith, 2022"`` or ``"Nanda, 2022"`` for one entry."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [" ".join(p.last_names) for p in people] or [entry.fields.get("title", entry.key)]
    if len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    year = entry.fields.get("year", "n.d.")
    return f"{who}, {year}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries: Any) -> Iterator[str]:
        for entry in sorted_entries:
            yield author_year(entry)


class FirstAuthorYearSorting(BaseSortingStyle):
    """By first author's last name, then year (oldest first), then title: the order of the labels."""

    def sorting_key(self, entry: Any) -> tuple:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        first = " ".join(people[0].last_names) if people else entry.fields.get("title", "")
        return first.lower(), entry.fields.get("year", ""), entry.fields.get("title", "").lower()


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"
    default_sorting_style = "firstauthoryear"


def setup(app: Any) -> dict:
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.sorting", "firstauthoryear", FirstAuthorYearSorting)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
