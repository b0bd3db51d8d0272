# iecast developer commands. `make setup` is idempotent; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo serve clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-ci.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-ci.txt
	$(PY) -m pip install -q -c requirements-ci.txt -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

# Stylize the bundled sample with the best trained weights available offline; with none installed,
# say how to get them and show Gatys optimisation on the same encoder instead.
demo: setup
	$(PY) -m iecast.demo

# The local web page; `make serve WEIGHTS=path/to/model.safetensors PORT=8000` for other weights.
WEIGHTS ?= default
PORT ?= 8000
serve: setup
	$(PY) -m iecast.cli serve --weights $(WEIGHTS) --port $(PORT)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
