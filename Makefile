# iecast developer commands. `make setup` is idempotent; `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo gallery serve clean

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
	$(PY) -m iecast.cli.demo

# The README's gallery: the default model on three training photos x four public-domain paintings
# of the shared data (expected beside this repository, in ../shared/data).
DATA ?= ../shared/data
gallery: setup
	$(PY) scripts/make_gallery.py --weights default --size 192 -o docs/gallery.jpg \
	    --content $(DATA)/content/c001_coco_train.jpg $(DATA)/content/c004_coco_cat_bench.jpg $(DATA)/content/c013_dog_bicycle.jpg \
	    --style $(DATA)/style/s001_kandinsky_composition_vii.jpg $(DATA)/style/s003_picabia_udnie.jpg \
	        $(DATA)/style/s004_hokusai_great_wave.jpg $(DATA)/style/s030_vangogh_starry_night.jpg

# The local web page; `make serve WEIGHTS=path/to/model.safetensors PORT=8000` for other weights.
WEIGHTS ?= default
PORT ?= 8000
serve: setup
	$(PY) -m iecast.cli serve --weights $(WEIGHTS) --port $(PORT)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
