# nb2prod: `make demo` (fresh machine -> built, served bento) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export BENTOML_DO_NOT_TRACK := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint bench clean

LABEXT := nb2prod/labextension/package.json
FRONTEND := package.json yarn.lock tsconfig.json $(wildcard src/*.ts schema/*.json style/*)

install: $(VENV)/.installed $(LABEXT)

# uv resolves and installs in about 3 minutes where pip's resolver took 15 to 25 on this
# machine; uv is a runtime dependency anyway (bentoml build looks for it).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q 'uv>=0.5'
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]'
	touch $@

# The JupyterLab extension, built with the machine's node and the venv's jlpm; `develop`
# links it into the venv so that a rebuild shows up at the next page load.
$(LABEXT): $(VENV)/.installed $(FRONTEND)
	PATH=$(abspath $(VENV))/bin:$$PATH jlpm install --immutable
	PATH=$(abspath $(VENV))/bin:$$PATH jlpm build:prod
	PATH=$(abspath $(VENV))/bin:$$PATH jupyter labextension develop --overwrite .
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
