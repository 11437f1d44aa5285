"""Grade a folder of submissions: one folder per student, each notebook graded once
(:func:`~mechlib.teaching.grading.notebook.grade_notebook`), ``--jobs`` at a time; what is
graded is recorded at once, so an interrupted run resumes where it stopped.

Only what can be trusted is graded: a submitted notebook must be a regular file with one
link, in a student folder that is a real folder; a symbolic link, a hard link (which could
be a classmate's file or the solutions), a FIFO, a device or a folder is refused unread.
"""
from __future__ import annotations

import os
import stat
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mechlib.teaching.grading import notebook, processes
from mechlib.teaching.grading import sandbox as sb
from mechlib.teaching.grading.judge import unchecked
from mechlib.teaching.grading.report import (
    NotebookGrade,
    sha256_bytes,
    StudentGrade,
    load_record,
    save_record,
    student_grades,
    write_outputs,
)
from mechlib.teaching.grading.sandbox import SandboxUnavailable
from mechlib.teaching.grading.settings import (
    DEFAULT_CELL_TIMEOUT,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_MEMORY_GIB,
    DEFAULT_NOTEBOOK_TIMEOUT,
    MIN_MEMORY_GIB,
    Settings,
)


class Refused(Exception):
    """A submitted file that is not graded (the message says why)."""


def read_submission(path: Path) -> bytes:
    """The bytes of a submitted notebook, read once, without following a link; raises :class:`Refused`
    for anything but a regular file with a single link (checked on the file that was opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        kind = "a symbolic link" if path.is_symlink() else f"unreadable ({exc.strerror})"
        raise Refused(f"the submitted file is {kind}, which the grader does not follow") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("the submitted file is not a regular file (a folder, a FIFO or a device)")
        if st.st_nlink != 1:
            raise Refused("the submitted file is a hard link (it has other names, perhaps outside the "
                          "student's folder), which the grader does not follow")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def grade(submissions: str | os.PathLike, out: str | os.PathLike, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
          notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT, jobs: int = 2,
          max_output: int = DEFAULT_MAX_OUTPUT, progress: bool = True, sandbox: bool = True,
          memory_gib: float = DEFAULT_MEMORY_GIB, regrade: bool = False, as_user: bool = False) -> list[StudentGrade]:
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
    if not memory_gib >= MIN_MEMORY_GIB:
        raise ValueError(f"--memory {memory_gib:g} is too small: a kernel with torch and TransformerLens needs at "
                         f"least {MIN_MEMORY_GIB:g} GiB of address space, or every notebook would score 0 "
                         f"(torch cannot load); use --memory {MIN_MEMORY_GIB:g} or more (default "
                         f"{DEFAULT_MEMORY_GIB:g})")
    if sandbox and as_user:
        if os.geteuid() != 0:
            raise SandboxUnavailable("isolating the notebooks as another user needs root")
    elif sandbox:
        ok, why = sb.available()
        if not ok:
            raise SandboxUnavailable(
                f"cannot sandbox the notebooks: {why}. Install bubblewrap, or pass --no-sandbox to grade without "
                "it (the notebooks can then read and change this machine's files; the feedback says so)")
    out_resolved = out.resolve()
    if out_resolved == submissions.resolve() or submissions.resolve() in out_resolved.parents:
        raise ValueError("--out must not be inside SUBMISSIONS")
    settings = Settings(cell_timeout, notebook_timeout, max_output, memory_gib, sandbox, as_user)
    notebook.remove_stale_scratch()  # what a grader killed with SIGKILL left behind
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    done: dict[tuple[str, str], NotebookGrade] = {}
    tasks = []
    for folder in folders:
        for name in NOTEBOOKS:
            path = folder / f"{name}.ipynb"
            if not os.path.lexists(path):
                continue
            try:
                if folder.is_symlink():
                    raise Refused("the student's folder is a symbolic link, which the grader does not follow")
                data = read_submission(path)
            except Refused as exc:  # a link could point at a classmate's file or the solutions: never followed
                done[(folder.name, name)] = NotebookGrade(
                    name, results=unchecked(name, "not graded: the submitted file cannot be trusted (see the notes)"),
                    sandboxed=sandbox, notes=[str(exc)])
                continue
            sha = sha256_bytes(data)
            old = None if regrade else load_record(out, folder.name, name, sha, settings)
            if old is not None:
                done[(folder.name, name)] = old
            else:
                tasks.append((folder, name, path, sha, data))
    lock = threading.Lock()
    write_outputs(student_grades(folders, done), out)
    bar = tqdm(total=len(tasks), desc="grading", unit="notebook", file=sys.stderr, disable=not progress)

    def run(task) -> None:
        folder, name, path, sha, data = task
        try:
            g = notebook.grade_notebook(path, name, settings, data=data)
        except Exception as exc:  # noqa: BLE001 -- one broken notebook must not stop the others
            g = NotebookGrade(name, results=unchecked(name), notes=[f"grading failed: {type(exc).__name__}: {exc}"],
                              grader_error=True, sandboxed=sandbox)
        if processes.STOPPING.is_set():  # killed by the interrupt, not graded: the next run grades it
            return
        with lock:
            save_record(out, folder.name, g, sha, settings)
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

