"""Grades in the form a gradebook imports: Canvas's gradebook CSV and Gradescope's ``results.json``.

**Canvas** (Grades > Import): the first columns are ``Student``, ``ID``, ``SIS User ID``,
``SIS Login ID`` and ``Section`` (Canvas matches a row to a student by any of the IDs), then
one column per assignment; a second row ``Points Possible`` gives each assignment's points,
and an assignment whose column name Canvas does not know yet is created. Here each exercise
notebook is one assignment (``mechlib <notebook>``), and each student's folder name goes into
``Student`` and ``SIS Login ID``: name the folders by the students' Canvas login IDs.

**Gradescope** (``/autograder/results/results.json``): ``score``, ``output`` (shown to the
student), and ``tests``, one per exercise of each submitted notebook, with ``name``,
``score``, ``max_score``, ``status`` and ``output`` (the check's message).

Every student-supplied string is cleaned (:func:`~mechlib.teaching.grading.report.csv_cell`,
:func:`~mechlib.teaching.grading.report.clean`) before it is written.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from mechlib.teaching.grading.report import StudentGrade, clean, csv_cell

CANVAS_ID_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def canvas_column(notebook: str) -> str:
    return f"mechlib {notebook}"


def write_canvas_csv(grades: list[StudentGrade], path: str | os.PathLike) -> Path:
    """A CSV that Canvas's gradebook imports: one row per student, one column per exercise notebook."""
    from mechlib.teaching.registry import EXERCISES, NOTEBOOKS

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CANVAS_ID_COLUMNS + [canvas_column(n) for n in NOTEBOOKS])
        w.writerow(["Points Possible", "", "", "", ""] + [sum(ex.points for ex in EXERCISES[n]) for n in NOTEBOOKS])
        for g in grades:
            name = csv_cell(g.student)
            w.writerow([name, "", "", name, ""]
                       + [sum(g.notebooks[n].points(ex.id) for ex in EXERCISES[n]) for n in NOTEBOOKS])
    os.replace(tmp, path)
    return path


def gradescope_results(g: StudentGrade) -> dict:
    """Gradescope's ``results.json`` for one submission: one test per exercise of each submitted notebook."""
    from mechlib.teaching.registry import EXERCISES, NOTEBOOKS

    tests, notes = [], []
    for name in NOTEBOOKS:
        nb = g.notebooks[name]
        if nb.missing:
            continue
        for ex in EXERCISES[name]:
            r = nb.results.get(ex.id, {})
            tests.append({"name": f"{ex.id} {ex.function} ({name}.ipynb)", "score": nb.points(ex.id),
                          "max_score": ex.points, "status": "passed" if nb.passed(ex.id) else "failed",
                          "output": clean(f"{r.get('status', 'failed')}. {r.get('message', '')}"),
                          "visibility": "visible"})
        notes += [f"{name}.ipynb: {clean(n)}" for n in nb.notes]
    if not tests:
        expected = ", ".join(f"{n}.ipynb" for n in NOTEBOOKS)
        notes.append(f"No exercise notebook was found in the submission; the grader looks for: {expected}")
    if g.ignored:
        notes.append("Ignored (not an exercise notebook): " + ", ".join(clean(i) for i in g.ignored))
    return {"score": sum(t["score"] for t in tests), "output": "\n".join(notes) or "Graded.",
            "stdout_visibility": "hidden", "tests": tests}
