# mqat-search: set up and run. Only Python 3.10+ (with venv) is needed beforehand.
#   make quickstart   set up, then run the quickstart search (local Ray, CPU, about 12 minutes after setup)
#   make detect       set up, then run the detection search (local Ray, CPU, about 15 minutes)
#   make test         set up, then lint (ruff, mypy) and run the test suite
#   make demo         set up, then run the library demo
# torch is installed first, at TORCH_VERSION, so pip never resolves a multi-GB build by itself, with
# the torchvision made for it (the classify task's model builders); on a GPU machine pick yours, e.g.
#   make test TORCH_VERSION=2.9.1 TORCHVISION_VERSION=0.24.1 TORCH_INDEX=https://download.pytorch.org/whl/cu128
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCHVISION_VERSION ?= 0.28.0
TORCH_INDEX ?=
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(TORCH_VERSION)-$(TORCHVISION_VERSION)
TORCH_PIP_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: setup quickstart detect demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==$(TORCH_VERSION)" "torchvision==$(TORCHVISION_VERSION)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	$(BIN)/python -m mqat.build_kernel   # the fused LSQ CPU kernel, compiled once here (~1 min)
	touch $@

quickstart: setup
	$(BIN)/mqat search --config configs/quickstart.yaml

detect: setup
	$(BIN)/mqat search --config configs/detect.yaml

demo: setup
	$(BIN)/python -m mqat.demo

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
