"""The model itself in the page: a JavaScript forward pass of ``induction-2l`` and the
kernel-free widgets built on it.

Two static assets ship in this folder (package data) and are copied into the built book
at ``_static/live/`` by :mod:`mechlib.views.live.book_ext`:

* ``mechlib-live.js`` -- the forward pass (no framework, no network). It defines
  ``window.mechlibLive.run(tokens, options)``, which returns ``{logits, patterns}``:
  ``logits[position][token]`` and ``patterns[layer][head][query][key]``, for a run with
  ``options.heads_off`` (head names ``"l.h"``, zero-ablated as in
  :func:`mechlib.run_with_ablation`) and ``options.paths_off`` (``[sender, receiver,
  kind]`` triples, kind ``"Q"``, ``"K"`` or ``"V"``: the sender's output is removed from
  that one input of the receiver, as in :func:`mechlib.path_ablation`).
* ``<model>.weights.js`` -- the model's weights, written by :func:`weights_js`
  (``python scripts/export_live_weights.py``) from the shipped checkpoint: float32,
  little-endian, base85-encoded (RFC 1924 alphabet, as Python's ``base64.b85encode``), with
  a JSON header naming each tensor and its shape (TransformerLens conventions:
  ``W_Q[l, h]`` is ``[d_model, d_head]``, ``W_O[l, h]`` is ``[d_head, d_model]``). A
  weights file registers itself under its name in ``window.mechlibLiveWeights``, so
  another weight set (another model, a training checkpoint) can be added beside it.

Both are plain ``<script>`` files, so the widgets also work when the built book is opened
from disk (``file://``), where ``fetch`` of a binary file would be refused.

Shown in Chapter 5, Virtual Attention Heads (the head toggle).
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mechlib.models import BUNDLED_MODEL

#: the JavaScript forward pass
MODULE_FILE = "mechlib-live.js"
#: where the assets land in the built book, relative to its root
SITE_DIR = "_static/live"
#: order and names of the exported tensors (TransformerLens attribute names)
TENSORS = ("W_E", "W_pos", "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O", "W_U", "b_U")
#: the config fields the forward pass needs
CONFIG_FIELDS = ("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "n_ctx")
#: environment variable naming how ``assets="auto"`` ships the scripts: ``site`` or ``inline``
ASSETS_ENV = "MECHLIB_LIVE_ASSETS"


def asset_dir() -> Path:
    """The folder holding ``mechlib-live.js`` and the weights files (inside the installed package)."""
    return Path(str(resources.files("mechlib.views.live")))


def weights_file(name: str = "induction-2l") -> str:
    """File name of the weights asset of model ``name``: ``<name>.weights.js``."""
    return f"{name}.weights.js"


def asset_files(name: str = "induction-2l") -> list[Path]:
    """The files a page with a live widget loads: the forward pass and ``name``'s weights."""
    return [asset_dir() / weights_file(name), asset_dir() / MODULE_FILE]


