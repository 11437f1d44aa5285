"""The model in the page: model.js's forward pass against mechlib, in headless Chromium.

Loads only the forward pass (model.js) and the weights of induction-2l into a
tiny local page opened from a temporary folder (file://, as a reader who opens the built
book from disk), so it needs no book build. On random sequences, random sets of heads and
random paths, `window.mechlibLive.run` must agree with `mechlib.run_with_ablation` and
`mechlib.path_ablation` (logits and every attention pattern) within 1e-4; combined
interventions are checked against a dense float64 forward pass written here from the
weights. Bad options must throw an Error that names what is wrong.
"""
import contextlib
import itertools
import math
import random
import shutil

import numpy as np

import pytest

import torch

import mechlib
from mechlib.teaching.reference import repeat_loss_brute_force
from mechlib.views import live
from page_audit import watched_page

TOL = 1e-4
N_CASES = 12

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tab(browser, tmp_path_factory):
    """The forward pass and the weights alone (model.js needs no views), in a page opened from disk."""
    folder = tmp_path_factory.mktemp("live")
    files = [live.asset_dir() / live.weights_file(mechlib.BUNDLED_MODEL), live.asset_dir() / "model.js"]
    for f in files:
        shutil.copy(f, folder / f.name)
    scripts = "".join(f'<script src="{f.name}"></script>' for f in files)
    (folder / "index.html").write_text(f"<!doctype html><html><head>{scripts}</head><body></body></html>")
    page = watched_page(browser, "file://")
    page.goto((folder / "index.html").as_uri())
    yield page
    page.close()


def js_run(tab, tokens, options):
    out = tab.evaluate("([t, o]) => window.mechlibLive.run(t, o)", [list(map(int, tokens)), options])
    return np.array(out["logits"]), np.array(out["patterns"])


def js_error(tab, tokens, options):
    return tab.evaluate("""([t, o]) => {
      try { window.mechlibLive.run(t, o); return null; } catch (e) { return e instanceof Error ? e.message : "not an Error"; }
    }""", [tokens, options])


def random_cases(seed):
    rng = random.Random(seed)
    for _ in range(N_CASES):
        n = rng.randint(2, 32)
        yield rng, [rng.randrange(32) for _ in range(n)]


def label(h):
    return f"{h[0]}.{h[1]}"


def hooked_run(model, tokens, hooks):
    """Logits and attention patterns [layer, head, q, k] of one run with TransformerLens hooks."""
    store = {}

    def save(pattern, hook):
        store[hook.layer()] = pattern[0].detach()

    capture = [(f"blocks.{l}.attn.hook_pattern", save) for l in range(model.cfg.n_layers)]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens[None], fwd_hooks=list(hooks) + capture)
    return logits[0].numpy(), torch.stack([store[l] for l in range(model.cfg.n_layers)]).numpy()


def dense_forward(model, tokens, heads_off, paths_off):
    """float64 forward pass of an attention-only model without LayerNorm, written from the
    weights: heads in heads_off write nothing; receiver r's kind input reads the residual
    stream minus the outputs (in this run) of the senders cut from it."""
    W = {k: getattr(model, k).detach().double().numpy() for k in live.TENSORS}
    n, L, H = len(tokens), model.cfg.n_layers, model.cfg.n_heads
    x = W["W_E"][tokens] + W["W_pos"][:n]
    out, pats = {}, np.zeros((L, H, n, n))
    causal = np.tril(np.ones((n, n), dtype=bool))
    for l in range(L):
        layer_out = np.tile(W["b_O"][l], (n, 1))
        for h in range(H):
            inp = {}
            for kind in "QKV":
                cut = {s for s, r, k in paths_off if r == (l, h) and k == kind}
                inp[kind] = x - sum((out[s] for s in cut), np.zeros_like(x))
            q, k, v = (inp[c] @ W[f"W_{c}"][l, h] + W[f"b_{c}"][l, h] for c in "QKV")
            s = np.where(causal, q @ k.T / np.sqrt(model.cfg.d_head), -np.inf)
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            pats[l, h] = a
            out[(l, h)] = np.zeros_like(x) if (l, h) in heads_off else a @ v @ W["W_O"][l, h]
            layer_out = layer_out + out[(l, h)]
        x = x + layer_out
    return x @ W["W_U"] + W["b_U"], pats


def assert_close(js, ref, what):
    err = np.abs(js - ref).max()
    assert js.shape == ref.shape and err < TOL, f"{what}: shapes {js.shape} vs {ref.shape}, max |diff| {err:.2e}"


