"""The live views backed by a kernel: for a model the page cannot run (GPT-2 in Colab, a
learner's own), the same JavaScript view asks the kernel for each forward pass.

:class:`KernelWidget` is an anywidget (``_esm``: the scripts of the views that can ask a
kernel, :data:`KERNEL_WIDGETS`, then ``kernel.js``; ``_css``: ``live.css``) that syncs one trait,
``spec`` (``{id, widget, config}``, as the page's widgets), and answers the view's messages with :func:`kernel_run`.
anywidget runs in JupyterLab, Notebook, VS Code and Colab, with ipywidgets 7 or 8.

Shown in Chapter 5, Virtual Attention Heads (the head toggle), on any model.
"""
from __future__ import annotations

from typing import Any

import anywidget
import numpy as np
import torch
import traitlets

from mechlib.views.live.page import asset_dir, code_files

#: the views that can ask a kernel: every view that runs a model (the composition explorer reads
#: numbers computed in Python, the calculator needs no model, the slider reads stored checkpoints)
KERNEL_WIDGETS = ("headToggle", "pathAblation", "termPicker")
#: what a run may ask for, as ``window.mechlibLive.run``'s options (model.js) and the term picker's
RUN_OPTIONS = ("heads_off", "paths_off", "terms")


def _tokens_of(model: Any, request: dict[str, Any]) -> torch.Tensor:
    tokens = request.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise ValueError(f"tokens must be a list of integers; got {tokens!r}")
    device = next(iter(p.device for p in model.parameters()), torch.device("cpu"))
    return torch.tensor([tokens], device=device)


def _options_of(request: dict[str, Any]) -> dict[str, Any]:
    """The run's options, ``request["options"]`` (none: a clean run)."""
    options = request.get("options", {})
    if not isinstance(options, dict):
        raise ValueError(f"options must be an object with keys among {RUN_OPTIONS}; got {options!r}")
    unknown = sorted(set(options) - set(RUN_OPTIONS))
    if unknown:
        raise ValueError(f"options: unknown {unknown}; allowed: {list(RUN_OPTIONS)}")
    given = [k for k in RUN_OPTIONS if options.get(k)]
    if len(given) > 1:
        raise ValueError(f"options: a run takes one of {list(RUN_OPTIONS)}; got {given}")
    return options


def _heads_off(model: Any, heads: Any) -> list[tuple[int, int]]:
    from mechlib.heads import parse_head
    from mechlib.validate import check_heads

    if not isinstance(heads, list):
        raise ValueError(f"heads_off must be a list of head names like '0.3'; got {heads!r}")
    return check_heads(model, [parse_head(h, f"heads_off[{i}]") for i, h in enumerate(heads)], "heads_off")


def _path_hooks(model: Any, tokens: torch.Tensor, paths: Any) -> list:
    """Hooks cutting ``paths`` (``[sender, receiver, kind]`` triples), as :func:`mechlib.path_ablation`.

    The triples are grouped by (receiver, kind): that input of the receiver reads the clean
    run's input minus the summed clean outputs of its cut senders, every other reader still
    sees them. A model with LayerNorm has its norms frozen at the clean run
    (``freeze_ln=True``), as the appendix does.
    """
    from mechlib.ablation import path_ablation_hooks
    from mechlib.heads import parse_head

    if not isinstance(paths, list):
        raise ValueError(f"paths_off must be a list of [sender, receiver, kind] like ['0.3', '1.1', 'K']; got {paths!r}")
    groups: dict[tuple[tuple[int, int], str], list[tuple[int, int]]] = {}
    for i, p in enumerate(paths):
        if not isinstance(p, list) or len(p) != 3:
            raise ValueError(f"paths_off[{i}] must be [sender, receiver, kind] like ['0.3', '1.1', 'K']; got {p!r}")
        s, r = parse_head(p[0], f"paths_off[{i}] sender"), parse_head(p[1], f"paths_off[{i}] receiver")
        groups.setdefault((r, p[2]), []).append(s)
    frozen = getattr(model.cfg, "normalization_type", None) is not None
    return [hook for (r, kind), senders in groups.items()
            for hook in path_ablation_hooks(model, tokens, senders, r, kind, freeze_ln=frozen)]