def weights_js(model: Any, name: str = "induction-2l", source: str = "") -> str:
    """The weights asset of ``model`` as JavaScript text (deterministic: same weights, same text).

    ``window.mechlibLiveWeights[name] = {format, name, source, config, tensors, sha256, data}``
    where ``tensors`` lists ``[tensor name, shape]`` in :data:`TENSORS` order, ``data`` is the
    base85 text of all of them concatenated as float32 little-endian, and ``sha256`` is the
    hash of those bytes. ``source`` names where the weights came from (for the reader).
    Only attention-only models without LayerNorm can be exported: the forward pass in the
    page has no MLP and no norm.
    """
    cfg = model.cfg
    if not getattr(cfg, "attn_only", False) or getattr(cfg, "normalization_type", None) is not None:
        raise ValueError("weights_js needs an attention-only model without LayerNorm "
                         "(cfg.attn_only=True, cfg.normalization_type=None)")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits, - and _ (a file name); got {name!r}")
    arrays, shapes = [], []
    for t in TENSORS:
        a = getattr(model, t).detach().cpu().numpy().astype("<f4")
        arrays.append(a.ravel())
        shapes.append([t, list(a.shape)])
    raw = np.concatenate(arrays).tobytes()
    header = {
        "format": "float32-le-base85",
        "name": name,
        "source": source,
        "config": {f: int(getattr(cfg, f)) for f in CONFIG_FIELDS},
        "attn_scale": float(np.sqrt(cfg.d_head)),
        "tensors": shapes,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    body = json.dumps(header, separators=(",", ":"))[:-1] + ',"data":"' + base64.b85encode(raw).decode("ascii") + '"}'
    return (f"// Weights of {name} for {MODULE_FILE}, written by scripts/export_live_weights.py"
            f"{' from ' + source if source else ''}. Do not edit.\n"
            f"(window.mechlibLiveWeights = window.mechlibLiveWeights || {{}})[{json.dumps(name)}] = {body};\n")


def read_weights_js(text: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse a weights asset written by :func:`weights_js`: ``(header, {tensor name: float32 array})``."""
    start = text.index("] = {") + len("] = ")
    header = json.loads(text[start:text.rindex(";")])
    raw = base64.b85decode(header.pop("data"))
    flat = np.frombuffer(raw, dtype="<f4")
    out, i = {}, 0
    for t, shape in header["tensors"]:
        n = int(np.prod(shape))
        out[t] = flat[i:i + n].reshape(shape)
        i += n
    if i != flat.size:
        raise ValueError(f"weights asset holds {flat.size} floats, its header names {i}")
    return header, out


# ---------------------------------------------------------------- the page widgets
_counter = itertools.count()

# Loads the assets once per page, then mounts the widget. On a page of the built book the
# assets are at <content root>/_static/live/ (Sphinx writes the root into <html
# data-content_root>); inlined, they are already there.
_LOADER = r"""
(function () {
  var root = document.getElementById(__ROOT__), files = __FILES__;
  function mount() {
    try { window.mechlibLive.widgets[__WIDGET__](root, __CONFIG__); }
    catch (e) { root.querySelector(".mll-nojs").textContent = "This widget could not start: " + e.message; throw e; }
  }
  var model = __MODEL__;
  if (window.mechlibLive && (model === null || (window.mechlibLiveWeights && window.mechlibLiveWeights[model]))) return mount();
  var base = document.documentElement.getAttribute("data-content_root");
  if (base === null) {
    root.querySelector(".mll-nojs").textContent = "Run this cell to start the widget: in a running notebook " +
      "it carries the model in its output.";
    return;
  }
  var loading = window.mechlibLiveLoading = window.mechlibLiveLoading || {};
  Promise.all(files.map(function (f) {
    if (!loading[f]) loading[f] = new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = base + __SITE_DIR__ + "/" + f;
      s.onload = resolve;
      s.onerror = function () { reject(new Error("could not load " + s.src)); };
      document.head.appendChild(s);
    });
    return loading[f];
  })).then(mount, function (e) { root.querySelector(".mll-nojs").textContent = "This widget could not start: " + e.message; });
})();
"""

_CSS = """
{r} fieldset.mlt-heads {{ border: 1px solid #ccc; padding: 0.3em 0.6em; margin: 0.5em 0; }}
{r} .mll-seq input.mll-tokens {{ width: 100%; max-width: 34em; box-sizing: border-box; font-family: monospace; }}
{r} .mll-seq button {{ margin-top: 0.3em; }}
{r} .mll-scroll {{ overflow-x: auto; max-width: 100%; }}
{r} .mll-pattern {{ min-width: 0; max-width: 100%; flex: 0 1 auto; }}
{r} .mll-preds {{ min-width: 0; max-width: 100%; flex: 1 1 20em; }}
{r} .mll-bar {{ width: 160px; height: 9px; display: inline-block; vertical-align: middle; margin: 0 4px; }}
{r} table.mll-attn td {{ width: 11px; height: 11px; }}
{r} table.mll-attn:focus {{ outline: 2px solid #1f77b4; }}
{r} table.mll-attn td.mll-cursor {{ outline: 2px solid #d62728; outline-offset: -1px; }}
{r} .mll-readout {{ min-height: 1.3em; font-variant-numeric: tabular-nums; }}
{r} table.mll-predtable {{ border-collapse: collapse; font-size: 0.85em; font-variant-numeric: tabular-nums; }}
{r} table.mll-predtable td, {r} table.mll-predtable th {{ padding: 1px 3px; text-align: center; border: 1px solid #eee; }}
{r} table.mll-predtable th {{ text-align: left; font-weight: normal; white-space: nowrap; }}
{r} table.mll-predtable td.mll-rep {{ border: 2px solid #ff7f0e; }}
{r} .mll-calc label {{ margin-right: 1em; white-space: nowrap; }}
{r} .mll-calc input[type=number] {{ width: 4.5em; }}
{r} svg.mll-chart {{ width: 100%; max-width: 480px; height: auto; display: block; }}
"""


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


def _check_prefix(prefix: str | None, default: str) -> str:
    if prefix is None:
        return f"{default}{next(_counter)}"
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", prefix):
        raise ValueError(f"prefix must start with a letter and hold only letters, digits, - and _; got {prefix!r}")
    return prefix


def _script_text(path: Path) -> str:
    text = path.read_text()
    if "</script" in text.lower():
        raise ValueError(f"{path.name} contains '</script' and cannot be inlined")
    return text


def resolve_assets(assets: str = "auto") -> str:
    """How a live widget ships its scripts: ``"site"`` or ``"inline"``.

    ``"auto"`` (every widget's default) reads the environment variable :data:`ASSETS_ENV`
    (``MECHLIB_LIVE_ASSETS``): the book's build sets it to ``"site"``
    (:mod:`mechlib.views.live.book_ext`), and so does the repository's ``conftest.py`` when
    nbval compares the stored outputs (they are the book's). Anywhere else -- Jupyter,
    Colab, VS Code -- it is unset and the widget carries its scripts inline, so running the
    cell shows the same widget as the book's page.
    """
    if assets == "auto":
        assets = os.environ.get(ASSETS_ENV, "inline") or "inline"
        if assets not in ("site", "inline"):
            raise ValueError(f"environment variable {ASSETS_ENV} must be 'site' or 'inline'; got {assets!r}")
    elif assets not in ("site", "inline"):
        raise ValueError(f"assets must be 'auto', 'site' (the built book) or 'inline' (a notebook); got {assets!r}")
    return assets


def live_widget_html(widget: str, config: dict[str, Any], prefix: str, assets: str = "auto",
                     model_name: str | None = "induction-2l") -> str:
    """The HTML of one live widget: its root element, scoped CSS, and the script that loads
    the assets (``assets="site"``: from the built book's ``_static/live/``; ``"inline"``: the
    two scripts inlined, about 250 kB, for a running notebook; ``"auto"``: see
    :func:`resolve_assets`) and mounts ``window.mechlibLive.widgets[widget]`` with ``config``.
    ``model_name=None``: a widget that needs no weights (only ``mechlib-live.js`` is loaded)."""
    from mechlib.views.html import style_block

    assets = resolve_assets(assets)
    paths = asset_files(model_name) if model_name is not None else [asset_dir() / MODULE_FILE]
    files = [f.name for f in paths]
    js = lambda v: json.dumps(v, separators=(",", ":")).replace("</", "<\\/")  # noqa: E731
    loader = (_LOADER.replace("__ROOT__", js(prefix + "-root")).replace("__FILES__", js(files))
              .replace("__WIDGET__", js(widget)).replace("__CONFIG__", js(config))
              .replace("__MODEL__", js(model_name)).replace("__SITE_DIR__", js(SITE_DIR)))
    inline = "".join(f"<script>{_script_text(f)}</script>" for f in paths) if assets == "inline" else ""
    css = style_block(prefix + "-root").replace("</style>", _CSS.format(r="#" + prefix + "-root") + "</style>")
    return (f'<div id="{prefix}-root" class="mll-widget">{css}'
            f'<div class="mll-nojs mlt-axis">(This interactive view needs JavaScript.)</div></div>'
            f"{inline}<script>{loader}</script>")


def head_toggle_config(model: Any, tokens: Any = None, pattern_head: str | None = None,
                       half_len: int | None = None, prefix_len: int | None = None, seed: int = 0) -> dict[str, Any]:
    """What the live head toggle starts with: ``tokens`` (one sequence; default: the first
    sequence of the book's evaluation batch, :func:`mechlib.repeated_batch`, whose repeated
    segment holds no token twice, so that its induction stripe is unambiguous), the head whose
    pattern shows first (default: the layer-1 head with the highest induction score on the
    evaluation batch, or on ``tokens`` when given), the shape of the sequences its "new
    repeated sequence" button draws (``prefix_len`` random tokens, then ``half_len`` tokens
    twice; default: the evaluation batch's) and the colour tables."""
    import torch

    from mechlib.data import repeated_batch
    from mechlib.heads import head_label, top_head
    from mechlib.scores import induction_scores
    from mechlib.views.html import colour_table
    from mechlib.views.plots import ATTENTION_CMAP, SCORE_CMAP

    book = repeated_batch(model)
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
    return {"model": BUNDLED_MODEL, "tokens": [int(t) for t in tokens], "pattern_head": pattern_head,
            "half_len": half_len, "prefix_len": prefix_len, "seed": seed + 1,
            "attn_lut": colour_table(ATTENTION_CMAP), "prob_lut": colour_table(SCORE_CMAP)}


def head_toggle(model: Any = None, tokens: Any = None, pattern_head: str | None = None,
                prefix: str | None = None, assets: str = "auto", **kwargs: Any):
    """The head toggle, computed live by the model in the page (``IPython.display.HTML``).

    The reader switches heads off (zero ablation), types a sequence or draws a new repeated
    one, and sees the attention pattern of any head (hover a cell: which tokens, what weight),
    the next-token predictions and the loss on the repeated tokens (targets ``t[q + 1]`` whose
    current token ``t[q]`` occurred earlier followed by the same token) update at once. No
    kernel: every update is one forward pass of ``mechlib-live.js``, in the built book and
    in a running notebook alike (``assets``: see :func:`resolve_assets`); ``kwargs`` go to
    :func:`head_toggle_config`.
    """
    from IPython.display import HTML

    if model is None:
        from mechlib.models import load_model

        model = load_model()
    config = head_toggle_config(model, tokens, pattern_head, **kwargs)
    return HTML(live_widget_html("headToggle", config, _check_prefix(prefix, "mllht"), assets))


def path_ablation(model: Any = None, senders: Any = (), receivers: Any = (), kinds: str = "",
                  tokens: Any = None, pattern_head: str | None = None, prefix: str | None = None,
                  assets: str = "auto", **kwargs: Any):
    """Path ablation computed live by the model in the page (``IPython.display.HTML``).

    The reader ticks senders, receivers and inputs (``Q``, ``K``, ``V``): every ticked sender's
    output is removed from the ticked inputs of every ticked receiver in a later layer, as in
    :func:`mechlib.path_ablation`, and the loss on the repeated tokens, each head's induction
    score on the sequence, the predictions and any head's attention pattern update at once.
    ``senders``, ``receivers`` (heads) and ``kinds`` (e.g. ``"K"``) are ticked at the start.
    The other arguments are those of :func:`head_toggle`.

    Shown in Chapter 3, K-Composition, and Chapter 4, Q-Composition.
    """
    from IPython.display import HTML

    if model is None:
        from mechlib.models import load_model

        model = load_model()
    if not isinstance(kinds, str) or any(k not in "QKV" for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds must be a string of distinct 'Q', 'K', 'V' (e.g. 'K', or '' for none); got {kinds!r}")

    config = head_toggle_config(model, tokens, pattern_head, **kwargs)
    config["cut"] = {"senders": _head_labels(model, senders, "senders"),
                     "receivers": _head_labels(model, receivers, "receivers"),
                     "kinds": list(kinds)}
    return HTML(live_widget_html("pathAblation", config, _check_prefix(prefix, "mllpa"), assets))


def virtual_head_calculator(n_layers: int = 12, n_heads: int = 12, length: int = 2,
                            prefix: str | None = None, assets: str = "auto"):
    """How many virtual heads? A kernel-free calculator (``IPython.display.HTML``).

    The reader sets the number of layers ``L``, heads per layer ``H`` and chain length ``k``
    and reads ``H^k C(L, k)`` (:func:`mechlib.count_virtual_heads`, computed in the page in
    exact integers), the total over every length, ``(H + 1)^L - 1``, and a bar chart of the
    count against the chain length on a log scale. Needs no model weights.

    Shown in Chapter 7, Combinatorial Richness.
    """
    from IPython.display import HTML

    from mechlib.validate import check_positive_int

    for v, n, top in ((n_layers, "n_layers", 96), (n_heads, "n_heads", 256), (length, "length", 96)):
        check_positive_int(v, n)
        if v > top:
            raise ValueError(f"{n} must be at most {top} in the calculator; got {v}")
    config = {"n_layers": n_layers, "n_heads": n_heads, "length": length}
    return HTML(live_widget_html("virtualHeadCalculator", config, _check_prefix(prefix, "mllvc"), assets, model_name=None))


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
    from IPython.display import HTML

    from mechlib.composition import composition_scores
    from mechlib.explorers import CompositionExplorerState
    from mechlib.heads import all_heads, head_label, top_pair

    if model is None:
        from mechlib.models import load_model

        model = load_model()
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
    return HTML(live_widget_html("compositionExplorer", config, _check_prefix(prefix, "mllce"), assets, model_name=None))


def term_picker(model: Any = None, tokens: Any = None, terms_off: Any = (), pattern_head: str | None = None,
                prefix: str | None = None, assets: str = "auto", **kwargs: Any):
    """The path-expansion term picker, computed in the page (``IPython.display.HTML``).

    The page splits the model's logits on the reader's sequence into the exact path
    expansion of :func:`mechlib.path_expansion` (direct path, single heads, virtual heads,
    bias terms, from the clean run's attention patterns) and the reader switches terms
    off: the loss on the repeated tokens and the predictions follow the sum of the kept
    terms. ``terms_off`` (term names such as ``"0.3->1.1"``) start unticked; the other
    arguments are those of :func:`head_toggle`.

    Shown in Chapter 6, The Two-Layer Expansion.
    """
    from IPython.display import HTML

    import torch

    from mechlib.expansion import path_expansion

    if model is None:
        from mechlib.models import load_model

        model = load_model()
    config = head_toggle_config(model, tokens, pattern_head, **kwargs)
    names = list(path_expansion(model, torch.tensor([config["tokens"]])).terms)
    if isinstance(terms_off, str):
        terms_off = [terms_off]
    unknown = [t for t in terms_off if t not in names]
    if unknown:
        raise ValueError(f"terms_off: unknown term(s) {unknown}; terms are {names}")
    config["terms_off"] = list(terms_off)
    return HTML(live_widget_html("termPicker", config, _check_prefix(prefix, "mlltp"), assets))
