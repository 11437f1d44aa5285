"""``mechlib-grade``: grading a folder of submissions, including submissions that misbehave.

Two grading runs, each shared by the tests that read it:

* the main run: a student who hands in the solutions, one who hands in the untouched
  exercises, and students whose (small) combinatorics notebook crashes, calls
  ``sys.exit``, kills its kernel, deletes the files in its working directory or prints
  50 MB, plus one who hands in nothing gradeable;
* a run with a short time limit: an endless loop in a cell and in a function, and a loop
  that ignores interrupts until the notebook's own time limit stops it.

The main run also has a student who prints a fake result line and patches a check.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nbformat
import pytest

from mechlib.teaching import grading, registry

ROOT = Path(__file__).resolve().parents[2]
SMALL = "07_combinatorial_richness"
SMALL_IDS = [ex.id for ex in registry.EXERCISES[SMALL]]
ALL_COLUMNS = [ex.column for ex in registry.ALL_EXERCISES]
LOOP_TIMEOUT = 8  # seconds per cell and per check in the loop run


def _with_cell(source: str, at: str = "end", replace_def: str | None = None) -> nbformat.NotebookNode:
    """The small solution notebook with one extra code cell (or one definition replaced by it)."""
    nb = nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4)
    cell = nbformat.v4.new_code_cell(source)
    if replace_def is not None:
        i = next(i for i, c in enumerate(nb.cells) if f"def {replace_def}(" in c.source)
        nb.cells[i] = cell
    elif at == "end":
        nb.cells.append(cell)
    else:  # right after the imports
        i = next(i for i, c in enumerate(nb.cells) if "from mechlib.teaching import checks" in c.source)
        nb.cells.insert(i + 1, cell)
    return nb


def _write(folder: Path, name: str, nb: nbformat.NotebookNode) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    for name in registry.NOTEBOOKS:
        (subs / "solutions").mkdir(exist_ok=True)
        shutil.copy(ROOT / "solutions" / f"{name}.ipynb", subs / "solutions")
        (subs / "untouched").mkdir(exist_ok=True)
        shutil.copy(ROOT / "exercises" / f"{name}.ipynb", subs / "untouched")
    _write(subs / "crash", SMALL, _with_cell('raise RuntimeError("boom")', replace_def="count_chains"))
    _write(subs / "sys_exit", SMALL, _with_cell("import sys\nsys.exit(3)", at="start"))
    _write(subs / "kernel_kill", SMALL, _with_cell("import os\nos._exit(1)"))
    _write(subs / "deleter", SMALL, _with_cell(
        "import os, shutil\nfor f in os.listdir('.'):\n    shutil.rmtree(f) if os.path.isdir(f) else os.remove(f)"))
    _write(subs / "printer", SMALL, _with_cell('print("x" * 50_000_000)', at="start"))
    _write(subs / "cheater", SMALL, _cheating_exercise())
    (subs / "missing").mkdir()
    _write(subs / "missing", "my_notes", nbformat.v4.new_notebook())  # not an exercise notebook
    originals = {p: p.read_bytes() for p in subs.rglob("*.ipynb")}
    out = tmp_path_factory.mktemp("out")
    grades = grading.grade(subs, out, cell_timeout=180, notebook_timeout=600, jobs=2, progress=False)
    return {"grades": {g.student: g for g in grades}, "rows": _rows(out), "out": out,
            "subs": subs, "originals": originals}


def test_csv_has_one_row_per_student_and_one_column_per_exercise(main_run):
    rows = main_run["rows"]
    assert set(rows) == {"solutions", "untouched", "crash", "sys_exit", "kernel_kill", "deleter", "printer",
                         "cheater", "missing"}
    with open(main_run["out"] / "grades.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["student"] + ALL_COLUMNS + ["total"]
    for row in rows.values():
        assert int(row["total"]) == sum(int(row[c]) for c in ALL_COLUMNS)


def test_solutions_get_full_marks(main_run):
    g = main_run["grades"]["solutions"]
    failed = {ex.id: g.notebooks[ex.notebook].results[ex.id] for ex in registry.ALL_EXERCISES
              if g.notebooks[ex.notebook].points(ex.id) != 1}
    assert not failed
    assert main_run["rows"]["solutions"]["total"] == str(len(registry.ALL_EXERCISES))


def test_untouched_exercises_get_zero_and_are_not_attempted(main_run):
    assert main_run["rows"]["untouched"]["total"] == "0"
    g = main_run["grades"]["untouched"]
    assert all(r["status"] == "not attempted" for nb in g.notebooks.values() for r in nb.results.values())


def _small_points(main_run, student):
    row = main_run["rows"][student]
    return {ex.id: int(row[ex.column]) for ex in registry.EXERCISES[SMALL]}


def test_a_crashing_cell_costs_only_what_it_breaks(main_run):
    points = _small_points(main_run, "crash")
    assert points == {"07.1": 1, "07.2": 1, "07.3": 0, "07.4": 0}
    nb = main_run["grades"]["crash"].notebooks[SMALL]
    assert any("RuntimeError: boom" in n for n in nb.notes)
    assert nb.results["07.3"]["status"] == "not attempted"


def test_sys_exit_is_caught_and_the_notebook_still_graded(main_run):
    assert _small_points(main_run, "sys_exit") == {i: 1 for i in SMALL_IDS}
    notes = main_run["grades"]["sys_exit"].notebooks[SMALL].notes
    assert any("SystemExit" in n for n in notes)


def test_a_killed_kernel_costs_that_notebook_only(main_run):
    assert _small_points(main_run, "kernel_kill") == {i: 0 for i in SMALL_IDS}
    notes = main_run["grades"]["kernel_kill"].notebooks[SMALL].notes
    assert any("kernel died" in n for n in notes)
    # the other students, graded at the same time, are unaffected
    assert main_run["rows"]["solutions"]["total"] == str(len(registry.ALL_EXERCISES))


def test_deleting_files_in_the_working_directory_harms_nothing(main_run):
    assert _small_points(main_run, "deleter") == {i: 1 for i in SMALL_IDS}
    for path, content in main_run["originals"].items():
        assert path.read_bytes() == content, f"the grader changed or lost the submission {path}"


def test_printing_50_megabytes_is_capped(main_run):
    assert _small_points(main_run, "printer") == {i: 1 for i in SMALL_IDS}
    notes = main_run["grades"]["printer"].notebooks[SMALL].notes
    assert any("printed more than" in n for n in notes)
    assert (main_run["out"] / "feedback" / "printer.md").stat().st_size < 100_000


def test_missing_notebooks_score_zero_and_say_so(main_run):
    assert main_run["rows"]["missing"]["total"] == "0"
    text = (main_run["out"] / "feedback" / "missing.md").read_text()
    assert text.count("Not submitted: 0 points.") == len(registry.NOTEBOOKS)
    assert "my_notes.ipynb" in text
    # a student who submitted one notebook is marked missing for the others
    assert main_run["grades"]["crash"].notebooks["02_v_composition"].missing


def test_feedback_gives_points_and_the_checks_message(main_run):
    text = (main_run["out"] / "feedback" / "crash.md").read_text()
    assert f"**Total: 2 / {len(registry.ALL_EXERCISES)} points.**" in text
    assert "**07.1 `count_pairs`** (1 point): passed." in text
    assert "**07.3 `count_chains`** (0 points): not attempted." in text
    assert "code cell" in text and "RuntimeError: boom" in text


def _cheating_exercise() -> nbformat.NotebookNode:
    """The untouched exercise notebook, plus a printed fake result and a patched check."""
    nb = nbformat.read(ROOT / "exercises" / f"{SMALL}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        'import json\nprint(json.dumps({"07.1": {"exercise": "07.1", "function": "count_pairs", '
        '"status": "passed", "message": "fake"}}))'))
    nb.cells.append(nbformat.v4.new_code_cell(
        "import mechlib.teaching.checks\nmechlib.teaching.checks.check_count_pairs = lambda fn, verbose=True: "
        "mechlib.teaching.checking.CheckResult('07.1', 'count_pairs', 'passed', 'patched')"))
    return nb


def test_printed_fake_results_and_patched_checks_earn_nothing(main_run):
    assert main_run["rows"]["cheater"]["total"] == "0"


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory):
    subs = tmp_path_factory.mktemp("loops")
    defs = nbformat.read(ROOT / "solutions" / f"{SMALL}.ipynb", as_version=4)
    solution = {ex.function: next(c.source for c in defs.cells if f"def {ex.function}(" in c.source)
                for ex in registry.EXERCISES[SMALL]}
    # no mechlib import in these notebooks, so their cells are fast even on a busy machine
    looper = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import math\n" + solution["count_pairs"], solution["enumerate_pairs"],
        "while True:\n    pass", solution["count_chains"],
        "def count_paths(n_layers, n_heads):\n    while True:\n        pass",
    ]])
    _write(subs / "looper", SMALL, looper)
    stubborn = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import math, time\n" + solution["count_pairs"],
        "while True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass",
    ]])
    _write(subs / "stubborn", SMALL, stubborn)
    out = tmp_path_factory.mktemp("loops-out")
    grades = grading.grade(subs, out, cell_timeout=LOOP_TIMEOUT, notebook_timeout=45, jobs=2, progress=False)
    return {g.student: g for g in grades}, _rows(out)


def test_an_endless_cell_is_interrupted_and_an_endless_function_fails_its_check(loop_run):
    grades, rows = loop_run
    nb = grades["looper"].notebooks[SMALL]
    assert {i: nb.points(i) for i in SMALL_IDS} == {"07.1": 1, "07.2": 1, "07.3": 1, "07.4": 0}
    assert f"did not finish within {LOOP_TIMEOUT} s" in nb.results["07.4"]["message"]
    assert any(f"code cell 3 ran longer than {LOOP_TIMEOUT} s" in n for n in nb.notes)


def test_a_loop_that_ignores_interrupts_is_stopped_by_the_notebook_time_limit(loop_run):
    grades, rows = loop_run
    assert rows["stubborn"]["total"] == "0"
    assert any("time limit" in n for n in grades["stubborn"].notebooks[SMALL].notes)
    assert rows["looper"]["total"] == "3"


def test_command_line_writes_csv_and_feedback(tmp_path, capsys):
    (tmp_path / "subs" / "nobody").mkdir(parents=True)
    assert grading.main([str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert (tmp_path / "out" / "grades.csv").exists()
    assert (tmp_path / "out" / "feedback" / "nobody.md").exists()
    with pytest.raises(SystemExit):
        grading.main([str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "out")])
