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
