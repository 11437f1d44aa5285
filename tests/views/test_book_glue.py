"""The book's glue helper: floats recorded only as precisely as the prose shows them."""
import math

import pytest
import torch

from mechlib.views import book


def test_floats_are_rounded_to_decimals_or_significant_digits():
    assert book.glue("t_dec", 0.1249794065952301, decimals=3) == 0.125
    assert book.glue("t_sig", 0.0012345, sig=2) == 0.0012
    assert book.glue("t_sig_big", 15.394187927246094, sig=3) == 15.4
    assert book.glue("t_tensor", torch.tensor(3.7395989894866943), decimals=2) == 3.74
    assert book.RECORDED["t_dec"] == 0.125


def test_a_float_without_precision_is_refused():
    with pytest.raises(TypeError, match="decimals= or sig="):
        book.glue("t_raw", math.pi)


def test_ints_and_strings_pass_through():
    assert book.glue("t_int", 9504) == 9504
    assert book.glue("t_str", "0.3") == "0.3"
    assert book.glue("t_tensor_int", torch.tensor(4)) == 4


def test_glue_bound_asserts_and_records_the_bound():
    assert book.glue_bound("t_bound", 5.7e-06, below=1e-4) == 1e-4
    assert book.RECORDED["t_bound"] == 1e-4
    with pytest.raises(AssertionError, match="below 1e-05"):
        book.glue_bound("t_bound_fails", 2e-5, below=1e-5)


def test_a_record_is_the_output_myst_nb_glue_writes(monkeypatch):
    """Without importing myst-nb (a learner's install has none), the same display output, so a
    notebook's outputs are the same in every install and the book build finds every record."""
    import IPython
    import IPython.display
    from myst_nb.ext import glue as myst_glue

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    monkeypatch.setattr(myst_glue, "ipy_display", lambda obj, **kw: shown.append((obj, kw)))
    for value in (0.125, 9504, "0.3"):
        book.glue("t_same", value, decimals=3 if isinstance(value, float) else None)
        myst_glue.glue("t_same", value, display=False)
        ours, theirs = shown[-2:]
        assert ours == theirs


def test_outside_ipython_a_record_displays_nothing(capsys):
    book.glue("t_quiet", 7)
    assert capsys.readouterr().out == ""
