# deconfetti: `make demo` sets up and scans the shipped example; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf demo-output
	$(BIN)/deconfetti scan "$$($(BIN)/python -c 'import deconfetti; print(deconfetti.example_path())')" --out demo-output
	@echo "demo outputs in demo-output/"

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-output build src/*.egg-info
