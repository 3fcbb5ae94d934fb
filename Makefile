# The study's two set-up commands: `make report` and `make test` (see README.md).
PYTHON ?= python3
PROFILE ?= mini
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install data report test notebooks clean help

help:
	@echo "make report   run every notebook headless (profile $(PROFILE)) into reports/ and render reports/index.html"
	@echo "make test     run the whole test suite (unit tests + nbval over notebooks/)"
	@echo "make notebooks  re-execute the committed notebooks in place (refresh their outputs)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

data: install
ifeq ($(PROFILE),mini)
	$(BIN)/python -m asc_lib.minidata --profile mini
endif

report: data
	$(BIN)/python -m asc_lib.report --profile $(PROFILE)

test: data
	$(BIN)/python -m pytest $(PYTEST_ARGS)

notebooks: data
	$(BIN)/python -m asc_lib.notebooks notebooks/*.ipynb

clean:
	rm -rf reports/*.ipynb reports/html reports/index.html reports/runs.json data/cache
