"""Grade one submitted notebook: draw its hidden cases here, run it in the sandbox
(:mod:`~mechlib.teaching.grading.runner`), read back what it recorded as plain data, and
judge it here (:mod:`~mechlib.teaching.grading.judge`).

Whatever the run sends back is the notebook's doing: output that cannot be read (malformed,
nested too deeply, too large) fails the notebook, never the grader. Only a sandbox that
could not start at all (the runner never said it started) is the grader's fault.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from mechlib.teaching.grading import processes, sandbox, seccomp
from mechlib.teaching.grading.flags import suspicious_code
from mechlib.teaching.grading.judge import hidden_inputs, judge, unchecked
from mechlib.teaching.grading.report import NotebookGrade, clean
from mechlib.teaching.grading.runner import STARTED
from mechlib.teaching.grading.settings import MAX_OUTCOMES, Settings

# -P: the runner's working folder (writable by the notebook) is not on sys.path
RUNNER = [sys.executable, "-P", "-m", "mechlib.teaching.grading.runner"]
SCRATCH_PREFIX = "mechlib-grade-"
SEED_BITS = 63  # the hidden cases' seed (torch seeds are 64-bit): drawn per notebook, never stored, never sent into the sandbox

# The processes of the sandbox itself (bubblewrap's two; prlimit and setpriv exec into the runner), counted
# in the process tree on top of the notebook's own tasks: the notebook may hold all of its
# ``--nproc`` allowance (a fork loop stops there) without the tree going over its budget.
SANDBOX_TASKS = 4


def scratch_folder() -> Path:
    """A private folder for one notebook's grading, named after this process (see :func:`remove_stale_scratch`)."""
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))


