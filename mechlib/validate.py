"""Argument checks, and where tensors live: public, for every floor.

Every public function of mechlib validates its input with these checks, so a learner's
mistake meets a message that names the argument and what is allowed, instead of an
IndexError from deep inside torch. The views and the teaching floor use the same checks
(``from mechlib.validate import check_head``), and so may a learner's own functions.
What mechlib records about a model (its LM head, whether it is causal) is checked in
:mod:`mechlib.models.info`.

Devices. A model may sit on any device (``load_model(device="cuda")`` or
``model.to("cuda")``). :func:`check_tokens` moves the tokens to the model's device,
so data made on the CPU (:func:`mechlib.repeated_tokens` always is) works with any
model. Computations run where the weights are; the weights are never copied per call.
What comes back follows one rule, stated in the README and tested in
``tests/core/test_devices.py``:

* activations -- logits, attention patterns, path-expansion terms -- stay on the
  model's device, as ``model(tokens)`` does;
* summaries -- score tables, composition scores, losses, attributions, what the
  widgets' ``update()`` returns -- come back on the CPU (numbers as Python floats),
  ready to print or plot;
* functions of tensors alone (``per_token_loss``, ``induction_scores_from_patterns``,
  ``head_output`` and ``composition_from_cache`` on the cache's device, and
  ``composition_score``: a float for one pair, a tensor for a batch) answer on their
  input's device.
"""
from __future__ import annotations

from typing import Any

import torch

from mechlib.heads import Head, head_label

KINDS = ("Q", "K", "V")

def check_head(model: Any, head: Any, name: str = "head") -> Head:
    """Return ``head`` as a ``(layer, head)`` tuple of ints, or raise."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if isinstance(head, torch.Tensor):
        head = tuple(head.tolist())
    if (
        not isinstance(head, (tuple, list))
        or len(head) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in head)
    ):
        raise TypeError(
            f"{name} must be a (layer, head) pair of ints, e.g. (0, 1) for head 0.1; got {head!r}"
        )
    layer, h = head
    if not 0 <= layer < n_layers:
        raise ValueError(
            f"{name}={tuple(head)!r}: layer {layer} does not exist; this model has layers 0..{n_layers - 1}"
        )
    if not 0 <= h < n_heads:
        raise ValueError(
            f"{name}={tuple(head)!r}: head {h} does not exist; each layer has heads 0..{n_heads - 1}"
        )
    return (layer, h)


def check_heads(model: Any, heads: Any, name: str = "heads") -> list[Head]:
    """Return a list of validated heads; accepts one head or an iterable of heads."""
    if isinstance(heads, tuple) and len(heads) == 2 and all(isinstance(x, int) for x in heads):
        heads = [heads]
    try:
        items = list(heads)
    except TypeError:
        raise TypeError(f"{name} must be a list of (layer, head) pairs; got {heads!r}") from None
    return [check_head(model, h, name=f"{name}[{i}]") for i, h in enumerate(items)]


def check_sender_receiver(model: Any, sender: Any, receiver: Any) -> tuple[Head, Head]:
    """Validate a (sender, receiver) pair: the sender must sit in an earlier layer."""
    s = check_head(model, sender, "sender")
    r = check_head(model, receiver, "receiver")
    if s[0] >= r[0]:
        raise ValueError(
            f"sender {head_label(s)} must be in an earlier layer than receiver {head_label(r)}: "
            "a head can only read what earlier layers wrote to the residual stream"
        )
    return s, r


def check_kind(kind: Any) -> str:
    """Return ``kind`` as ``"Q"``, ``"K"`` or ``"V"`` (any case), or raise."""
    if not isinstance(kind, str) or kind.upper() not in KINDS:
        raise ValueError(f"kind must be one of 'Q', 'K', 'V'; got {kind!r}")
    return kind.upper()


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` if it is an int ``> 0`` (not a bool), or raise naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value


def check_nonnegative_int(value: Any, name: str) -> int:
    """Return ``value`` if it is an int ``>= 0`` (not a bool), or raise naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value


def model_device(model: Any) -> torch.device:
    """The device of ``model``'s weights: where mechlib computes with it."""
    for p in model.parameters():
        return p.device
    return torch.device(getattr(model.cfg, "device", None) or "cpu")


def check_device(device: Any, name: str = "device") -> torch.device:
    """Return ``device`` as a :class:`torch.device` that this machine has, or raise."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a string such as 'cpu' or 'cuda', or a torch.device; got {device!r}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{name}={device!r} is not a device; use 'cpu', 'cuda', 'cuda:0' or 'mps'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}: this machine has no CUDA device (torch.cuda.is_available() is "
                             "False); use device='cpu', or in Colab choose a GPU runtime")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r}: this machine has CUDA devices 0..{torch.cuda.device_count() - 1}")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"{name}={device!r}: MPS is not available on this machine; use device='cpu'")
    elif dev.type != "cpu":
        raise ValueError(f"{name}={device!r}: mechlib supports 'cpu', 'cuda' and 'mps' devices")
    return dev


def float64_device(device: torch.device) -> torch.device:
    """Where a float64 step can run: ``device`` itself, or the CPU for MPS (which has no float64)."""
    return torch.device("cpu") if device.type == "mps" else device


def check_tokens(model: Any, tokens: Any, name: str = "tokens") -> torch.Tensor:
    """Return ``tokens`` as a 2-D LongTensor ``[batch, pos]`` valid for ``model``, on the model's device, or raise."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids; got {type(tokens).__name__}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (token ids); got dtype {tokens.dtype}")
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2:
        raise ValueError(f"{name} must be 1-D [pos] or 2-D [batch, pos]; got shape {tuple(tokens.shape)}")
    if tokens.shape[-1] == 0 or tokens.shape[0] == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(tokens.shape)}")
    n_ctx, d_vocab = model.cfg.n_ctx, model.cfg.d_vocab
    if tokens.shape[-1] > n_ctx:
        raise ValueError(f"{name} has {tokens.shape[-1]} positions; the model's context n_ctx is {n_ctx}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= d_vocab:
        raise ValueError(f"{name} must lie in [0, {d_vocab}) (the vocabulary); got values in [{lo}, {hi}]")
    return tokens.long().to(model_device(model))
