"""What the grader writes: one record per graded notebook (``OUT/records/``), and from the
records ``OUT/grades.csv``, ``OUT/feedback/<student>.md`` and ``OUT/summary.md``, each
replaced atomically after every notebook, so that they always agree.

A record carries the SHA-256 of the submitted file: a rerun with the same ``--out`` skips a
notebook whose record matches, and grades a changed one again.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mechlib.teaching.results import PASSED

RECORD_VERSION = 4
NO_SANDBOX_WARNING = ("**Warning: graded with `--no-sandbox`.** The notebook ran without the sandbox, so it could "
                      "read and change files of the grading machine; treat these points with care.")


@dataclass
class NotebookGrade:
    """Outcome of one student's notebook: one result per exercise, and notes on what went wrong."""

    notebook: str
    results: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    missing: bool = False
    pending: bool = False  # submitted, not graded yet (an interrupted run)
    grader_error: bool = False  # could not be graded through no fault of the notebook
    sandboxed: bool = True

    def passed(self, exercise_id: str) -> bool:
        return self.results.get(exercise_id, {}).get("status") == PASSED

    def points(self, exercise_id: str) -> int:
        from mechlib.teaching.registry import EXERCISE_BY_ID

        return EXERCISE_BY_ID[exercise_id].points if self.passed(exercise_id) else 0


@dataclass
class StudentGrade:
    """One student: a :class:`NotebookGrade` per exercise notebook, and the files that were ignored."""

    student: str
    notebooks: dict[str, NotebookGrade]
    ignored: list[str] = field(default_factory=list)

    def points(self) -> dict[str, int]:
        from mechlib.teaching.registry import ALL_EXERCISES

        return {ex.column: self.notebooks[ex.notebook].points(ex.id) for ex in ALL_EXERCISES}

    def total(self) -> int:
        return sum(self.points().values())


# --------------------------------------------------------------------------- records