def remove_stale_scratch(tmp: Path | None = None) -> list[Path]:
    """Remove the scratch folders of graders that were killed (their process is gone); return them.

    A grader killed with SIGKILL cannot clean up after itself: the next run does it.
    """
    removed = []
    for d in Path(tmp or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        try:
            pid = int(d.name[len(SCRATCH_PREFIX):].split("-")[0])
            if d.is_symlink() or not d.is_dir() or d.stat().st_uid != os.geteuid():
                continue
            os.kill(pid, 0)  # alive: its grader still works in it
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
        except (ValueError, OSError):
            continue
    return removed


def run_sandboxed(argv: list[str], files: dict[str, bytes], settings: Settings, scratch: Path,
                  timeout: float) -> tuple[bytes, bool, str]:
    """Run ``argv`` in the sandbox with ``files`` (path inside -> content) copied in read-only;
    return ``(stdout, timed_out, over_budget)`` (:func:`processes.run_capped`).

    bubblewrap starts with :data:`sandbox.LAUNCH_ENV` only; as root, the run gets a fresh user id.
    """
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    root = sandbox.SANDBOX_ROOT
    env.update(HOME=f"{root}/home", JUPYTER_RUNTIME_DIR=f"{root}/runtime", MPLCONFIGDIR=f"{root}/home",
               IPYTHONDIR=f"{root}/home/.ipython", TMPDIR="/tmp")
    if os.environ.get("PYTHONPATH"):  # the kernel must import the same mechlib as the grader
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    limits = sandbox.Limits(memory=int(settings.memory_gib * sandbox.GiB))
    uid = 200_000 + secrets.randbelow(800_000) if sandbox.uses_own_uid() else None
    fds: dict[str, int] = {}
    filter_fd = None
    try:
        for i, (dest, data) in enumerate(files.items()):
            host = scratch / f"input-{i}"
            host.write_bytes(data)
            fds[dest] = os.open(host, os.O_RDONLY)
        filter_fd = seccomp.no_user_namespaces()
        cmd = sandbox.command(argv, fds, limits, env, uid=uid, seccomp_fd=filter_fd)
        budget = processes.Budget(memory=limits.memory, tasks=limits.processes + SANDBOX_TASKS)
        return processes.run_capped(cmd, cwd="/", env=dict(sandbox.LAUNCH_ENV), timeout=timeout,
                                    log=scratch / "runner.log", cap=MAX_OUTCOMES * 2,
                                    pass_fds=tuple(fds.values()) + ((filter_fd,) if filter_fd is not None else ()),
                                    budget=budget)
    finally:
        for fd in [*fds.values(), filter_fd]:
            if fd is not None:
                os.close(fd)


def run_as_user(argv: list[str], files: dict[str, bytes], settings: Settings, scratch: Path,
                timeout: float) -> tuple[bytes, bool, str]:
    """Where bubblewrap cannot run (a Gradescope container): run ``argv`` as a fresh unprivileged
    user id, which can read neither the grader's files (root's, mode 0700) nor its environment
    (``/proc`` of root's processes), with the same resource limits and budget; ``files`` are
    written under ``scratch/sandbox/in`` (which the spec points at). Needs root. What it cannot
    give: a private network, a private ``/tmp`` and a read-only view of world-readable files."""
    uid = 200_000 + secrets.randbelow(800_000)
    home = scratch / "sandbox"
    scratch.chmod(0o711)
    (home / "in").mkdir(parents=True)
    for dest, data in files.items():
        (home / "in" / Path(dest).name).write_bytes(data)
        (home / "in" / Path(dest).name).chmod(0o444)
    (home / "in").chmod(0o555)
    os.chown(home, uid, uid)
    home.chmod(0o700)
    limits = sandbox.Limits(memory=int(settings.memory_gib * sandbox.GiB))
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(home / "root" / "home"),
           "JUPYTER_RUNTIME_DIR": str(home / "root" / "runtime"), "MPLCONFIGDIR": str(home / "root" / "home"),
           "TMPDIR": str(home / "tmp")}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    (home / "tmp").mkdir()
    os.chown(home / "tmp", uid, uid)
    cmd = ["prlimit", f"--as={limits.memory}", f"--nproc={limits.processes}", f"--fsize={limits.file_size}",
           f"--cpu={limits.cpu_seconds}", "--core=0", "--", "setpriv", f"--reuid={uid}", f"--regid={uid}",
           "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"] + argv
    try:
        return processes.run_capped(cmd, cwd=str(home), env=env, timeout=timeout, log=scratch / "runner.log",
                                    cap=MAX_OUTCOMES * 2,
                                    budget=processes.Budget(memory=limits.memory,
                                                            tasks=limits.processes + SANDBOX_TASKS))
    finally:
        processes.kill_user(uid)


def read_run(raw: bytes) -> tuple[bool, dict | None]:
    """``(started, result)`` from what the runner printed: whether it said it started, and its
    JSON object, or None when there is none that can be read (whatever the reason)."""
    started = raw.startswith(STARTED)
    body = raw[len(STARTED):] if started else raw
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError, MemoryError):
        return started, None
    return started, data if isinstance(data, dict) else None


