# The two commands: `make test` and `make reproduce`. Each bootstraps .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-thorough reproduce bench lint clean venv lessons docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# --dist loadgroup: tests marked with one xdist_group (the fuzz suite's batch of calls run in a
# child process) go to one worker, the rest are spread as usual.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

# The property tests under the thorough hypothesis profile (1000 examples per property). They
# take too long to run all at once on every CI run, so .ci/thorough.py splits them into groups of
# about equal time and each day runs one in turn: SHARE=today (default), SHARE=N or SHARE=all.
SHARE ?= today
THOROUGH_ARGS := $(if $(filter today,$(SHARE)),,$(if $(filter all,$(SHARE)),--all,--share $(SHARE)))

test-thorough: $(STAMP)
	@modules="$$($(PY) .ci/thorough.py $(THOROUGH_ARGS))" && test -n "$$modules" && \
	echo "thorough hypothesis profile on:" $$modules && \
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -n 2 --dist loadgroup -q $$modules

reproduce: $(STAMP)
	$(PY) -m experiments

# XLA's CPU runtime takes each large output from malloc; above glibc's 32 MiB mmap ceiling every
# call then page-faults its output in (NumPy avoids this with huge pages). The second run shows
# the flat kernels with glibc told to keep large blocks on the heap.
bench: $(STAMP)
	$(PY) -m benchmarks
	MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 $(PY) -m benchmarks flat

# Serve the lessons (marimo notebooks) on 127.0.0.1:2718: a gallery of all of them, or one with
# `make lessons LESSON=01`.
lessons: $(STAMP)
	$(VENV)/bin/marimo run $(if $(LESSON),$(wildcard lessons/$(LESSON)_*.py),lessons/) --host 127.0.0.1 --port 2718

# The documentation site, built offline into docs/_build/html. Strict: any warning fails the build
# (-W), all of them are reported (--keep-going), and every page is re-read (-E) so a warning is
# never hidden by an incremental build.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis docs/_build docs/api/generated
