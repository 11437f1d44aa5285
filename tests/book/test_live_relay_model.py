"""relay-2l in the page: model.js against mechlib's float64 reference on the relay task, in
headless Chromium, and the model views scoring the loss on the relay batch's mask.

The forward pass and relay-2l's shipped weights alone must agree with the float64 forward pass
of ``mechlib.teaching.reference`` (logits and patterns, clean, heads off, paths cut), and the
loss the page takes over the relay batch's scored positions (the prediction at ``R``) must
equal the reference's: cutting 0.0 from the values of 1.0 costs more than a nat, from its
queries or keys almost nothing (chapter 2). The views (path ablation, head toggle, term
picker), laid out like the built book, load relay-2l's weights and not induction-2l's, show
that loss, and step through the batch's sequences. Chapter 2, V-Composition; Chapter 6.
"""
import contextlib
import math
import random
import shutil

import numpy as np
import pytest

import torch

import mechlib
from mechlib.teaching import reference
from mechlib.views import live
from page_audit import watched_page

TOL = 1e-4

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def relay():
    return mechlib.load_model("relay-2l")


@pytest.fixture(scope="module")
def rb(relay):
    return mechlib.relay_batch(relay)


@pytest.fixture(scope="module")
def tab(browser, tmp_path_factory):
    """model.js and relay-2l's weights alone, in a page opened from disk."""
    folder = tmp_path_factory.mktemp("relay")
    files = [live.asset_dir() / live.weights_file("relay-2l"), live.asset_dir() / "model.js"]
    for f in files:
        shutil.copy(f, folder / f.name)
    scripts = "".join(f'<script src="{f.name}"></script>' for f in files)
    (folder / "index.html").write_text(f"<!doctype html><html><head>{scripts}</head><body></body></html>")
    page = watched_page(browser, "file://")
    page.goto((folder / "index.html").as_uri())
    yield page
    assert page.errors == []
    page.close()


def remove_of(cut):
    """``reference.forward``'s ``remove`` for 0.0 cut from one input of 1.0 (None: nothing cut)."""
    return None if cut is None else ([(0, 0)], [(1, 0)], cut)


def ref_row(relay, tokens, cut=None, zero_heads=()):
    logits, patterns = reference.forward(relay, torch.tensor([tokens]), zero_heads=zero_heads, remove=remove_of(cut),
                                         return_patterns=True)
    return logits[0].numpy(), patterns[:, 0].numpy()


def masked_loss64(logits, tokens, positions):
    """Mean -log softmax(logits[q])[tokens[q + 1]] over ``positions``, in float64."""
    logp = torch.as_tensor(logits).double().log_softmax(-1)
    return float(-torch.stack([logp[q, tokens[q + 1]] for q in positions]).mean())


def js_options(cut, heads_off=()):
    return {"paths_off": [["0.0", "1.0", cut]] if cut else [], "heads_off": list(heads_off)}


@pytest.mark.parametrize("cut, heads_off", [(None, ()), (None, ("0.0",)), (None, ("1.0",)), ("Q", ()), ("K", ()),
                                            ("V", ()), ("V", ("1.0",))])
def test_run_matches_the_float64_reference_on_relay_sequences(tab, relay, rb, cut, heads_off):
    rows = random.Random(0).sample(range(len(rb.tokens)), 6)
    for r in rows:
        tokens = rb.tokens[r].tolist()
        out = tab.evaluate("([t, o]) => window.mechlibLive.run(t, o)", [tokens, js_options(cut, heads_off)])
        logits, patterns = ref_row(relay, tokens, cut, [(int(h[0]), int(h[2])) for h in heads_off])
        assert np.abs(np.array(out["logits"]) - logits).max() < TOL, f"row {r}"
        assert np.abs(np.array(out["patterns"]) - patterns).max() < TOL, f"row {r}"


