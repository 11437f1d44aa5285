"""The model itself in the page: live widgets that run a model's forward pass in the reader's
browser, in the built book and in a running notebook alike (no kernel, no server, no CDN).

Each entry point below checks its arguments, computes the widget's configuration (plain JSON)
and returns the widget as ``IPython.display.HTML``: the template ``widget.html`` holding that
JSON and ``loader.js``, which mounts the view ``window.mechlibLive.widgets.<name>`` (one
JavaScript file per view, see :mod:`mechlib.views.live.page`). The views that run a model run the one
they are given: the bundled model's weights ship as a file, any other model the page can run
travels with the widget; given one it cannot run (GPT-2 in Colab, a learner's own), the head
toggle, the path ablation and the term picker return the same view asking the kernel for each
run (``backend="auto"``: :mod:`mechlib.views.live.kernel`, an anywidget), and with
``backend="page"`` refuse it with a ``ValueError`` naming why
(:func:`mechlib.views.live.weights.page_weights`). ``window.mechlibLive.run(tokens, options)`` (``model.js``) is the forward pass
they share in the page.

Shown in Chapters 2-7 and The Circuit Forms.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mechlib.views.live.page import (ASSETS_ENV, CODE_FILES, SHARED_FILES, SITE_DIR, WIDGET_FILES, asset_dir,
                                     asset_files, check_prefix, code_files, resolve_assets, spec_of, widget_html,
                                     widget_spec)
from mechlib.views.live.slider import checkpoint_slider, checkpoint_slider_payload
from mechlib.views.live.weights import (MAX_PAGE_PARAMS, SHIPPED_MODELS, TENSORS, page_model_problem, page_weights,
                                        read_weights_js, weights_file, weights_js)

__all__ = ["head_toggle", "path_ablation", "term_picker", "virtual_head_calculator", "composition_explorer",
           "checkpoint_slider", "checkpoint_slider_payload", "head_toggle_config", "resolve_assets", "asset_dir", "asset_files", "weights_js",
           "read_weights_js", "weights_file", "page_weights", "page_model_problem", "spec_of", "code_files",
           "ASSETS_ENV", "SITE_DIR", "CODE_FILES", "SHARED_FILES", "WIDGET_FILES", "TENSORS", "MAX_PAGE_PARAMS",
           "SHIPPED_MODELS"]


def _html(widget: str, config: dict[str, Any], prefix: str, assets: str, weights: tuple[str, str | None] | None):
    from IPython.display import HTML

    return HTML(widget_html(widget_spec(widget, config, prefix, assets, weights)))


def _check_predict(predict: Any) -> None:
    if not isinstance(predict, bool):
        raise ValueError(f"predict must be True (a prediction panel first) or False; got {predict!r}")


def _model(model: Any) -> Any:
    if model is None:
        from mechlib import load_model

        return load_model()
    return model


def _head_labels(model: Any, heads: Any, name: str) -> list[str]:
    """Validated head names ``"l.h"`` of heads given as names or ``(layer, head)`` pairs (one or a list)."""
    from mechlib.validate import check_heads
    from mechlib.heads import head_label, parse_head

    if isinstance(heads, str) or (isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(x, int) for x in heads)):
        heads = [heads]
    try:
        items = list(heads)
    except TypeError:
        raise TypeError(f"{name} must be a list of heads like '0.3' or (0, 3); got {heads!r}") from None
    parsed = [parse_head(h, f"{name}[{i}]") if isinstance(h, str) else h for i, h in enumerate(items)]
    return sorted({head_label(h) for h in check_heads(model, parsed, name)})


def head_toggle_config(model: Any, tokens: Any = None, pattern_head: str | None = None,
                       half_len: int | None = None, prefix_len: int | None = None, seed: int = 0,
                       batch: Any = None) -> dict[str, Any]:
    """What the live head toggle starts with: ``tokens`` (one sequence; default: the first
    sequence of the book's evaluation batch, :func:`mechlib.repeated_batch`, whose repeated
    segment holds no token twice, so that its induction stripe is unambiguous), the head whose
    pattern shows first (default: the layer-1 head with the highest induction score on the
    evaluation batch, or on ``tokens`` when given), the shape of the sequences its "new
    repeated sequence" button draws (``prefix_len`` random tokens, then ``half_len`` tokens
    twice; default: the evaluation batch's, shortened for a model whose context is under 24
    tokens) and the colour tables.

    ``batch`` (default: :func:`mechlib.relay_batch` for ``relay-2l``, the induction batch for
    any other model): the evaluation batch the view scores, anything with ``.tokens`` and
    ``.mask`` (see :func:`mechlib.views.live.batches.batch_spec`). Given another batch than the induction one, the view
    starts on its first sequence (or ``tokens``), scores the loss on its mask, and its button
    steps through its sequences; the config then carries it as ``batch``."""
    from mechlib.views.live.batches import batch_config, batch_spec

    spec = batch_spec(model, batch)
    if spec is not None:
        return batch_config(model, spec, tokens, pattern_head, seed)
    import torch

    from mechlib.data import repeated_batch
    from mechlib.heads import head_label, top_head
    from mechlib.scores import induction_scores
    from mechlib.views.colours import colour_table
    from mechlib.views.plots import ATTENTION_CMAP, SCORE_CMAP

    # the book's evaluation layout (4 + 2 x 10 tokens), shrunk to fit a model with a shorter context
    n_ctx = model.cfg.n_ctx
    fit_prefix = 4 if n_ctx >= 24 else max(n_ctx // 8, 0)
    book = repeated_batch(model, prefix_len=fit_prefix, half_len=min(10, max((n_ctx - fit_prefix) // 2, 1)))
    half_len = book.half_len if half_len is None else half_len
    prefix_len = book.prefix_len if prefix_len is None else prefix_len
    for v, n in ((half_len, "half_len"), (prefix_len, "prefix_len"), (seed, "seed")):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{n} must be a non-negative int; got {v!r}")
    if half_len < 1 or prefix_len + 2 * half_len > model.cfg.n_ctx:
        raise ValueError(f"need half_len >= 1 and prefix_len + 2 * half_len <= n_ctx = {model.cfg.n_ctx}; "
                         f"got half_len={half_len}, prefix_len={prefix_len}")
    if tokens is None:
        batch = book.tokens
        if (half_len, prefix_len) != (book.half_len, book.prefix_len):
            batch = repeated_batch(model, half_len=half_len, prefix_len=prefix_len).tokens
        segments = batch[:, prefix_len:prefix_len + half_len].tolist()
        row = next((i for i, seg in enumerate(segments) if len(set(seg)) == half_len), 0)
        tokens = batch[row]
    else:
        tokens = torch.as_tensor(tokens)
        batch = tokens[None]
    if tokens.ndim != 1 or not 1 <= tokens.shape[0] <= model.cfg.n_ctx:
        raise ValueError(f"tokens must be one sequence of 1 to n_ctx = {model.cfg.n_ctx} tokens; got shape {tuple(tokens.shape)}")
    if pattern_head is None:
        pattern_head = head_label(top_head(induction_scores(model, batch), layer=model.cfg.n_layers - 1))
    else:
        (pattern_head,) = _head_labels(model, pattern_head, "pattern_head")
    return {"tokens": [int(t) for t in tokens], "pattern_head": pattern_head,
            "half_len": half_len, "prefix_len": prefix_len, "seed": seed + 1,
            "attn_lut": colour_table(ATTENTION_CMAP), "prob_lut": colour_table(SCORE_CMAP)}


def head_toggle(model: Any = None, tokens: Any = None, pattern_head: str | None = None,
                prefix: str | None = None, assets: str = "auto", backend: str = "auto", predict: bool = True,
                batch: Any = None, **kwargs: Any):
    """The head toggle, computed live by the model in the page (``IPython.display.HTML``).

    The reader switches heads off (zero ablation), types a sequence or draws a new repeated
    one, and sees the attention pattern of any head (hover a cell: which tokens, what weight),
    the next-token predictions and the loss on the repeated tokens (targets ``t[q + 1]`` whose
    current token ``t[q]`` occurred earlier followed by the same token) update at once. In the page
    (the default for a model it can run) every update is one forward pass of ``model.js``,
    in the built book and in a running notebook alike (``assets``: see :func:`resolve_assets`); ``kwargs`` go to
    :func:`head_toggle_config`.

    ``predict`` (default ``True``; in the page only): a "predict, then see" panel where the
    reader first commits which head, switched off alone, raises the loss most and roughly by
    how much; then the page shows the rise for every head beside the guess.

    ``batch`` (default: :func:`mechlib.relay_batch` for ``relay-2l``, else the induction
    batch): the evaluation batch whose scored predictions (``batch.mask``) the loss is taken
    on; its sequences are the ones the view's button steps through (any batch with
    ``.tokens`` and ``.mask``, as :func:`mechlib.repeated_batch`).

    ``backend``: ``"page"`` (the model runs in the page; a model it cannot run is refused),
    ``"kernel"`` (the same view, each forward pass asked of this kernel: a
    :class:`mechlib.views.live.kernel.KernelWidget`, for GPT-2 in Colab or a learner's own
    model; it needs a running kernel) or ``"auto"`` (the page when it can run the model,
    else the kernel).
    """
    model = _model(model)
    _check_predict(predict)
    if _asks_kernel(model, backend):
        config = {"model": None, "info": _kernel_info(model, "the head toggle"),
                  **head_toggle_config(model, tokens, pattern_head, batch=batch, **kwargs)}
        return _kernel_widget(model, "headToggle", config, check_prefix(prefix, "mllht"))
    weights = page_weights(model)
    config = {"model": weights[0], "predict": predict, **head_toggle_config(model, tokens, pattern_head, batch=batch, **kwargs)}
    return _html("headToggle", config, check_prefix(prefix, "mllht"), assets, weights)


def _asks_kernel(model: Any, backend: Any) -> bool:
    """Whether a view runs ``model`` through the kernel (see :func:`head_toggle`'s ``backend``)."""
    if backend not in ("auto", "page", "kernel"):
        raise ValueError(f"backend must be 'auto', 'page' (the model runs in the page) or 'kernel' "
                         f"(each run asked of this kernel); got {backend!r}")
    return backend == "kernel" or (backend == "auto" and page_model_problem(model) is not None)


def _kernel_info(model: Any, what: str) -> dict[str, Any]:
    from mechlib.models.info import check_next_token_model
    from mechlib.views.live.kernel import model_info

    check_next_token_model(model, what)
    return model_info(model)


def _kernel_widget(model: Any, widget: str, config: dict[str, Any], prefix: str):
    """The view ``widget`` as a :class:`mechlib.views.live.kernel.KernelWidget` asking this kernel.

    The prediction panel stays in the page only: a kernel-backed view has none."""
    from mechlib.views.live.kernel import KernelWidget

    config = {**config, "predict": False}
    return KernelWidget(model, {"id": prefix + "-root", "widget": widget, "config": config})


def path_ablation(model: Any = None, senders: Any = (), receivers: Any = (), kinds: str = "",
                  tokens: Any = None, pattern_head: str | None = None, prefix: str | None = None,
                  assets: str = "auto", predict: bool = True, backend: str = "auto", batch: Any = None,
                  **kwargs: Any):
    """Path ablation computed live by the model in the page (``IPython.display.HTML``).

    The reader ticks senders, receivers and inputs (``Q``, ``K``, ``V``): every ticked sender's
    output is removed from the ticked inputs of every ticked receiver in a later layer, as in
    :func:`mechlib.path_ablation`, and the loss on the repeated tokens, each head's induction
    score on the sequence, the predictions and any head's attention pattern update at once.
    ``senders``, ``receivers`` (heads) and ``kinds`` (e.g. ``"K"``) are ticked at the start.
    ``predict`` (default ``True``): a "predict, then see" panel above the readouts, where the
    reader first commits which input (Q, K or V), cut from the ticked senders, raises the loss
    most and roughly by how much (under 0.1 nats, 0.1 to 1, over 1); then the page shows the
    rise of each kind of cut on the current sequence beside the guess (state in the page only).
    The other arguments (``batch`` included) are those of :func:`head_toggle`; with ``backend="kernel"`` (or
    ``"auto"`` and a model the page cannot run) each cut is run by this kernel, as
    :func:`mechlib.path_ablation` (LayerNorm frozen where the model has it), and there is no
    prediction panel.

    Shown in Chapter 3, K-Composition, and Chapter 4, Q-Composition.
    """
    model = _model(model)
    if not isinstance(kinds, str) or any(k not in "QKV" for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be a string of distinct 'Q', 'K', 'V' (e.g. 'K', or '' for none); got {kinds!r}")
    _check_predict(predict)
    kernel = _asks_kernel(model, backend)
    weights = None if kernel else page_weights(model)  # refuses, by name, a model the page cannot run
    config = head_toggle_config(model, tokens, pattern_head, batch=batch, **kwargs)
    config["cut"] = {"senders": _head_labels(model, senders, "senders"),
                     "receivers": _head_labels(model, receivers, "receivers"),
                     "kinds": list(kinds)}
    if weights is None:
        config = {"model": None, "info": _kernel_info(model, "path ablation"), **config}
        return _kernel_widget(model, "pathAblation", config, check_prefix(prefix, "mllpa"))
    config = {"model": weights[0], **config, "predict": predict}
    return _html("pathAblation", config, check_prefix(prefix, "mllpa"), assets, weights)


def virtual_head_calculator(n_layers: int = 12, n_heads: int = 12, length: int = 2,
                            prefix: str | None = None, assets: str = "auto"):
    """How many virtual heads? A kernel-free calculator (``IPython.display.HTML``).

    The reader sets the number of layers ``L``, heads per layer ``H`` and chain length ``k``
    and reads ``H^k C(L, k)`` chains of ``k`` heads (:func:`mechlib.count_virtual_heads`,
    computed in the page in exact integers), the total over every length, ``(H + 1)^L - 1``,
    of which the ``(H + 1)^L - 1 - LH`` chains of two heads or more are virtual heads (a chain
    of one head is the head itself), and a bar chart of the count against the chain length on
    a log scale. Needs no model weights.

    Shown in Chapter 7, Combinatorial Richness.
    """
    from mechlib.validate import check_positive_int

    for v, n, top in ((n_layers, "n_layers", 96), (n_heads, "n_heads", 256), (length, "length", 96)):
        check_positive_int(v, n)
        if v > top:
            raise ValueError(f"{n} must be at most {top} in the calculator; got {v}")
    config = {"n_layers": n_layers, "n_heads": n_heads, "length": length}
    return _html("virtualHeadCalculator", config, check_prefix(prefix, "mllvc"), assets, None)


def composition_explorer(model: Any = None, sender: Any = None, receiver: Any = None, kind: str = "K",
                         n_baseline: int = 1000, seed: int = 0, prefix: str | None = None, assets: str = "auto"):
    """The composition explorer for the static page (``IPython.display.HTML``), no kernel needed.

    The reader picks a sender, a receiver in a later layer and a kind (Q, K, V) and reads the
    composition score against the random baseline (in standard deviations) and sees the
    baseline's histogram with the score marked and the composed circuit's first ``d_head``
    singular values. The weights are fixed, so every pair is computed here once
    (:class:`mechlib.CompositionExplorerState`) and the page only looks the numbers up.
    ``sender``, ``receiver`` (default: the pair with the largest score of ``kind``) start selected.

    Shown in Chapter 2, V-Composition.
    """
    from mechlib.composition import composition_scores
    from mechlib.explorers import CompositionExplorerState
    from mechlib.heads import all_heads, head_label, top_pair

    model = _model(model)
    if kind not in ("Q", "K", "V"):
        raise ValueError(f"kind must be 'Q', 'K' or 'V'; got {kind!r}")
    state = CompositionExplorerState(model, n_baseline, seed)
    if sender is None and receiver is None:
        sender, receiver = top_pair(composition_scores(model, kind))
    elif sender is None or receiver is None:
        raise ValueError("give both sender and receiver, or neither (then the pair with the largest score starts)")
    (s_label,) = _head_labels(model, sender, "sender")
    (r_label,) = _head_labels(model, receiver, "receiver")
    pairs = {}
    for s in state.senders:
        for r in state.receivers_for(s):
            pairs[f"{head_label(s)}>{head_label(r)}"] = {
                k: (lambda u: {"score": round(u["score"], 5), "z": round(u["z"], 3),
                               "sv": [round(float(v), 5) for v in u["singular_values"][: model.cfg.d_head]]})(state.update(s, r, k))
                for k in "QKV"}
    if f"{s_label}>{r_label}" not in pairs:
        raise ValueError(f"receiver {r_label} must be in a later layer than sender {s_label}")
    counts, edges = np.histogram(state.baseline.cpu().numpy(), bins=30)
    config = {"pairs": pairs, "heads": [head_label(h) for h in all_heads(model)], "n_heads": model.cfg.n_heads,
              "d_head": model.cfg.d_head, "sender": s_label, "receiver": r_label, "kind": kind,
              "baseline": {"mean": round(state.baseline_mean, 5), "std": round(state.baseline_std, 6),
                           "edges": [round(float(e), 5) for e in edges], "counts": [int(c) for c in counts]}}
    return _html("compositionExplorer", config, check_prefix(prefix, "mllce"), assets, None)


def term_picker(model: Any = None, tokens: Any = None, terms_off: Any = (), pattern_head: str | None = None,
                prefix: str | None = None, assets: str = "auto", backend: str = "auto", batch: Any = None,
                **kwargs: Any):
    """The path-expansion term picker, computed in the page (``IPython.display.HTML``).

    The page splits the model's logits on the reader's sequence into the exact path
    expansion of :func:`mechlib.path_expansion` (direct path, single heads, virtual heads,
    bias terms, from the clean run's attention patterns) and the reader switches terms
    off: the loss on the repeated tokens (on ``batch``'s scored tokens) and the predictions
    follow the sum of the kept terms. ``terms_off`` (term names such as ``"0.3->1.1"``) start
    unticked; the other arguments (``batch`` included) are those of :func:`head_toggle` (with ``backend="kernel"``, or ``"auto"`` and an
    expandable model too large for the page, this kernel expands each sequence and sums the
    kept terms).

    Shown in Chapter 6, The Two-Layer Expansion.
    """
    import torch

    from mechlib.expansion import path_expansion

    model = _model(model)
    kernel = _asks_kernel(model, backend)
    weights = None if kernel else page_weights(model)  # refuses, by name, a model the page cannot run
    config = head_toggle_config(model, tokens, pattern_head, batch=batch, **kwargs)
    expansion = path_expansion(model, torch.tensor([config["tokens"]]))
    names = list(expansion.terms)
    if isinstance(terms_off, str):
        terms_off = [terms_off]
    unknown = [t for t in terms_off if t not in names]
    if unknown:
        raise ValueError(f"terms_off: unknown term(s) {unknown}; terms are {names}")
    config["terms_off"] = list(terms_off)
    if weights is None:
        config = {"model": None, "info": _kernel_info(model, "the term picker"),
                  "expansion": {"names": names, "kinds": dict(expansion.kinds)}, **config}
        return _kernel_widget(model, "termPicker", config, check_prefix(prefix, "mlltp"))
    config = {"model": weights[0], **config}
    return _html("termPicker", config, check_prefix(prefix, "mlltp"), assets, weights)
