# START-NET extension: every target bootstraps .venv itself on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PYTHON_FOR_VENV ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.startnet-installed
VENV39 ?= .venv39
DEMO_OUT ?= demo-output

.PHONY: venv system-deps lint py39-check test demo bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# PostgreSQL server (trial tracker tests) and poppler (report rendering check) from Debian.
system-deps:
	@bash tools/install-system-deps.sh

lint: venv
	$(VENV)/bin/ruff check .

# Slicer 5.8 runs Python 3.9: AST rules + byte-compile with .venv39's python3.9, then import every
# module and run small computations there (tools/py39_env.sh fails if no Python 3.9 exists).
py39-check: venv
	@VENV39=$(VENV39) bash tools/py39_env.sh
	PATH="$(CURDIR)/$(VENV39)/bin:$$PATH" $(PY) tools/check_py39.py StartNetExtension
	$(VENV39)/bin/python tools/py39_import_check.py

test: venv system-deps lint py39-check
	$(PY) -m pytest -q Testing

demo: venv
	$(VENV)/bin/startnet demo --out $(DEMO_OUT)

bench: venv
	$(PY) Testing/benchmarks/run.py

clean:
	rm -rf $(VENV) $(VENV39) $(DEMO_OUT) .pytest_cache
