"""What crosses between the grader and a student's sandboxed kernel: plain data, never code.

Into the sandbox go the inputs of the hidden cases (:func:`encode_calls`): tensors,
numbers and heads as below, a model as the recipe that rebuilds it
(:func:`mechlib.teaching.inputs.model_spec`), an ``ActivationCache`` as its tensors.
Out of it come the outputs of the learner's functions are written as one JSON document and one
``.npz`` file of arrays (:func:`dump`) and read back with ``allow_pickle=False``
(:func:`load`). Tensors and numpy arrays keep their dtype and shape; numbers, strings,
``None``, lists, tuples and dicts keep their structure; a ``FactoredMatrix`` keeps its
two factors; an iterator is listed (up to a cap). Anything else arrives as a stand-in
object whose *type name* is the original's, so that a check's message ("expected a
torch.Tensor, got str") reads the same as in the notebook. Nothing read here is ever
executed or unpickled.
"""
from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Callable, Iterator

import numpy as np
import torch

from mechlib.teaching.comparisons import is_tl_instance

MAX_ITEMS = 100_000  # items kept of a list, tuple, dict or iterator
MAX_ARRAY_BYTES = 64 * 2**20  # one returned tensor; bigger ones arrive as a stand-in
MAX_TOTAL_BYTES = 256 * 2**20  # all arrays of one notebook, uncompressed
MAX_DOC_CHARS = 16 * 2**20  # the JSON document of one notebook's outputs (honest ones: well under 1 MB)
_SPECIAL = "__mg__"


class _Opaque:
    """Stand-in for a value of a type that does not cross (its class is renamed per value)."""

    def __init__(self, text: str):
        self._text = text

    def __repr__(self) -> str:
        return self._text


def _opaque(type_name: str, text: str) -> Any:
    cls = type(str(type_name)[:80] or "object", (_Opaque,), {})
    return cls(str(text)[:200])


class _Writer:
    def __init__(self, model_spec: Callable[[Any], dict] | None = None):
        self.arrays: dict[str, np.ndarray] = {}
        self.model_spec = model_spec  # inputs only: how to rebuild a model on the other side

    def array(self, a: np.ndarray) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a
        return key

    def encode(self, x: Any, depth: int = 0) -> Any:
        if depth > 20:
            return {_SPECIAL: "opaque", "type": type(x).__name__, "repr": "(nested too deeply)"}
        if x is None or isinstance(x, (bool, int, str)):
            return x if not isinstance(x, str) else x[:10_000]
        if isinstance(x, float):
            # float(x): a numpy float (a float subclass) would write np.float64(...), which no reader parses
            return {_SPECIAL: "float", "v": repr(float(x))}  # keeps nan and inf exact
        if x is Ellipsis:
            return {_SPECIAL: "ellipsis"}
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu()
            if t.numel() * t.element_size() > MAX_ARRAY_BYTES:
                return {_SPECIAL: "opaque", "type": "Tensor", "repr": f"a tensor of shape {tuple(t.shape)} (too big)"}
            dtype = str(t.dtype).removeprefix("torch.")
            if t.dtype in (torch.bfloat16, torch.float16):
                t = t.float()
            if t.is_complex() or t.dtype in (torch.float32, torch.float64, torch.int64, torch.int32, torch.int16,
                                             torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128):
                return {_SPECIAL: "tensor", "key": self.array(t.resolve_conj().numpy()), "dtype": dtype}
            return {_SPECIAL: "opaque", "type": "Tensor", "repr": f"a tensor of dtype {dtype}"}
        if isinstance(x, np.ndarray):
            if x.dtype == object or x.nbytes > MAX_ARRAY_BYTES:
                return {_SPECIAL: "opaque", "type": "ndarray", "repr": f"an array of dtype {x.dtype}"}
            return {_SPECIAL: "ndarray", "key": self.array(np.ascontiguousarray(x))}
        if isinstance(x, np.generic):
            if isinstance(x, (np.floating, np.integer, np.bool_)):
                return {_SPECIAL: "npscalar", "key": self.array(np.asarray(x))}
            return {_SPECIAL: "opaque", "type": type(x).__name__, "repr": repr(x)}
        if self.model_spec is not None and hasattr(x, "cfg") and hasattr(x, "run_with_cache"):
            return {_SPECIAL: "model", "spec": self.model_spec(x)}
        if self.model_spec is not None and is_tl_instance(x, "ActivationCache"):
            return {_SPECIAL: "cache", "model": self.encode(x.model, depth + 1),
                    "entries": self.encode(dict(x.cache_dict), depth + 1)}
        if is_tl_instance(x, "FactoredMatrix"):
            return {_SPECIAL: "factored", "A": self.encode(x.A, depth + 1), "B": self.encode(x.B, depth + 1)}
        if isinstance(x, (list, tuple)):
            kind = "list" if isinstance(x, list) else "tuple"
            return {_SPECIAL: kind, "items": [self.encode(v, depth + 1) for v in list(x)[:MAX_ITEMS]]}
        if isinstance(x, dict):
            items = list(x.items())[:MAX_ITEMS]
            return {_SPECIAL: "dict", "items": [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in items]}
        if hasattr(x, "__next__") and hasattr(x, "__iter__"):  # a generator or other iterator: list it
            items = []
            for v in x:
                if len(items) >= MAX_ITEMS:
                    break
                items.append(self.encode(v, depth + 1))
            return {_SPECIAL: "list", "items": items}
        try:
            text = repr(x)
        except Exception:  # noqa: BLE001 -- a hostile __repr__
            text = "?"
        return {_SPECIAL: "opaque", "type": type(x).__name__, "repr": text[:200]}


def encode_outcomes(outcomes: dict[str, dict]) -> tuple[str, bytes]:
    """``(json text, npz bytes)`` of ``{exercise id: {"status": ..., "outcomes": [...]}}``."""
    w = _Writer()
    doc = {}
    for ex_id, rec in outcomes.items():
        out = []
        for o in rec.get("outcomes", []):
            out.append(["value", w.encode(o[1])] if o[0] == "value" else list(o))
        doc[ex_id] = {**{k: v for k, v in rec.items() if k != "outcomes"}, "outcomes": out}
    buf = io.BytesIO()
    np.savez(buf, **w.arrays)
    return json.dumps(doc), buf.getvalue()


class _Reader:
    """Decodes a document; each array may be used once, and the items decoded are counted, so a
    small document cannot expand into more than the caps allow."""

    def __init__(self, arrays: Any, build_model: Callable[[dict], Any] | None = None):
        self.arrays = arrays
        self.build_model = build_model  # inputs only: outputs never hold a model
        self.used: set[str] = set()
        self.items = 0

    def array(self, key: Any) -> np.ndarray:
        key = str(key)
        if key in self.used:
            raise ValueError(f"array {key!r} is used twice")
        self.used.add(key)
        return np.array(self.arrays[key])

    def decode(self, x: Any, depth: int = 0) -> Any:
        if depth > 25:
            raise ValueError("nested too deeply")
        self.items += 1
        if self.items > MAX_ITEMS * 4:
            raise ValueError("too many items")
        if not isinstance(x, dict):
            if isinstance(x, list):
                raise ValueError("a bare list in the outcome document")
            return x
        kind = x.get(_SPECIAL)
        if kind == "float":
            return float(x["v"])
        if kind == "ellipsis":
            return Ellipsis
        if kind == "tensor":
            t = torch.from_numpy(self.array(x["key"]))
            dtype = getattr(torch, str(x["dtype"]), None)
            return t.to(dtype) if isinstance(dtype, torch.dtype) else t
        if kind == "ndarray":
            return self.array(x["key"])
        if kind == "npscalar":
            return self.array(x["key"])[()]
        if kind == "factored":
            A, B = self.decode(x["A"], depth + 1), self.decode(x["B"], depth + 1)
            if not (isinstance(A, torch.Tensor) and isinstance(B, torch.Tensor) and A.ndim >= 2 and B.ndim >= 2
                    and A.shape[-1] == B.shape[-2] and A.dtype.is_floating_point and B.dtype.is_floating_point):
                raise ValueError("a FactoredMatrix whose factors are not two matching float matrices")
            from transformer_lens import FactoredMatrix

            return FactoredMatrix(A, B)
        if kind in ("list", "tuple"):
            items = [self.decode(v, depth + 1) for v in x["items"]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            out = {}
            for k, v in x["items"]:
                k = self.decode(k, depth + 1)
                try:
                    out[k] = self.decode(v, depth + 1)
                except TypeError:  # an unhashable key
                    out[_opaque("key", repr(k))] = self.decode(v, depth + 1)
            return out
        if kind == "opaque":
            return _opaque(x.get("type", "object"), x.get("repr", ""))
        if kind == "model" and self.build_model is not None:
            return self.build_model(x["spec"])
        if kind == "cache" and self.build_model is not None:
            from transformer_lens import ActivationCache

            return ActivationCache(self.decode(x["entries"], depth + 1), self.decode(x["model"], depth + 1))
        raise ValueError(f"unknown kind {kind!r}")


def decode_outcomes(doc_text: str, npz: bytes) -> dict[str, dict]:
    """Inverse of :func:`encode_outcomes`; raises ``ValueError`` on anything malformed."""
    if len(doc_text) > MAX_DOC_CHARS:
        raise ValueError(f"the outcome document is longer than {MAX_DOC_CHARS} characters")
    try:
        doc = json.loads(doc_text)
    except RecursionError:
        raise ValueError("the outcome document is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ValueError("the outcome document is not a JSON object")
    try:
        if npz:
            # np.savez stores arrays uncompressed: refuse compression (a small file could expand without
            # bound) and anything bigger than the caps, before numpy reads a byte of it
            with zipfile.ZipFile(io.BytesIO(npz)) as z:
                infos = z.infolist()
            if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
                raise ValueError("compressed entries")
            if any(i.file_size > MAX_ARRAY_BYTES + 4096 for i in infos) or sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
                raise ValueError("arrays larger than the caps")
        arrays = np.load(io.BytesIO(npz), allow_pickle=False) if npz else {}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"the arrays file is not a plain .npz ({exc})") from None
    reader = _Reader(arrays)
    out = {}
    for ex_id, rec in doc.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("outcomes", []), list):
            raise ValueError(f"malformed record for {ex_id!r}")
        outcomes = []
        for o in rec.get("outcomes", []):
            if not isinstance(o, list) or not o:
                raise ValueError(f"malformed outcome in {ex_id!r}")
            if o[0] == "value":
                outcomes.append(("value", reader.decode(o[1])))
            elif o[0] == "raised" and len(o) == 3:
                outcomes.append(("raised", str(o[1]), str(o[2])))
            elif o[0] == "not_implemented":
                outcomes.append(("not_implemented",))
            else:
                raise ValueError(f"unknown outcome {o[0]!r} in {ex_id!r}")
        out[str(ex_id)] = {**{k: v for k, v in rec.items() if k != "outcomes"}, "outcomes": outcomes}
    return out


