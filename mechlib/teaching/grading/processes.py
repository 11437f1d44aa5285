"""Process handling for the grader: start a notebook's run in its own session, keep at most
so much of what it prints, and make sure that every process it started ends with it.

:data:`RUNNING` holds the runs in flight, so that an interrupted grader (Ctrl-C) kills them
all; :data:`STOPPING` tells the workers that what is in flight must not be recorded.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

RUNNING: set[subprocess.Popen] = set()
RUNNING_LOCK = threading.Lock()
STOPPING = threading.Event()  # set when a run is interrupted: what is in flight is not recorded


def kill_group(pid: int) -> None:
    """Kill the process group led by ``pid`` (a kernel, or a sandbox started in its own session)."""
    if pid <= 1:  # never signal init or "every process"
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_running() -> None:
    """Kill every run in flight (and everything it started)."""
    with RUNNING_LOCK:
        for proc in list(RUNNING):
            kill_group(proc.pid)


def run_capped(cmd: list[str], *, cwd: str, env: dict[str, str] | None, timeout: float, log: Path,
               cap: int) -> tuple[bytes, bool]:
    """Run ``cmd`` in a new session; return ``(stdout, timed_out)``.

    Of its standard output at most ``cap`` bytes are kept (whatever it prints); its standard
    error goes to ``log``. After ``timeout`` seconds, or when it ends, its whole process group
    is killed.
    """
    timed_out = False
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd,
                                env=env, start_new_session=True)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        chunks: list[bytes] = []

        def read() -> None:
            size = 0
            while block := proc.stdout.read(1 << 16):
                if size < cap:
                    chunks.append(block)
                size += len(block)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_group(proc.pid)  # the sandbox and everything in it; no-op if it has ended
            proc.wait()
            with RUNNING_LOCK:
                RUNNING.discard(proc)
        reader.join(timeout=10)
    return b"".join(chunks), timed_out
