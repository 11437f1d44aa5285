"""Models the learner has not seen: small variants of the bundled recipes, for hidden cases.

An investigation exercise (chapters 1 to 4) asks for a finding about a model: the
previous-token head, the induction head, the sign of an effect. Its self-check runs on the
bundled models; the grader's hidden cases also run on these variants, trained with other
seeds (and one with another size), so that an answer which hard-codes what the chapters
show about ``induction-2l`` (head ``0.3``, head ``1.1``, four heads) fails there.

* ``induction-3h``: ``induction-2l``'s recipe (:class:`mechlib.InductionConfig`) with seed 2,
  3 heads of 16, ``d_model`` 48 and 1200 steps instead of 4000 (the circuit forms by step
  800 or so; the shorter run keeps retraining within minutes on a busy machine);
* ``relay-s2``: ``relay-2l``'s recipe (:class:`mechlib.RelayConfig`) with seed 2;
* ``induction-perm``: ``induction-2l`` itself with the heads of each layer renumbered
  (:data:`PERMUTATIONS`): the same function, other head ids, so that an answer that
  hard-codes ``0.3`` or ``1.1`` fails while every finding stays exactly known;
* ``induction-bu``: ``induction-perm`` with an unembedding bias ``b_U`` (:data:`BIASED`). Every
  trained model here has ``b_U = 0``, so an answer that adds it (``model.unembed`` does) where
  the text leaves it out cannot be told from a right one on them.

The trained ones ship in ``mechlib/checkpoints/unseen/`` in float16 (weights) with their
recipe and a thinned training log (``.json``), and ``scripts/train_unseen.py`` retrains them
from their seeds; the renumbered one is built from the bundled checkpoint when loaded. Their
figures (where the previous-token and induction heads are, which input of layer 1 carries
the circuit) are checked by ``tests/teaching/test_unseen.py``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from transformer_lens.model_bridge import TransformerBridge

from mechlib.models.bundled import InductionConfig, RelayConfig, build_model
from mechlib.models.info import model_info
from mechlib.models.load import load_model

#: every trained unseen variant's recipe, by name
TRAINED: dict[str, InductionConfig | RelayConfig] = {
    "induction-3h": InductionConfig(seed=2, d_model=48, n_heads=3, d_head=16, steps=1200),
    "relay-s2": RelayConfig(seed=2),
}

#: the renumbered variants: ``new head h of layer l`` is ``old head perm[l][h]`` of ``induction-2l``
PERMUTATIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "induction-perm": ((3, 0, 1, 2), (2, 3, 1, 0)),
}

#: variants with an unembedding bias: ``name -> (renumbered variant, seed)``; ``b_U`` is drawn N(0, 1)
BIASED: dict[str, tuple[str, int]] = {
    "induction-bu": ("induction-perm", 21),
}

#: every unseen model's name
UNSEEN: tuple[str, ...] = (*TRAINED, *PERMUTATIONS, *BIASED)

#: the training log keeps every LOG_EVERY-th step (and the last)
LOG_EVERY = 50


def unseen_path(name: str) -> Path:
    """Path of the shipped weights of trained variant ``name`` (``.pt``; its recipe is the ``.json`` beside it)."""
    if name not in TRAINED:
        raise ValueError(f"name must be a trained unseen model, one of {sorted(TRAINED)}; got {name!r}")
    return Path(str(resources.files("mechlib") / "checkpoints" / "unseen" / f"{name}.pt"))


def _check_name(name: object) -> None:
    if name not in UNSEEN:
        raise ValueError(f"name must be an unseen model, one of {sorted(UNSEEN)}; got {name!r}")


def save_unseen(model: TransformerBridge, path: str | Path) -> Path:
    """Write ``model``'s weights in float16 (``path``.pt) and its recipe and thinned log (``path``.json)."""
    path = Path(path)
    info = model_info(model)
    config = info.config
    state = {k: v.detach().cpu().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    torch.save(state, path.with_suffix(".pt"))
    log = info.training_log
    thinned = [[int(s), round(float(v), 5)] for s, v in log if s % LOG_EVERY == 0 or s == log[-1][0]]
    meta = {"model": config.name, "config": config.to_json(), "training_log": thinned}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return path.with_suffix(".pt")


def permute_heads(model: TransformerBridge, perm: tuple[tuple[int, ...], ...]) -> TransformerBridge:
    """A copy of ``model`` whose head ``h`` of layer ``l`` is ``model``'s head ``perm[l][h]``.

    The rows of ``q``, ``k``, ``v`` (weights and biases) and the columns of ``o`` are blocks of
    ``d_head``, one per head; moving the blocks renumbers the heads and changes no output.
    """
    cfg = model.cfg
    if len(perm) != cfg.n_layers or any(sorted(p) != list(range(cfg.n_heads)) for p in perm):
        raise ValueError(f"perm must hold one permutation of range({cfg.n_heads}) per layer; got {perm!r}")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    d = cfg.d_head
    for layer, p in enumerate(perm):
        rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in p])
        for part in "qkv":
            for what in ("weight", "bias"):
                key = f"blocks.{layer}.attn.{part}.{what}"
                state[key] = state[key][rows]
        key = f"blocks.{layer}.attn.o.weight"
        state[key] = state[key][:, rows]
    new = build_model(model_info(model).config)
    new.load_state_dict(state, strict=True)
    return load_model(new, lm_head_trained=True)


def with_unembed_bias(model: TransformerBridge, seed: int) -> TransformerBridge:
    """A copy of ``model`` whose unembedding bias ``b_U`` is drawn N(0, 1) from ``seed``."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    state["unembed.bias"] = torch.randn(state["unembed.bias"].shape, generator=g)
    new = build_model(model_info(model).config)
    new.load_state_dict(state, strict=True)
    return load_model(new, lm_head_trained=True)


def _load(name: str) -> TransformerBridge:
    if name in BIASED:
        base, seed = BIASED[name]
        return with_unembed_bias(_load(base), seed)
    if name in PERMUTATIONS:
        return permute_heads(load_model(), PERMUTATIONS[name])
    path = unseen_path(name)
    meta = json.loads(path.with_suffix(".json").read_text())
    config = type(TRAINED[name]).from_json(meta["config"])
    model = build_model(config)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model_info(model).training_log = [(int(s), float(v)) for s, v in meta["training_log"]]
    return load_model(model, lm_head_trained=True)


@lru_cache(maxsize=None)
def _cached(name: str) -> TransformerBridge:
    return _load(name)


def unseen_model(name: str) -> TransformerBridge:
    """Load unseen variant ``name`` (one of :data:`UNSEEN`), in float32 on the CPU.

    The model is cached: callers must not change its weights (the checks never do).
    """
    _check_name(name)
    return _cached(name)
