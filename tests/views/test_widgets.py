"""The ipywidgets views: clicking updates what is shown, from the core's widget state."""
import pytest

import mechlib
from mechlib import toggle
from mechlib.views import widgets

HALF, PREFIX = toggle.DEFAULT_HALF_LEN, toggle.DEFAULT_PREFIX_LEN


@pytest.fixture()
def head_widget(model, toggle_tokens):
    return widgets.head_toggle(model, toggle_tokens, HALF, PREFIX)


def test_unticking_a_checkbox_updates_the_displayed_loss(model, toggle_tokens, head_widget):
    clean = head_widget.result["loss"]
    assert f"{clean:.3f}</b>" in head_widget.loss_view.value
    head_widget.checkboxes[(0, 0)].value = False
    head_widget.checkboxes[(0, 3)].value = False
    expected = mechlib.repeat_loss(mechlib.run_with_ablation(model, toggle_tokens, [(0, 0), (0, 3)]), toggle_tokens, HALF, PREFIX)
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


def test_composition_explorer_widget_updates(model):
    ex = widgets.composition_explorer(model, sender=(0, 0), receiver=(1, 1), kind="K", n_baseline=200)
    assert ex.figure.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert ex.result["score"] == pytest.approx(mechlib.pair_composition_score(model, (0, 0), (1, 1), "K"), abs=1e-6)
    ex.kind.value = "V"
    assert ex.result["kind"] == "V" and "V-composition of 0.0 → 1.1" in ex.summary.value
    ex.sender.value = (0, 3)
    assert [v for _, v in ex.receiver.options] == [(1, h) for h in range(4)]
    assert ex.result["sender"] == (0, 3) and ex.result["receiver"] == (1, 1)


def test_expansion_explorer_group_buttons(model, toggle_tokens):
    exp_state = mechlib.ExpansionExplorerState(model, toggle_tokens, HALF, PREFIX)
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
