"""What crosses between the grader and the sandbox (:mod:`mechlib.teaching.grading.transport`):
plain data, read back with caps, never unpickled."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mechlib.teaching.grading import transport



def test_outputs_cross_as_plain_data(tmp_path):
    import numpy as np
    import torch
    from transformer_lens import FactoredMatrix

    values = [torch.arange(6.0).reshape(2, 3), torch.tensor([1, 2], dtype=torch.int64), 0.5, float("nan"), 3, True,
              None, ..., "text", [((0, 1), (1, 2))], {"a": 1, (0, 1): 2}, np.float32(2.5), np.ones(3),
              FactoredMatrix(torch.ones(4, 2), torch.ones(2, 4)), (x for x in range(3)), object()]
    doc, npz = transport.encode_outcomes({"e": {"status": "called", "outcomes": [("value", v) for v in values]}})
    back = [o[1] for o in transport.decode_outcomes(doc, npz)["e"]["outcomes"]]
    assert torch.equal(back[0], values[0]) and back[1].dtype == torch.int64
    assert back[2] == 0.5 and back[3] != back[3] and back[4:9] == [3, True, None, ..., "text"]
    assert back[9] == [((0, 1), (1, 2))] and back[10] == {"a": 1, (0, 1): 2}
    assert type(back[11]).__name__ == "float32" and back[12].tolist() == [1, 1, 1]
    assert torch.equal(back[13].AB, values[13].AB) and back[14] == [0, 1, 2]
    assert type(back[15]).__name__ == "object" and not callable(back[15])
    # a pickled object in the arrays file is refused, never unpickled
    import io
    buf = io.BytesIO()
    np.savez(buf, a0=np.array([object()], dtype=object))
    with pytest.raises(ValueError):
        transport.decode_outcomes(json.dumps({"e": {"outcomes": [["value", {"__mg__": "ndarray", "key": "a0"}]]}}),
                                  buf.getvalue())


def test_an_archive_bomb_or_compressed_arrays_are_refused():
    import io
    import zipfile

    import numpy as np

    doc = json.dumps({"e": {"outcomes": [["value", {"__mg__": "ndarray", "key": "a0"}]]}})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:  # 2 GiB of zeros, a few MB zipped
        with z.open("a0.npy", "w", force_zip64=True) as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**28,)})
            f.write(header.getvalue())
            f.write(b"\0" * 2**24)
    with pytest.raises(ValueError, match="compressed"):
        transport.decode_outcomes(doc, buf.getvalue())
    with pytest.raises(ValueError, match="nested too deeply"):
        transport.decode_outcomes("[" * 200_000, b"")


def test_an_array_used_twice_or_mismatched_factors_are_refused():
    """A small document must not expand: each array is read once; a FactoredMatrix must be well formed."""
    import io

    buf = io.BytesIO()
    np.savez(buf, a0=np.zeros(4), a1=np.zeros((2, 3), dtype=np.float32))
    twice = {"__mg__": "list", "items": [{"__mg__": "ndarray", "key": "a0"}] * 2}
    with pytest.raises(ValueError, match="used twice"):
        transport.decode_outcomes(json.dumps({"e": {"outcomes": [["value", twice]]}}), buf.getvalue())
    bad = {"__mg__": "factored", "A": {"__mg__": "tensor", "key": "a1", "dtype": "float32"},
           "B": {"__mg__": "tensor", "key": "a0", "dtype": "float32"}}
    with pytest.raises(ValueError, match="FactoredMatrix"):
        transport.decode_outcomes(json.dumps({"e": {"outcomes": [["value", bad]]}}), buf.getvalue())
    with pytest.raises(ValueError, match="longer than"):
        transport.decode_outcomes(" " * (transport.MAX_DOC_CHARS + 1), b"")


def test_a_numpy_float_inside_a_result_crosses_as_its_number():
    # np.float64 is a float: inside a tuple it used to cross as the text "np.float64(...)" that the reader refused
    values = [("K", np.float64(3.25)), [np.float64(float("inf")), np.str_("V")]]
    doc, npz = transport.encode_outcomes({"e": {"status": "called", "outcomes": [("value", v) for v in values]}})
    back = [o[1] for o in transport.decode_outcomes(doc, npz)["e"]["outcomes"]]
    assert back[0] == ("K", 3.25) and type(back[0][1]) is float
    assert back[1] == [float("inf"), "V"]

def test_a_numpy_float_inside_a_tuple_crosses_as_a_float():
    # np.float64 is a float subclass: its repr (np.float64(...)) must not reach the JSON document
    value = ((np.int64(0), np.int64(2)), np.float64(1.25), np.float64("nan"))
    doc, npz = transport.encode_outcomes({"e": {"status": "called", "outcomes": [("value", value)]}})
    (head, x, y), = [o[1] for o in transport.decode_outcomes(doc, npz)["e"]["outcomes"]]
    assert [int(h) for h in head] == [0, 2] and x == 1.25 and type(x) is float and math.isnan(y)
