"""Interactive widgets (ipywidgets 8): thin views over tested mechlib functions.

Each widget is split in two: a *state* class in the core that holds the update logic and
returns plain numbers and tensors (testable without a browser or ipywidgets), and an
ipywidgets container here that shows them. The views are:

* :func:`head_toggle` -- switch any heads off; the loss on repeated tokens, every head's
  induction score and a chosen head's attention pattern update at once.
* :func:`composition_explorer` -- pick a sender, a later receiver and Q/K/V; see the
  composition score against the random baseline and the singular values of the
  composed circuit, with the rank bound ``d_head``.
* :func:`expansion_explorer` -- keep or drop terms of the exact path expansion and see
  the loss of their sum.

Their logic lives in the core (:class:`mechlib.HeadToggleState`,
:class:`mechlib.CompositionExplorerState`, :class:`mechlib.ExpansionExplorerState`).
Without a kernel (the HTML book) use the live widgets of :mod:`mechlib.views.live`.

Shown in the "Play" sections of the exercise notebooks (Chapters 2-6).
"""
from __future__ import annotations

import io
import itertools
import math
from contextlib import contextmanager
from typing import Any, Iterable

import ipywidgets as W
import torch
from matplotlib.figure import Figure

from mechlib.explorers import CompositionExplorerState, ExpansionExplorerState
from mechlib.heads import Head, head_label
from mechlib.toggle import DEFAULT_HALF_LEN, DEFAULT_PREFIX_LEN, HeadToggleState
from mechlib.validate import check_head, check_heads, check_kind, check_sender_receiver
from mechlib.views import plots
from mechlib.views.html import loss_html, pattern_html, score_table_html, style_block

_ids = itertools.count()


def _model(model: Any) -> Any:
    if model is None:
        from mechlib.models import load_model

        return load_model()
    return model


def _scoped(html: str) -> str:
    """Wrap ``html`` in a div with a fresh id and the toggle CSS scoped to it."""
    root = f"mlw{next(_ids)}"
    return f'<div id="{root}">{style_block(root)}{html}</div>'


class _Batch:
    """Mixin: run many checkbox changes as one update (``with self._batch(): ...``)."""

    _suspended = False

    @contextmanager
    def _batch(self):
        self._suspended = True
        try:
            yield
        finally:
            self._suspended = False
        self.refresh()

    def _on_change(self, _change: Any) -> None:
        """Observer for every control: update now, unless inside ``_batch``."""
        if not self._suspended:
            self.refresh()


# ---------------------------------------------------------------- head toggle
class HeadToggle(_Batch, W.VBox):
    """The head toggle view: one checkbox per head, the loss, induction scores and a pattern.

    ``checkboxes[(l, h)]`` is head ``l.h``'s checkbox; ``result`` is the latest
    :meth:`mechlib.toggle.HeadToggleState.update` output; ``refresh()`` recomputes.
    """

    def __init__(self, state: HeadToggleState, pattern_head: Head | None = None):
        self.state = state
        model = state.model
        H = model.cfg.n_heads
        pattern_head = check_head(model, pattern_head if pattern_head is not None else
                                  (min(1, model.cfg.n_layers - 1), 0), "pattern_head")
        self.checkboxes = {
            hd: W.Checkbox(value=True, description=head_label(hd), indent=False, layout=W.Layout(width="auto"))
            for hd in state.heads
        }
        rows = [W.HBox([W.Label(f"layer {l}:", layout=W.Layout(width="4.5em"))]
                       + [self.checkboxes[(l, h)] for h in range(H)])
                for l in range(model.cfg.n_layers)]
        self.all_on = W.Button(description="all on", layout=W.Layout(width="7em"))
        self.all_off = W.Button(description="all off", layout=W.Layout(width="7em"))
        self.head_select = W.Dropdown(options=[(head_label(hd), hd) for hd in state.heads], value=pattern_head,
                                      description="show head", layout=W.Layout(width="13em"))
        self.loss_view, self.scores_view, self.pattern_view = W.HTML(), W.HTML(), W.HTML()
        for cb in self.checkboxes.values():
            cb.observe(self._on_change, names="value")
        self.head_select.observe(lambda _: self._render_pattern(), names="value")
        self.all_on.on_click(lambda _: self.set_enabled(state.heads))
        self.all_off.on_click(lambda _: self.set_enabled([]))
        self.result: dict[str, Any] = {}
        all_off = state.update([])["loss"]
        self._reference = (state.clean["loss"], all_off, math.log(model.cfg.d_vocab))
        super().__init__([
            W.HTML("<b>Heads</b> (ticked = on; untick to switch a head off)"),
            *rows,
            W.HBox([self.all_on, self.all_off]),
            self.loss_view,
            W.HBox([self.scores_view, W.VBox([self.head_select, self.pattern_view])],
                   layout=W.Layout(flex_flow="row wrap", align_items="flex-start", grid_gap="2em")),
        ])
        self.refresh()

    def enabled(self) -> list[Head]:
        """The heads whose checkbox is ticked."""
        return [hd for hd, cb in self.checkboxes.items() if cb.value]

    def set_enabled(self, heads: Iterable[Head]) -> None:
        """Tick exactly ``heads`` (and untick the rest), then update once."""
        on = set(check_heads(self.state.model, list(heads)))
        with self._batch():
            for hd, cb in self.checkboxes.items():
                cb.value = hd in on

    def refresh(self) -> None:
        """Recompute for the ticked heads and redraw the loss, scores and pattern."""
        self.result = self.state.update(self.enabled())
        clean, all_off, uniform = self._reference
        self.loss_view.value = _scoped(loss_html(self.result["loss"], clean, all_off, uniform))
        self.scores_view.value = _scoped(score_table_html(
            self.result["induction"], self.result["enabled"],
            title=f"induction score (mean over {self.state.tokens.shape[0]} sequences)"))
        self._render_pattern()

    def _render_pattern(self) -> None:
        if not self.result:
            return
        l, h = self.head_select.value
        s = self.state
        self.pattern_view.value = _scoped(
            pattern_html(self.result["patterns"][l, h], boundaries=(s.prefix_len, s.prefix_len + s.half_len),
                         title=f"attention pattern of head {head_label((l, h))} (sequence {s.example})")
            + '<div class="mlt-axis">orange lines: start of the first and of the second copy</div>')


