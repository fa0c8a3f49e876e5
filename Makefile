# deconfetti: `make demo` sets up, scans and repairs the shipped example; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test browser clean tclean-runs tclean-runs-injected tclean-runs-explore

$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    rm -rf $(VENV); apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "make: $(PYTHON) -m venv failed; install Debian's python3-venv (sudo apt-get install python3-venv)"; exit 1; fi; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

# the test-only packages (pytest, selenium, hypothesis, spectral-cube) for `make test` only
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

demo: $(STAMP)
	rm -rf demo-output
	$(BIN)/deconfetti scan "$$($(BIN)/python -c 'import deconfetti; print(deconfetti.example_path())')" --out demo-output --report
	$(BIN)/deconfetti repair demo-output --out demo-output/repaired --startmodel
	$(BIN)/deconfetti report demo-output --overwrite -q
	@echo "demo outputs in demo-output/ (open demo-output/report.html in a browser; repaired products in demo-output/repaired/)"

# the report's browser test uses Debian's chromium and chromedriver
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "make: the tests need chromium and chromedriver (sudo apt-get install chromium chromium-driver)"; exit 1; fi; }

test: $(TEST_STAMP) browser
	$(BIN)/python -m pytest -q

# natural tclean runs for development (benchmarks/make_tclean_runs.py): CASA in its own venv
.casa-venv/.installed:
	$(PYTHON) -m venv .casa-venv
	.casa-venv/bin/python -m pip install --quiet casatools casatasks casadata six numpy scipy astropy matplotlib
	touch $@

tclean-runs: .casa-venv/.installed
	.casa-venv/bin/python benchmarks/make_tclean_runs.py --out tclean-runs

# after tclean-runs: fakes injected into those runs, residual and image recomputed by CASA (benchmarks/inject_tclean_runs.py)
tclean-runs-injected: .casa-venv/.installed
	.casa-venv/bin/python benchmarks/inject_tclean_runs.py --runs tclean-runs --out tclean-runs-injected

# the exploratory natural runs (benchmarks/explore_tclean_settings.py: stalled and blown-up channels)
tclean-runs-explore: .casa-venv/.installed
	.casa-venv/bin/python benchmarks/explore_tclean_settings.py --out tclean-runs/explore

clean:
	rm -rf $(VENV) demo-output build src/*.egg-info
