# digitd developer commands. `make test` is exactly what CI runs (.ci/run).

PYTHON   ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV     ?= .venv
# How to create the virtualenv; CI may override (e.g. "python3 -m virtualenv").
VENV_CMD ?= $(PYTHON) -m venv
CONFIG   ?= config.yaml
MNIST    ?= ../shared/data/mnist.npz

BIN   := $(VENV)/bin
STAMP := $(VENV)/.digitd-install.stamp

.DEFAULT_GOAL := help
.PHONY: help venv run test check train constraints clean

help:
	@echo "make run    - start the service in the foreground with $(CONFIG)"
	@echo "make test   - run the test suite (what CI runs)"
	@echo "make check  - validate $(CONFIG) and print the effective config"
	@echo "make train  - train the model on $(MNIST)"
	@echo "make venv   - create $(VENV) and install digitd with pinned dependencies"

venv: $(STAMP)

$(BIN)/python:
	$(VENV_CMD) $(VENV)

# Reinstalled only when the dependency files change (or the venv is new).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	@touch $@

run: venv
	$(BIN)/digitd run --config $(CONFIG)

test: venv
	$(BIN)/python -m pytest

check: venv
	$(BIN)/digitd check-config --config $(CONFIG)

train: venv
	$(BIN)/python scripts/train.py --data $(MNIST)

# Refresh constraints.txt from the current venv after changing dependencies.
constraints: venv
	@{ echo "# Exact versions of every package in .venv (pip freeze --exclude digitd)."; \
	   echo "# Used by 'make venv': pip install -c constraints.txt -e '.[test]'."; \
	   echo "# Regenerate after changing dependencies: make constraints"; \
	   $(BIN)/python -m pip freeze --exclude digitd; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache daemon/*.egg-info
