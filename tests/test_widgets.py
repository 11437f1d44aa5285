"""Widget logic, checked without a browser against independent computations."""
import math

import pytest
import torch

import mechlib
from mechlib import toggle, widgets

import reference
from test_toggle import brute_induction

HALF, PREFIX = 10, 5


@pytest.fixture(scope="module")
def tokens(model):
    return toggle.default_tokens(model)


@pytest.fixture(scope="module")
def head_state(model, tokens):
    return toggle.HeadToggleState(model, tokens, HALF, PREFIX)


# ---------------------------------------------------------------- head toggle
@pytest.mark.parametrize("off", [[], [(0, 0), (0, 3)], [(1, 2)], [(0, 1), (1, 0), (1, 3)]])
def test_head_toggle_loss_equals_run_with_ablation(model, tokens, head_state, off):
    on = [hd for hd in toggle.all_heads(model) if hd not in off]
    expected = mechlib.repeat_loss(mechlib.run_with_ablation(model, tokens, off), tokens, HALF, PREFIX)
    assert head_state.update(on)["loss"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("off", [[(0, 0), (0, 3)], [(0, 2), (1, 1)]])
def test_head_toggle_scores_and_patterns_match_float64_reference(model, tokens, head_state, off):
    on = [hd for hd in toggle.all_heads(model) if hd not in off]
    result = head_state.update(on)
    _, patterns = reference.forward(model, tokens, zero_heads=off, return_patterns=True)
    torch.testing.assert_close(result["induction"].double(), brute_induction(patterns, tokens), atol=1e-5, rtol=0)
    torch.testing.assert_close(result["patterns"].double(), patterns[:, 0], atol=1e-5, rtol=0)


def test_head_toggle_with_all_heads_on_matches_induction_scores(model, tokens, head_state):
    torch.testing.assert_close(head_state.clean["induction"], mechlib.induction_scores(model, tokens), atol=1e-6, rtol=0)


def test_head_toggle_rejects_bad_input(model, tokens):
    with pytest.raises(ValueError, match="prefix_len"):
        toggle.HeadToggleState(model, tokens, HALF, PREFIX + 1)
    with pytest.raises(ValueError, match="example"):
        toggle.HeadToggleState(model, tokens, HALF, PREFIX, example=32)
    with pytest.raises(ValueError, match="layer 2 does not exist"):
        toggle.HeadToggleState(model, tokens, HALF, PREFIX).update([(2, 0)])


@pytest.fixture()
def head_widget(model, tokens):
    return widgets.head_toggle(model, tokens, HALF, PREFIX)


def test_unticking_a_checkbox_updates_the_displayed_loss(model, tokens, head_widget):
    clean = head_widget.result["loss"]
    assert f"{clean:.3f}</b>" in head_widget.loss_view.value
    head_widget.checkboxes[(0, 0)].value = False
    head_widget.checkboxes[(0, 3)].value = False
    expected = mechlib.repeat_loss(mechlib.run_with_ablation(model, tokens, [(0, 0), (0, 3)]), tokens, HALF, PREFIX)
    assert head_widget.result["loss"] == pytest.approx(expected, abs=1e-5)
    assert f"{head_widget.result['loss']:.3f}</b>" in head_widget.loss_view.value
    assert "0.07 (off)" in head_widget.scores_view.value


def test_previous_token_heads_off_breaks_induction_but_an_unrelated_head_does_not(head_widget):
    head_widget.checkboxes[(0, 1)].value = False
    assert head_widget.result["induction"][1].min() > 0.6 and head_widget.result["loss"] < 1.0
    head_widget.set_enabled([hd for hd in head_widget.state.heads if hd not in [(0, 0), (0, 3)]])
    assert head_widget.result["induction"][1].max() < 0.3 and head_widget.result["loss"] > 2.0


def test_all_on_and_all_off_buttons_update_once(head_widget, monkeypatch):
    calls = []
    update = head_widget.state.update
    monkeypatch.setattr(head_widget.state, "update", lambda heads: calls.append(1) or update(heads))
    head_widget.all_off.click()
    assert head_widget.enabled() == [] and len(calls) == 1
    assert head_widget.result["loss"] == pytest.approx(head_widget._reference[1])
    head_widget.all_on.click()
    assert len(head_widget.enabled()) == 8 and len(calls) == 2


def test_choosing_a_head_shows_its_pattern(head_widget):
    head_widget.head_select.value = (0, 3)
    assert "attention pattern of head 0.3" in head_widget.pattern_view.value
    assert "key position" in head_widget.pattern_view.value and "query position" in head_widget.pattern_view.value


# ---------------------------------------------------------------- composition explorer
@pytest.fixture(scope="module")
def comp_state(model):
    return widgets.CompositionExplorerState(model, n_baseline=200)


def dense64(model, kind, sender, receiver):
    """Sender OV and the receiver matrix of ``kind``, as dense float64 matrices from the raw weights."""
    w = reference.weights64(model)
    (ls, hs), (lr, hr) = sender, receiver
    ov = w["W_V"][ls, hs] @ w["W_O"][ls, hs]
    qk = w["W_Q"][lr, hr] @ w["W_K"][lr, hr].T
    right = {"Q": qk, "K": qk.T, "V": w["W_V"][lr, hr] @ w["W_O"][lr, hr]}[kind]
    return ov, right


@pytest.mark.parametrize("kind", ["Q", "K", "V"])
@pytest.mark.parametrize("pair", [((0, 0), (1, 0)), ((0, 3), (1, 2))])
def test_composition_state_matches_dense_float64(model, comp_state, kind, pair):
    r = comp_state.update(*pair, kind)
    ov, right = dense64(model, kind, *pair)
    assert r["score"] == pytest.approx(((ov @ right).norm() / (ov.norm() * right.norm())).item(), abs=1e-5)
    sv = torch.linalg.svdvals(ov @ right)
    torch.testing.assert_close(r["singular_values"][:16], sv[:16], rtol=1e-4, atol=1e-6)
    assert r["singular_values"].shape == (model.cfg.d_model,)
    assert r["rank"] <= model.cfg.d_head and r["singular_values"][16:].max() < 1e-5 * sv[0]
    assert r["z"] == pytest.approx((r["score"] - comp_state.baseline.mean().item()) / comp_state.baseline.std().item())


def test_composition_state_offers_only_later_receivers(comp_state):
    assert comp_state.senders == [(0, h) for h in range(4)]
    assert comp_state.receivers_for((0, 2)) == [(1, h) for h in range(4)]
    with pytest.raises(ValueError, match="earlier layer"):
        comp_state.update((1, 0), (1, 1), "K")
    with pytest.raises(ValueError, match="kind"):
        comp_state.update((0, 0), (1, 1), "X")


def test_composition_explorer_widget_updates(model):
    ex = widgets.composition_explorer(model, sender=(0, 0), receiver=(1, 1), kind="K", n_baseline=200)
    assert ex.figure.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert ex.result["score"] == pytest.approx(mechlib.pair_composition_score(model, (0, 0), (1, 1), "K"), abs=1e-6)
    ex.kind.value = "V"
    assert ex.result["kind"] == "V" and "V-composition of 0.0 → 1.1" in ex.summary.value
    ex.sender.value = (0, 3)
    assert [v for _, v in ex.receiver.options] == [(1, h) for h in range(4)]
    assert ex.result["sender"] == (0, 3) and ex.result["receiver"] == (1, 1)


# ---------------------------------------------------------------- expansion explorer
@pytest.fixture(scope="module")
def exp_state(model, tokens):
    return widgets.ExpansionExplorerState(model, tokens, HALF, PREFIX)


def test_expansion_with_every_term_gives_the_models_loss(model, tokens, exp_state):
    with torch.no_grad():
        expected = mechlib.repeat_loss(model(tokens), tokens, HALF, PREFIX)
    assert exp_state.update(exp_state.names)["loss"] == pytest.approx(expected, abs=1e-5)
    assert exp_state.update([])["loss"] == pytest.approx(math.log(model.cfg.d_vocab), abs=1e-5)


def test_expansion_subset_loss_equals_sum_of_kept_terms(tokens, exp_state):
    kept = ["direct", "0.1", "1.2", "0.0->1.1", "0.3->1.2", "bias 0"]
    logits = sum(exp_state.expansion.terms[n] for n in kept)
    assert exp_state.update(kept)["loss"] == pytest.approx(mechlib.repeat_loss(logits, tokens, HALF, PREFIX), abs=1e-9)
    with pytest.raises(ValueError, match="unknown term"):
        exp_state.update(["0.9"])


def test_expansion_groups_cover_every_term_once(exp_state):
    assert sorted(n for names in exp_state.groups.values() for n in names) == sorted(exp_state.names)
    assert [len(exp_state.groups[k]) for k in ("direct", "single", "virtual")] == [1, 8, 16]


def test_expansion_explorer_group_buttons(exp_state):
    ex = widgets.ExpansionExplorer(exp_state)
    full = ex.result["loss"]
    none_virtual = ex.group_buttons["virtual"][1]
    none_virtual.click()
    assert not any(ex.checkboxes[n].value for n in exp_state.groups["virtual"])
    without = exp_state.update([n for n in exp_state.names if exp_state.expansion.kinds[n] != "virtual"])["loss"]
    assert ex.result["loss"] == pytest.approx(without) and f"{without:.3f}</b>" in ex.loss_view.value
    ex.checkboxes["0.0->1.0"].value = True
    assert "0.0->1.0" in ex.result["kept"]
    ex.group_buttons["virtual"][0].click()
    assert ex.result["loss"] == pytest.approx(full)
