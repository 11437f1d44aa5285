"""The checkpoint slider: how the induction circuit forms, step by step, as a live widget.

:func:`checkpoint_slider` takes what :func:`mechlib.training_dynamics` measured at every
checkpoint of ``induction-2l`` (the attention patterns of every head on one repeated
sequence, the loss at each of its positions, and the loss on the repeated half of the whole
batch) and hands it to the view ``checkpointSlider`` (``checkpoint-slider.js``) as JSON: dragging the
slider (or pressing the arrow keys on it) redraws the patterns and the losses of that step.
Patterns travel as one byte per entry of their lower triangle (``round(255 * a)``, within
1/510 of the truth), so the payload stays near 150 kB. It runs no model in the page.

Shown in The Circuit Forms, after Chapter 5.
"""
from __future__ import annotations

import base64
import math
from typing import Any

import torch

from mechlib.heads import head_label
from mechlib.views.colours import BOUNDARY_COLOUR, colour_table
from mechlib.views.plots import ATTENTION_CMAP


def checkpoint_slider_payload(dynamics: Any, tokens: torch.Tensor, boundaries: list[int], d_vocab: int) -> dict[str, Any]:
    """The JSON payload of a checkpoint slider: for every step, the repeat loss (3 decimals),
    the example's loss at each target position (2 decimals) and every head's attention pattern
    on the example, its lower triangle (row by row, ``q >= k``) as base64 bytes."""
    P = dynamics.example_patterns  # [step, layer, head, q, k]
    S, L, H, n, _ = P.shape
    if tuple(tokens.shape) != (n,):
        raise ValueError(f"tokens must be the example sequence of {n} tokens; got shape {tuple(tokens.shape)}")
    rows, cols = torch.tril_indices(n, n)

    def b64(step: int) -> str:
        tri = P[step][:, :, rows, cols].clamp(0, 1)  # [layer, head, n(n+1)/2]
        q = (tri * 255).round().to(torch.uint8).numpy()
        return base64.b64encode(q.tobytes()).decode("ascii")

    return {
        "steps": [int(s) for s in dynamics.steps],
        "heads": [head_label((l, h)) for l in range(L) for h in range(H)],
        "n_layers": L,
        "n_heads": H,
        "seq_len": n,
        "batch": int(dynamics.batch_size),
        "tokens": [int(t) for t in tokens],
        "boundaries": [int(b) for b in boundaries],
        "loss": [round(float(x), 3) for x in dynamics.loss_repeat],
        "example_loss": [[round(float(x), 2) for x in row] for row in dynamics.example_loss],
        "patterns": [b64(i) for i in range(S)],
        "uniform": round(math.log(d_vocab), 3),
        "bar_top": math.ceil(max(math.log(d_vocab), float(dynamics.example_loss.max()))),
        "attn_lut": colour_table(ATTENTION_CMAP),
        "boundary_colour": BOUNDARY_COLOUR,
    }


def checkpoint_slider(dynamics: Any, batch: Any, d_vocab: int = 32, prefix: str | None = None,
                      start_step: int | None = None, assets: str = "auto"):
    """The checkpoint slider, as an ``IPython.display.HTML`` live widget.

    ``dynamics``: a :class:`mechlib.TrainingDynamics` measured on ``batch`` (the
    :class:`mechlib.RepeatedBatch` passed to :func:`mechlib.training_dynamics`); its first
    sequence is the one shown. ``prefix`` (default ``"mlcs<n>"``) starts every element id;
    ``start_step`` (default the last) is the step shown first; ``assets``: see
    :func:`mechlib.views.live.resolve_assets`.
    """
    from IPython.display import HTML

    from mechlib.views.live.page import check_prefix, widget_html, widget_spec

    prefix = check_prefix(prefix, "mlcs")
    if start_step is not None and start_step not in dynamics.steps:
        raise ValueError(f"start_step must be one of the measured steps {dynamics.steps}; got {start_step!r}")
    payload = checkpoint_slider_payload(dynamics, batch.tokens[0], batch.boundaries, d_vocab)
    payload["start"] = len(payload["steps"]) - 1 if start_step is None else payload["steps"].index(start_step)
    return HTML(widget_html(widget_spec("checkpointSlider", payload, prefix, assets, None)))
