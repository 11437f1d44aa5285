"""The grader's kernel side, without a sandbox: which functions count as untouched placeholders,
and that the inputs of a call are built only when that call is reached, outside its clock."""
from __future__ import annotations

import time

import pytest

from mechlib.teaching import registry
from mechlib.teaching.exercise import call
from mechlib.teaching.grading import kernel_side, transport
from tests.teaching.grading_support import functions_of, placeholders


def _defs(source: str) -> dict:
    ns: dict = {}
    source = source.replace("from __future__ import annotations\n", "")  # IPython allows it mid-cell
    exec(compile(source, "<cell>", "exec"), ns)  # noqa: S102 -- test code written here
    return ns


def _only_raises(source: str, name: str) -> bool:
    """Read from the source (ast): the body of ``def name`` is a docstring and one
    ``raise NotImplementedError(<constants>)``."""
    import ast

    fn = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == name)
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    exc = body[0].exc
    if isinstance(exc, ast.Name):
        return exc.id == "NotImplementedError"
    return (isinstance(exc, ast.Call) and isinstance(exc.func, ast.Name) and exc.func.id == "NotImplementedError"
            and all(isinstance(a, ast.Constant) for a in exc.args) and not exc.keywords)


def test_exercise_placeholders_that_only_raise_are_recognised():
    """An untouched exercise function whose body only raises is a placeholder (and calling it gives the
    outcome the shortcut records, so the shortcut never changes a verdict); one that first unpacks its
    arguments is called as usual. Most are the former."""
    seen = recognised = 0
    for name in registry.NOTEBOOKS:
        for cell in functions_of(placeholders(name), name):
            cell_source = cell.replace("from __future__ import annotations\n", "")
            ns = _defs(cell)
            for ex in registry.EXERCISES[name]:
                if f"def {ex.function}(" not in cell_source:
                    continue
                fn, seen = ns[ex.function], seen + 1
                expected = _only_raises(cell_source, ex.function)
                assert kernel_side.is_placeholder(fn) == expected, (name, ex.id)
                if expected:
                    recognised += 1
                    code = fn.__code__
                    kwargs = {k: 0 for k in code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]}
                    assert call(fn, (0,) * code.co_argcount, kwargs, None)[0] == ("not_implemented",)
    assert seen == sum(len(v) for v in registry.EXERCISES.values())
    assert recognised > seen / 2


@pytest.mark.parametrize("source", [
    "def f(x):\n    y = x + 1\n    raise NotImplementedError()",   # touches its argument: may raise otherwise
    "def f(x):\n    raise NotImplementedError(x)",
    "def f(x):\n    raise NotImplementedError(str(x))",          # calls something else
    "def f(x):\n    print('hi')\n    raise NotImplementedError()",
    "def f(x):\n    return x",
    "def f(x):\n    def g():\n        return 1\n    raise NotImplementedError()",
])
def test_a_function_that_does_anything_else_is_called(source):
    assert not kernel_side.is_placeholder(_defs(source)["f"])


def test_builtins_and_partials_are_not_placeholders():
    import functools

    ns = _defs("def f(x):\n    raise NotImplementedError()")
    assert kernel_side.is_placeholder(ns["f"])
    assert not kernel_side.is_placeholder(functools.partial(ns["f"], 1))
    assert not kernel_side.is_placeholder(len)


class _Counting:
    """build_model for transport.decode_calls: counts the models built, each taking ``delay`` s."""

    def __init__(self, delay: float = 0.0):
        self.built, self.delay = [], delay

    def __call__(self, spec):
        time.sleep(self.delay)
        self.built.append(spec)
        return ("model", spec["n"])


def _model_calls(n: int, build) -> dict:
    class FakeModel:  # encoded as a recipe by model_spec
        cfg = None

        def __init__(self, i):
            self.i = i

        def run_with_cache(self):
            pass

    class Case:
        def __init__(self, i):
            self.args, self.kwargs, self.edited = (FakeModel(i), i), {}, None

    doc, npz = transport.encode_calls({"X.1": [Case(i) for i in range(n)]}, lambda m: {"n": m.i})
    return transport.decode_calls(doc, npz, build)


def test_only_the_calls_reached_build_their_models():
    build = _Counting()
    calls = _model_calls(4, build)
    assert build.built == []                      # nothing is built before a call is reached
    outcomes: list = []
    kernel_side.call_all(_defs("def f(m, i):\n    raise NotImplementedError()")["f"], calls["X.1"], outcomes)
    assert outcomes == [("not_implemented",)] and build.built == []

    outcomes = []
    kernel_side.call_all(_defs("def f(m, i):\n    return 1 / (i - 1)")["f"], calls["X.1"], outcomes)
    assert [o[0] for o in outcomes] == ["value", "raised"]  # stops at i = 1
    assert build.built == [{"n": 0}, {"n": 1}]


def test_building_the_inputs_is_not_charged_to_the_learners_time_limit():
    build = _Counting(delay=0.4)
    calls = _model_calls(3, build)
    outcomes: list = []
    note = kernel_side.call_all(_defs("def f(m, i):\n    return i")["f"], calls["X.1"], outcomes, time_limit=0.3)
    assert note == "" and [o[1] for o in outcomes] == [0, 1, 2]

    calls = _model_calls(2, _Counting())
    outcomes = []
    note = kernel_side.call_all(_defs("import time\ndef f(m, i):\n    time.sleep(0.2)\n    return i")["f"],
                                calls["X.1"], outcomes, time_limit=0.3)
    assert "did not finish within 0.3 s" in note and len(outcomes) == 1  # the 0.3 s are shared by the calls
