"""The inputs of the exercises' cases: models, tokens, matrices and sizes.

In a notebook's self-check every case is fixed. Under :func:`hidden_cases` (the grader,
:meth:`mechlib.teaching.exercise.Exercise.cases` with a seed) they are drawn from a seed
picked at grading time -- other random models, tokens, matrices and sizes -- so that an
answer memorised from the self-check fails. A model goes into the sandbox as the recipe
that rebuilds it (:func:`model_spec`, :func:`build_model`), never as weights.

Every seed a hidden input is drawn with is derived one way from the grader's seed
(:func:`derive`, a BLAKE2b hash): the seed of a model's recipe, or one recovered from the
random numbers of a tensor, says nothing about the grader's seed or the other inputs.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import random
import threading

import torch

import mechlib
from mechlib.heads import Head


class _Hidden(threading.local):
    """The seeds of the hidden grading cases, per thread (the grader judges notebooks in parallel)."""

    def __init__(self):
        self.seeds: list[int] = []


_HIDDEN = _Hidden()


@contextlib.contextmanager
def hidden_cases(seed: int):
    """Inside this block every check draws the grader's hidden inputs, fixed by ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    _HIDDEN.seeds.append(seed)
    try:
        yield
    finally:
        _HIDDEN.seeds.pop()


def derive(seed: int, *tags: object) -> int:
    """A 64-bit seed derived one way from ``seed`` and ``tags``: ``BLAKE2b(repr((seed, *tags)))``."""
    return int.from_bytes(hashlib.blake2b(repr((seed, *tags)).encode(), digest_size=8).digest(), "big")


def hidden_seed() -> int | None:
    """The seed of the hidden cases, or None for the notebook's own self-check."""
    return _HIDDEN.seeds[-1] if _HIDDEN.seeds else None


def hidden_sizes(count: int, *ranges: tuple[int, int]) -> list[tuple[int, ...]]:
    """``count`` tuples of sizes drawn from ``ranges`` (inclusive) for the hidden cases; none in a self-check."""
    seed = hidden_seed()
    if seed is None:
        return []
    rng = random.Random(derive(seed, "sizes", count, ranges))
    return [tuple(rng.randint(a, b) for a, b in ranges) for _ in range(count)]


# How to rebuild each model a case hands to the learner, keyed by id (the models are cached,
# so they stay alive): grading sends the spec, not the weights, into the sandbox.
_SPECS: dict[int, dict] = {}


def model_spec(model) -> dict:
    """``{"bundled": True}``, ``{"relay": True}``, ``{"unseen": name}`` or ``{"random_model": kwargs}``: what
    :func:`build_model` needs to rebuild ``model``."""
    try:
        return _SPECS[id(model)]
    except KeyError:
        raise ValueError("model must be bundled() or a check_model(); other models cannot be sent to a sandbox") from None


def build_model(spec: dict):
    """The model that :func:`model_spec` describes (the same weights on every machine)."""
    if spec.get("bundled") is True:
        return bundled()
    if spec.get("relay") is True:
        return relay()
    if "unseen" in spec:
        return unseen(spec["unseen"])
    if "snapshot" in spec:
        return snapshot_model(spec["snapshot"])
    if "planted" in spec:
        kwargs = spec["planted"]
        if not isinstance(kwargs, dict) or not all(isinstance(v, int) for v in kwargs.values()):
            raise ValueError(f"unknown model spec {spec!r}")
        return _planted_model(tuple(sorted(kwargs.items())))
    kwargs = spec.get("random_model")
    if not isinstance(kwargs, dict) or not all(isinstance(v, int) for v in kwargs.values()):
        raise ValueError(f"unknown model spec {spec!r}")
    return _random_model(tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=16)
def _random_model(kwargs: tuple):
    kw = dict(kwargs)
    layernorm = bool(kw.pop("layernorm", 0))
    model = _layernorm_model(**kw) if layernorm else mechlib.random_model(**kw)
    # a non-zero unembedding bias: an answer that adds b_U where the text leaves it out (or drops it
    # where it belongs) must change the result
    with torch.no_grad():
        model.b_U.copy_(torch.randn(model.cfg.d_vocab, generator=torch.Generator().manual_seed(kw.get("seed", 7) + 17)))
    _SPECS[id(model)] = {"random_model": dict(kwargs)}
    return model