def test_clean_run_matches_the_model(tab, model):
    for _, tokens in random_cases(0):
        logits, patterns = js_run(tab, tokens, {})
        ref_logits, ref_patterns = hooked_run(model, torch.tensor(tokens), [])
        assert_close(logits, ref_logits, f"logits of {tokens}")
        assert_close(patterns, ref_patterns, f"patterns of {tokens}")


def test_heads_off_matches_run_with_ablation(tab, model):
    heads = mechlib.all_heads(model)
    for rng, tokens in random_cases(1):
        off = rng.sample(heads, rng.randint(1, len(heads)))
        logits, patterns = js_run(tab, tokens, {"heads_off": [label(h) for h in off]})
        t = torch.tensor(tokens)
        ref = mechlib.run_with_ablation(model, t[None], off)[0].numpy()
        _, ref_patterns = hooked_run(model, t, mechlib.ablation_hooks(model, off))
        assert_close(logits, ref, f"logits with {off} off")
        assert_close(patterns, ref_patterns, f"patterns with {off} off")


def test_paths_off_match_path_ablation(tab, model):
    layer0, layer1 = mechlib.layer_heads(model, 0), mechlib.layer_heads(model, 1)
    for rng, tokens in random_cases(2):
        senders = rng.sample(layer0, rng.randint(1, 4))
        receivers = rng.sample(layer1, rng.randint(1, 4))
        kind = rng.choice("QKV")
        paths = [[label(s), label(r), kind] for s, r in itertools.product(senders, receivers)]
        logits, patterns = js_run(tab, tokens, {"paths_off": paths})
        t = torch.tensor(tokens)
        ref = mechlib.path_ablation(model, t[None], senders, receivers, kind)[0].numpy()
        _, ref_patterns = hooked_run(model, t, mechlib.path_ablation_hooks(model, t[None], senders, receivers, kind))
        assert_close(logits, ref, f"logits with {paths} cut")
        assert_close(patterns, ref_patterns, f"patterns with {paths} cut")


def test_heads_and_paths_of_every_kind_together_match_a_dense_forward_pass(tab, model):
    heads, layer0, layer1 = mechlib.all_heads(model), mechlib.layer_heads(model, 0), mechlib.layer_heads(model, 1)
    for rng, tokens in random_cases(3):
        off = rng.sample(heads, rng.randint(0, 3))
        paths = [(s, r, k) for s in layer0 for r in layer1 for k in "QKV" if rng.random() < 0.3]
        logits, patterns = js_run(tab, tokens, {"heads_off": [label(h) for h in off],
                                                "paths_off": [[label(s), label(r), k] for s, r, k in paths]})
        ref_logits, ref_patterns = dense_forward(model, tokens, set(off), paths)
        assert_close(logits, ref_logits, f"logits with {off} off and {paths} cut")
        assert_close(patterns, ref_patterns, f"patterns with {off} off and {paths} cut")


@pytest.mark.parametrize("tokens, options, message", [
    ([], {}, r"tokens must hold 1 to n_ctx = 32"),
    (list(range(32)) + [0], {}, r"tokens must hold 1 to n_ctx = 32 tokens; got 33"),
    ([1, 32], {}, r"tokens\[1\] is 32"),
    ([1, 2.5], {}, r"tokens\[1\] is 2.5"),
    ([1, -1], {}, r"tokens\[1\] is -1"),
    ("1 2", {}, r"tokens must be an array"),
    ([1, 2], {"heads": ["0.1"]}, r'unknown option "heads"'),
    ([1, 2], {"heads_off": "0.1"}, r"heads_off must be an array"),
    ([1, 2], {"heads_off": ["2.0"]}, r'heads_off\[0\] must be a head name .* got "2.0"'),
    ([1, 2], {"heads_off": ["0.1", "0.4"]}, r'heads_off\[1\] .* got "0.4"'),
    ([1, 2], {"heads_off": [[0, 1]]}, r"heads_off\[0\] must be a head name"),
    ([1, 2], {"paths_off": [["0.3", "1.1"]]}, r"paths_off\[0\] must be \[sender, receiver, kind\]"),
    ([1, 2], {"paths_off": [["0.3", "1.1", "O"]]}, r'paths_off\[0\] kind must be "Q", "K" or "V"; got "O"'),
    ([1, 2], {"paths_off": [["1.3", "1.1", "K"]]}, r"sender 1.3 must be in an earlier layer than the receiver 1.1"),
    ([1, 2], {"paths_off": [["0.3", "1.9", "K"]]}, r"paths_off\[0\] receiver must be a head name"),
    ([1, 2], {"model": "gpt2"}, r'options.model "gpt2" is not loaded; loaded: \["induction-2l"\]'),
])
def test_bad_input_throws_an_error_naming_it(tab, tokens, options, message):
    import re

    got = js_error(tab, tokens, options)
    assert got is not None, f"run({tokens!r}, {options!r}) did not throw"
    assert re.search(message, got), f"run({tokens!r}, {options!r}) threw {got!r}, expected /{message}/"


