"""book/_ext/accessible_theme.py: the sidebar's section toggles get a name, the bibliography's
entries the role a list needs (checked against the theme's and docutils' real HTML shapes)."""
from bs4 import BeautifulSoup

import accessible_theme

# what pydata-sphinx-theme 0.17's add_collapse_checkboxes writes for an entry with sections
THEME_TOC = """<ul class="nav bd-sidenav">
<li class="toctree-l1"><a class="reference internal" href="04.html">4. Q-Composition</a></li>
<li class="toctree-l1 has-children"><a class="reference internal" href="05.html">5. Virtual <em>Attention</em> Heads</a><details><summary><span class="toctree-toggle" role="presentation"><i class="fa-solid fa-chevron-down"></i></span></summary><ul>
<li class="toctree-l2"><a class="reference internal" href="05b.html">5.8. The Circuit Forms</a></li></ul></details></li>
<li class="toctree-l0 has-children"><details><summary><p class="caption">Appendix</p><span class="toctree-toggle" role="presentation"></span></summary><ul></ul></details></li>
</ul>"""


def _summaries(html):
    return [(s.get("aria-label"), s.get_text(strip=True)) for s in BeautifulSoup(html, "html.parser").find_all("summary")]


def test_a_chevron_only_summary_is_named_after_its_entry():
    assert _summaries(accessible_theme.name_toc_toggles(THEME_TOC)) == [
        ("Sections of 5. Virtual Attention Heads", ""),
        (None, "Appendix"),  # has text of its own: left alone
    ]


def test_the_theme_s_soup_is_changed_in_place_and_returned():
    soup = BeautifulSoup(THEME_TOC, "html.parser")
    assert accessible_theme.name_toc_toggles(soup) is soup
    assert soup.find("summary")["aria-label"] == "Sections of 5. Virtual Attention Heads"


def test_a_summary_without_an_entry_link_is_still_named():
    html = '<ul><li><details><summary><span class="toctree-toggle"></span></summary></details></li></ul>'
    assert _summaries(accessible_theme.name_toc_toggles(html)) == [("Sections", "")]


def test_bibliography_entries_become_list_items():
    body = ('<div role="list" class="citation-list"><div class="citation" id="a" role="doc-biblioentry">'
            '<p>A.</p></div><div class="citation" id="b" role="doc-biblioentry"><p>B.</p></div></div>')
    out = accessible_theme.list_bibliography_entries(body)
    roles = [d.get("role") for d in BeautifulSoup(out, "html.parser").select("div.citation-list > div")]
    assert roles == ["listitem", "listitem"]


def test_the_page_context_gets_both_fixes_once():
    calls = []

    def generate(kind, **kwargs):
        calls.append(kind)
        return BeautifulSoup(THEME_TOC, "html.parser")

    context = {"generate_toctree_html": generate, "body": '<div role="doc-biblioentry"></div>'}
    accessible_theme.on_page_context(None, "p", "page.html", context, None)
    accessible_theme.on_page_context(None, "p", "page.html", context, None)  # a second time: no double wrap
    out = context["generate_toctree_html"]("sidebar")
    assert out.find("summary")["aria-label"].startswith("Sections of ") and calls == ["sidebar"]
    assert context["body"] == '<div role="listitem"></div>'