def _layernorm_model(n_layers: int = 3, n_heads: int = 3, d_model: int = 32, d_head: int = 8, d_vocab: int = 20,
                     n_ctx: int = 16, seed: int = 7):
    """An untrained attention-only model *with* LayerNorm (pre-LN, as GPT-2), its norms' weights
    ``1 + N(0, 0.1^2)`` and every bias ``N(0, 0.1^2)``: an answer that handles no LayerNorm (or
    forgets ``freeze_ln=True``) gets it wrong, as it would on MiniLM or GPT-2."""
    import zlib

    import transformer_lens.model_bridge.sources.native  # noqa: F401  (attaches boot_native)
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    cfg = TransformerBridgeConfig(d_model=d_model, d_head=d_head, n_heads=n_heads, n_layers=n_layers, n_ctx=n_ctx,
                                  d_vocab=d_vocab, attn_only=True, normalization_type="LN",
                                  positional_embedding_type="standard", seed=seed, act_fn="gelu")
    model = mechlib.load_model(TransformerBridge.boot_native(cfg))
    with torch.no_grad():
        for name, p in model.named_parameters():
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()) + seed)
            if name.endswith("bias"):
                p.normal_(0, 0.1, generator=g)
            elif "ln" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
    return model.requires_grad_(False)


def planted_model(n_layers: int = 3, n_heads: int = 3, d_model: int = 32, d_head: int = 8, d_vocab: int = 20,
                  n_ctx: int = 16, seed: int = 7, head: int = 0):
    """A :func:`mechlib.random_model` whose head ``0.head`` is made a previous-token head by its weights.

    Two residual dimensions are given over to position: ``W_pos[i, :2] = a (cos i theta, sin i theta)``
    with ``theta = pi / n_ctx``, and every token embedding is 0 there. The head's query reads
    those two dimensions as they are, its key rotates them by ``theta``, and nothing else
    (no biases): the score of query ``i`` on key ``j`` is ``c cos((i - j - 1) theta)``, largest at
    ``j = i - 1``, with ``c`` big enough that the head puts nearly all its attention there.
    A model the learner has not seen, with a previous-token head in a drawn place (capstone)."""
    return _planted_model(tuple(sorted(dict(n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_head,
                                            d_vocab=d_vocab, n_ctx=n_ctx, seed=seed, head=head).items())))


@functools.lru_cache(maxsize=8)
def _planted_model(kwargs: tuple):
    import math

    kw = dict(kwargs)
    head = kw.pop("head")
    model = mechlib.random_model(**kw)
    n_ctx, d_head = kw["n_ctx"], kw["d_head"]
    theta = math.pi / n_ctx
    angle = torch.arange(n_ctx, dtype=torch.float32) * theta
    c, s = math.cos(theta), math.sin(theta)
    with torch.no_grad():
        blocks = model.blocks[0].attn
        model.W_E[:, :2] = 0.0
        model.W_pos[:, :2] = torch.stack([angle.cos(), angle.sin()], dim=-1)
        W_Q, W_K = blocks.W_Q, blocks.W_K  # [head, d_model, d_head]
        W_Q[head] = 0.0
        W_K[head] = 0.0
        scale = 12.0 * math.sqrt(d_head) / (1 - c)  # score gap >= 12 between q - 1 and every other key
        W_Q[head, :2, :2] = math.sqrt(scale) * torch.eye(2)
        W_K[head, :2, :2] = math.sqrt(scale) * torch.tensor([[c, s], [-s, c]])
        blocks.b_Q[head] = 0.0
        blocks.b_K[head] = 0.0
    _SPECS[id(model)] = {"planted": dict(kwargs)}
    return model


def snapshot_model(step: int):
    """``induction-2l`` as it was after ``step`` training steps (:func:`mechlib.checkpoint_steps`)."""
    if not isinstance(step, int) or isinstance(step, bool) or step not in mechlib.checkpoint_steps():
        raise ValueError(f"unknown model spec {{'snapshot': {step!r}}}")
    return _snapshot(step)


@functools.lru_cache(maxsize=4)
def _snapshot(step: int):
    model = mechlib.load_model(step=step)
    _SPECS[id(model)] = {"snapshot": step}
    return model


_LOADING = threading.Lock()


def bundled():
    """The bundled ``induction-2l``, loaded once (the grader asks from two threads at once)."""
    with _LOADING:
        return _bundled()


