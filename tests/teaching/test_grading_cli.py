"""``mechlib-grade``'s command line, reruns, interruption, and refusing to run without a sandbox,
on a small class whose notebooks hold only the small notebook's functions (no mechlib import:
seconds per notebook)."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from grading_support import (
    QUICK_IDS, ROOT, SMALL, package_digest, package_rewriter, quick_functions, require_sandbox, rows, write,
)
from mechlib.teaching import registry
from mechlib.teaching.grading import cli, folder, notebook, sandbox

pytestmark = pytest.mark.slow

FULL = str(len(QUICK_IDS))  # the points of the small notebook's counting functions, solved


@pytest.fixture()
def sandboxed():
    """For tests that grade with the sandbox (the default): skipped or failed without one."""
    require_sandbox()


def test_command_line_writes_csv_and_feedback(tmp_path, sandboxed):
    (tmp_path / "subs" / "nobody").mkdir(parents=True)
    assert cli.main([str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    assert (tmp_path / "out" / "grades.csv").exists()
    assert (tmp_path / "out" / "feedback" / "nobody.md").exists()
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "out")])


@pytest.fixture()
def small_class(tmp_path, sandboxed):
    subs = tmp_path / "subs"
    write(subs / "ann", SMALL, quick_functions())
    write(subs / "bob", SMALL, nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import math")]))
    write(subs / "cat", SMALL, quick_functions())
    return subs, tmp_path / "out"


def test_a_rerun_skips_what_is_graded_and_regrades_what_changed(small_class, monkeypatch):
    subs, out = small_class
    folder.grade(subs, out, jobs=2, progress=False)
    first = (out / "grades.csv").read_text()
    assert {s: r["total"] for s, r in rows(out).items()} == {"ann": FULL, "bob": "0", "cat": FULL}
    graded = []
    real = notebook.grade_notebook
    monkeypatch.setattr(notebook, "grade_notebook", lambda path, *a, **k: graded.append(path.parent.name) or real(path, *a, **k))
    folder.grade(subs, out, jobs=2, progress=False)
    assert graded == [] and (out / "grades.csv").read_text() == first
    write(subs / "bob", SMALL, quick_functions())
    folder.grade(subs, out, jobs=2, progress=False)
    assert graded == ["bob"] and rows(out)["bob"]["total"] == FULL
    folder.grade(subs, out, jobs=2, progress=False, regrade=True)
    assert sorted(graded[1:]) == ["ann", "bob", "cat"]


def test_an_interrupted_run_keeps_what_was_graded_and_a_rerun_finishes(small_class):
    subs, out = small_class
    cmd = [sys.executable, "-m", "mechlib.teaching.grading", str(subs), "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list((out / "records").rglob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-500:]
    rows_ = rows(out)
    assert set(rows_) == {"ann", "bob", "cat"}  # the CSV is complete at every moment
    graded = [s for s, r in rows_.items() if r["graded"] == "yes"]
    assert 1 <= len(graded) < 3
    for s, r in rows_.items():  # and agrees with the feedback
        assert f"**Total: {r['total']} / {registry.MAX_POINTS} points.**" in (out / "feedback" / f"{s}.md").read_text()
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    rows_ = rows(out)
    assert {s: r["total"] for s, r in rows_.items()} == {"ann": FULL, "bob": "0", "cat": FULL}
    assert all(r["graded"] == "yes" for r in rows_.values())


def test_without_bwrap_the_grader_refuses_unless_told_no_sandbox(small_class, monkeypatch, capsys):
    subs, out = small_class
    monkeypatch.setattr(sandbox, "available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    with pytest.raises(SystemExit) as exc:
        cli.main([str(subs), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bubblewrap (bwrap) is not installed" in err and "--no-sandbox" in err
    shutil.rmtree(subs / "bob")
    shutil.rmtree(subs / "cat")
    assert cli.main([str(subs), "--out", str(out), "--no-sandbox"]) == 0
    assert rows(out)["ann"]["sandbox"] == "no (--no-sandbox)" and rows(out)["ann"]["total"] == FULL
    assert "graded with `--no-sandbox`" in (out / "feedback" / "ann.md").read_text()


def test_without_a_sandbox_a_hostile_notebook_is_never_run_and_the_package_is_untouched(tmp_path, monkeypatch):
    """Runs everywhere, bubblewrap or not: with the sandbox unavailable, grading a notebook that
    rewrites the package (and leaves a mark when it runs) refuses before running anything."""
    subs, out, mark = tmp_path / "subs", tmp_path / "out", tmp_path / "it-ran"
    rewriter = package_rewriter()
    rewriter.cells.insert(0, nbformat.v4.new_code_cell(f"open({str(mark)!r}, 'w').write('ran')"))
    write(subs / "mallory", SMALL, rewriter)
    monkeypatch.setattr(sandbox, "available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    started = []

    def refuse(cmd, *args, **kwargs):  # a second guard: even a grader bug could not start the notebook
        started.append(cmd)
        raise AssertionError(f"a process was started: {cmd}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    before = package_digest()
    with pytest.raises(sandbox.SandboxUnavailable):
        folder.grade(subs, out, progress=False)
    with pytest.raises(SystemExit) as exc:
        cli.main([str(subs), "--out", str(out)])
    assert exc.value.code == 2
    assert started == [] and not mark.exists()
    assert package_digest() == before
    assert not list(out.rglob("records/**/*.json"))


def test_symlinked_submissions_are_not_followed(tmp_path, sandboxed):
    subs = tmp_path / "subs"
    (subs / "eve").mkdir(parents=True)
    (subs / "eve" / f"{SMALL}.ipynb").symlink_to(ROOT / "solutions" / f"{SMALL}.ipynb")
    grades = folder.grade(subs, tmp_path / "out", progress=False)
    nb = grades[0].notebooks[SMALL]
    assert grades[0].total() == 0 and "symbolic link" in nb.notes[0]
    assert not list((tmp_path / "out" / "records").rglob("*.json"))  # nothing was run
