"""Grade one submitted notebook: draw its hidden cases here, run it in the sandbox
(:mod:`~mechlib.teaching.grading.runner`), read back what it recorded as plain data, and
judge it here (:mod:`~mechlib.teaching.grading.judge`)."""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from mechlib.teaching.grading import processes, sandbox
from mechlib.teaching.grading.flags import suspicious_code
from mechlib.teaching.grading.judge import hidden_inputs, judge, unchecked
from mechlib.teaching.grading.report import NotebookGrade, clean
from mechlib.teaching.grading.settings import MAX_OUTCOMES, Settings

# -P: the runner's working folder (writable by the notebook) is not on sys.path
RUNNER = [sys.executable, "-P", "-m", "mechlib.teaching.grading.runner"]


def grade_notebook(path: Path, name: str, settings: Settings = Settings()) -> NotebookGrade:
    """Grade one submitted notebook: run it (sandboxed) in a worker process, judge its outputs here."""
    from mechlib.teaching.grading.transport import decode_outcomes, encode_calls
    from mechlib.teaching.inputs import model_spec
    from mechlib.teaching.registry import EXERCISES

    grade = NotebookGrade(notebook=name, sandboxed=settings.sandbox)
    found = suspicious_code(path)
    if found:
        grade.notes.append("FLAGGED for a human look: the code uses grading internals or the call stack ("
                           + ", ".join(found[:8]) + "); the points stand, but check the work by hand")
    scratch = Path(tempfile.mkdtemp(prefix="mechlib-grade-"))
    try:
        submitted = scratch / "submitted.ipynb"
        shutil.copyfile(path, submitted)
        submitted.chmod(0o644)
        try:  # the hidden cases, drawn here: only their inputs are written for the sandbox
            cases = hidden_inputs(name, secrets.randbelow(2**31))
            doc, npz = encode_calls(cases, model_spec)
        except Exception as exc:  # noqa: BLE001 -- a bug of the grader's, not the student's
            grade.grader_error = True
            grade.notes.append(f"the hidden cases could not be prepared ({type(exc).__name__}: {str(exc)[:200]})")
            grade.results = unchecked(name)
            return grade
        inputs = {"inputs.json": doc.encode(), "inputs.npz": npz}
        for file, data in inputs.items():
            (scratch / file).write_bytes(data)
            (scratch / file).chmod(0o644)
        spec = {"name": name, "cell_timeout": settings.cell_timeout,
                "notebook_timeout": settings.notebook_timeout, "max_output": settings.max_output,
                "n_checks": len(EXERCISES[name])}
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        if settings.sandbox:
            root = sandbox.SANDBOX_ROOT
            spec.update(root=root, notebook="/grading-in/submitted.ipynb", inputs="/grading-in")
            env.update(HOME=f"{root}/home", JUPYTER_RUNTIME_DIR=f"{root}/runtime", MPLCONFIGDIR=f"{root}/home",
                       IPYTHONDIR=f"{root}/home/.ipython", TMPDIR="/tmp")
            if os.environ.get("PYTHONPATH"):  # the kernel must import the same mechlib as the grader
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            limits = sandbox.Limits(memory=int(settings.memory_gib * sandbox.GiB))
            uid = 200_000 + secrets.randbelow(800_000) if sandbox.uses_own_uid() else None
            cmd = sandbox.command(RUNNER + [json.dumps(spec)],
                                  {f"/grading-in/{f}": scratch / f for f in ("submitted.ipynb", *inputs)},
                                  limits, env, uid=uid)
            cwd, run_env = "/", None  # bwrap clears the environment and sets env itself
        else:
            root = str(scratch / "root")
            spec.update(root=root, notebook=str(submitted), inputs=str(scratch))
            run_env = dict(os.environ, **env, HOME=f"{root}/home", JUPYTER_RUNTIME_DIR=f"{root}/runtime",
                           MPLCONFIGDIR=f"{root}/home")
            cmd = RUNNER + [json.dumps(spec)]
            cwd = str(scratch)
        log = scratch / "runner.log"
        raw, timed_out = processes.run_capped(cmd, cwd=cwd, env=run_env, timeout=settings.notebook_timeout + 120,
                                              log=log, cap=MAX_OUTCOMES * 2)
        if timed_out:
            grade.notes.append(f"the notebook ran longer than its time limit of {settings.notebook_timeout:g} s")
        if not settings.sandbox:  # without a PID namespace, kill the kernel's group by hand
            pid_file = Path(root) / "runtime" / "kernel.pid"
            if pid_file.exists() and pid_file.read_text().strip().isdigit():
                processes.kill_group(int(pid_file.read_text().strip()))
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            grade.notes.extend(clean(str(n)[:500]) for n in data.get("notes") or [])
            if data.get("outcomes"):
                try:
                    records = decode_outcomes(str(data["outcomes"]), base64.b64decode(data.get("arrays") or ""))
                    grade.results = judge(name, records, cases)
                except Exception as exc:  # noqa: BLE001 -- whatever the sandbox sent that breaks reading or judging
                    # it is the notebook's doing, not the grader's: no regrade (no second draw of hidden cases)
                    grade.results = {}
                    grade.notes.append(f"the recorded outputs were unreadable ({type(exc).__name__}: {str(exc)[:200]})")
            elif not any("kernel died" in n or "time limit" in n for n in grade.notes):
                grade.notes.append("the exercises could not be checked (the grading cell recorded nothing)")
        elif not grade.notes:
            tail = log.read_bytes()[-600:].decode(errors="replace").strip()
            if "bwrap:" in tail or "prlimit:" in tail or "setpriv:" in tail:
                grade.grader_error = True
                grade.notes.append(f"the sandbox could not be started: {tail}")
            else:
                grade.notes.append("the notebook's run ended without a result (its processes were killed or "
                                   f"ran out of memory){': ' + tail[-300:] if tail else ''}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    grade.results = {**unchecked(name), **grade.results}
    return grade
