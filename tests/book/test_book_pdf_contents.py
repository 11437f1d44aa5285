"""The print edition's table of contents (scripts/book_pdf.py): the book's pages in _toc.yml's
order, under the captions of its parts ("Chapters", "Appendix", "Exercises", "Back matter"),
as the HTML book's sidebar groups them. No browser: the contents is HTML written here."""
import html.parser
import importlib.util
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _book_pdf():
    spec = importlib.util.spec_from_file_location("book_pdf", REPO / "scripts" / "book_pdf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Items(html.parser.HTMLParser):
    """The contents' list items in order: ("part", caption) or ("entry", "title|page")."""

    def __init__(self):
        super().__init__()
        self.items, self._kind = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "li":
            self._kind = "part" if dict(attrs).get("class") == "part" else "entry"
            self.items.append([self._kind, ""])

    def handle_data(self, data):
        if self._kind and data.strip():
            self.items[-1][1] += ("|" if self.items[-1][1] else "") + data.strip()

    def handle_endtag(self, tag):
        if tag == "li":
            self._kind = None


def test_parts_follow_the_toc_file():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    parts = _book_pdf().toc_parts(REPO)
    assert [c for c, _ in parts] == [""] + [p["caption"] for p in toc["parts"]]
    assert parts[0][1] == [toc["root"] + ".html"]
    assert [p for _, pages in parts for p in pages] == _book_pdf().toc_pages(REPO)


def test_the_contents_lists_each_page_under_its_part_caption():
    book_pdf = _book_pdf()
    pages = book_pdf.toc_pages(REPO)
    part_of = {page: caption for caption, part in book_pdf.toc_parts(REPO) for page in part}
    entries = [(f"title of {page}", 3 * i) for i, page in enumerate(pages)]
    parser = _Items()
    parser.feed(book_pdf._front_matter_html("The book", entries, 5, [part_of[p] for p in pages]))
    expected, last = [], ""
    for (title, n), page in zip(entries, pages):
        if part_of[page] and part_of[page] != last:
            expected.append(["part", part_of[page]])
        last = part_of[page]
        expected.append(["entry", f"{title}|{n + 5}"])
    assert parser.items == expected
    assert ["part", "Appendix"] in parser.items and ["part", "Exercises"] in parser.items
    # without captions the contents is the bare list, as before
    bare = _Items()
    bare.feed(book_pdf._front_matter_html("The book", entries, 5))
    assert all(kind == "entry" for kind, _ in bare.items) and len(bare.items) == len(pages)
    assert re.search(r"<h2>Contents</h2>", book_pdf._front_matter_html("The book", entries, 5))