JS_BATCH_LOSS = """([batch, options]) => {
  const api = window.mechlibLive, V = api.model("relay-2l").config.d_vocab;
  let total = 0;
  batch.tokens.forEach((t) => {
    const pos = api.scoredPositions(t, batch).positions, raw = api.runRaw(t, Object.assign({model: "relay-2l"}, options));
    total += api.repeatLoss(raw.logits, t, pos, V);
  });
  return total / batch.tokens.length;
}"""


def batch_loss64(relay, rb, cut=None, zero_heads=()):
    """The float64 reference's mean loss over the relay batch's mask (the prediction at R)."""
    logits = reference.forward(relay, rb.tokens, zero_heads=zero_heads, remove=remove_of(cut))
    return float(-logits[:, :-1].log_softmax(-1).gather(-1, rb.tokens[:, 1:, None])[..., 0][rb.mask].mean())


def test_the_page_loss_on_the_relay_mask_is_the_reference_loss_and_v_carries_it(tab, relay, rb):
    spec = live.spec_of(live.path_ablation(relay, senders="0.0", receivers="1.0", assets="site").data)["config"]["batch"]
    ref = {}
    for cut in (None, "Q", "K", "V"):
        ref[cut] = batch_loss64(relay, rb, cut)
        page = tab.evaluate(JS_BATCH_LOSS, [spec, js_options(cut)])
        assert page == pytest.approx(ref[cut], abs=1e-4), cut
    for head in ("0.0", "1.0"):  # a head switched off: the relay breaks either way
        off = batch_loss64(relay, rb, zero_heads=[(int(head[0]), 0)])
        assert tab.evaluate(JS_BATCH_LOSS, [spec, js_options(None, [head])]) == pytest.approx(off, abs=1e-4), head
        assert off - ref[None] > 1.0
    # chapter 2's claims, read off the page's numbers' reference
    assert ref[None] < 0.1
    assert ref["V"] - ref[None] > 1.0 and ref["V"] > math.log(relay.cfg.d_vocab)
    assert ref["Q"] - ref[None] < 0.05 and ref["K"] - ref[None] < 0.05


def test_a_typed_sequence_is_scored_at_every_recall_token(tab, relay):
    M, R = relay.cfg.d_vocab - 2, relay.cfg.d_vocab - 1
    typed = [3, 7, M, 9, 1, 4, R, 7, 2, R, 7]
    batch = {"tokens": [[0, 1]], "mask": [[0]], "after_token": R}
    got = tab.evaluate("([t, b]) => window.mechlibLive.scoredPositions(t, b)", [typed, batch])
    assert got == {"row": -1, "positions": [6, 9]}
    assert tab.evaluate("([t, b]) => window.mechlibLive.scoredPositions(t, b)", [[0, 1], batch]) == {"row": 0, "positions": [0]}


# --------------------------------------------------------------------------- the views, laid out like the book


@contextlib.contextmanager
def book_like_page(browser, folder, widget_html):
    """The widget in chapters/page.html, every shipped asset in _static/live/, served over http, 390 px wide."""
    import functools
    import http.server
    import threading

    (folder / live.SITE_DIR).mkdir(parents=True)
    for f in [*live.asset_dir().glob("*.js"), *live.asset_dir().glob("*.css")]:
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
        assert page.errors == []
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    finally:
        page.close()
        server.shutdown()


def shown_loss(page):
    return float(page.text_content("#w-loss"))


def tokens_shown(page):
    return [int(x) for x in page.input_value("#w-tokens").split()]


def weights_loaded(page):
    return sorted(u.rsplit("/", 1)[1] for u in page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
                  if u.endswith(".weights.js"))


