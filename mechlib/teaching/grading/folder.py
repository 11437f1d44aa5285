"""Grade a folder of submissions: one folder per student, each notebook graded once
(:func:`~mechlib.teaching.grading.notebook.grade_notebook`), ``--jobs`` at a time; what is
graded is recorded at once, so an interrupted run resumes where it stopped."""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mechlib.teaching.grading import notebook, processes
from mechlib.teaching.grading import sandbox as sb
from mechlib.teaching.grading.judge import unchecked
from mechlib.teaching.grading.report import (
    NotebookGrade,
    StudentGrade,
    load_record,
    save_record,
    sha256,
    student_grades,
    write_outputs,
)
from mechlib.teaching.grading.sandbox import SandboxUnavailable
from mechlib.teaching.grading.settings import (
    DEFAULT_CELL_TIMEOUT,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_MEMORY_GIB,
    DEFAULT_NOTEBOOK_TIMEOUT,
    Settings,
)


def grade(submissions: str | os.PathLike, out: str | os.PathLike, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
          notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT, jobs: int = 2,
          max_output: int = DEFAULT_MAX_OUTPUT, progress: bool = True, sandbox: bool = True,
          memory_gib: float = DEFAULT_MEMORY_GIB, regrade: bool = False) -> list[StudentGrade]:
    """Grade every student folder in ``submissions`` into ``out`` (see :mod:`mechlib.teaching.grading`).

    Raises :class:`SandboxUnavailable` before anything runs when ``sandbox`` is asked for and
    cannot be made here.
    """
    from tqdm.auto import tqdm

    from mechlib.teaching.registry import NOTEBOOKS

    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise ValueError(f"SUBMISSIONS must be a folder with one folder per student; got {submissions}")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1; got {jobs}")
    if memory_gib <= 0:
        raise ValueError(f"--memory must be > 0 GiB; got {memory_gib}")
    if sandbox:
        ok, why = sb.available()
        if not ok:
            raise SandboxUnavailable(
                f"cannot sandbox the notebooks: {why}. Install bubblewrap, or pass --no-sandbox to grade without "
                "it (the notebooks can then read and change this machine's files; the feedback says so)")
    out_resolved = out.resolve()
    if out_resolved == submissions.resolve() or submissions.resolve() in out_resolved.parents:
        raise ValueError("--out must not be inside SUBMISSIONS")
    settings = Settings(cell_timeout, notebook_timeout, max_output, memory_gib, sandbox)
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    done: dict[tuple[str, str], NotebookGrade] = {}
    tasks = []
    for folder in folders:
        for name in NOTEBOOKS:
            path = folder / f"{name}.ipynb"
            if not (path.is_file() or path.is_symlink()):
                continue
            if folder.is_symlink() or path.is_symlink() or folder.resolve() not in path.resolve().parents:
                # a link could point at a classmate's file or the solutions: never followed
                done[(folder.name, name)] = NotebookGrade(
                    name, results=unchecked(name, "not graded: the submission is a symbolic link"),
                    sandboxed=sandbox, notes=["the submitted file is a symbolic link, which the grader does not follow"])
                continue
            sha = sha256(path)
            old = None if regrade else load_record(out, folder.name, name, sha)
            if old is not None:
                done[(folder.name, name)] = old
            else:
                tasks.append((folder, name, path, sha))
    lock = threading.Lock()
    write_outputs(student_grades(folders, done), out)
    bar = tqdm(total=len(tasks), desc="grading", unit="notebook", file=sys.stderr, disable=not progress)

    def run(task) -> None:
        folder, name, path, sha = task
        try:
            g = notebook.grade_notebook(path, name, settings)
        except Exception as exc:  # noqa: BLE001 -- one broken notebook must not stop the others
            g = NotebookGrade(name, results=unchecked(name), notes=[f"grading failed: {type(exc).__name__}: {exc}"],
                              grader_error=True, sandboxed=sandbox)
        if processes.STOPPING.is_set():  # killed by the interrupt, not graded: the next run grades it
            return
        with lock:
            save_record(out, folder.name, g, sha)
            done[(folder.name, name)] = g
            write_outputs(student_grades(folders, done), out)
        bar.update(1)

    pool = ThreadPoolExecutor(max_workers=jobs)
    processes.STOPPING.clear()
    try:
        for f in [pool.submit(run, t) for t in tasks]:
            f.result()
    except BaseException:
        processes.STOPPING.set()
        pool.shutdown(wait=False, cancel_futures=True)
        processes.kill_running()
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    grades = student_grades(folders, done)
    write_outputs(grades, out)
    return grades

