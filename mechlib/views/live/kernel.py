"""The live views backed by a kernel: for a model the page cannot run (GPT-2 in Colab, a
learner's own), the same JavaScript view asks the kernel for each forward pass.

:class:`KernelWidget` is an anywidget (``_esm``: the head toggle's scripts, ``model.js``
to ``head-toggle.js``, then ``kernel.js``; ``_css``: ``live.css``) that syncs one trait,
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

#: the views that can ask a kernel (their runs only switch heads off)
KERNEL_WIDGETS = ("headToggle",)


def kernel_run(model: Any, request: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """Answer one ``{"type": "run", "id", "tokens", "heads_off"}`` message of a view.

    Runs ``model`` on ``tokens`` with the heads ``heads_off`` (names ``"l.h"``) zero-ablated,
    as :func:`mechlib.run_with_ablation`, and returns the reply ``{"type": "result", "id", "n",
    "V", "n_layers", "n_heads"}`` with two float32 buffers: logits ``[n, V]`` and attention
    patterns ``[layer, head, n, n]``. Bad tokens or heads raise ``ValueError`` naming them.
    """
    from mechlib.validate import check_heads
    from mechlib.heads import parse_head
    from mechlib.toggle import ablated_run

    heads = request.get("heads_off", [])
    if not isinstance(heads, list):
        raise ValueError(f"heads_off must be a list of head names like '0.3'; got {heads!r}")
    off = check_heads(model, [parse_head(h, f"heads_off[{i}]") for i, h in enumerate(heads)], "heads_off")
    tokens = request.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        raise ValueError(f"tokens must be a list of integers; got {tokens!r}")
    device = next(iter(p.device for p in model.parameters()), torch.device("cpu"))
    logits, patterns = ablated_run(model, torch.tensor([tokens], device=device), off)
    cfg = model.cfg
    reply = {"type": "result", "id": request.get("id"), "n": len(tokens), "V": int(logits.shape[-1]),
             "n_layers": cfg.n_layers, "n_heads": cfg.n_heads}
    buffers = [logits[0].detach().cpu().numpy().astype("<f4").tobytes(),
               patterns[:, 0].detach().cpu().numpy().astype("<f4").tobytes()]
    return reply, buffers


def _esm() -> str:
    """The widget's ES module: the forward pass and the head toggle's view (plain scripts), then kernel.js."""
    files = [f for f in code_files("headToggle") if f.endswith(".js")] + ["kernel.js"]
    return "\n".join((asset_dir() / f).read_text() for f in files)


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