@functools.lru_cache(maxsize=None)
def _bundled():
    model = mechlib.load_model()
    _SPECS[id(model)] = {"bundled": True}
    return model


def relay():
    """The bundled ``relay-2l`` (Chapter 2), loaded once."""
    with _LOADING:
        return _relay()


@functools.lru_cache(maxsize=None)
def _relay():
    model = mechlib.load_model("relay-2l")
    _SPECS[id(model)] = {"relay": True}
    return model


def unseen(name: str):
    """Unseen model ``name`` (:mod:`mechlib.teaching.unseen`): a model of the hidden cases that the
    learner has not met in the chapters, loaded once."""
    from mechlib.teaching.unseen import UNSEEN, unseen_model

    if name not in UNSEEN:
        raise ValueError(f"unknown model spec {{'unseen': {name!r}}}")
    with _LOADING:
        model = unseen_model(name)
        _SPECS[id(model)] = {"unseen": name}
    return model


#: head counts of the hidden cases' models: never the bundled model's 4, so that an answer
#: that hard-codes 4 heads fails on every seed
HIDDEN_HEAD_COUNTS = (2, 3, 5)


def check_model(n_layers: int = 3, layernorm: bool = False):
    """An untrained model of another shape with non-zero biases (:func:`mechlib.random_model`),
    ``b_U`` included, with LayerNorm when ``layernorm``: a check must not pass by hard-coding
    the bundled model's sizes or by leaving a bias (or a norm) out. Under
    :func:`hidden_cases` its other sizes and its weights come from the hidden seed; it never
    has 4 heads (:data:`HIDDEN_HEAD_COUNTS`)."""
    return _check_model(n_layers, hidden_seed(), layernorm)


def _check_model(n_layers: int, seed: int | None, layernorm: bool = False):
    extra = {"layernorm": 1} if layernorm else {}
    if seed is None:
        return build_model({"random_model": {"n_layers": n_layers, **extra}})
    rng = random.Random(derive(seed, "model shape", n_layers))
    d_head = rng.choice([4, 6, 8])
    n_heads = rng.choice(HIDDEN_HEAD_COUNTS)
    return build_model({"random_model": dict(
        n_layers=n_layers, n_heads=n_heads, d_head=d_head, d_model=d_head * rng.randint(3, 6),
        d_vocab=rng.randint(17, 29), n_ctx=rng.randint(16, 24), seed=1000 + derive(seed, "model weights", n_layers) % 1_000_000,
        **extra)})


def model_desc(model) -> str:
    if model is bundled():
        return "the bundled induction-2l model"
    spec = _SPECS.get(id(model), {})
    if spec.get("relay") is True:
        return "the bundled relay-2l model"
    if "unseen" in spec:
        from mechlib.teaching.unseen import PERMUTATIONS

        if spec["unseen"] in PERMUTATIONS:
            return "induction-2l with its heads renumbered"
        c = model.cfg
        return f"a model you have not seen ({c.n_layers} layers, {c.n_heads} heads of d_head {c.d_head})"
    c = model.cfg
    ln = " with LayerNorm" if getattr(c, "normalization_type", None) else ""
    return f"a random {c.n_layers}-layer model{ln} (d_model {c.d_model}, {c.n_heads} heads of d_head {c.d_head})"


def head_pairs(model) -> list[tuple[Head, Head]]:
    """Every (sender, receiver) pair with the sender in an earlier layer."""
    return list(mechlib.enumerate_virtual_heads(model.cfg.n_layers, model.cfg.n_heads))


def _case_seed(seed: int) -> int:
    hidden = hidden_seed()
    return seed if hidden is None else derive(hidden, "case", seed) % (2**63)


def generator(seed: int) -> torch.Generator:
    """A generator for a case's random inputs (another stream under :func:`hidden_cases`)."""
    return torch.Generator().manual_seed(_case_seed(seed))


def repeat_tokens_for(model, batch: int, seed: int) -> torch.Tensor:
    """Repeated-token batch that fits the model's context (other tokens under :func:`hidden_cases`)."""
    seed = _case_seed(seed)
    c = model.cfg
    half = min(7, (c.n_ctx - 2) // 2)
    prefix = min(5, c.n_ctx - 2 * half)
    return mechlib.repeated_tokens(c.d_vocab, batch, half, seed=seed, prefix_len=prefix), half, prefix