def sha256(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def record_path(out: Path, student: str, name: str) -> Path:
    return out / "records" / student / f"{name}.json"


def load_record(out: Path, student: str, name: str, sha: str, settings: Any = None) -> NotebookGrade | None:
    """The recorded grade of this very file (same SHA-256) under the same verdict-changing settings
    (:meth:`~mechlib.teaching.grading.settings.Settings.verdict_key`), or None: graded again."""
    path = record_path(out, student, name)
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(rec, dict):
        return None
    key = settings.verdict_key() if settings is not None else None
    if (rec.get("sha256") != sha or rec.get("version") != RECORD_VERSION or rec.get("grader_error")
            or rec.get("settings") != key):
        return None  # changed, other settings or grader version, or not graded through no fault of its own: again
    return NotebookGrade(name, results=rec["results"], notes=rec["notes"], sandboxed=rec["sandboxed"],
                         grader_error=rec.get("grader_error", False))


def save_record(out: Path, student: str, g: NotebookGrade, sha: str, settings: Any = None) -> None:
    rec = {"version": RECORD_VERSION, "sha256": sha, "notebook": g.notebook, "results": g.results,
           "notes": g.notes, "sandboxed": g.sandboxed, "grader_error": g.grader_error,
           "settings": settings.verdict_key() if settings is not None else None}
    write_atomic(record_path(out, student, g.notebook), json.dumps(rec, indent=1))


def student_grades(folders: list[Path], done: dict[tuple[str, str], NotebookGrade]) -> list[StudentGrade]:
    """Every student's grade from what is ``done``: not-yet-graded notebooks are pending, absent ones missing."""
    from mechlib.teaching.registry import NOTEBOOKS

    grades = []
    for folder in folders:
        nbs = {}
        for name in NOTEBOOKS:
            if (folder.name, name) in done:
                nbs[name] = done[(folder.name, name)]
            elif (folder / f"{name}.ipynb").is_file():
                nbs[name] = NotebookGrade(name, pending=True, notes=["not graded yet (run again with the same --out)"])
            else:
                nbs[name] = NotebookGrade(name, missing=True, notes=["not submitted"])
        ignored = sorted(p.name for p in folder.iterdir() if p.suffix == ".ipynb" and p.stem not in NOTEBOOKS)
        grades.append(StudentGrade(folder.name, nbs, ignored))
    return grades


# --------------------------------------------------------------------------- grades.csv, feedback, summary


def write_outputs(grades: list[StudentGrade], out: Path) -> None:
    """``grades.csv``, ``feedback/<student>.md`` and ``summary.md``, each replaced atomically."""
    from mechlib.teaching.registry import ALL_EXERCISES

    out.mkdir(parents=True, exist_ok=True)
    for g in grades:
        write_atomic(out / "feedback" / f"{g.student}.md", feedback(g))
    columns = ["student"] + [ex.column for ex in ALL_EXERCISES] + ["total", "graded", "sandbox"]
    tmp = out / f".grades.csv.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for g in grades:
            nbs = [nb for nb in g.notebooks.values() if not nb.missing]
            graded = "partly" if any(nb.pending or nb.grader_error for nb in nbs) else "yes"
            sandboxed = "no (--no-sandbox)" if any(not nb.sandboxed for nb in nbs if not nb.pending) else "yes"
            writer.writerow({"student": csv_cell(g.student), **g.points(), "total": g.total(), "graded": graded,
                             "sandbox": sandboxed})
    os.replace(tmp, out / "grades.csv")
    write_atomic(out / "summary.md", summary(grades))


def feedback(g: StudentGrade) -> str:
    """The feedback page of one student, in Markdown."""
    from mechlib.teaching.registry import EXERCISES, MAX_POINTS, NOTEBOOKS

    lines = [f"# Feedback for {md(g.student)}", "", f"**Total: {g.total()} / {MAX_POINTS} points.**", ""]
    if any(not nb.sandboxed for nb in g.notebooks.values() if not nb.missing and not nb.pending):
        lines += [NO_SANDBOX_WARNING, ""]
    for name in NOTEBOOKS:
        nb = g.notebooks[name]
        got = sum(nb.points(ex.id) for ex in EXERCISES[name])
        lines += [f"## {name}.ipynb: {got} / {sum(ex.points for ex in EXERCISES[name])}", ""]
        if nb.missing:
            lines += ["Not submitted: 0 points.", ""]
            continue
        if nb.pending:
            lines += ["Not graded yet: the grading run was interrupted (run it again with the same --out).", ""]
            continue
        for ex in EXERCISES[name]:
            r = nb.results.get(ex.id, {})
            pts = nb.points(ex.id)
            lines.append(f"- **{ex.id} `{ex.function}`** ({pts} point{'s' if pts != 1 else ''}): "
                         f"{md(r.get('status', 'failed'))}. {md(r.get('message', ''))}")
        if nb.notes:
            lines += ["", "Notes on this notebook:"] + [f"- {md(n)}" for n in nb.notes]
        lines.append("")
    if g.ignored:
        lines += ["Ignored (not an exercise notebook): " + ", ".join(md(i) for i in g.ignored), ""]
    return "\n".join(lines)


def summary(grades: list[StudentGrade]) -> str:
    """``summary.md``: per exercise how many passed and the commonest failures; a histogram of totals."""
    from mechlib.teaching.registry import ALL_EXERCISES, MAX_POINTS

    lines = ["# Grading summary", "", f"{len(grades)} students; {MAX_POINTS} points in all.", ""]
    pending = sum(nb.pending for g in grades for nb in g.notebooks.values())
    errors = sum(nb.grader_error for g in grades for nb in g.notebooks.values())
    if pending:
        lines += [f"**{pending} submitted notebooks are not graded yet** (an interrupted run).", ""]
    if errors:
        lines += [f"**{errors} notebooks could not be graded** through no fault of theirs; see their feedback.", ""]
    if any(not nb.sandboxed for g in grades for nb in g.notebooks.values() if not nb.missing and not nb.pending):
        lines += [NO_SANDBOX_WARNING, ""]
    flagged = [md(f"{g.student}/{nb.notebook}") for g in grades for nb in g.notebooks.values()
               if any(n.startswith("FLAGGED") for n in nb.notes)]
    if flagged:
        lines += ["**Flagged for a human look** (code that reaches for the grading machinery or the call stack; "
                  "see their feedback): " + ", ".join(flagged), ""]
    lines += ["## Exercises", "", "| exercise | points | passed | failed | not attempted | not submitted | "
              "most common failures |", "|---|---|---|---|---|---|---|"]
    for ex in ALL_EXERCISES:
        counts: Counter = Counter()
        messages: Counter = Counter()
        for g in grades:
            nb = g.notebooks[ex.notebook]
            if nb.missing or nb.pending:
                counts["missing"] += 1
                continue
            r = nb.results.get(ex.id, {})
            status = r.get("status", "failed")
            counts[status] += 1
            if status == "failed":
                messages[gist(r.get("message", ""))] += 1
        common = "; ".join(f"{md(m)} (×{n})" for m, n in messages.most_common(3)) or "–"
        lines.append(f"| {ex.id} `{ex.function}` | {ex.points} | {counts['passed']} | {counts['failed']} | "
                     f"{counts['not attempted']} | {counts['missing']} | {common} |")
    lines += ["", "## Totals", "", "```"]
    totals = Counter(g.total() for g in grades)
    width = max(totals.values(), default=0)
    for t in range(MAX_POINTS + 1):
        if totals[t] or t in (0, MAX_POINTS):
            bar = "#" * round(40 * totals[t] / width) if width else ""
            lines.append(f"{t:>4} | {bar} {totals[t]}")
    lines += ["```", ""]
    return "\n".join(lines)


def clean(text: Any) -> Any:
    """Student-supplied text made safe for a terminal: no control characters (escape sequences,
    carriage returns), no invisible reordering or zero-width characters, no line breaks (no
    injected headings)."""
    if not isinstance(text, str):
        return text
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]", "", text)
    return re.sub(r"\s+", " ", text).strip()


_MARKDOWN = re.compile(r"([\\`*\[\]<>|~$&])")


def md(text: Any) -> str:
    """Student-supplied text for a Markdown or HTML page: :func:`clean`, then every character that
    Markdown or HTML would read as markup (emphasis, links, code, tables, tags, comments,
    entities) escaped with a backslash, so it shows as typed and hides nothing after it."""
    return _MARKDOWN.sub(r"\\\1", clean(str(text)))


def csv_cell(text: Any) -> str:
    """Student-supplied text for a CSV cell: :func:`clean`, and a cell that a spreadsheet would read
    as a formula (starting with ``= + - @``, a tab or a carriage return) gets a leading ``'``."""
    text = clean(str(text))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def gist(message: str) -> str:
    """A failure message without the specifics that differ between students (numbers, indices)."""
    # "[calling ]fn(args) on <case>: <what is wrong>": keep what is wrong, without the numbers
    m = (re.match(r"^calling \w+\(.*?\) on .*? (raised \w+: .*)$", message, flags=re.S)
         or re.match(r"^(?:calling )?\w+\(.*?\) on .*?: (.*)$", message, flags=re.S))
    text = m.group(1) if m else message
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    return text[:100]
