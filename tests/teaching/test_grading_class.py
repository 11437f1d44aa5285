"""``mechlib-grade`` on a class in the sandbox: a student who hands in the solutions of every
notebook (the exercises' function cells of each, and one whole solution notebook, the appendix's,
as a student would hand it in: every cell of every notebook already runs under nbval); students
whose small combinatorics notebook (its counting exercises, graded in seconds) crashes, calls
``sys.exit``, kills its kernel, deletes the files in its working directory, prints 50 MB or
memorises the self-check's answers; and one who hands in nothing gradeable. One grading run, shared by the
tests that read it. Hostile submissions: test_grading_hostile; time limits:
test_grading_limits; the command line and reruns: test_grading_cli.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil

import nbformat
import pytest

from grading_support import (ALL_COLUMNS, QUICK_IDS, QUICK_SOLVED, ROOT, SANDBOXED, SMALL, SMALL_IDS, functions_of,
                             require_sandbox, rows, small_points, solution, with_cell, write)
from mechlib.teaching import registry
from mechlib.teaching.grading import folder

# grades notebooks in the bubblewrap sandbox (minutes): make test, not make check
pytestmark = pytest.mark.slow

# the solution notebook handed in whole: the appendix, whose cells load a real transformer (MiniLM)
# and the GPT-2 switch, the cells most likely to behave differently inside the sandbox
WHOLE = "A1_real_transformer"


def _memorizer() -> nbformat.NotebookNode:
    """count_pairs as a table of the self-check's answers: passes in the notebook, not in grading."""
    table = {(L, H): H * H * (L * (L - 1) // 2) for L, H in [(12, 12), (2, 4), (1, 8), (3, 1), (5, 3), (48, 25)]}
    return with_cell(f"def count_pairs(n_layers, n_heads):\n    return {table!r}[(n_layers, n_heads)]",
                     replace_def="count_pairs", quick=True)


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    require_sandbox()  # the class includes notebooks that delete, kill and flood: only in the sandbox
    subs = tmp_path_factory.mktemp("submissions")
    (subs / "solutions").mkdir()
    for name in registry.NOTEBOOKS:
        if name == WHOLE:
            shutil.copy(ROOT / "solutions" / f"{name}.ipynb", subs / "solutions")
        else:
            write(subs / "solutions", name, nbformat.v4.new_notebook(
                cells=[nbformat.v4.new_code_cell(s) for s in functions_of(solution(name), name)]))
    write(subs / "crash", SMALL, with_cell('raise RuntimeError("boom")', replace_def="count_chains", quick=True))
    write(subs / "sys_exit", SMALL, with_cell("import sys\nsys.exit(3)", at="start", quick=True))
    write(subs / "kernel_kill", SMALL, with_cell("import os\nos._exit(1)", quick=True))
    write(subs / "deleter", SMALL, with_cell(
        "import os, shutil\nfor f in os.listdir('.'):\n    shutil.rmtree(f) if os.path.isdir(f) else os.remove(f)",
        quick=True))
    write(subs / "printer", SMALL, with_cell('print("x" * 50_000_000)', at="start", quick=True))
    write(subs / "memorizer", SMALL, _memorizer())
    (subs / "missing").mkdir()
    write(subs / "missing", "my_notes", nbformat.v4.new_notebook())  # not an exercise notebook
    originals = {p: p.read_bytes() for p in subs.rglob("*") if p.is_file()}
    out = tmp_path_factory.mktemp("out")
    grades = folder.grade(subs, out, cell_timeout=180, notebook_timeout=600, jobs=2, progress=False,
                          sandbox=SANDBOXED, memory_gib=3)
    return {"grades": {g.student: g for g in grades}, "rows": rows(out), "out": out, "subs": subs,
            "originals": originals}


def test_csv_has_one_row_per_student_and_one_column_per_exercise(main_run):
    assert set(main_run["rows"]) == {"solutions", "crash", "sys_exit", "kernel_kill", "deleter", "printer",
                                     "memorizer", "missing"}
    with open(main_run["out"] / "grades.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["student"] + ALL_COLUMNS + ["total", "graded", "sandbox"]
    for row in main_run["rows"].values():
        assert int(row["total"]) == sum(int(row[c]) for c in ALL_COLUMNS)
        assert row["graded"] == "yes"


def test_solutions_get_full_marks(main_run):
    g = main_run["grades"]["solutions"]
    failed = {ex.id: g.notebooks[ex.notebook].results[ex.id] for ex in registry.ALL_EXERCISES
              if g.notebooks[ex.notebook].points(ex.id) != 1}
    assert not failed
    assert main_run["rows"]["solutions"]["total"] == str(len(registry.ALL_EXERCISES))


def test_a_crashing_cell_costs_only_what_it_breaks(main_run):
    # count_chains (07.3) is never defined, and count_paths (07.4) calls it; the rest stand
    assert small_points(main_run, "crash") == QUICK_SOLVED | {"07.3": 0, "07.4": 0}
    nb = main_run["grades"]["crash"].notebooks[SMALL]
    assert any("RuntimeError: boom" in n for n in nb.notes)
    assert nb.results["07.3"]["status"] == "not attempted"


def test_sys_exit_is_caught_and_the_notebook_still_graded(main_run):
    assert small_points(main_run, "sys_exit") == QUICK_SOLVED
    assert any("SystemExit" in n for n in main_run["grades"]["sys_exit"].notebooks[SMALL].notes)


def test_a_killed_kernel_costs_that_notebook_only(main_run):
    assert small_points(main_run, "kernel_kill") == {i: 0 for i in SMALL_IDS}
    assert any("kernel died" in n for n in main_run["grades"]["kernel_kill"].notebooks[SMALL].notes)
    # the other students, graded at the same time, are unaffected
    assert main_run["rows"]["solutions"]["total"] == str(len(registry.ALL_EXERCISES))


def test_deleting_files_in_the_working_directory_harms_nothing(main_run):
    assert small_points(main_run, "deleter") == QUICK_SOLVED
    for path, content in main_run["originals"].items():
        assert path.read_bytes() == content, f"the grader changed or lost the submission {path}"


def test_printing_50_megabytes_is_capped(main_run):
    assert small_points(main_run, "printer") == QUICK_SOLVED
    assert any("printed more than" in n for n in main_run["grades"]["printer"].notebooks[SMALL].notes)
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
    earned = sum(small_points(main_run, "crash").values())  # all but count_chains and what needs it
    assert earned == len(QUICK_IDS) - 2
    assert f"**Total: {earned} / {len(registry.ALL_EXERCISES)} points.**" in text
    assert "**07.1 `count_pairs`** (1 point): passed." in text
    assert "**07.3 `count_chains`** (0 points): not attempted." in text
    assert "code cell" in text and "RuntimeError: boom" in text


def test_answers_memorised_from_the_self_check_fail_the_hidden_cases(main_run):
    """A table of the self-check's answers passes the notebook's own check but not grading."""
    nb = nbformat.read(main_run["subs"] / "memorizer" / f"{SMALL}.ipynb", as_version=4)
    namespace: dict = {}
    exec(next(c.source for c in nb.cells if "def count_pairs(" in c.source), namespace)
    from mechlib.teaching import checks

    assert checks.check_count_pairs(namespace["count_pairs"], verbose=False).passed
    assert small_points(main_run, "memorizer")["07.1"] == 0
    assert "KeyError" in main_run["grades"]["memorizer"].notebooks[SMALL].results["07.1"]["message"]


def test_summary_counts_each_exercise_and_draws_the_totals(main_run):
    text = (main_run["out"] / "summary.md").read_text()
    n = len(main_run["rows"])
    passed = sum(int(r[registry.EXERCISES[SMALL][0].column]) for r in main_run["rows"].values())
    assert f"{n} students; {registry.MAX_POINTS} points in all." in text
    assert f"| 07.1 `count_pairs` | 1 | {passed} |" in text
    assert "## Totals" in text and f"{registry.MAX_POINTS:>4} | " in text


def test_records_are_written_per_notebook(main_run):
    records = list((main_run["out"] / "records").rglob("*.json"))
    submitted = [p for p in main_run["subs"].rglob("*.ipynb") if p.stem in registry.NOTEBOOKS]
    assert len(records) == len(submitted)
    rec = json.loads((main_run["out"] / "records" / "crash" / f"{SMALL}.json").read_text())
    assert rec["sha256"] == hashlib.sha256((main_run["subs"] / "crash" / f"{SMALL}.ipynb").read_bytes()).hexdigest()
