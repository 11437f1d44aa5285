"""One home for the repository URL: ``_config.yml``'s ``repository.url`` and ``.branch``.

The Colab and Binder buttons of the built book are made from those two keys by Jupyter
Book. Every notebook's first cell (the Colab setup cell) and the README's Colab links
are written from them by this script, so that a fork changes them in one command:

    python scripts/set_repository.py --url https://github.com/<you>/<repo> [--ref v1.0]

``--ref`` (the ``branch`` key) is the branch or tag that the launch buttons open *and*
that the setup cell installs ``mechlib`` from, so a notebook and its library come from
the same ref; set it to a release tag to pin a course to one version. With no options
the script rewrites the files from the current ``_config.yml``; ``--check`` only reports
what disagrees (exit status 1), as ``tests/book/test_notebook_setup.py`` does.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
README = ROOT / "README.md"
NOTEBOOK_FOLDERS = ("chapters", "exercises", "solutions")

SETUP_CELL = '''\
# Setup: in Google Colab this installs mechlib; elsewhere it does nothing.
import importlib.util
import sys

IN_COLAB = "google.colab" in sys.modules
REPO = "{url}"
REF = "{ref}"  # the branch or tag the book is built from
if IN_COLAB and importlib.util.find_spec("mechlib") is None:
    %pip install -q "mechlib[views,real] @ git+{{REPO}}@{{REF}}"'''

# README: links of the form https://colab.research.google.com/github/<owner>/<repo>/blob/<ref>/...
README_COLAB = re.compile(r"(https://colab\.research\.google\.com/github/)[^/\s`]+/[^/\s`]+/blob/[^/\s`]+/")


def read_config() -> tuple[str, str]:
    """``(url, ref)`` from ``_config.yml``."""
    repo = yaml.safe_load(CONFIG.read_text())["repository"]
    return repo["url"].rstrip("/"), str(repo.get("branch", "main"))


def setup_cell(url: str, ref: str) -> str:
    """The first code cell of every notebook, for the repository ``url`` at ``ref``."""
    return SETUP_CELL.format(url=url, ref=ref)


def notebooks() -> list[Path]:
    return sorted(p for folder in NOTEBOOK_FOLDERS for p in (ROOT / folder).glob("*.ipynb"))


def github_path(url: str) -> str:
    """``https://github.com/owner/repo`` -> ``owner/repo``."""
    m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", url)
    if m is None:
        raise SystemExit(f"repository.url must look like https://github.com/<owner>/<repo>; got {url!r}")
    return m.group(1)


def readme_text(text: str, url: str, ref: str) -> str:
    return README_COLAB.sub(lambda m: f"{m.group(1)}{github_path(url)}/blob/{ref}/", text)


def write_config(url: str | None, ref: str | None) -> None:
    """Change ``repository.url`` / ``.branch`` in ``_config.yml`` in place, keeping its comments."""
    text = CONFIG.read_text()
    if url is not None:
        github_path(url)
        text = re.sub(r"(?m)^(repository:\n(?:  .*\n)*?  url: ).*$", lambda m: m.group(1) + url, text)
    if ref is not None:
        text = re.sub(r"(?m)^(repository:\n(?:  .*\n)*?  branch: ).*$", lambda m: m.group(1) + ref, text)
    CONFIG.write_text(text)


def disagreements(url: str, ref: str) -> list[str]:
    """What does not match ``(url, ref)``: notebooks whose setup cell differs, and the README."""
    wanted = setup_cell(url, ref)
    out = []
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        links_differ = any(readme_text(c.source, url, ref) != c.source for c in nb.cells if c.cell_type == "markdown")
        if first.source != wanted or links_differ:
            out.append(str(path.relative_to(ROOT)))
    text = README.read_text()
    if readme_text(text, url, ref) != text or not README_COLAB.search(text):
        out.append("README.md")
    return out


def rewrite(url: str, ref: str) -> list[str]:
    """Write the setup cell into every notebook, and the Colab links into the README and into
    the notebooks' markdown (an exercise page's "open this notebook in Colab").

    A notebook whose first code cell is not a setup cell (a new one) gets the setup
    cell inserted before it; nothing of the notebook's own code is replaced.
    """
    changed = []
    wanted = setup_cell(url, ref)
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        links = 0
        for c in nb.cells:
            if c.cell_type == "markdown" and readme_text(c.source, url, ref) != c.source:
                c.source = readme_text(c.source, url, ref)
                links += 1
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is not None and first.source.startswith(SETUP_CELL.splitlines()[0]):
            if first.source == wanted and not links:
                continue
            first.source = wanted
        else:  # a new notebook: put the setup cell in front of its first code cell
            at = nb.cells.index(first) if first is not None else len(nb.cells)
            nb.cells.insert(at, nbformat.v4.new_code_cell(wanted))
        nbformat.write(nb, path)
        changed.append(str(path.relative_to(ROOT)))
    text = README.read_text()
    new = readme_text(text, url, ref)
    if new != text:
        README.write_text(new)
        changed.append("README.md")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="new repository URL, https://github.com/<owner>/<repo>")
    parser.add_argument("--ref", help="branch or tag the buttons open and the setup cell installs")
    parser.add_argument("--check", action="store_true", help="only report what disagrees with _config.yml")
    args = parser.parse_args(argv)
    if args.check:
        bad = disagreements(*read_config())
        for item in bad:
            print(f"disagrees with _config.yml: {item}")
        return 1 if bad else 0
    if args.url or args.ref:
        write_config(args.url.rstrip("/") if args.url else None, args.ref)
    changed = rewrite(*read_config())
    print(f"repository {read_config()[0]} at {read_config()[1]}: rewrote {len(changed)} file(s)")
    for item in changed:
        print(f"  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
