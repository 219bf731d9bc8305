# digitd developer commands. `make test` is exactly what CI runs (.ci/run).
#
# What each target installs into $(VENV) (exact versions from constraints/pyX.Y.txt):
#   make run, make check   the service only: digitd (numpy, OpenCV, watchdog, matplotlib, PyYAML, LiteRT, tqdm)
#   make train             + [train]: TensorFlow and Keras
#   make test              + [train] and [test]: pytest (tests that train or convert need TensorFlow)

PYTHON   ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV     ?= .venv
# How to create the virtualenv; CI may override (e.g. "python3 -m virtualenv").
VENV_CMD ?= $(PYTHON) -m venv
CONFIG   ?= config.yaml
MNIST    ?= ../shared/data/mnist.npz
PYTEST_ARGS ?=

BIN   := $(VENV)/bin
# Pinned versions per Python version: constraints/py3.11.txt, py3.12.txt, py3.13.txt.
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
CONSTRAINTS ?= constraints/py$(PYVER).txt
RUN_STAMP   := $(VENV)/.digitd-run.stamp
TRAIN_STAMP := $(VENV)/.digitd-train.stamp
TEST_STAMP  := $(VENV)/.digitd-test.stamp

.DEFAULT_GOAL := help
.PHONY: help venv venv-run venv-train run test check train constraints clean

help:
	@echo "make run    - start the service in the foreground with $(CONFIG) (installs the service only)"
	@echo "make test   - run the test suite (what CI runs; installs everything)"
	@echo "make check  - validate $(CONFIG) and print the effective config"
	@echo "make train  - train the model on $(MNIST) (installs TensorFlow and Keras)"
	@echo "make venv   - create $(VENV) with everything (service, training, tests), pinned"
	@echo "make venv-run - create $(VENV) with the service only (what a systemd install needs)"

venv: $(TEST_STAMP)
venv-run: $(RUN_STAMP)
venv-train: $(TRAIN_STAMP)

$(BIN)/python:
	$(VENV_CMD) $(VENV)

$(CONSTRAINTS):
	@echo "no $(CONSTRAINTS): digitd pins its dependencies for Python 3.11, 3.12 and 3.13 (PYTHON=$(PYTHON) is $(PYVER))" >&2
	@exit 1

# Each install is redone only when the dependency files change (or the venv is new).
# A fuller install also satisfies the leaner ones.
$(RUN_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e .
	@touch $@

$(TRAIN_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e '.[train]'
	@touch $(RUN_STAMP) $@

$(TEST_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install -c $(CONSTRAINTS) -e '.[train,test]'
	@touch $(RUN_STAMP) $(TRAIN_STAMP) $@

run: venv-run
	$(BIN)/digitd run --config $(CONFIG)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: venv-run
	$(BIN)/digitd check-config --config $(CONFIG)

train: venv-train
	$(BIN)/python scripts/train.py --data $(MNIST)

# Refresh constraints/pyX.Y.txt from the full venv after changing dependencies.
constraints: venv
	@{ echo "# Exact versions of every package of a full venv on Python $(PYVER) (digitd[train,test]; pip freeze --exclude digitd)."; \
	   echo "# Used by make: pip install -c constraints/py$(PYVER).txt -e . (or '.[train,test]')."; \
	   echo "# Regenerate after changing dependencies: make constraints"; \
	   $(BIN)/python -m pip freeze --exclude digitd; } > $(CONSTRAINTS).new
	@mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .pytest_cache daemon/*.egg-info
