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
    """``{"bundled": True}`` or ``{"random_model": kwargs}``: what :func:`build_model` needs to rebuild ``model``."""
    try:
        return _SPECS[id(model)]
    except KeyError:
        raise ValueError("model must be bundled() or a check_model(); other models cannot be sent to a sandbox") from None


def build_model(spec: dict):
    """The model that :func:`model_spec` describes (the same weights on every machine)."""
    if spec.get("bundled") is True:
        return bundled()
    kwargs = spec.get("random_model")
    if not isinstance(kwargs, dict) or not all(isinstance(v, int) for v in kwargs.values()):
        raise ValueError(f"unknown model spec {spec!r}")
    return _random_model(tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=16)
def _random_model(kwargs: tuple):
    model = mechlib.random_model(**dict(kwargs))
    _SPECS[id(model)] = {"random_model": dict(kwargs)}
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


def check_model(n_layers: int = 3):
    """An untrained model of another shape with non-zero biases (:func:`mechlib.random_model`):
    a check must not pass by hard-coding the bundled model's sizes. Under
    :func:`hidden_cases` its other sizes and its weights come from the hidden seed."""
    return _check_model(n_layers, hidden_seed())


def _check_model(n_layers: int, seed: int | None):
    if seed is None:
        return build_model({"random_model": {"n_layers": n_layers}})
    rng = random.Random(derive(seed, "model shape", n_layers))
    d_head = rng.choice([4, 6, 8])
    n_heads = rng.randint(2, 4)
    return build_model({"random_model": dict(
        n_layers=n_layers, n_heads=n_heads, d_head=d_head, d_model=d_head * rng.randint(3, 6),
        d_vocab=rng.randint(17, 29), n_ctx=rng.randint(16, 24), seed=1000 + derive(seed, "model weights", n_layers) % 1_000_000)})


def model_desc(model) -> str:
    if model is bundled():
        return "the bundled induction-2l model"
    c = model.cfg
    return f"a random {c.n_layers}-layer model (d_model {c.d_model}, {c.n_heads} heads of d_head {c.d_head})"


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