def encode_calls(calls: dict[str, list], model_spec: Callable[[Any], dict]) -> tuple[str, bytes]:
    """``(json text, npz bytes)`` of ``{exercise id: [case, ...]}``: each case's ``args``,
    ``kwargs`` and ``edited`` (:class:`~mechlib.teaching.exercise.Case`), nothing of its
    comparison. ``model_spec`` gives the recipe of each model among the inputs."""
    w = _Writer(model_spec)
    doc = {ex_id: [{"args": w.encode(tuple(c.args)), "kwargs": w.encode(dict(c.kwargs)), "edited": c.edited}
                   for c in cases] for ex_id, cases in calls.items()}
    buf = io.BytesIO()
    np.savez(buf, **w.arrays)
    return json.dumps(doc), buf.getvalue()


def decode_calls(doc_text: str, npz: bytes, build_model: Callable[[dict], Any]) -> dict[str, "LazyCalls"]:
    """Inverse of :func:`encode_calls`: ``{exercise id: calls}``, each a sequence of
    ``(args, kwargs, edited)``, the models rebuilt by ``build_model`` from their recipes.

    Each call is decoded when it is first reached, not before: an exercise that stops at its first
    call (an untouched placeholder, an error) never builds the models of the others.
    """
    reader = _Reader(np.load(io.BytesIO(npz), allow_pickle=False) if npz else {}, build_model)
    doc = json.loads(doc_text)
    if not isinstance(doc, dict) or not all(isinstance(cases, list) for cases in doc.values()):
        raise ValueError("the inputs document is not {exercise id: [call, ...]}")
    return {ex_id: LazyCalls(reader, cases) for ex_id, cases in doc.items()}


class LazyCalls:
    """The calls of one exercise, decoded one by one as they are reached (and then kept)."""

    def __init__(self, reader: _Reader, cases: list):
        self._reader, self._cases, self._done = reader, cases, []

    def __len__(self) -> int:
        return len(self._cases)

    def __getitem__(self, i: int) -> tuple:
        while len(self._done) <= i:
            c = self._cases[len(self._done)]
            self._done.append((self._reader.decode(c["args"]), self._reader.decode(c["kwargs"]), c["edited"]))
        return self._done[i]

    def __iter__(self) -> Iterator[tuple]:
        for i in range(len(self._cases)):
            yield self[i]
