"""Records and reports (:mod:`mechlib.teaching.grading.report`), alone."""
from __future__ import annotations

from mechlib.teaching.grading import report

SMALL = "07_combinatorial_richness"



def test_student_text_is_cleaned_for_the_feedback():
    assert report.clean("ok\x1b[2J\r\n# ALL PASSED\x07 <b>") == "ok[2J # ALL PASSED <b>"


def test_a_record_of_a_grader_error_is_graded_again(tmp_path):
    g = report.NotebookGrade(SMALL, notes=["the sandbox could not be started"], grader_error=True)
    report.save_record(tmp_path, "ann", g, "abc")
    assert report.load_record(tmp_path, "ann", SMALL, "abc") is None
    g.grader_error = False
    report.save_record(tmp_path, "ann", g, "abc")
    assert report.load_record(tmp_path, "ann", SMALL, "abc") is not None


def test_student_text_cannot_become_a_spreadsheet_formula():
    for name in ["=HYPERLINK(\"http://x\",\"y\")", "@SUM(A1)", "+1", "-1+2", "\t=1", "\r=1"]:
        cell = report.csv_cell(name)
        assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), cell
    assert report.csv_cell("ann") == "ann"


def _unescaped(markup: str, text: str) -> bool:
    """Whether ``markup`` occurs in ``text`` with its first character not escaped by a backslash."""
    import re

    return re.search(r"(?<!\\)" + re.escape(markup), text) is not None


def test_student_text_cannot_become_markup():
    text = report.md("x <!-- [link](http://e) **Total: 33 / 33** `code` |a|b| <script>")
    for raw in ["<!--", "[link]", "**Total", "`code`", "|a|", "<script>"]:
        assert not _unescaped(raw, text), raw
    assert text.replace("\\", "") == "x <!-- [link](http://e) **Total: 33 / 33** `code` |a|b| <script>"
    assert "\u202e" not in report.md("abc\u202edef") and "\x1b" not in report.md("a\x1b[2Jb")


def _grades_with(student: str, note: str, ignored: str):
    from mechlib.teaching.registry import NOTEBOOKS

    nbs = {n: report.NotebookGrade(n, missing=True) for n in NOTEBOOKS}
    nbs[SMALL] = report.NotebookGrade(SMALL, notes=[note])
    return [report.StudentGrade(student, nbs, [ignored])]


def test_the_csv_feedback_and_summary_carry_no_injected_formula_or_markup(tmp_path):
    import csv

    student = "=HYPERLINK(\"http://evil\",\"x\")"
    report.write_outputs(_grades_with(student, "FLAGGED <!-- **Total: 33 / 33**\x1b[2J", "[x](y)<b>.ipynb"), tmp_path)
    with open(tmp_path / "grades.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["student"] == "'" + student
    text = (tmp_path / "feedback" / f"{student}.md").read_text() + (tmp_path / "summary.md").read_text()
    for raw in ["<!--", "**Total: 33", "[x](y)", "<b>"]:
        assert not _unescaped(raw, text), raw
    assert "\x1b" not in text


def test_saved_results_are_reused_only_under_the_same_verdict_settings(tmp_path):
    from mechlib.teaching.grading.settings import Settings

    g = report.NotebookGrade(SMALL, notes=[])
    report.save_record(tmp_path, "ann", g, "abc", Settings(memory_gib=4))
    assert report.load_record(tmp_path, "ann", SMALL, "abc", Settings(memory_gib=4)) is not None
    for other in [Settings(memory_gib=2), Settings(cell_timeout=5), Settings(notebook_timeout=60),
                  Settings(sandbox=False), Settings(max_output=10)]:
        assert report.load_record(tmp_path, "ann", SMALL, "abc", other) is None, other
