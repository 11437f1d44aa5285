# Two commands (see README): `make book` builds the HTML book, `make test` runs every test.
# Both set up a local virtual environment first, from nothing but Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book test setup browser screenshots clean

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

# Debian's chromium for the browser test (Playwright cannot download its own browser here)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

book: setup
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

# unit tests, the book build + headless-browser test, and nbval on every notebook;
# one thread per process: two xdist workers share two cores
test: setup browser
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadscope -p no:cacheprovider tests \
	  --nbval chapters exercises solutions --nbval-sanitize-with tests/sanitize.cfg

# a full-page PNG of every built page, for looking at what readers see
screenshots: book browser
	$(PY) scripts/screenshots.py

clean:
	rm -rf _build $(VENV)
