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
