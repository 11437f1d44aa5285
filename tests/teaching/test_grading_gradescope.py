"""The Gradescope autograder end to end, in a scratch root laid out like ``/autograder``: the bundle
that ``mechlib-grade --gradescope-bundle`` writes, unpacked as Gradescope does, its
``run_autograder`` run once per submission -- the solutions (full marks), the blank exercise (0)
and two forgeries (0) -- and its ``results.json`` read back. Also the Canvas CSV from the command line."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

import nbformat
import pytest

from grading_support import SMALL, exercise, only_functions, placeholders, require_sandbox, write
from mechlib.teaching import registry
from mechlib.teaching.grading import cli, gradescope

pytestmark = pytest.mark.slow

SOLVED_POINTS = sum(ex.points for ex in registry.EXERCISES[SMALL])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    assert cli.main(["--gradescope-bundle", str(path)]) == 0
    return path


def _autograde(bundle, tmp_path, nb: nbformat.NotebookNode, env_extra: dict | None = None) -> tuple[dict, float]:
    """Unpack the bundle as Gradescope does, put one submission in, run ``run_autograder``."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)
    write(root / "submission" / "my_work", SMALL, nb)  # Gradescope keeps the uploaded folders
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": "ann@example.edu"}]}))
    env = {"PATH": os.environ["PATH"], "AUTOGRADER_ROOT": str(root), "MECHLIB_PYTHON": sys.executable,
           "PYTHONPATH": str(root / "source" / "mechlib-src"), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    t0 = time.monotonic()
    done = subprocess.run([str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text()), took


def test_the_bundle_has_gradescopes_layout(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "mechlib-src/pyproject.toml",
                "mechlib-src/mechlib/teaching/grading/gradescope.py"} <= names
        assert (z.getinfo("run_autograder").external_attr >> 16) & 0o111
        assert "solutions/" not in " ".join(names)  # the bundle carries the package, not the solutions
        assert "bubblewrap" in z.read("setup.sh").decode()


def test_solutions_get_full_marks_one_test_per_exercise(bundle, tmp_path):
    require_sandbox()
    doc, _ = _autograde(bundle, tmp_path, only_functions())
    assert [t["name"].split()[0] for t in doc["tests"]] == [ex.id for ex in registry.EXERCISES[SMALL]]
    assert doc["score"] == SOLVED_POINTS and all(t["score"] == t["max_score"] for t in doc["tests"])
    assert "bubblewrap" in doc["output"]


def test_the_blank_exercise_gets_zero(bundle, tmp_path):
    require_sandbox()
    doc, _ = _autograde(bundle, tmp_path, placeholders())
    assert doc["score"] == 0 and len(doc["tests"]) == len(registry.EXERCISES[SMALL])
    assert all(t["status"] == "failed" and "not attempted" in t["output"] for t in doc["tests"])


def test_a_notebook_that_writes_results_json_itself_gets_zero(bundle, tmp_path):
    require_sandbox()
    forged = json.dumps({"score": 1000, "tests": [{"name": "forged", "score": 1000, "max_score": 1}]})
    cell = ("import os\nfor p in ['/autograder/results/results.json', "
            f"{str(tmp_path / 'autograder' / 'results' / 'results.json')!r}]:\n"
            "    try:\n        os.makedirs(os.path.dirname(p), exist_ok=True)\n"
            f"        open(p, 'w').write({forged!r})\n    except OSError:\n        pass\n"
            "def count_pairs(n_layers, n_heads):\n    return 0")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    doc, _ = _autograde(bundle, tmp_path, nb)
    assert doc["score"] == 0 and "forged" not in json.dumps(doc["tests"])


def test_a_notebook_that_patches_the_grading_side_gets_zero(bundle, tmp_path):
    require_sandbox()
    nb = exercise(
        "import mechlib.teaching.grading.kernel_side as K\n_rec = K.record_namespace\n"
        "def fake(notebook, namespace, calls, time_limit=60.0):\n"
        "    r = _rec(notebook, namespace, calls, time_limit)\n"
        "    for ex_id in r:\n        r[ex_id]['outcomes'] = [('value', 9504)] * 3\n    return r\n"
        "K.record_namespace = fake\nprint('{\"score\": 1000}')")
    doc, _ = _autograde(bundle, tmp_path, nb)
    assert doc["score"] == 0


def test_without_bubblewrap_the_notebook_runs_as_another_user(bundle, tmp_path, monkeypatch):
    """The fallback for containers that cannot make namespaces: as root, a fresh user id. Here
    bubblewrap is hidden from the autograder (PATH without it); skipped where this Python cannot
    be run by another user (an interpreter under /root)."""
    if os.geteuid() != 0:
        pytest.skip("the fallback needs root, as in Gradescope's containers")
    probe = subprocess.run(["setpriv", "--reuid=400123", "--regid=400123", "--clear-groups", "--", sys.executable,
                            "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import torch'], "
                                  "check=True)"], capture_output=True, cwd="/")
    if probe.returncode != 0:
        pytest.skip(f"{sys.executable} cannot be started by an unprivileged user here (an interpreter under /root)")
    nobwrap = tmp_path / "bin"
    nobwrap.mkdir()
    for tool in ("prlimit", "setpriv", "sh", "bash", "env", "git"):
        if shutil.which(tool):
            (nobwrap / tool).symlink_to(shutil.which(tool))
    doc, _ = _autograde(bundle, tmp_path, only_functions(), {"PATH": str(nobwrap)})
    assert "unprivileged user" in doc["output"] and doc["score"] == SOLVED_POINTS


def test_canvas_csv_from_the_command_line(tmp_path):
    require_sandbox()
    subs = tmp_path / "subs"
    write(subs / "ann", SMALL, only_functions())
    (subs / "=cmd").mkdir()
    canvas = tmp_path / "canvas.csv"
    assert cli.main([str(subs), "--out", str(tmp_path / "out"), "--canvas-csv", str(canvas)]) == 0
    with open(canvas, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    col = rows[0].index(f"mechlib {SMALL}")
    assert rows[1][0] == "Points Possible" and rows[1][col] == str(SOLVED_POINTS)
    by_name = {r[0]: r for r in rows[2:]}
    assert by_name["ann"][col] == str(SOLVED_POINTS) and by_name["ann"][3] == "ann"
    assert by_name["'=cmd"][col] == "0"


def test_the_fallback_user_reads_none_of_the_graders_files_or_environment(monkeypatch):
    """What the fallback gives, probed with a shell (no Python needed): the run's user id cannot read
    a file of the grader's (mode 0600) nor the grader's environment, and reads its own inputs."""
    from mechlib.teaching.grading import notebook
    from mechlib.teaching.grading.settings import Settings

    if os.geteuid() != 0:
        pytest.skip("the fallback needs root, as in Gradescope's containers")
    secret = f"mg-secret-{os.getpid()}"
    monkeypatch.setenv("INSTRUCTOR_API_TOKEN", secret)
    scratch = notebook.scratch_folder()
    private = notebook.scratch_folder()
    try:
        (private / "key").write_text(secret)
        (private / "key").chmod(0o600)
        private.chmod(0o755)
        script = (f"id -u; cat {private / 'key'} 2>/dev/null; for f in /proc/[0-9]*/environ; do cat $f 2>/dev/null; "
                  f"done; cat {scratch / 'sandbox' / 'in' / 'a.txt'}; echo; echo done")
        raw, timed_out, over = notebook.run_as_user(["/bin/sh", "-c", script], {"a.txt": b"hello"},
                                                    Settings(memory_gib=2), scratch, timeout=60)
        out = raw.decode(errors="replace")
        assert "done" in out and "hello" in out and not timed_out and not over
        assert secret not in out and "INSTRUCTOR_API_TOKEN" not in out
        assert int(out.split()[0]) >= 200_000
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


def test_without_bubblewrap_or_root_the_bundle_refuses_to_run_anything(tmp_path, monkeypatch, capsys):
    """Neither isolation is possible: nothing runs, and the autograder fails saying why."""
    from mechlib.teaching.grading import gradescope

    monkeypatch.setattr(gradescope, "_bwrap_works", lambda: False)
    monkeypatch.setattr(gradescope.os, "geteuid", lambda: 1000)
    ran = []
    monkeypatch.setattr(gradescope, "run", lambda *a, **k: ran.append(gradescope.isolation()))
    assert gradescope.main([str(tmp_path)]) == 2
    assert ran == [] and "cannot isolate the notebook" in capsys.readouterr().err