def head_toggle(model: Any = None, tokens: torch.Tensor | None = None, half_len: int = DEFAULT_HALF_LEN,
                prefix_len: int = DEFAULT_PREFIX_LEN, pattern_head: Head | None = None) -> HeadToggle:
    """Switch heads off and watch induction break.

    One checkbox per head (ticked = on). Every change re-runs ``model`` on ``tokens``
    (default: ``repeated_tokens(d_vocab, 32, half_len, seed=0, prefix_len)``) with the unticked
    heads zero-ablated and shows the repeat loss, every head's induction score and the
    attention pattern of the head chosen in the drop-down (default: the first layer-1 head).
    """
    model = _model(model)
    return HeadToggle(HeadToggleState(model, tokens, half_len, prefix_len), pattern_head)


# ---------------------------------------------------------------- composition explorer
#: the composed circuit of each kind, whose Frobenius norm is the composition score's numerator
COMPOSED = {"Q": "W<sub>OV</sub><sup>{s}</sup> W<sub>QK</sub><sup>{r}</sup>",
            "K": "W<sub>OV</sub><sup>{s}</sup> (W<sub>QK</sub><sup>{r}</sup>)<sup>T</sup>",
            "V": "W<sub>OV</sub><sup>{s}</sup> W<sub>OV</sub><sup>{r}</sup>"}


