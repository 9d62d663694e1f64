# nb2prod: `make demo` (fresh machine -> built, served bento) and `make test` (the whole suite,
# with what it needs installed first). `make test-fast` is the tier to run before every commit.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export BENTOML_DO_NOT_TRACK := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install lock demo test test-fast test-js test-deps lint bench clean

LABEXT := nb2prod/labextension/package.json
FRONTEND := package.json yarn.lock tsconfig.json $(wildcard src/*.ts schema/*.json style/*)

install: $(VENV)/.installed $(LABEXT)

# Exactly the locked versions (requirements.lock, made by `make lock`), so two fresh machines
# pin the same packages into the same notebook's bento and build the same version. uv installs
# in about 3 minutes where pip's resolver took 15 to 25 on this machine; uv is a runtime
# dependency anyway (bentoml build looks for it), bootstrapped at its locked version. nb2prod
# itself goes in without build isolation: its build backend is in the lock (the dev extra).
LOCK := requirements.lock
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q "$$(grep '^uv==' $(LOCK))"
	$(VENV)/bin/uv pip sync -q --compile-bytecode --python $(PY) $(LOCK)
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) --no-deps --no-build-isolation -e .
	touch $@

# Resolve pyproject.toml (with the dev extra) again into requirements.lock, for Python 3.11 and
# later on any platform; pins already in the lock are kept where they still fit
# (`make lock LOCK_FLAGS=--upgrade` moves every package to its newest version).
lock:
	test -x $(VENV)/bin/uv || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install -q 'uv>=0.5'; }
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev --universal --python-version 3.11 \
	  --custom-compile-command 'make lock' $(LOCK_FLAGS) -o $(LOCK)

# The JupyterLab extension, built with the machine's node and the venv's jlpm; `develop`
# links it into the venv so that a rebuild shows up at the next page load.
$(LABEXT): $(VENV)/.installed $(FRONTEND)
	PATH=$(abspath $(VENV))/bin:$$PATH jlpm install --immutable
	PATH=$(abspath $(VENV))/bin:$$PATH jlpm build:prod
	PATH=$(abspath $(VENV))/bin:$$PATH jupyter labextension develop --overwrite .
	touch $@

demo: install
	$(PY) scripts/demo.py notebooks/churn.ipynb

# Everything: the frontend's Jest tests, then the unit, e2e and browser tiers of pytest.
test: install test-deps test-js
	$(PY) -m pytest -q tests

# The unit tier (no kernel, no build, no bentoml serve, no browser) and the Jest tests.
test-fast: install test-js
	$(PY) -m pytest -q tests/unit

test-js: $(LABEXT)
	PATH=$(abspath $(VENV))/bin:$$PATH CI=true jlpm test < /dev/null

# The browser tier drives Debian's chromium (Playwright's own browser download cannot work
# here), the Spark tests a Java 17 JVM; install them when missing, as root or through sudo.
test-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v java >/dev/null 2>&1 || [ -x "$${JAVA_HOME:-/nonexistent}/bin/java" ] || { \
	  echo "installing Debian's openjdk-17-jre-headless for the Spark tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

lint: install
	$(VENV)/bin/ruff check nb2prod tests scripts benchmarks
	$(VENV)/bin/ruff format --check nb2prod tests scripts benchmarks

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf bentos/*/ bentos/*.bento bentos/.*-* .pytest_cache