def test_path_ablation_on_relay_2l_shows_the_v_cut(browser, tmp_path, relay, rb):
    html = live.path_ablation(relay, senders="0.0", receivers="1.0", prefix="w", assets="site").data
    with book_like_page(browser, tmp_path, html) as page:
        assert weights_loaded(page) == ["relay-2l.weights.js"]
        t = tokens_shown(page)
        assert t == rb.tokens[0].tolist()
        positions = [int(rb.recall[0])]
        assert "Loss on the recalled tokens" in page.text_content("#w-root")
        assert shown_loss(page) == pytest.approx(masked_loss64(ref_row(relay, t)[0], t, positions), abs=1e-3)
        page.click("#w-kind-V")
        cut_v = masked_loss64(ref_row(relay, t, "V")[0], t, positions)
        assert shown_loss(page) == pytest.approx(cut_v, abs=1e-3) and cut_v > 1.0
        page.click("#w-kind-V")
        page.click("#w-draw")  # the next sequence of the batch
        t = tokens_shown(page)
        assert t == rb.tokens[1].tolist()
        assert shown_loss(page) == pytest.approx(masked_loss64(ref_row(relay, t)[0], t, [int(rb.recall[1])]), abs=1e-3)


def test_the_prediction_panel_on_relay_2l_names_v(browser, tmp_path, relay, rb):
    html = live.path_ablation(relay, senders="0.0", receivers="1.0", prefix="w", assets="site").data
    with book_like_page(browser, tmp_path, html) as page:
        page.check("#w-guess-V")
        page.check("#w-size-large")
        page.click("#w-commit")
        page.wait_for_selector("#w-answer")
        t, positions = rb.tokens[0].tolist(), [int(rb.recall[0])]
        clean = masked_loss64(ref_row(relay, t)[0], t, positions)
        for kind in "QKV":
            rise = masked_loss64(ref_row(relay, t, kind)[0], t, positions) - clean
            assert page.text_content(f"#w-rise-{kind}").startswith(f"{'+' if rise >= 0 else '-'}{abs(rise):.3f} nats")
        assert "cutting V matters most" in page.text_content("#w-verdict")


def test_head_toggle_on_relay_2l_scores_the_recall(browser, tmp_path, relay, rb):
    with book_like_page(browser, tmp_path, live.head_toggle(relay, prefix="w", assets="site").data) as page:
        t, positions = tokens_shown(page), [int(rb.recall[0])]
        page.click("#w-cb-0")  # head 0.0 off
        off = masked_loss64(ref_row(relay, t, zero_heads=[(0, 0)])[0], t, positions)
        assert shown_loss(page) == pytest.approx(off, abs=1e-3)


def test_term_picker_on_relay_2l_follows_the_kept_terms(browser, tmp_path, relay, rb):
    with book_like_page(browser, tmp_path, live.term_picker(relay, prefix="w", assets="site").data) as page:
        t, positions = tokens_shown(page), [int(rb.recall[0])]
        ex = mechlib.path_expansion(relay, torch.tensor([t]))
        assert shown_loss(page) == pytest.approx(masked_loss64(ref_row(relay, t)[0], t, positions), abs=1e-3)
        page.click("#w-virtual-none")
        kept = [n for n, k in ex.kinds.items() if k != "virtual"]
        assert shown_loss(page) == pytest.approx(masked_loss64(ex.total(kept)[0], t, positions), abs=1e-3)


def test_a_page_with_both_models_runs_each_widget_on_its_own(browser, tmp_path, relay, rb):
    # chapter 6's page: the term picker on induction-2l, then on relay-2l
    model = mechlib.load_model()
    html = live.term_picker(model, prefix="x", assets="site").data + live.term_picker(relay, prefix="w", assets="site").data
    with book_like_page(browser, tmp_path, html) as page:
        page.wait_for_selector("#x-root[data-ready='1']", timeout=20_000)
        assert weights_loaded(page) == ["induction-2l.weights.js", "relay-2l.weights.js"]
        t = tokens_shown(page)
        assert shown_loss(page) == pytest.approx(masked_loss64(ref_row(relay, t)[0], t, [int(rb.recall[0])]), abs=1e-3)
        x = [int(v) for v in page.input_value("#x-tokens").split()]
        expected = reference.repeat_loss_brute_force(model, x)
        assert float(page.text_content("#x-loss")) == pytest.approx(expected, abs=1e-3)
        assert "Loss on the repeated tokens" in page.text_content("#x-root")