def grade_notebook(path: Path, name: str, settings: Settings = Settings(), data: bytes | None = None) -> NotebookGrade:
    """Grade one submitted notebook (its bytes ``data``, read from ``path`` when not given): run it
    (sandboxed) in a worker process, judge its outputs here."""
    from mechlib.teaching.grading.transport import decode_outcomes, encode_calls
    from mechlib.teaching.inputs import model_spec
    from mechlib.teaching.registry import EXERCISES

    grade = NotebookGrade(notebook=name, sandboxed=settings.sandbox)
    data = Path(path).read_bytes() if data is None else data
    found = suspicious_code(data)
    if found:
        grade.notes.append("FLAGGED for a human look: the code uses grading internals or the call stack ("
                           + ", ".join(found[:8]) + "); the points stand, but check the work by hand")
    scratch = scratch_folder()
    try:
        try:  # the hidden cases, drawn here: only their inputs are written for the sandbox
            cases = hidden_inputs(name, secrets.randbits(SEED_BITS))
            doc, npz = encode_calls(cases, model_spec)
        except Exception as exc:  # noqa: BLE001 -- a bug of the grader's, not the student's
            grade.grader_error = True
            grade.notes.append(f"the hidden cases could not be prepared ({type(exc).__name__}: {str(exc)[:200]})")
            grade.results = unchecked(name)
            return grade
        spec = {"name": name, "cell_timeout": settings.cell_timeout,
                "notebook_timeout": settings.notebook_timeout, "max_output": settings.max_output,
                "n_checks": len(EXERCISES[name])}
        timeout = settings.notebook_timeout + 120
        log = scratch / "runner.log"
        if settings.sandbox and settings.as_user:
            home = scratch / "sandbox"
            spec.update(root=str(home / "root"), notebook=str(home / "in" / "submitted.ipynb"), inputs=str(home / "in"))
            files = {"submitted.ipynb": data, "inputs.json": doc.encode(), "inputs.npz": npz}
            raw, timed_out, over = run_as_user(RUNNER + [json.dumps(spec)], files, settings, scratch, timeout)
        elif settings.sandbox:
            spec.update(root=sandbox.SANDBOX_ROOT, notebook="/grading-in/submitted.ipynb", inputs="/grading-in")
            files = {"/grading-in/submitted.ipynb": data, "/grading-in/inputs.json": doc.encode(),
                     "/grading-in/inputs.npz": npz}
            raw, timed_out, over = run_sandboxed(RUNNER + [json.dumps(spec)], files, settings, scratch, timeout)
        else:
            root = str(scratch / "root")
            (scratch / "submitted.ipynb").write_bytes(data)
            (scratch / "inputs.json").write_text(doc)
            (scratch / "inputs.npz").write_bytes(npz)
            spec.update(root=root, notebook=str(scratch / "submitted.ipynb"), inputs=str(scratch))
            run_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
                           PYTHONUNBUFFERED="1", HOME=f"{root}/home", JUPYTER_RUNTIME_DIR=f"{root}/runtime",
                           MPLCONFIGDIR=f"{root}/home")
            raw, timed_out, over = processes.run_capped(RUNNER + [json.dumps(spec)], cwd=str(scratch), env=run_env,
                                                        timeout=timeout, log=log, cap=MAX_OUTCOMES * 2)
            pid_file = Path(root) / "runtime" / "kernel.pid"  # without a PID namespace, kill the kernel's group by hand
            if pid_file.exists() and pid_file.read_text().strip().isdigit():
                processes.kill_group(int(pid_file.read_text().strip()))
        if timed_out:
            grade.notes.append(f"the notebook ran longer than its time limit of {settings.notebook_timeout:g} s")
        if over:
            grade.notes.append(f"the notebook was stopped: {over}")
        started, result = read_run(raw)
        if result is not None:
            grade.notes.extend(clean(str(n)[:500]) for n in result.get("notes") or [])
            if result.get("outcomes"):
                try:
                    records = decode_outcomes(str(result["outcomes"]), base64.b64decode(result.get("arrays") or ""))
                    grade.results = judge(name, records, cases)
                except BaseException as exc:  # noqa: BLE001 -- whatever the sandbox sent that breaks reading or judging
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
                    # it is the notebook's doing, not the grader's: no regrade (no second draw of hidden cases)
                    grade.results = {}
                    grade.notes.append(f"the recorded outputs were unreadable ({type(exc).__name__}: {str(exc)[:200]})")
            elif not any("kernel died" in n or "time limit" in n for n in grade.notes):
                grade.notes.append("the exercises could not be checked (the grading cell recorded nothing)")
        elif not started and not timed_out and not over:
            tail = log.read_bytes()[-600:].decode(errors="replace").strip() if log.exists() else ""
            grade.grader_error = True
            grade.notes.append(f"the sandbox could not be started: {clean(tail)}")
        elif not grade.notes:
            grade.notes.append("the notebook's run ended without a readable result (its processes were killed, "
                               "ran out of memory, or it wrote over the grader's channel)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    grade.results = {**unchecked(name), **grade.results}
    return grade
