# nb2prod: `make demo` (fresh machine -> built, served bento) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export BENTOML_DO_NOT_TRACK := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install
	$(PY) scripts/demo.py notebooks/churn.ipynb

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check nb2prod tests scripts benchmarks
	$(VENV)/bin/ruff format --check nb2prod tests scripts benchmarks

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf bentos/*/ bentos/*.bento bentos/.*-* .pytest_cache
