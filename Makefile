# mqat-search: set up and run. Only Python 3.10+ (with venv) is needed beforehand.
#   make quickstart   set up, then run the quickstart search (local Ray, CPU, about 13 minutes after setup)
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

# The bench's peers (python -m bench --only peers): NNCF's HAWQ and ModelOpt's auto_quantize, each in its
# own venv under .venv-peers/ (never in the project's), torch and torchvision held at the project's versions
# by a constraint file: a bare resolve may pick another torch of gigabytes. The folder holds a .gitignore of its
# own, so git never sees it. A venv is made again when its requirements file is newer than it (3.5 minutes).
.PHONY: peers
peers:
	mkdir -p .venv-peers && echo '*' > .venv-peers/.gitignore
	printf 'torch==%s\ntorchvision==%s\n' "$(TORCH_VERSION)" "$(TORCHVISION_VERSION)" > .venv-peers/constraints.txt
	for peer in nncf modelopt; do \
	  stamp=.venv-peers/$$peer/.installed-$(TORCH_VERSION); \
	  if [ "$$stamp" -nt bench/peers/requirements-$$peer.txt ]; then continue; fi; \
	  $(PYTHON) -m venv .venv-peers/$$peer && \
	  .venv-peers/$$peer/bin/python -m pip install --quiet --disable-pip-version-check \
	    "torch==$(TORCH_VERSION)" "torchvision==$(TORCHVISION_VERSION)" $(TORCH_PIP_ARGS) && \
	  .venv-peers/$$peer/bin/python -m pip install --quiet --disable-pip-version-check \
	    -c .venv-peers/constraints.txt -r bench/peers/requirements-$$peer.txt && \
	  touch "$$stamp" || exit 1; \
	done
