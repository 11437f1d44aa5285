"""``mechlib-grade``'s time limits: an endless loop in a cell and in a function, and a loop that
ignores interrupts until the notebook's own time limit stops it. Only in the sandbox; the
notebooks import no mechlib, so their cells are fast even on a busy machine."""
from __future__ import annotations

import nbformat
import pytest

from grading_support import SMALL, SMALL_IDS, require_sandbox, rows, solution, write
from mechlib.teaching import registry
from mechlib.teaching.grading import folder

pytestmark = pytest.mark.slow

LOOP_TIMEOUT = 8  # seconds per cell and per check in the loop run
NOTEBOOK_TIMEOUT = 80  # seconds per notebook: ample for these small notebooks, less than the grading cell's 92


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory):
    require_sandbox()  # endless loops, and one that ignores interrupts
    subs = tmp_path_factory.mktemp("loops")
    defs = solution()
    sol = {ex.function: next(c.source for c in defs.cells if f"def {ex.function}(" in c.source)
           for ex in registry.EXERCISES[SMALL]}
    looper = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import math\n" + sol["count_pairs"], sol["enumerate_pairs"],
        "while True:\n    pass", sol["count_chains"],
        "def count_paths(n_layers, n_heads):\n    while True:\n        pass",
    ]])
    write(subs / "looper", SMALL, looper)
    stubborn = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import math, time\n" + sol["count_pairs"],
        "while True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass",
    ]])
    write(subs / "stubborn", SMALL, stubborn)
    # a cell that quotes the grading cell's marker gets the ordinary limit, not the grading cell's
    quoter = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import math\n" + sol["count_pairs"], "# _mg_kernel_side\nwhile True:\n    pass",
    ]])
    write(subs / "quoter", SMALL, quoter)
    out = tmp_path_factory.mktemp("loops-out")
    grades = folder.grade(subs, out, cell_timeout=LOOP_TIMEOUT, notebook_timeout=NOTEBOOK_TIMEOUT, jobs=2, progress=False)
    return {g.student: g for g in grades}, rows(out)


def test_an_endless_cell_is_interrupted_and_an_endless_function_fails_its_check(loop_run):
    grades, _ = loop_run
    nb = grades["looper"].notebooks[SMALL]
    # the three solved functions earn their points; the endless one and any it did not define, none
    assert {i: nb.points(i) for i in SMALL_IDS} == {i: 0 for i in SMALL_IDS} | {"07.1": 1, "07.2": 1, "07.3": 1}
    assert f"did not finish within {LOOP_TIMEOUT} s" in nb.results["07.4"]["message"]
    assert any(f"code cell 3 ran longer than {LOOP_TIMEOUT} s" in n for n in nb.notes)


def test_a_loop_that_ignores_interrupts_is_stopped_by_the_notebook_time_limit(loop_run):
    grades, rows_ = loop_run
    assert rows_["stubborn"]["total"] == "0"
    assert any("time limit" in n for n in grades["stubborn"].notebooks[SMALL].notes)
    assert rows_["looper"]["total"] == "3"


def test_a_cell_quoting_the_grading_cells_marker_gets_the_ordinary_limit(loop_run):
    grades, rows_ = loop_run
    notes = grades["quoter"].notebooks[SMALL].notes
    assert any(f"code cell 2 ran longer than {LOOP_TIMEOUT} s" in n for n in notes), notes
    assert rows_["quoter"]["07.1 count_pairs"] == "1"