class CompositionExplorer(_Batch, W.VBox):
    """Sender / receiver / kind pickers, a summary line and a two-panel figure (as a PNG)."""

    def __init__(self, state: CompositionExplorerState, sender: Head | None = None,
                 receiver: Head | None = None, kind: str = "K"):
        self.state = state
        sender = check_head(state.model, sender, "sender") if sender is not None else state.senders[0]
        receivers = state.receivers_for(sender)
        receiver = receiver if receiver is not None else receivers[0]
        check_sender_receiver(state.model, sender, receiver)
        label = {"description_width": "4.5em"}
        self.sender = W.Dropdown(options=[(head_label(h), h) for h in state.senders], value=sender,
                                 description="sender", style=label, layout=W.Layout(width="10em"))
        self.receiver = W.Dropdown(options=[(head_label(h), h) for h in receivers], value=tuple(receiver),
                                   description="receiver", style=label, layout=W.Layout(width="10em"))
        self.kind = W.ToggleButtons(options=["Q", "K", "V"], value=check_kind(kind),
                                    tooltips=["sender output read by the receiver's queries",
                                              "sender output read by the receiver's keys",
                                              "sender output read by the receiver's values"],
                                    style={"button_width": "3em"}, layout=W.Layout(width="auto"))
        self.summary = W.HTML()
        self.figure = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.result: dict[str, Any] = {}
        self.sender.observe(self._on_sender, names="value")
        self.receiver.observe(self._on_change, names="value")
        self.kind.observe(self._on_change, names="value")
        super().__init__([W.HBox([self.sender, self.receiver, W.Label("kind", layout=W.Layout(margin="0 0.5em 0 1.5em")),
                                  self.kind], layout=W.Layout(flex_flow="row wrap", align_items="center")),
                          self.summary, self.figure])
        self.refresh()

    def _on_sender(self, change: Any) -> None:
        # only later-layer heads may receive: rebuild the receiver list, keep the choice if allowed
        with self._batch():
            options = self.state.receivers_for(change["new"])
            old = self.receiver.value
            self.receiver.options = [(head_label(h), h) for h in options]
            self.receiver.value = old if old in options else options[0]

    def refresh(self) -> None:
        r = self.result = self.state.update(self.sender.value, self.receiver.value, self.kind.value)
        name = f"{head_label(r['sender'])} → {head_label(r['receiver'])}"
        self.summary.value = (
            f"{r['kind']}-composition of {name}: <b>{r['score']:.3f}</b>; random baseline "
            f"{r['baseline_mean']:.3f} ± {r['baseline_std']:.3f}, so the pair is "
            f"<b>{r['z']:+.1f}</b> baseline standard deviations away. The composed circuit "
            f"{COMPOSED[r['kind']].format(s=head_label(r['sender']), r=head_label(r['receiver']))} has rank "
            f"{r['rank']} (at most d_head = {self.state.d_head}).")
        fig = Figure(figsize=(9.5, 3.2), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        plots.plot_baseline(self.state.baseline, marks={name: r["score"]}, ax=ax1, kind=r["kind"])
        ax1.set_title(f"{r['kind']}-composition score vs random baseline")
        plots.plot_singular_values(r["singular_values"], self.state.d_head, ax=ax2,
                                   title=f"singular values of the composed {r['kind']} circuit")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        self.figure.value = buf.getvalue()


def composition_explorer(model: Any = None, sender: Head | None = None, receiver: Head | None = None,
                         kind: str = "K", n_baseline: int = 1000) -> CompositionExplorer:
    """Pick a sender, a later receiver and a kind (Q, K or V) and see how strongly they compose.

    Shows the composition score against ``n_baseline`` random-matrix scores
    (:func:`mechlib.composition_baseline`) and the singular values of the composed circuit
    with the rank bound ``d_head`` marked. The receiver list holds only later-layer heads and
    follows the sender.
    """
    model = _model(model)
    return CompositionExplorer(CompositionExplorerState(model, n_baseline), sender, receiver, kind)


# ---------------------------------------------------------------- expansion explorer
GROUP_TITLES = {"direct": "direct path", "single": "single-head terms", "virtual": "virtual-head terms",
                "bias": "bias terms"}


class ExpansionExplorer(_Batch, W.VBox):
    """Checkboxes for every path-expansion term, grouped by kind with all/none buttons, and the loss."""

    def __init__(self, state: ExpansionExplorerState):
        self.state = state
        self.checkboxes = {n: W.Checkbox(value=True, description=n, indent=False, layout=W.Layout(width="auto"))
                           for n in state.names}
        self.group_buttons: dict[str, tuple[W.Button, W.Button]] = {}
        boxes = []
        for kind, names in state.groups.items():
            if not names:
                continue
            on = W.Button(description="all", layout=W.Layout(width="4.5em"))
            off = W.Button(description="none", layout=W.Layout(width="4.5em"))
            on.on_click(lambda _, k=kind: self.set_group(k, True))
            off.on_click(lambda _, k=kind: self.set_group(k, False))
            self.group_buttons[kind] = (on, off)
            boxes.append(W.VBox([
                W.HBox([W.HTML(f"<b>{GROUP_TITLES[kind]}</b> ({len(names)})", layout=W.Layout(width="13em")),
                        on, off]),
                W.HBox([self.checkboxes[n] for n in names], layout=W.Layout(flex_flow="row wrap", grid_gap="0 1em")),
            ]))
        for cb in self.checkboxes.values():
            cb.observe(self._on_change, names="value")
        self.loss_view = W.HTML()
        self.result: dict[str, Any] = {}
        super().__init__([self.loss_view, *boxes])
        self.refresh()

    def kept(self) -> list[str]:
        return [n for n, cb in self.checkboxes.items() if cb.value]

    def set_group(self, kind: str, value: bool) -> None:
        """Tick (``True``) or untick every term of one kind, then update once."""
        if kind not in self.state.groups:
            raise ValueError(f"kind must be one of {list(self.state.groups)}; got {kind!r}")
        with self._batch():
            for n in self.state.groups[kind]:
                self.checkboxes[n].value = value

    def refresh(self) -> None:
        r = self.result = self.state.update(self.kept())
        uniform = math.log(self.state.model.cfg.d_vocab)
        top = max(uniform, self.state.full_loss) * 1.5  # a longer loss fills the bar
        self.loss_view.value = _scoped(
            f'<div>Loss on the repeated half, from the sum of the {len(r["kept"])} kept terms '
            f'(of {len(self.state.names)}): <b>{r["loss"]:.3f}</b> nats '
            f'<span class="mlt-lossbar"><div style="width:{100 * min(r["loss"], top) / top:.1f}%"></div></span>'
            f'<div class="mlt-axis">all terms (the model itself): {self.state.full_loss:.3f} &nbsp;·&nbsp; '
            f"no terms (uniform guess): {uniform:.3f} nats</div></div>")


def expansion_explorer(model: Any = None, tokens: torch.Tensor | None = None, half_len: int = DEFAULT_HALF_LEN,
                       prefix_len: int = DEFAULT_PREFIX_LEN) -> ExpansionExplorer:
    """Keep or drop terms of the exact path expansion and see the loss of what is left.

    The terms of :func:`mechlib.path_expansion` (direct path, single-head terms, virtual-head
    terms, bias terms) each get a checkbox; the loss on the repeated half of ``tokens`` is
    computed from the sum of the ticked terms. With every term ticked it is the model's loss.
    """
    model = _model(model)
    return ExpansionExplorer(ExpansionExplorerState(model, tokens, half_len, prefix_len))
