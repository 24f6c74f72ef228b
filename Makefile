# The two commands of the README: `make demo` and `make test`. Everything they need is
# installed here into .venv/ from the package registries (no Docker, no other network).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv lint bench clean system-deps

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: venv
	$(BIN)/receivables demo

# Debian tools the tests use to look at what users see: PDFs (pdftotext, pdftoppm) and
# the HTML report (headless Chromium).
system-deps:
	@if ! command -v pdftotext >/dev/null || ! command -v pdftoppm >/dev/null || ! command -v chromium >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils chromium >/dev/null; \
	fi

test: venv system-deps
	$(BIN)/python -m pytest -q

# Issue 8's benchmarks: one JSON document on stdout, benchmarks/RESULTS.md and results.json
# rewritten (~10 minutes on 2 cores). Numbers only: nothing is asserted.
bench: venv
	$(BIN)/python -m benchmarks.run

lint: venv
	$(BIN)/ruff check plugins dags tests

clean:
	rm -rf .airflow .demo .pytest_cache