def _kept_terms(model: Any, tokens: torch.Tensor, terms: Any) -> torch.Tensor:
    """Logits ``[batch, pos, vocab]``: the sum of the kept ``terms`` of :func:`mechlib.path_expansion`."""
    from mechlib.expansion import path_expansion

    expansion = path_expansion(model, tokens)
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise ValueError(f"terms must be a list of term names like '0.3->1.1'; got {terms!r}")
    unknown = [t for t in terms if t not in expansion.terms]
    if unknown:
        raise ValueError(f"terms: unknown term(s) {unknown}; terms are {list(expansion.terms)}")
    logits = torch.zeros(expansion.terms[next(iter(expansion.terms))].shape, dtype=torch.float64)
    for t in terms:
        logits += expansion.terms[t].detach().double().cpu()
    return logits


def kernel_run(model: Any, request: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """Answer one ``{"type": "run", "id", "tokens", "options"}`` message of a view.

    ``options`` holds at most one of (as ``window.mechlibLive.run`` in the page, model.js):
    ``heads_off``, head names ``"l.h"`` zero-ablated (:func:`mechlib.run_with_ablation`);
    ``paths_off``, ``[sender, receiver, kind]`` triples cut (:func:`mechlib.path_ablation`,
    LayerNorm frozen where the model has it); ``terms``, names of the path expansion's terms
    whose sum gives the logits (:func:`mechlib.path_expansion`, the term picker). Returns the
    reply ``{"type": "result", "id", "n", "V", "n_layers", "n_heads"}`` with two float32
    buffers: logits ``[n, V]`` and the attention patterns ``[layer, head, n, n]`` of the run
    (of the clean run for ``terms``). Bad tokens, heads, paths or terms raise ``ValueError``
    naming them.
    """
    from mechlib.toggle import ablated_run

    options = _options_of(request)
    off = _heads_off(model, options.get("heads_off") or [])
    tokens = _tokens_of(model, request)
    hooks = _path_hooks(model, tokens, options["paths_off"]) if options.get("paths_off") else []
    logits, patterns = ablated_run(model, tokens, off, extra_hooks=hooks)
    if options.get("terms") is not None:
        logits = _kept_terms(model, tokens, options["terms"])
    cfg = model.cfg
    reply = {"type": "result", "id": request.get("id"), "n": tokens.shape[1], "V": int(logits.shape[-1]),
             "n_layers": cfg.n_layers, "n_heads": cfg.n_heads}
    buffers = [logits[0].detach().cpu().numpy().astype("<f4").tobytes(),
               patterns[:, 0].detach().cpu().numpy().astype("<f4").tobytes()]
    return reply, buffers


def _esm() -> str:
    """The widget's ES module: the forward pass and the views that can ask a kernel (plain
    scripts, each once, in their order), then kernel.js."""
    files: list[str] = []
    for widget in KERNEL_WIDGETS:
        files += [f for f in code_files(widget) if f.endswith(".js") and f not in files]
    return "\n".join((asset_dir() / f).read_text() for f in files + ["kernel.js"])


class KernelWidget(anywidget.AnyWidget):
    """A live view whose forward passes run in this kernel, on ``model`` (see :func:`kernel_run`)."""

    _esm = _esm()
    _css = (asset_dir() / "live.css").read_text()
    spec = traitlets.Dict().tag(sync=True)

    def __init__(self, model: Any, spec: dict[str, Any], **kwargs: Any):
        if spec.get("widget") not in KERNEL_WIDGETS:
            raise ValueError(f"only {KERNEL_WIDGETS} can ask a kernel; got {spec.get('widget')!r}")
        super().__init__(spec=spec, **kwargs)
        self._model = model
        self.on_msg(self._answer)

    def _answer(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if not isinstance(content, dict) or content.get("type") != "run":
            return
        try:
            reply, buffers = kernel_run(self._model, content)
        except (ValueError, TypeError) as e:
            self.send({"type": "error", "id": content.get("id"), "message": str(e)})
            return
        self.send(reply, buffers)


def model_info(model: Any) -> dict[str, Any]:
    """What the view needs to know of a model it does not hold: its sizes and its heads."""
    from mechlib.heads import all_heads, head_label

    cfg = model.cfg
    sizes = {f: int(getattr(cfg, f)) for f in ("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "n_ctx")}
    return {"config": sizes, "heads": [head_label(h) for h in all_heads(model)]}


def floats_of(buffer: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 buffer of :func:`kernel_run` as an array of ``shape`` (for tests and tools)."""
    return np.frombuffer(buffer, dtype="<f4").reshape(shape)
