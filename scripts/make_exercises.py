"""Generate the exercise notebooks from the solution notebooks (the single source).

    python scripts/make_exercises.py                 # write exercises/*.ipynb and execute them
    python scripts/make_exercises.py --solutions     # also re-execute solutions/*.ipynb in place
    python scripts/make_exercises.py --check         # exit 1 if exercises/ has drifted from solutions/
    python scripts/make_exercises.py 05_virtual_attention_heads   # only some notebooks

The solution code of each exercise sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, nbgrader's markers; nbgrader's own ``ClearSolutions``
preprocessor replaces each such block with ``raise NotImplementedError()``, which
the self-checks report as "not attempted". Cells tagged ``solution-only`` are
dropped. Both notebook kinds are stored executed, because nbval compares the stored
outputs with a fresh run.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert.preprocessors import TagRemovePreprocessor
from nbgrader.preprocessors import ClearSolutions

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
SOLUTION_ONLY_TAG = "solution-only"


def generate_exercise(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The exercise notebook for ``solution``: solutions cleared, solution-only cells dropped, no outputs."""
    nb = copy.deepcopy(solution)
    # enforce_metadata=False: we use nbgrader's markers without its database of graded cells
    nb, _ = ClearSolutions(enforce_metadata=False).preprocess(nb, {})
    nb, _ = TagRemovePreprocessor(remove_cell_tags={SOLUTION_ONLY_TAG}, enabled=True).preprocess(nb, {})
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def comparable(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What must agree between a generated and a stored exercise notebook: cell kinds, sources and tags
    (outputs, execution counts and cell ids are ignored)."""
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def execute(nb: nbformat.NotebookNode, folder: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh kernel with ``folder`` as working directory."""
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}},
        record_timing=False, store_widget_state=False,
    )
    client.execute()
    return strip_widget_views(nb)


def strip_widget_views(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop stored widget outputs: without a kernel they only show "model not found" in Jupyter and
    Colab (running the cell shows the widget). Their cells are tagged nbval-ignore-output."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    return nb


def names(selected: list[str]) -> list[str]:
    available = sorted(p.stem for p in SOLUTIONS.glob("*.ipynb"))
    unknown = [n for n in selected if n not in available]
    if unknown:
        sys.exit(f"unknown notebook(s) {unknown}; solutions/ has {available}")
    return selected or available


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--check", action="store_true", help="only report drift between exercises/ and solutions/")
    parser.add_argument("--no-execute", action="store_true", help="write exercises without running them")
    parser.add_argument("--solutions", action="store_true", help="also re-execute the solution notebooks in place")
    args = parser.parse_args(argv)

    drifted = []
    for name in names(args.notebooks):
        solution = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4)
        exercise = generate_exercise(solution)
        target = EXERCISES / f"{name}.ipynb"
        if args.check:
            if not target.exists() or comparable(nbformat.read(target, as_version=4)) != comparable(exercise):
                drifted.append(name)
            continue
        if args.solutions:
            print(f"executing solutions/{name}.ipynb", file=sys.stderr)
            nbformat.write(execute(solution, SOLUTIONS), SOLUTIONS / f"{name}.ipynb")
        if not args.no_execute:
            print(f"executing exercises/{name}.ipynb", file=sys.stderr)
            execute(exercise, EXERCISES)
        EXERCISES.mkdir(exist_ok=True)
        nbformat.write(exercise, target)
    if drifted:
        print("exercises out of date (run python scripts/make_exercises.py):", ", ".join(drifted))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
