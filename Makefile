# The study's two set-up commands: `make report` and `make test` (see README.md).
PYTHON ?= python3
PROFILE ?= mini
PLAN ?=
JOBS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install data report test nbval notebooks clean distclean help

help:
	@echo "make report     run the profile's plan headless (PROFILE=$(PROFILE); PLAN=quick|full, JOBS=N) into reports/ and render reports/index.html"
	@echo "make test       the test suite: unit tests, every notebook on the smoke profile, nbval over the notebooks that do not train (temporary folders)"
	@echo "make nbval      nbval over every notebook at its committed defaults (trains the mini runs: slow)"
	@echo "make notebooks  re-execute the committed notebooks in place (refresh their outputs)"
	@echo "make clean      remove what make report made: runs, caches, the generated data, executed notebooks and HTML"
	@echo "make distclean  also remove the virtual environment"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m asc_lib.config.kernel >/dev/null   # kernels of this environment: no TCP notice under papermill
	touch $(STAMP)

install: $(STAMP)

data: install
ifneq ($(filter $(PROFILE),mini smoke),)
	$(BIN)/python -m asc_lib.data.minidata --profile $(PROFILE)
endif

report: data
	$(BIN)/python -m asc_lib.study.report --profile $(PROFILE) $(if $(PLAN),--plan $(PLAN)) $(if $(JOBS),--jobs $(JOBS))

test: install               # the tests read the mini data and the smoke data (generated once, kept in data/)
	$(BIN)/python -m asc_lib.data.minidata --profile mini
	$(BIN)/python -m asc_lib.data.minidata --profile smoke
	$(BIN)/python -m pytest $(PYTEST_ARGS)

nbval: data
	$(BIN)/python -m pytest notebooks $(PYTEST_ARGS)

notebooks: data
	$(BIN)/python -m asc_lib.study.notebooks notebooks/*.ipynb

clean:
	rm -rf reports/*.ipynb reports/html reports/index.html reports/runs.json reports/tables reports/benchmarks
	rm -rf data/runs data/cache data/mini data/smoke

distclean: clean
	rm -rf $(VENV)
