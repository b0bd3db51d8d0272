# iecast developer commands. `make setup` is idempotent; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-ci.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-ci.txt
	$(PY) -m pip install -q -c requirements-ci.txt -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
