"""Every live widget for everyone (issue 24), in headless Chromium at a phone's 390 px: each is
driven with the keyboard only (Tab to reach a control, Space, Enter and the arrow keys to use
it) and its spoken summary -- the aria-live region -- is read and compared with mechlib;
every control has a name, the focus is visible, text on coloured cells meets WCAG AA contrast
(computed here from the rendered colours), and nothing overflows its box without a cue.
The "predict, then see" panel of the path ablation (issue 21) is driven the same way.
"""
import re

import pytest
import torch

import mechlib
import page_audit
from mechlib.teaching.reference import repeat_loss_brute_force
from mechlib.views import live
from test_live_model import book_like_page, hooked_run, tokens_shown

pytestmark = pytest.mark.browser
MAX_TABS = 250


def tab_to(page, selector):
    """Press Tab until the focused element matches ``selector``; fails if it is never reached."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with the Tab key")


def spoken(page):
    return page.text_content("#w-live")


def spoken_loss(page):
    found = re.search(r"Loss on the repeated tokens (\d+\.\d+) nats", spoken(page))
    assert found, f"no loss in the live region: {spoken(page)!r}"
    return float(found.group(1))


def unnamed_controls(page):
    """The controls of the widget with no accessible name (a label, aria-label or text)."""
    return page.evaluate("""() => [...document.querySelectorAll('#w-root input, #w-root select, #w-root button')]
        .filter(e => !((e.labels && [...e.labels].some(l => l.textContent.trim())) || e.getAttribute('aria-label')
                       || (e.tagName === 'BUTTON' && e.textContent.trim())))
        .map(e => e.id || e.outerHTML)""")


def overflowing(page):
    """Elements of the widget that reach past its right edge, or boxes that scroll with no cue
    (a scroll box must say it scrolls, and be reachable by Tab itself or through its content)."""
    return page.evaluate("""() => {
      const root = document.querySelector('#w-root'), right = root.getBoundingClientRect().right, bad = [];
      if (root.scrollWidth > root.clientWidth + 1) bad.push('the widget itself');
      for (const e of root.querySelectorAll('*')) {
        if (e.closest('svg') && e.tagName !== 'svg' || e.classList.contains('mll-live')) continue;
        let box = e.parentElement;
        while (box !== root && !['auto', 'scroll', 'hidden'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
        if (box === root && e.getBoundingClientRect().right > right + 1) bad.push('past the edge: ' + (e.id || e.className || e.tagName));
      }
      for (const s of root.querySelectorAll('.mll-scroll')) {
        if (s.scrollWidth <= s.clientWidth + 1) continue;
        const cue = s.nextElementSibling, reach = s.tabIndex >= 0 || s.querySelector('[tabindex="0"], input, button, select');
        if (!cue || !cue.classList.contains('mll-cue') || !cue.textContent.trim() || !reach) bad.push('no cue: ' + s.getAttribute('aria-label'));
      }
      return bad;
    }""")


def focus_ring(page):
    """Width (px) of the outline around the focused element."""
    return page.evaluate("""() => { const s = getComputedStyle(document.activeElement);
                                    return s.outlineStyle === 'none' ? 0 : parseFloat(s.outlineWidth); }""")


def contrast(fg, bg):
    """WCAG 2.1 contrast ratio of two CSS colours 'rgb(r, g, b)'."""
    def lum(css):
        r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    a, b = sorted((lum(fg), lum(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def assert_for_everyone(page):
    assert page.get_attribute("#w-root", "role") == "group" and page.get_attribute("#w-root", "aria-label")
    # axe-core inside the panel (the page around it is a bare test page, not the book's)
    assert [v for v in page_audit.axe_violations(page, page_audit.axe_source()) if v["in_live_panel"]] == []
    assert unnamed_controls(page) == []
    assert overflowing(page) == []
    # a scroll box is a tab stop while it scrolls, and only then
    assert page.evaluate("""() => [...document.querySelectorAll('#w-root .mll-scroll[data-tab-stop]')]
        .filter(s => (s.tabIndex === 0) !== (s.scrollWidth > s.clientWidth + 1)).map(s => s.getAttribute('aria-label'))""") == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert page.errors == []


# --------------------------------------------------------------------------- the head toggle


@pytest.fixture(scope="module")
def toggle(browser, tmp_path_factory, model):
    with book_like_page(browser, tmp_path_factory.mktemp("toggle"), live.head_toggle(model, prefix="w", assets="site").data) as page:
        yield page


def test_the_toggle_is_driven_by_the_keyboard_and_says_the_loss(toggle, model):
    t = tokens_shown(toggle)
    tab_to(toggle, "#w-cb-0")
    assert focus_ring(toggle) >= 2
    toggle.keyboard.press("Space")  # head 0.0 off
    assert "heads off: 0.0." in spoken(toggle)
    assert spoken_loss(toggle) == pytest.approx(repeat_loss_brute_force(model, t, [(0, 0)]), abs=1e-3)
    tab_to(toggle, "#w-cb-3")
    toggle.keyboard.press("Enter")  # head 0.3 off: Enter toggles as Space does
    assert "heads off: 0.0, 0.3." in spoken(toggle)
    assert spoken_loss(toggle) == pytest.approx(repeat_loss_brute_force(model, t, [(0, 0), (0, 3)]), abs=1e-3)
    tab_to(toggle, "#w-all-on")
    toggle.keyboard.press("Enter")
    assert spoken(toggle).startswith("every head on.")
    assert spoken_loss(toggle) == pytest.approx(repeat_loss_brute_force(model, t, []), abs=1e-3)


def test_a_typed_sequence_runs_with_enter_and_a_bad_one_is_said(toggle, model):
    tab_to(toggle, "#w-tokens")
    toggle.keyboard.press("Control+A")
    toggle.keyboard.type("3 1 4 1 5 3 1 4 1 5")
    toggle.keyboard.press("Enter")
    assert spoken_loss(toggle) == pytest.approx(repeat_loss_brute_force(model, [3, 1, 4, 1, 5] * 2, []), abs=1e-3)
    toggle.keyboard.press("Control+A")
    toggle.keyboard.type("1 2 99")
    toggle.keyboard.press("Enter")
    assert toggle.get_attribute("#w-msg", "role") == "alert" and '"99"' in toggle.text_content("#w-msg")
    tab_to(toggle, "#w-draw")
    toggle.keyboard.press("Enter")
    assert toggle.text_content("#w-msg") == ""


def test_the_pattern_gives_its_values_in_words(toggle, model):
    toggle.select_option("#w-head", "1.2")
    t = tokens_shown(toggle)
    _, patterns = hooked_run(model, torch.tensor(t), [])
    score = mechlib.induction_scores_from_patterns(torch.tensor(patterns)[:, None], torch.tensor([t]))[1, 2].item()
    prev = sum(patterns[1, 2, q, q - 1] for q in range(1, len(t))) / (len(t) - 1)
    summary = toggle.text_content("#w-pattern-summary")
    assert f"on average {score:.2f} of its attention" in summary and f"; {prev:.2f} on the previous token" in summary
    tab_to(toggle, "#w-attn")
    assert focus_ring(toggle) >= 2
    toggle.keyboard.press("ArrowDown")
    assert toggle.text_content("#w-readout") == f"head 1.2: query 1 (token {t[1]}) \u2192 key 0 (token {t[0]}): {patterns[1, 2, 1, 0]:.3f}"
    assert toggle.get_attribute("#w-attn td.mll-cursor", "title").endswith(f"{patterns[1, 2, 1, 0]:.3f}")
    # a screen reader: the grid takes the arrow keys and names the cell the cursor is on
    assert toggle.get_attribute("#w-attn", "role") == "grid"
    cell = toggle.get_attribute("#w-attn", "aria-activedescendant")
    assert toggle.evaluate("(id) => document.getElementById(id).classList.contains('mll-cursor')", cell)
    assert toggle.get_attribute(f"#{cell}", "aria-label") == toggle.text_content("#w-readout")


def test_text_on_coloured_cells_meets_contrast_and_says_its_value(toggle):
    cells = toggle.evaluate("""() => [...document.querySelectorAll('#w-scores td, #w-preds td')]
        .filter(td => td.style.backgroundColor)
        .map(td => [getComputedStyle(td).color, getComputedStyle(td).backgroundColor, td.textContent, td.title])""")
    assert len(cells) > 8
    for fg, bg, text, _ in cells:
        assert contrast(fg, bg) >= 4.5, f"{text!r}: {fg} on {bg} has contrast {contrast(fg, bg):.2f}"
        assert re.fullmatch(r"\d\.\d\d", text), text  # the value is written, the colour only repeats it
    assert all(title.startswith("head ") for *_, title in cells[:8])
    framed = toggle.evaluate("() => [...document.querySelectorAll('#w-preds tr:nth-child(4) td.mll-rep')].map(td => td.title).filter(Boolean)")
    assert framed and all(t.endswith("a repeated token, counted in the loss") for t in framed)


def test_the_toggle_asks_which_head_matters_before_it_answers(toggle, model):
    t = tokens_shown(toggle)
    heads = mechlib.all_heads(model)
    clean = repeat_loss_brute_force(model, t, [])
    rise = {f"{l}.{h}": repeat_loss_brute_force(model, t, [(l, h)]) - clean for l, h in heads}
    best = max(rise, key=rise.get)
    tab_to(toggle, "input[name='w-guess']")
    for _ in range(list(rise).index(best)):  # arrow keys walk the radio group to the right head
        toggle.keyboard.press("ArrowRight")
    assert toggle.is_checked(f"#w-guess-{best.replace('.', '-')}")
    tab_to(toggle, "input[name='w-size']")  # "hardly": the first size
    toggle.keyboard.press("Space")
    tab_to(toggle, "#w-commit")
    toggle.keyboard.press("Space")
    for name, r in rise.items():
        assert float(toggle.text_content(f"#w-rise-{name.replace('.', '-')}").split()[0]) == pytest.approx(r, abs=1e-3)
    verdict = toggle.text_content("#w-verdict")
    assert f"The model: switching off {best} matters most, +{rise[best]:.3f} nats" in verdict
    assert f"Your choice is right; the size is {'right' if rise[best] < 0.1 else 'wrong'}." in verdict


def test_the_toggle_is_for_everyone(toggle):
    assert_for_everyone(toggle)


def test_a_box_with_nothing_to_scroll_is_no_tab_stop(toggle):
    """On a desktop the eight heads' scores fit: their box is no stop for the Tab key; on a phone it is."""
    stop = "() => document.querySelector('#w-scores').parentElement.tabIndex"
    assert toggle.evaluate(stop) == 0
    try:
        toggle.set_viewport_size({"width": 1280, "height": 800})
        toggle.wait_for_function(stop + " === -1", timeout=5_000)
    finally:
        toggle.set_viewport_size({"width": 390, "height": 800})
    toggle.wait_for_function(stop + " === 0", timeout=5_000)


def test_a_wide_score_row_scrolls_inside_its_box_and_says_so(browser, tmp_path):
    wide = mechlib.random_model(n_layers=2, n_heads=12)  # 24 heads: the score row is wider than a phone
    with book_like_page(browser, tmp_path, live.head_toggle(wide, prefix="w", assets="site").data) as page:
        assert "scroll sideways" in page.text_content("#w-scores-more")
        assert page.get_attribute("#w-scores-more", "id") and page.evaluate(
            "() => document.querySelector('#w-scores').parentElement.tabIndex") == 0
        assert_for_everyone(page)


# --------------------------------------------------------------------------- the path ablation and its prediction


@pytest.fixture(scope="module")
def paths(browser, tmp_path_factory, model):  # noqa: F811
    html = live.path_ablation(model, senders=mechlib.layer_heads(model, 0), receivers=mechlib.layer_heads(model, 1),
                              prefix="w", assets="site").data
    with book_like_page(browser, tmp_path_factory.mktemp("paths"), html) as page:
        yield page


def rises(model, t):
    """The rise of the repeat loss when every layer-0 head is cut from each input of every layer-1 head."""
    x = torch.tensor([t])
    clean = repeat_loss_brute_force(model, t, [])
    return {k: repeat_loss_brute_force(model, t, logits=mechlib.path_ablation(
        model, x, mechlib.layer_heads(model, 0), mechlib.layer_heads(model, 1), k)) - clean for k in "QKV"}


def test_the_prediction_is_committed_then_the_model_answers_beside_it(paths, model):
    t = tokens_shown(paths)
    assert paths.text_content("#w-verdict") == "" and paths.locator("#w-answer").count() == 0
    tab_to(paths, "input[name='w-guess']")  # the first of Q, K, V; the arrow keys choose
    paths.keyboard.press("ArrowRight")
    assert paths.is_checked("#w-guess-K")
    tab_to(paths, "input[name='w-size']")
    paths.keyboard.press("ArrowRight")
    paths.keyboard.press("ArrowRight")
    assert paths.is_checked("#w-size-large")
    tab_to(paths, "#w-commit")
    paths.keyboard.press("Enter")
    r = rises(model, t)
    best = max(r, key=r.get)
    for k in "QKV":
        assert float(paths.text_content(f"#w-rise-{k}").split()[0]) == pytest.approx(r[k], abs=1e-3)
    size = "small" if r[best] < 0.1 else "medium" if r[best] < 1 else "large"
    verdict = paths.text_content("#w-verdict")
    assert f"cutting {best} matters most, +{r[best]:.3f} nats" in verdict
    assert f"Your choice is {'right' if best == 'K' else 'wrong'}; the size is {'right' if size == 'large' else 'wrong'}." in verdict
    assert paths.is_disabled("#w-guess-Q")  # committed: the guess stays as it was
    tab_to(paths, "#w-again")
    paths.keyboard.press("Enter")
    assert paths.text_content("#w-verdict") == "" and not paths.is_checked("#w-guess-K")


def test_a_prediction_needs_both_answers(paths):
    tab_to(paths, "#w-commit")
    paths.keyboard.press("Enter")
    assert paths.text_content("#w-verdict") == "Choose an answer and a size first."


def test_the_cut_is_driven_by_the_keyboard_and_said(paths, model):
    t = tokens_shown(paths)
    tab_to(paths, "#w-kind-V")
    paths.keyboard.press("Space")
    assert spoken(paths).startswith("16 paths cut.")
    assert spoken_loss(paths) == pytest.approx(rises(model, t)["V"] + repeat_loss_brute_force(model, t, []), abs=1e-3)
    paths.keyboard.press("Space")
    assert spoken(paths).startswith("0 paths cut.")


def test_the_path_widget_is_for_everyone(paths):
    assert_for_everyone(paths)


def test_the_prediction_panel_can_be_left_out(model):
    spec = live.spec_of(live.path_ablation(model, prefix="w", assets="site", predict=False).data)
    assert spec["config"]["predict"] is False and spec["assets"][-1]["file"] == "path-ablation.js"
    with pytest.raises(ValueError, match="predict must be True .* or False; got 'yes'"):
        live.path_ablation(model, predict="yes")


# --------------------------------------------------------------------------- the other widgets


def test_the_term_picker_is_driven_by_the_keyboard(browser, tmp_path, model):  # noqa: F811
    with book_like_page(browser, tmp_path, live.term_picker(model, prefix="w", assets="site").data) as page:
        t = tokens_shown(page)
        ref = mechlib.path_expansion(model, torch.tensor([t]))
        tab_to(page, "#w-term-direct")
        page.keyboard.press("Space")
        kept = [n for n in ref.terms if n != "direct"]
        assert spoken(page).startswith(f"{len(kept)} terms kept.")
        assert spoken_loss(page) == pytest.approx(repeat_loss_brute_force(model, t, logits=ref.total(kept)), abs=1e-3)
        assert_for_everyone(page)


def test_the_calculator_is_driven_by_the_keyboard(browser, tmp_path):  # noqa: F811
    with book_like_page(browser, tmp_path, live.virtual_head_calculator(prefix="w", assets="site").data) as page:
        tab_to(page, "#w-length")
        page.keyboard.press("ArrowUp")  # k = 3
        assert page.get_attribute("#w-result", "aria-live") == "polite"
        assert page.text_content("#w-count") == f"{mechlib.count_virtual_heads(12, 12, 3):,}"
        assert_for_everyone(page)


def test_the_explorer_is_driven_by_the_keyboard(browser, tmp_path, model):  # noqa: F811
    html = live.composition_explorer(model, kind="Q", n_baseline=200, prefix="w", assets="site").data
    with book_like_page(browser, tmp_path, html) as page:
        tab_to(page, "#w-kind-Q")
        page.keyboard.press("ArrowRight")  # to K, within the radio group
        s, r = page.input_value("#w-sender"), page.input_value("#w-receiver")
        score = mechlib.pair_composition_score(model, tuple(map(int, s.split("."))), tuple(map(int, r.split("."))), "K")
        assert page.text_content("#w-result").startswith(f"K-composition score of {s} \u2192 {r}: {score:.3f}")
        assert_for_everyone(page)


def test_the_slider_is_driven_by_the_keyboard_and_says_the_step(browser, tmp_path, model):  # noqa: F811
    batch = mechlib.repeated_batch(model, batch=8)
    dynamics = mechlib.training_dynamics(batch, steps=[0, 460, 4000])
    html = live.checkpoint_slider(dynamics, batch, prefix="w", start_step=0, assets="site").data
    with book_like_page(browser, tmp_path, html) as page:
        tab_to(page, "#w-range")
        assert focus_ring(page) >= 2
        page.keyboard.press("End")
        assert spoken(page) == f"Step 4000 (checkpoint 3 of 3): loss on the repeated half {float(dynamics.loss_repeat[2]):.3f} nats."
        # a short, fixed name (the visible label changes with the step), the value in words
        assert page.get_attribute("#w-range", "aria-label") == "training step"
        assert page.get_attribute("#w-range", "aria-valuetext") == "step 4000, checkpoint 3 of 3"
        tab_to(page, "#w-c4")  # the patterns are reachable and say their scores
        label = page.get_attribute("#w-c4", "aria-label")
        A = dynamics.example_patterns[2, 1, 0]  # head 1.0 at step 4000
        t = batch.tokens[0]
        score = mechlib.induction_scores_from_patterns(A[None, None, None], t[None])[0, 0].item()
        assert label.startswith("attention pattern of head 1.0 at step 4000: induction score ")
        assert float(label.split("induction score ")[1].split(",")[0]) == pytest.approx(score, abs=0.01)
        assert_for_everyone(page)
