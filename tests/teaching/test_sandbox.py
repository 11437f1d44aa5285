"""The bubblewrap command line (:mod:`mechlib.teaching.grading.sandbox`), alone."""
from __future__ import annotations

from pathlib import Path

from mechlib.teaching.grading import sandbox



def test_a_virtualenv_under_tmp_stays_visible_in_the_sandbox(monkeypatch):
    """The private /tmp is mounted first; read-only binds below it land on top of it."""
    monkeypatch.setattr(sandbox, "_read_only_paths", lambda: [Path("/usr"), Path("/tmp/ci/project/.venv")])
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: "/usr/bin/bwrap")
    cmd = sandbox.command(["python"], {}, sandbox.Limits(), {}, uid=None)
    tmpfs = [i for i, a in enumerate(cmd) if a == "--tmpfs" and cmd[i + 1] == "/tmp"]
    venv = cmd.index("/tmp/ci/project/.venv")
    assert len(tmpfs) == 1 and tmpfs[0] < venv


# ---------------------------------------------------------------- the sandbox itself, probed from inside
# Each probe runs a shell script through the grader's own launcher (notebook.run_sandboxed), as root
# (a fresh user id per notebook) and as an ordinary user (bubblewrap itself unprivileged, in a user
# namespace): what a hostile notebook could see or do there.

import os
import shutil
import subprocess
import sys

import pytest

from mechlib.teaching.grading import notebook, processes, seccomp
from mechlib.teaching.grading.settings import Settings

SECRET = "mg-secret-7f3a9c"
AS_ROOT = os.geteuid() == 0


def _needs_bwrap():
    ok, why = sandbox.available()
    if not ok:
        if os.environ.get("MECHLIB_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"no sandbox here ({why}); MECHLIB_REQUIRE_SANDBOX=1 requires it")
        pytest.skip(f"no sandbox here ({why})")


@pytest.fixture(params=["root", "ordinary user"])
def probe(request, monkeypatch, tmp_path):
    """``probe(script, files={})`` -> what the script printed inside the sandbox, with the grader's
    environment holding a secret."""
    _needs_bwrap()
    monkeypatch.setenv("INSTRUCTOR_API_TOKEN", SECRET)
    if request.param == "root":
        if not AS_ROOT:
            pytest.skip("the grader runs as an ordinary user here")
    elif AS_ROOT:
        # the grader as an ordinary user: bubblewrap started under a fresh unprivileged uid (so it
        # makes its own user namespace), seeing only the system (that user cannot read /root)
        uid = 400_000 + os.getpid() % 100_000
        real = sandbox.command
        monkeypatch.setattr(sandbox, "uses_own_uid", lambda: False)
        monkeypatch.setattr(sandbox, "_read_only_paths", lambda: [p for p in map(Path, ("/usr", "/etc")) if p.exists()])
        monkeypatch.setattr(sandbox, "_tasks_of_this_user", lambda: 0)
        monkeypatch.setattr(sandbox, "command", lambda *a, **k: ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                                                  "--clear-groups", "--"] + real(*a, **k))

    def run(script: str, files: dict[str, bytes] | None = None) -> str:
        scratch = tmp_path / "scratch"
        scratch.mkdir(exist_ok=True)
        scratch.chmod(0o711)
        raw, timed_out, over = notebook.run_sandboxed(["/bin/sh", "-c", script], files or {}, Settings(memory_gib=2),
                                                      scratch, timeout=60)
        assert not timed_out and not over
        return raw.decode(errors="replace") + (scratch / "runner.log").read_text(errors="replace")

    return run


def test_bubblewrap_starts_with_none_of_the_graders_environment(probe):
    """As an ordinary user, the sandbox's PID 1 is bubblewrap itself: it must not carry the secret."""
    out = probe("for f in /proc/[0-9]*/environ; do cat $f 2>/dev/null; done; echo; echo done")
    assert "done" in out and SECRET not in out and "INSTRUCTOR_API_TOKEN" not in out


def test_no_user_namespace_can_be_made_inside(probe):
    out = probe("unshare -Urm true 2>&1 && echo MADE-A-USERNS; unshare -U true 2>&1 && echo MADE-A-USERNS; "
                "echo done")
    assert "done" in out and "MADE-A-USERNS" not in out


def test_dev_shm_is_private_and_capped_and_dev_read_only(probe):
    marker = f"mg-shm-{os.getpid()}"
    out = probe(f"echo x > /dev/shm/{marker} && echo SHM-WRITABLE; "
                "head -c 200000000 /dev/zero > /dev/shm/big 2>/dev/null && echo SHM-UNCAPPED; "
                "touch /dev/planted 2>/dev/null && echo DEV-WRITABLE; echo done")
    assert "done" in out and "SHM-WRITABLE" in out  # usable, as programs expect
    assert "SHM-UNCAPPED" not in out and "DEV-WRITABLE" not in out
    assert not Path("/dev/shm", marker).exists()  # not the host's


def test_files_are_copied_in_read_only(probe):
    out = probe("cat /grading-in/a.txt; echo; echo y > /grading-in/a.txt 2>/dev/null && echo WROTE; echo done",
                {"/grading-in/a.txt": b"hello"})
    assert "hello" in out and "WROTE" not in out


def test_the_seccomp_filter_is_written_for_this_machine():
    import platform

    prog = seccomp.program()
    assert prog is None or len(prog) % 8 == 0
    assert seccomp.program("x86_64") is not None and seccomp.program("aarch64") is not None
    if platform.machine() in ("x86_64", "aarch64"):
        assert prog is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pidfd_getfd is Linux's")
def test_the_kernel_cannot_take_the_runners_descriptors(tmp_path):
    """The runner makes itself not dumpable before the kernel starts: a child of the same user can
    then not take its stdout (pidfd_getfd), which before let a notebook forge the grader's channel."""
    _needs_bwrap()
    attack = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              "pfd = libc.syscall(434, os.getppid(), 0)\n"
              "fd = libc.syscall(438, pfd, 1, 0) if pfd >= 0 else -1\n"
              "print('TOOK-FD' if fd >= 0 else f'refused {ctypes.get_errno()}')\n")
    runner_like = ("import subprocess, sys\nfrom mechlib.teaching.grading.runner import not_dumpable\n"
                   "assert not_dumpable()\n"
                   f"subprocess.run([sys.executable, '-c', {attack!r}])\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    raw, _, _ = notebook.run_sandboxed([sys.executable, "-c", runner_like], {}, Settings(memory_gib=2), scratch, 120)
    out = raw.decode(errors="replace") + (scratch / "runner.log").read_text(errors="replace")
    assert "refused" in out and "TOOK-FD" not in out, out


def test_one_budget_holds_all_the_processes_of_a_run_together(tmp_path):
    """Four processes of 400 MB each stay under a per-process limit of 2 GiB, but not under a budget
    of 1 GiB for the run: the run is stopped and says why."""
    _needs_bwrap()
    hog = "import time\nx = bytearray(400 * 2**20)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\ntime.sleep(60)\n"
    starter = f"import subprocess, sys\nps = [subprocess.Popen([sys.executable, '-c', {hog!r}]) for _ in range(4)]\n" \
              "[p.wait() for p in ps]\n"
    log = tmp_path / "log"
    t0 = __import__("time").monotonic()
    _, timed_out, over = processes.run_capped([sys.executable, "-c", starter], cwd=str(tmp_path), env=None, timeout=50,
                                              log=log, cap=1000, budget=processes.Budget(memory=2**30, tasks=64))
    assert over and "memory" in over and not timed_out
    assert __import__("time").monotonic() - t0 < 45
