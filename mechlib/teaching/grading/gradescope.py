"""A Gradescope autograder for the exercise notebooks: ``mechlib-grade --gradescope-bundle FILE.zip``
writes it, Gradescope runs it once per submission, each in its own container -- which is how
a course outgrows one machine.

The bundle follows Gradescope's layout: ``setup.sh`` (run once when the image is built:
Python, bubblewrap, and this package with its ``grade`` and ``real`` extras into
``/autograder/venv``) and ``run_autograder`` (run per submission: :func:`run`), next to
``mechlib-src/``, the package's source. :func:`run` finds the exercise notebooks in
``/autograder/submission`` (at any depth, by their names), grades them as one student, and
writes ``/autograder/results/results.json``
(:func:`~mechlib.teaching.grading.gradebooks.gradescope_results`).

Isolation, the best the container allows: bubblewrap where it can make a sandbox (the same
as ``mechlib-grade``); otherwise, as root, each notebook runs as a fresh unprivileged user
id (:func:`~mechlib.teaching.grading.notebook.run_as_user`) with the same resource limits,
after the grader has made its own files unreadable to other users; the verdict is computed
in the grader's process either way.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip bubblewrap util-linux
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
/autograder/venv/bin/pip install "/autograder/source/mechlib-src[grade,real]"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission, as root: grade /autograder/submission into
# /autograder/results/results.json. AUTOGRADER_ROOT and MECHLIB_PYTHON are for testing it elsewhere.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PY="${MECHLIB_PYTHON:-/autograder/venv/bin/python}"
exec "$PY" -P -m mechlib.teaching.grading.gradescope "$ROOT"
"""


def package_files(repo: Path) -> list[Path]:
    """The files of the package's source that the bundle carries: pyproject, README, mechlib/."""
    try:
        listed = subprocess.run(["git", "-C", str(repo), "ls-files", "--cached", "--others", "--exclude-standard",
                                 "pyproject.toml", "README.md", "LICENSE",
                                 "mechlib"], capture_output=True, text=True, check=True).stdout.split()
        files = [repo / f for f in listed]
    except (OSError, subprocess.CalledProcessError):
        files = [repo / "pyproject.toml", repo / "README.md"] + [
            p for p in (repo / "mechlib").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return [f for f in files if f.is_file()]


def write_bundle(path: str | os.PathLike, repo: str | os.PathLike | None = None) -> Path:
    """Write the autograder zip for Gradescope (``setup.sh``, ``run_autograder``, ``mechlib-src/``)."""
    import mechlib

    repo = Path(repo) if repo else Path(mechlib.__file__).resolve().parents[1]
    if not (repo / "pyproject.toml").is_file():
        raise ValueError(f"the package's source (pyproject.toml and mechlib/) was not found in {repo}; "
                         "write the bundle from a checkout of the course repository")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            z.writestr(info, text)
        for f in package_files(repo):
            z.write(f, f"mechlib-src/{f.relative_to(repo)}")
    return path


def find_notebooks(submission: Path) -> dict[str, Path]:
    """``{exercise notebook: path}`` of the exercise notebooks in ``submission`` (at any depth; the
    shallowest wins), links and other files left out."""
    from mechlib.teaching.registry import NOTEBOOKS

    found: dict[str, Path] = {}
    for p in sorted(submission.rglob("*.ipynb"), key=lambda p: (len(p.parts), str(p))):
        if p.stem in NOTEBOOKS and p.stem not in found and not p.is_symlink():
            found[p.stem] = p
    return found


def _bwrap_works() -> bool:
    from mechlib.teaching.grading import sandbox

    ok, _ = sandbox.available()
    if not ok:
        return False
    try:
        probe = subprocess.run([sandbox.bwrap_path(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                                "--unshare-pid", "--unshare-net", "--", "true"], capture_output=True, timeout=30,
                               env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


class NoIsolation(RuntimeError):
    """Neither bubblewrap nor a fresh user id is available: the autograder refuses to run the notebook."""


def isolation() -> tuple[bool, bool, str]:
    """``(sandbox, as_user, how)``: bubblewrap where it works here, else a fresh user id as root.

    Raises :class:`NoIsolation` where neither is possible (not root, no working bubblewrap):
    as ``mechlib-grade`` without a sandbox, the bundle refuses rather than run a submission
    with the grader's rights (Gradescope then reports the autograder's failure, with this
    message, and no score is recorded)."""
    if _bwrap_works():
        return True, False, "bubblewrap sandbox"
    if os.geteuid() == 0 and shutil.which("setpriv") and shutil.which("prlimit"):
        return True, True, "an unprivileged user (bubblewrap cannot run in this container)"
    raise NoIsolation("the autograder cannot isolate the notebook here: bubblewrap cannot run and it is not "
                      "root (so it cannot run the notebook as a fresh unprivileged user); nothing was run. "
                      "Gradescope runs autograders as root: check the container's image")


def run(root: str | os.PathLike = "/autograder", jobs: int = 1) -> dict:
    """Grade ``ROOT/submission`` as one student into ``ROOT/results/results.json``; return that document."""
    from mechlib.teaching.grading.folder import Refused, grade, read_submission
    from mechlib.teaching.grading.gradebooks import gradescope_results

    root = Path(root)
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    for private in (results, root / "source"):
        if private.exists():
            private.chmod(0o700)  # the notebook's user reads none of the grader's files
    if (root / "submission_metadata.json").exists():
        (root / "submission_metadata.json").chmod(0o600)
    use_sandbox, as_user, how = isolation()
    work = Path(tempfile.mkdtemp(prefix="mechlib-gradescope-"))
    try:
        student = work / "submissions" / "submission"
        student.mkdir(parents=True)
        refused = []
        for name, path in find_notebooks(root / "submission").items():
            try:
                (student / f"{name}.ipynb").write_bytes(read_submission(path))
            except Refused as exc:
                refused.append(f"{name}.ipynb: {exc}")
        grades = grade(work / "submissions", work / "out", jobs=jobs, progress=False, sandbox=use_sandbox,
                       as_user=as_user)
        doc = gradescope_results(grades[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc["output"] = "\n".join([f"Graded in {how}."] + refused + [doc["output"]])
    (results / "results.json").write_text(json.dumps(doc, indent=1))
    return doc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        run(argv[0] if argv else "/autograder")
    except NoIsolation as exc:
        print(f"mechlib autograder: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
