# The study's two set-up commands: `make report` and `make test` (see README.md).
PYTHON ?= python3
PROFILE ?= mini
PLAN ?=
JOBS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install data report test notebooks clean distclean help

help:
	@echo "make report     run the profile's plan headless (PROFILE=$(PROFILE); PLAN=quick|full, JOBS=N) into reports/ and render reports/index.html"
	@echo "make test       run the whole test suite (unit tests + nbval over notebooks/), in temporary folders"
	@echo "make notebooks  re-execute the committed notebooks in place (refresh their outputs)"
	@echo "make clean      remove what make report made: runs, caches, the mini data, executed notebooks and HTML"
	@echo "make distclean  also remove the virtual environment"

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
	$(BIN)/python -m asc_lib.report --profile $(PROFILE) $(if $(PLAN),--plan $(PLAN)) $(if $(JOBS),--jobs $(JOBS))

test: data
	$(BIN)/python -m pytest $(PYTEST_ARGS)

notebooks: data
	$(BIN)/python -m asc_lib.notebooks notebooks/*.ipynb

clean:
	rm -rf reports/*.ipynb reports/html reports/index.html reports/runs.json reports/tables reports/benchmarks
	rm -rf data/runs data/cache data/mini

distclean: clean
	rm -rf $(VENV)
