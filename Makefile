# Two commands set up everything:  `make run` (server with demo data)  and  `make test` (the whole suite).
# Both are idempotent: the venv is rebuilt only when pyproject.toml or constraints.txt change,
# the model is prepared once, and the demo data is loaded once.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export ZHIKU_DATA_DIR ?= $(CURDIR)/data
PYTEST_ARGS ?=

.PHONY: install run test prepare clean-data

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

prepare: install
	$(BIN)/zhiku models prepare
	$(BIN)/zhiku db upgrade

run: prepare
	$(BIN)/zhiku demo load
	$(BIN)/zhiku serve

test: prepare
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

clean-data:
	rm -rf $(ZHIKU_DATA_DIR)
