"""The three floors of mechlib: each imports only the floors below it.

core (``mechlib/*.py`` and ``mechlib/models/``) <- views (``mechlib/views/``), and core <- teaching
(``mechlib/teaching/``): views and teaching both build on the core, and neither imports
the other (grading runs without any plotting or widget library).
Checked twice: statically, on every ``import`` statement of every module, and at run
time, on what importing a floor actually loads.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mechlib"
FLOORS = {
    "core": sorted(PACKAGE.glob("*.py")) + sorted((PACKAGE / "models").rglob("*.py")),
    "views": sorted((PACKAGE / "views").rglob("*.py")),
    "teaching": sorted((PACKAGE / "teaching").rglob("*.py")),
}
DISPLAY_LIBRARIES = ("matplotlib", "ipywidgets", "IPython", "myst_nb")


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def forbidden(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported_modules(path) if m.split(".")[0] in prefixes or m.startswith(prefixes))


def test_every_floor_has_modules():
    assert all(FLOORS.values()), {k: len(v) for k, v in FLOORS.items()}


@pytest.mark.parametrize("path", FLOORS["core"], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_imports_no_view_teaching_or_display_library(path):
    assert forbidden(path, ("mechlib.views", "mechlib.teaching") + DISPLAY_LIBRARIES) == []


@pytest.mark.parametrize("path", FLOORS["views"], ids=lambda p: p.name)
def test_views_import_nothing_from_teaching(path):
    assert forbidden(path, ("mechlib.teaching",)) == []


@pytest.mark.parametrize("path", FLOORS["teaching"], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_teaching_imports_nothing_from_views_or_display_libraries(path):
    assert forbidden(path, ("mechlib.views",) + DISPLAY_LIBRARIES) == []


def test_reference_computations_import_nothing_from_mechlib():
    """The yardstick of tests and checks must be independent of what it measures."""
    assert forbidden(PACKAGE / "teaching" / "reference.py", ("mechlib",)) == []


@pytest.mark.parametrize("module, must_not_load", [
    ("mechlib", ("mechlib.views", "mechlib.teaching") + DISPLAY_LIBRARIES),
    ("mechlib.teaching.registry", ("mechlib.views",) + DISPLAY_LIBRARIES),
    ("mechlib.views.plots", ("mechlib.teaching", "ipywidgets")),
    ("mechlib.views.diagrams", ("mechlib.teaching", "ipywidgets")),
])
def test_importing_a_floor_loads_nothing_above_it(module, must_not_load):
    code = (
        f"import sys, {module}; "
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {must_not_load!r} "
        f"or m.startswith({must_not_load!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


def test_the_core_exports_from_public_modules_only():
    """Everything ``import mechlib`` offers comes from a module a reader may import too."""
    names = imported_modules(PACKAGE / "__init__.py")
    assert sorted(m for m in names if m.split(".")[1:2] and m.split(".")[1].startswith("_")) == []


def test_core_exports_its_public_names():
    import mechlib

    assert len(mechlib.__all__) == len(set(mechlib.__all__))
    missing = [n for n in mechlib.__all__ if not hasattr(mechlib, n)]
    assert missing == []
    public_functions = {n for n, v in vars(mechlib).items()
                        if not n.startswith("_") and callable(v) and getattr(v, "__module__", "").startswith("mechlib.")}
    assert public_functions <= set(mechlib.__all__), public_functions - set(mechlib.__all__)


@pytest.mark.slow  # re-imports the core module by module: some 20 s, so make test, not make check
def test_every_core_module_can_be_imported_first():
    """No import cycle waits for the right order: each module of the core, imported on its own in
    a fresh ``mechlib`` (the libraries below it stay loaded, so this takes seconds), succeeds."""
    modules = sorted({".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
                      for p in FLOORS["core"]})
    code = ("import importlib, sys, torch, transformer_lens\nfailed = []\n"
            f"for name in {modules!r}:\n"
            "    for m in [m for m in sys.modules if m == 'mechlib' or m.startswith('mechlib.')]:\n"
            "        del sys.modules[m]\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as e:\n        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
            "print('\\n'.join(failed))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout
