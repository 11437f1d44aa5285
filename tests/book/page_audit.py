"""What tests/book/test_book.py measures in an open page for issue 24: axe-core's accessibility
audit, and what sticks out of its box on a phone.

axe-core (Deque's engine, MPL-2.0) comes from the PyPI package ``axe-playwright-python``
(dev extra), which ships ``axe.min.js``; it is injected into the page, so the audit runs offline.
"""
from __future__ import annotations

from pathlib import Path

#: WCAG 2.0 and 2.1, levels A and AA: what universities must meet (issue 24)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: the impacts that fail the test
FAILING_IMPACTS = ("serious", "critical")
#: the live widgets' panels (mechlib/views/live): their violations are counted apart
LIVE_PANEL = ".mll-widget"


def axe_source() -> str:
    """The text of ``axe.min.js`` from the installed ``axe-playwright-python``."""
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).with_name("axe.min.js")).read_text(encoding="utf8")


# Runs axe on the whole document and returns its serious and critical violations, one entry per
# element: rule, impact, a CSS selector, the element's HTML (shortened), and whether the
# element lies inside a live panel.
AXE_RUN_JS = """async ([tags, impacts, panel]) => {
  // The book's scroll cues (_static/mechlib.css) paint gradients on every box that may scroll
  // sideways: notebook outputs, the live panels among them. axe cannot tell the colour behind
  // text on a gradient and leaves its contrast unchecked ("incomplete"), so the audit would not
  // see inside the panels. The covers take the box's own colour, so the audit sets them aside
  // while it runs and checks the text against the box.
  const cues = [...document.querySelectorAll("body *")].filter(e => {
    const s = getComputedStyle(e);
    return /gradient/.test(s.backgroundImage) && /^(auto|scroll)$/.test(s.overflowX);
  });
  const saved = cues.map(e => e.style.getPropertyValue("background-image"));
  cues.forEach(e => e.style.setProperty("background-image", "none", "important"));
  // preload: false: axe would fetch every stylesheet again itself, and it resolves the theme's
  // `@import "../basic.css"` against the site's root (a 404 that test_no_errors_in_the_browser
  // reports); only css-orientation-lock needs those sheets
  let result;
  try {
    result = await axe.run(document, {runOnly: {type: "tag", values: tags}, preload: false,
                                      resultTypes: ["violations"], elementRef: true});
  } finally {
    cues.forEach((e, i) => saved[i] ? e.style.setProperty("background-image", saved[i]) : e.style.removeProperty("background-image"));
  }
  const found = [];
  for (const rule of result.violations) {
    if (!impacts.includes(rule.impact)) continue;
    for (const node of rule.nodes) {
      found.push({rule: rule.id, impact: rule.impact, target: node.target.join(" "),
                  html: node.html.slice(0, 200),
                  in_live_panel: !!(node.element && node.element.closest(panel))});
    }
  }
  return found;
}"""


def axe_violations(tab, source: str) -> list[dict]:
    """The serious and critical WCAG 2.1 A/AA violations in the page open in ``tab``."""
    if not tab.evaluate("() => typeof window.axe !== 'undefined'"):
        tab.add_script_tag(content=source)
    return tab.evaluate(AXE_RUN_JS, [AXE_TAGS, list(FAILING_IMPACTS), LIVE_PANEL])


# In the article (the page's text column), at the current width:
# - sticking_out: visible elements whose box runs past the article's right edge (or the
#   window's) and are not inside a box that scrolls sideways (overflow-x auto or scroll) and
#   itself fits: a reader could not see the rest without zooming out;
# - no_cue: boxes that do scroll sideways and hold a table, an equation or an image, but show
#   no cue that there is more (a gradient background or mask: _static/mechlib.css; an inset
#   shadow: the live panels' live.css);
# - page_scrolls: whether the page itself is wider than the window.
# Each element is named by a short path (tag.class#id) and whether it is in a live panel.
OVERFLOW_JS = """(panel) => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const edge = Math.min(document.documentElement.clientWidth, article.getBoundingClientRect().right) + 1;
  const name = e => {
    const parts = [];
    for (let p = e; p && p !== article && parts.length < 4; p = p.parentElement) {
      parts.unshift(p.tagName.toLowerCase() + (p.id ? "#" + p.id : "")
        + (typeof p.className === "string" && p.className.trim() ? "." + p.className.trim().split(/\\s+/).slice(0, 2).join(".") : ""));
    }
    return parts.join(" > ");
  };
  const scrolls = e => /^(auto|scroll)$/.test(getComputedStyle(e).overflowX);
  const sticking_out = [], no_cue = [];
  for (const e of article.querySelectorAll("*")) {
    const box = e.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || getComputedStyle(e).visibility === "hidden") continue;
    if (e.closest("mjx-assistive-mml")) continue;  // MathJax's MathML for screen readers, clipped to 1 px
    if (box.right > edge) {
      // the nearest ancestor that cuts it off: one that clips (overflow not visible; overflow
      // does nothing on an inline box) and that it runs past. Fine if that one scrolls and fits.
      const clips = h => getComputedStyle(h).overflowX !== "visible" && !/^(inline|contents)$/.test(getComputedStyle(h).display);
      let holder = e.parentElement;
      while (holder && holder !== article && !(clips(holder) && box.right > holder.getBoundingClientRect().right + 1)) holder = holder.parentElement;
      const ok = holder && holder !== article && scrolls(holder) && holder.getBoundingClientRect().right <= edge;
      if (!ok) sticking_out.push({element: name(e), right: Math.round(box.right), edge: Math.round(edge),
                                  in_live_panel: !!e.closest(panel)});
    }
    if (scrolls(e) && e.scrollWidth > e.clientWidth + 1 && e.querySelector("table, mjx-math, img")) {
      const style = getComputedStyle(e), img = e.querySelector("img");
      const cue = /gradient/.test(style.backgroundImage) || /gradient/.test(style.maskImage || style.webkitMaskImage || "")
        || /inset/.test(style.boxShadow)  // the live panels' scroll boxes: an inner shadow on the side with more
        || (img && /gradient/.test(getComputedStyle(img).maskImage || getComputedStyle(img).webkitMaskImage || ""));
      if (!cue) no_cue.push({element: name(e), in_live_panel: !!e.closest(panel)});
    }
  }
  return {sticking_out, no_cue,
          page_scrolls: document.documentElement.scrollWidth > document.documentElement.clientWidth + 1};
}"""


def overflow(tab) -> dict:
    """:data:`OVERFLOW_JS`'s findings in the page open in ``tab``."""
    return tab.evaluate(OVERFLOW_JS, LIVE_PANEL)


def watched_page(browser, allowed_prefix, **kwargs):
    """A new tab that records page errors, console errors and requests outside ``allowed_prefix``."""
    page = browser.new_page(**kwargs)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("request", lambda r: r.url.startswith(allowed_prefix) or errors.append(f"request {r.url}"))
    page.errors = errors
    return page
