"""The bibliography's author-year labels (book/_ext/bibliography_labels.py, a Sphinx extension)."""
import pytest

pybtex = pytest.importorskip("pybtex")
from pybtex.database import Entry, Person  # noqa: E402

from bibliography_labels import author_year  # noqa: E402  (book/_ext, see tests/book/conftest.py)


def _entry(*authors: str, year: str = "2021") -> Entry:
    return Entry("article", fields={"title": "T", "year": year}, persons={"author": [Person(a) for a in authors]})


@pytest.mark.parametrize("authors, label", [
    (("Nanda, Neel",), "Nanda, 2021"),
    (("Nanda, Neel", "Bloom, Joseph"), "Nanda and Bloom, 2021"),
    (("Elhage, Nelson", "Nanda, Neel", "Olsson, Catherine"), "Elhage et al., 2021"),
])
def test_label_is_first_author_and_year_as_the_chapters_cite(authors, label):
    assert author_year(_entry(*authors)) == label


def test_the_book_style_labels_every_reference_by_author_and_year():
    import pybtex.plugin
    from pybtex.database import parse_file

    import bibliography_labels

    bibliography_labels.setup(None)
    db = parse_file("references.bib")
    style = pybtex.plugin.find_plugin("pybtex.style.formatting", "authoryear")()
    labels = [e.label for e in style.format_entries(db.entries.values())]
    assert sorted(labels) == sorted(author_year(e) for e in db.entries.values())
    assert len(set(labels)) == len(labels)  # no two references share a label
    # listed by first author, then year: Elhage 2021 before Elhage 2022
    keys = [(e.label.split(" ")[0].rstrip(","), e.label.rsplit(", ", 1)[1]) for e in style.format_entries(db.entries.values())]
    assert keys == sorted(keys, key=lambda k: (k[0].lower(), k[1]))