def test_the_page_logged_no_error_and_requested_nothing_else(tab):
    assert tab.errors == []


# --------------------------------------------------------------------------- the head toggle


@contextlib.contextmanager
def book_like_page(browser, folder, widget_html):
    """A page laid out like the built book (the page in chapters/, the assets in _static/live/,
    <html data-content_root="../">), served over http and opened 390 px wide; closed, and its
    server stopped, when the ``with`` block ends."""
    import functools
    import http.server
    import threading

    (folder / live.SITE_DIR).mkdir(parents=True)
    for f in live.asset_files():
        shutil.copy(f, folder / live.SITE_DIR / f.name)
    (folder / "chapters").mkdir()
    (folder / "chapters" / "page.html").write_text(
        '<!doctype html><html data-content_root="../"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"</head><body>{widget_html}</body></html>")
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    page = watched_page(browser, base, viewport={"width": 390, "height": 800})
    page.goto(base + "chapters/page.html")
    try:
        page.wait_for_selector("#w-root[data-ready='1']", timeout=20_000)
        yield page
    finally:
        page.close()
        server.shutdown()


@pytest.fixture(scope="module")
def toggle(browser, tmp_path_factory, model):
    """Chapter 5's live head toggle."""
    with book_like_page(browser, tmp_path_factory.mktemp("toggle"), live.head_toggle(model, prefix="w", assets="site").data) as page:
        yield page


@pytest.fixture(scope="module")
def paths(browser, tmp_path_factory, model):
    """Chapters 3 and 4's live path ablation, with senders 0.0 and 0.3 and every layer-1 receiver ticked."""
    html = live.path_ablation(model, senders=["0.0", "0.3"], receivers=mechlib.layer_heads(model, 1), prefix="w", assets="site").data
    with book_like_page(browser, tmp_path_factory.mktemp("paths"), html) as page:
        yield page


def shown_loss(page):
    return float(page.text_content("#w-loss"))


def tokens_shown(page):
    return [int(x) for x in page.input_value("#w-tokens").split()]


def test_toggle_starts_with_the_clean_loss_of_its_sequence(toggle, model):
    assert shown_loss(toggle) == pytest.approx(repeat_loss_brute_force(model, tokens_shown(toggle), []), abs=1e-3)


def test_switching_heads_off_updates_the_loss_as_python_computes_it(toggle, model):
    toggle.click("#w-cb-0")  # head 0.0 off
    toggle.click("#w-cb-3")  # head 0.3 off
    expected = repeat_loss_brute_force(model, tokens_shown(toggle), [(0, 0), (0, 3)])
    assert shown_loss(toggle) == pytest.approx(expected, abs=1e-3)
    toggle.click("#w-all-on")
    assert shown_loss(toggle) == pytest.approx(repeat_loss_brute_force(model, tokens_shown(toggle), []), abs=1e-3)


def test_a_typed_sequence_is_run(toggle, model):
    tokens = [7, 1, 9, 4, 2, 7, 1, 9, 4, 2]
    toggle.fill("#w-tokens", " ".join(map(str, tokens)))
    toggle.press("#w-tokens", "Enter")
    assert tokens_shown(toggle) == tokens
    assert toggle.locator("#w-attn tr").count() == len(tokens) + 1
    assert shown_loss(toggle) == pytest.approx(repeat_loss_brute_force(model, tokens, []), abs=1e-3)


def test_a_bad_sequence_is_refused_with_a_message(toggle):
    before = tokens_shown(toggle)
    toggle.fill("#w-tokens", "1 2 40")
    toggle.click("#w-apply")
    assert "from 0 to 31" in toggle.text_content("#w-msg") and '"40"' in toggle.text_content("#w-msg")
    toggle.fill("#w-tokens", " ".join(map(str, before)))
    toggle.click("#w-apply")
    assert toggle.text_content("#w-msg") == ""


def test_new_repeated_sequence_draws_a_repeat(toggle, model):
    book = mechlib.repeated_batch(model)  # the draws have the shape of the book's sequences
    p, h = book.prefix_len, book.half_len
    toggle.click("#w-draw")
    t = tokens_shown(toggle)
    assert len(t) == p + 2 * h and t[p:p + h] == t[p + h:]


def test_the_pattern_shows_weights_on_hover_and_with_the_keyboard(toggle, model):
    toggle.select_option("#w-head", "1.2")
    toggle.hover("#w-attn td[data-q='12'][data-k='3']")
    t = tokens_shown(toggle)
    _, ref = hooked_run(model, torch.tensor(t), [])
    text = toggle.text_content("#w-readout")
    assert f"head 1.2: query 12 (token {t[12]}) \u2192 key 3 (token {t[3]}): {ref[1, 2, 12, 3]:.3f}" == text
    toggle.focus("#w-attn")
    toggle.keyboard.press("ArrowDown")
    toggle.keyboard.press("ArrowLeft")
    assert toggle.text_content("#w-readout").startswith(f"head 1.2: query 13 (token {t[13]}) \u2192 key 2 ")


def test_the_toggle_fits_a_phone_and_logged_no_error(toggle):
    assert toggle.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert toggle.errors == []


def test_cutting_paths_updates_the_loss_and_scores_as_path_ablation_computes_them(paths, model):
    t = torch.tensor(tokens_shown(paths))
    clean_loss = shown_loss(paths)
    assert clean_loss == pytest.approx(repeat_loss_brute_force(model, t.tolist(), []), abs=1e-3)
    senders, receivers = [(0, 0), (0, 3)], mechlib.layer_heads(model, 1)
    paths.click("#w-kind-K")
    logits = mechlib.path_ablation(model, t[None], senders, receivers, "K")
    assert shown_loss(paths) == pytest.approx(repeat_loss_brute_force(model, t.tolist(), logits=logits), abs=1e-3)
    assert paths.text_content("#w-npaths") == "8 paths cut"
    _, patterns = hooked_run(model, t, mechlib.path_ablation_hooks(model, t[None], senders, receivers, "K"))
    A = torch.tensor(patterns)[:, None]  # [layer, batch, head, q, k]
    expected = mechlib.induction_scores_from_patterns(A, t[None])
    shown = [float(x) for x in paths.locator("#w-scores tr").first.locator("td").all_text_contents()]
    assert shown == pytest.approx(expected.flatten().tolist(), abs=0.006)


def test_cutting_values_instead_and_nothing(paths, model):
    t = torch.tensor(tokens_shown(paths))
    paths.click("#w-kind-K")  # K off again
    paths.click("#w-kind-V")
    logits = mechlib.path_ablation(model, t[None], [(0, 0), (0, 3)], mechlib.layer_heads(model, 1), "V")
    assert shown_loss(paths) == pytest.approx(repeat_loss_brute_force(model, t.tolist(), logits=logits), abs=1e-3)
    paths.click("#w-uncut")
    assert paths.text_content("#w-npaths") == "0 paths cut"
    assert shown_loss(paths) == pytest.approx(repeat_loss_brute_force(model, t.tolist(), []), abs=1e-3)


def test_the_path_widget_fits_a_phone_and_logged_no_error(paths):
    assert paths.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert paths.errors == []


# --------------------------------------------------------------------------- the virtual-head calculator


@pytest.fixture(scope="module")
def calc(browser, tmp_path_factory):
    """Chapter 7's calculator (loads no weights)."""
    with book_like_page(browser, tmp_path_factory.mktemp("calc"), live.virtual_head_calculator(prefix="w", assets="site").data) as page:
        yield page


def formatted(n):
    s = str(n)
    return f"{n:,}" if len(s) <= 15 else f"{s[0]}.{s[1:3]} \u00d7 10^{len(s) - 1}"


@pytest.mark.parametrize("L, H, k", [(12, 12, 2), (2, 4, 2), (12, 12, 3), (48, 25, 2), (96, 96, 10), (3, 5, 4)])
def test_calculator_counts_as_count_virtual_heads(calc, L, H, k):
    calc.fill("#w-n_layers", str(L))
    calc.fill("#w-n_heads", str(H))
    calc.fill("#w-length", str(k))
    assert calc.text_content("#w-count") == formatted(mechlib.count_virtual_heads(L, H, k) if k <= L else 0)
    assert formatted((H + 1) ** L - 1) in calc.text_content("#w-result")
    # the virtual heads are the chains of two heads or more (glossary), summed length by length
    virtual = sum(mechlib.count_virtual_heads(L, H, j) for j in range(2, L + 1))
    assert f"of which {formatted(virtual)} of two heads or more are virtual heads" in calc.text_content("#w-result")
    assert calc.locator("#w-root svg rect").count() == L


def test_calculator_says_a_single_head_is_not_a_virtual_head(calc):
    calc.fill("#w-n_layers", "12")
    calc.fill("#w-n_heads", "12")
    calc.fill("#w-length", "1")
    assert calc.text_content("#w-result").startswith("144 chains of 1 head")
    assert "the single heads themselves, not virtual heads" in calc.text_content("#w-result")
    calc.fill("#w-length", "2")
    assert "chains of 2 heads (H^k \u00d7 C(L, k) = 12^2 \u00d7 C(12, 2)), each one virtual head" in calc.text_content("#w-result")


def test_calculator_refuses_a_bad_number(calc):
    calc.fill("#w-n_heads", "0")
    assert "heads per layer H must be a whole number from 1 to 256" in calc.text_content("#w-result")
    calc.fill("#w-n_heads", "12")


def test_calculator_fits_a_phone_and_logged_no_error(calc):
    assert calc.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert not any("weights" in u for u in calc.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)"))
    assert calc.errors == []


# --------------------------------------------------------------------------- the composition explorer


@pytest.fixture(scope="module")
def explorer(browser, tmp_path_factory, model):
    """Chapter 2's composition explorer (numbers precomputed; loads no weights)."""
    html = live.composition_explorer(model, kind="V", n_baseline=200, prefix="w", assets="site").data
    with book_like_page(browser, tmp_path_factory.mktemp("explorer"), html) as page:
        yield page


def test_explorer_starts_on_the_strongest_pair_of_its_kind(explorer, model):
    s, r = mechlib.top_pair(mechlib.composition_scores(model, "V"))
    assert (explorer.input_value("#w-sender"), explorer.input_value("#w-receiver")) == (label(s), label(r))


@pytest.mark.parametrize("sender, receiver, kind", [("0.3", "1.1", "K"), ("0.0", "1.2", "Q"), ("0.2", "1.3", "V")])
def test_explorer_shows_the_score_of_the_chosen_pair(explorer, model, sender, receiver, kind):
    explorer.select_option("#w-sender", sender)
    explorer.select_option("#w-receiver", receiver)
    explorer.check(f"#w-kind-{kind}")
    s, r = tuple(map(int, sender.split("."))), tuple(map(int, receiver.split(".")))
    score = mechlib.pair_composition_score(model, s, r, kind)
    assert explorer.text_content("#w-score") == f"{score:.3f}"
    base = mechlib.composition_baseline(model.cfg.d_model, model.cfg.d_head, 200, 0)
    z = (score - base.mean().item()) / base.std().item()
    assert f"{abs(z):.1f} standard deviations {'above' if z >= 0 else 'below'}" in explorer.text_content("#w-result")
    assert explorer.locator("#w-root svg").nth(1).locator("rect").count() == model.cfg.d_head


def test_explorer_offers_only_later_receivers_and_logged_no_error(explorer):
    options = explorer.locator("#w-receiver option").all_text_contents()
    assert options == ["1.0", "1.1", "1.2", "1.3"]
    assert explorer.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert explorer.errors == []


# --------------------------------------------------------------------------- the path expansion and the term picker


def test_expand_matches_path_expansion_term_by_term(tab, model):
    for _, tokens in random_cases(4):
        out = tab.evaluate("(t) => window.mechlibLive.expand(t)", tokens)
        ref = mechlib.path_expansion(model, torch.tensor([tokens]))
        assert out["names"] == list(ref.terms)
        assert out["kinds"] == ref.kinds
        for name, term in ref.terms.items():
            assert_close(np.array(out["terms"][name]), term[0].numpy(), f"term {name} of {tokens}")


def test_expand_refuses_interventions(tab):
    got = tab.evaluate("""() => { try { window.mechlibLive.expand([1, 2], {heads_off: ["0.1"]}); }
                                 catch (e) { return e.message; } }""")
    assert "expand takes no heads_off" in got


@pytest.fixture(scope="module")
def terms(browser, tmp_path_factory, model):
    """Chapter 6's term picker."""
    with book_like_page(browser, tmp_path_factory.mktemp("terms"), live.term_picker(model, prefix="w", assets="site").data) as page:
        yield page


def test_term_picker_loss_follows_the_kept_terms(terms, model):
    t = tokens_shown(terms)
    ref = mechlib.path_expansion(model, torch.tensor([t]))
    assert shown_loss(terms) == pytest.approx(repeat_loss_brute_force(model, t, logits=ref.total()), abs=1e-3)
    terms.click("#w-virtual-none")
    kept = [n for n, k in ref.kinds.items() if k != "virtual"]
    assert shown_loss(terms) == pytest.approx(repeat_loss_brute_force(model, t, logits=ref.total(kept)), abs=1e-3)
    terms.click("#w-term-direct")
    kept.remove("direct")
    assert shown_loss(terms) == pytest.approx(repeat_loss_brute_force(model, t, logits=ref.total(kept)), abs=1e-3)


def test_term_picker_fits_a_phone_and_logged_no_error(terms):
    assert terms.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert terms.errors == []


# --------------------------------------------------------------------------- outside the book


def test_inline_assets_run_the_widget_in_a_page_without_the_book(browser, tmp_path, model):
    # what a notebook output holds with assets="inline": no _static/live/ to load from
    page_file = tmp_path / "notebook-output.html"
    page_file.write_text('<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>'
                         + live.head_toggle(model, prefix="w", assets="inline").data + "</body></html>")
    page = watched_page(browser, "file://")
    page.goto(page_file.as_uri())
    page.wait_for_selector("#w-root[data-ready='1']", timeout=20_000)
    page.click("#w-cb-0")
    assert shown_loss(page) == pytest.approx(repeat_loss_brute_force(model, tokens_shown(page), [(0, 0)]), abs=1e-3)
    assert page.errors == []
    page.close()


def test_site_assets_outside_the_book_say_what_to_do(browser, tmp_path, model):
    # a chapter's stored output (the book's) seen in a notebook before its cell has run
    page_file = tmp_path / "no-book.html"
    page_file.write_text('<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>'
                         + live.head_toggle(model, prefix="w", assets="site").data + "</body></html>")
    page = watched_page(browser, "file://")
    page.goto(page_file.as_uri())
    assert page.text_content("#w-root .mll-nojs").startswith("Run this cell to start the widget")
    assert page.errors == []
    page.close()


# --------------------------------------------------------------------------- the checkpoint slider


@pytest.fixture(scope="module")
def slider(browser, tmp_path_factory, model):
    batch = mechlib.repeated_batch(model, batch=8)
    dynamics = mechlib.training_dynamics(batch, steps=[0, 460, 4000])
    html = live.checkpoint_slider(dynamics, batch, prefix="w", start_step=0, assets="site").data
    with book_like_page(browser, tmp_path_factory.mktemp("slider"), html) as page:
        yield page


def curve_x(step, last=4000):
    """The chapter's step axis (symlog, linear to 1000 over two decades' width), scaled to 0..1000."""
    f = (lambda s: 2 * s / 1000 if s <= 1000 else 2 + math.log10(s / 1000))
    return 1000 * f(step) / f(last)


def test_the_slider_marks_the_checkpoint_at_its_training_step(slider):
    # the loss curve's x axis is the training step, not the checkpoint's index: linear to 1000, log after
    assert float(slider.get_attribute("#w-mark", "cx")) == 0
    slider.focus("#w-range")
    slider.keyboard.press("End")
    assert slider.text_content("#w-step") == "4000"
    assert float(slider.get_attribute("#w-mark", "cx")) == pytest.approx(1000, abs=0.01)
    assert slider.get_attribute("#w-mark", "data-step") == "4000"
    slider.click("#w-prev")
    assert float(slider.get_attribute("#w-mark", "cx")) == pytest.approx(curve_x(460), abs=0.01)
    # step 460 sits at more than a third of the width (on a linear 0-4000 axis it would be at 11.5 %)
    assert curve_x(460) > 350
    assert "linear from 0 (left) to 1000 (grey line at 77% of the width" in slider.text_content("#w-root")


def test_the_slider_is_keyboard_usable_and_labelled(slider):
    assert slider.get_attribute("#w-range", "max") == "2"
    assert slider.locator("label[for='w-range']").count() == 1
    assert slider.locator("canvas[aria-label^='attention pattern of head']").count() == 8
    slider.focus("#w-range")
    slider.keyboard.press("Home")
    assert slider.get_attribute("#w-range", "aria-valuetext") == "step 0, checkpoint 1 of 3" and slider.text_content("#w-index") == "1"
    slider.keyboard.press("ArrowRight")
    assert slider.get_attribute("#w-range", "aria-valuetext") == "step 460, checkpoint 2 of 3" and slider.text_content("#w-index") == "2"


def test_the_slider_shows_the_loss_of_each_step(slider, model):
    batch = mechlib.repeated_batch(model, batch=8)
    dynamics = mechlib.training_dynamics(batch, steps=[0, 460, 4000])
    slider.focus("#w-range")
    slider.keyboard.press("Home")
    assert slider.text_content("#w-loss") == f"{float(dynamics.loss_repeat[0]):.3f}"
    slider.keyboard.press("End")
    assert slider.text_content("#w-loss") == f"{float(dynamics.loss_repeat[2]):.3f}"


def test_the_slider_shows_each_layer_on_one_row_at_phone_width(slider):
    tops = slider.evaluate("() => [...document.querySelectorAll('#w-root canvas')].map(c => c.getBoundingClientRect().top)")
    assert len(set(tops[:4])) == 1 and len(set(tops[4:])) == 1 and tops[4] > tops[0]
    assert slider.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert slider.errors == []


def test_the_pattern_marks_where_the_segment_and_its_copy_begin(toggle, model):
    ORANGE = "rgb(255, 127, 14)"  # #ff7f0e, as the browser writes it
    book = mechlib.repeated_batch(model)
    toggle.fill("#w-tokens", " ".join(map(str, live.head_toggle_config(model)["tokens"])))
    toggle.click("#w-apply")
    p, h = book.prefix_len, book.half_len
    # the first cell of the copy's row and the cell below the diagonal of the copy's column
    assert ORANGE in toggle.get_attribute(f"#w-attn td[data-q='{p + h}'][data-k='0']", "style")
    assert ORANGE in toggle.get_attribute(f"#w-attn td[data-q='{p + h + 1}'][data-k='{p}']", "style")
    assert ORANGE not in (toggle.get_attribute("#w-attn td[data-q='2'][data-k='1']", "style") or "")
    toggle.fill("#w-tokens", "1 2 3 4 5 6")  # no repeat: no lines
    toggle.click("#w-apply")
    assert ORANGE not in (toggle.get_attribute("#w-attn td[data-q='3'][data-k='3']", "style") or "")


def test_a_table_too_wide_for_a_phone_says_it_scrolls(browser, tmp_path, model, toggle):
    # 390 px wide: the predictions table of a full sequence overflows, from the start
    with book_like_page(browser, tmp_path, live.head_toggle(model, prefix="w", assets="site").data) as page:
        assert "scroll the table sideways" in page.text_content("#w-preds-more")
    toggle.fill("#w-tokens", "1 2 3 1 2 3")  # a short sequence fits: no cue
    toggle.click("#w-apply")
    assert toggle.text_content("#w-preds-more") == ""


# --------------------------------------------------------------------------- a model other than the bundled one


def test_a_widget_runs_the_model_it_is_given(browser, tmp_path, random_model):
    # a random 3-layer model: its weights travel with the widget, the code comes from the site
    html = live.head_toggle(random_model, prefix="w", assets="site").data
    with book_like_page(browser, tmp_path, html) as page:
        assert page.locator("#w-root input[data-head]").count() == 9
        t = tokens_shown(page)
        assert max(t) < 20 and len(t) <= 16
        assert shown_loss(page) == pytest.approx(repeat_loss_brute_force(random_model, t, []), abs=1e-3)
        page.click("#w-cb-4")  # head 1.1 off
        assert shown_loss(page) == pytest.approx(repeat_loss_brute_force(random_model, t, [(1, 1)]), abs=1e-3)
        assert page.errors == []


# --------------------------------------------------------------------------- the kernel-backed view


KERNEL_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<link rel="stylesheet" href="widget.css"></head><body><div id="host"></div>
<script type="module">
// a stand-in for anywidget's model: the spec, and messages to and from the kernel (Python, via pyKernel)
import widget from "./widget.js";
const spec = JSON.parse(document.getElementById("spec").textContent), listeners = [];
const bytes = (b64) => { const s = atob(b64), a = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return new DataView(a.buffer); };
const model = {
  get: (key) => spec,
  on: (event, cb) => { if (event === "msg:custom") listeners.push(cb); },
  send: async (msg) => { const r = await window.pyKernel(msg); listeners.forEach((cb) => cb(r.content, r.buffers.map(bytes))); },
};
widget.render({model, el: document.getElementById("host")});
</script></body></html>"""


@contextlib.contextmanager
def kernel_page(browser, tmp_path, w, monkeypatch):
    """The kernel-backed widget ``w`` in Chromium, its messages answered by ``w._answer`` in
    this process (as anywidget would); yields the page and the list of messages asked."""
    import base64
    import functools
    import http.server
    import json
    import threading

    sent, asked = [], []
    monkeypatch.setattr(w, "send", lambda content, buffers=None: sent.append((content, buffers or [])))

    def py_kernel(msg):
        asked.append(msg)
        w._answer(w, msg, [])
        content, buffers = sent.pop()
        return {"content": content, "buffers": [base64.b64encode(b).decode() for b in buffers]}

    (tmp_path / "widget.js").write_text(w._esm)
    (tmp_path / "widget.css").write_text(w._css)
    spec = json.dumps(w.spec).replace("<", "\\u003c")
    (tmp_path / "index.html").write_text(KERNEL_PAGE.replace(
        "<div id=\"host\"></div>", f'<div id="host"></div><script type="application/json" id="spec">{spec}</script>'))
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    page = watched_page(browser, base)
    try:
        page.expose_function("pyKernel", py_kernel)
        page.goto(base + "index.html")
        page.wait_for_selector("#w-root[data-ready='1']", timeout=20_000)
        yield page, asked
        assert page.errors == []
    finally:
        page.close()
        server.shutdown()


def _updated(page, action):
    before = int(page.get_attribute("#w-root", "data-updates"))
    action()
    page.wait_for_function(f"() => +document.querySelector('#w-root').getAttribute('data-updates') > {before}")


def test_the_kernel_view_shows_what_the_kernel_computes(browser, tmp_path, model, monkeypatch):
    w = live.head_toggle(model, prefix="w", backend="kernel")  # the bundled model, its runs asked of Python
    with kernel_page(browser, tmp_path, w, monkeypatch) as (page, asked):
        t = tokens_shown(page)
        assert shown_loss(page) == pytest.approx(repeat_loss_brute_force(model, t, []), abs=1e-3)
        _updated(page, lambda: page.click("#w-cb-0"))  # head 0.0 off: one more question to the kernel
        assert asked[-1]["options"]["heads_off"] == ["0.0"] and asked[-1]["tokens"] == t
        assert shown_loss(page) == pytest.approx(repeat_loss_brute_force(model, t, [(0, 0)]), abs=1e-3)
        page.fill("#w-tokens", "1 2 3 1 2 3")
        page.click("#w-apply")
        page.wait_for_function("() => document.querySelectorAll('#w-attn tr').length === 7")
        page.wait_for_function("() => document.querySelector('#w-loss').textContent !== ''")


def test_the_kernel_path_ablation_shows_what_path_ablation_computes(browser, tmp_path, model, monkeypatch):
    senders, receivers = [(0, 0), (0, 3)], mechlib.layer_heads(model, 1)
    w = live.path_ablation(model, senders=["0.0", "0.3"], receivers=receivers, prefix="w", backend="kernel")
    with kernel_page(browser, tmp_path, w, monkeypatch) as (page, asked):
        t = torch.tensor(tokens_shown(page))
        _updated(page, lambda: page.click("#w-kind-K"))
        assert len(asked[-1]["options"]["paths_off"]) == 8
        logits = mechlib.path_ablation(model, t[None], senders, receivers, "K")
        assert shown_loss(page) == pytest.approx(repeat_loss_brute_force(model, t.tolist(), logits=logits), abs=1e-3)


def test_the_kernel_term_picker_follows_the_kept_terms(browser, tmp_path, model, monkeypatch):
    w = live.term_picker(model, prefix="w", backend="kernel")
    with kernel_page(browser, tmp_path, w, monkeypatch) as (page, asked):
        t = tokens_shown(page)
        ref = mechlib.path_expansion(model, torch.tensor([t]))
        _updated(page, lambda: page.click("#w-virtual-none"))
        kept = [n for n, k in ref.kinds.items() if k != "virtual"]
        assert sorted(asked[-1]["options"]["terms"]) == sorted(kept)
        assert shown_loss(page) == pytest.approx(repeat_loss_brute_force(model, t, logits=ref.total(kept)), abs=1e-3)
