# The study's two set-up commands: `make report` and `make test` (see README.md).
PYTHON ?= python3
PROFILE ?= mini
PLAN ?=
JOBS ?=
DRY ?=
CLUSTER ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
CHROMIUM ?= chromium
SHOTS := index html/05_results html/02_mean_teacher_split5 html/03_domain_pruning_split5

.PHONY: install data report test test-full test-slurm gpu-check nbval notebooks findings screenshots clean distclean help

help:
	@echo "make report     run the profile's plan headless through Snakemake (PROFILE=$(PROFILE); PLAN=quick|full|extended, JOBS=N, DRY=1) into reports/ and render reports/index.html"
	@echo "make test       the test suite: unit tests, every notebook once on the smoke profile, nbval over the notebooks that do not train (temporary folders)"
	@echo "make test-full  make test and the slow checks: learned properties on the mini data, the smoke profile's full plan"
	@echo "make test-slurm a one-node SLURM cluster on this machine runs the smoke plan through sbatch (needs root; installs slurm-wlm and munge)"
	@echo "make gpu-check  every method's steps and a teacher pass on the GPU: device, driver, precision used, memory peak, samples/s against the CPU (a CPU-only machine: says so, exits 0)"
	@echo "make nbval      nbval over every notebook at its committed defaults (trains the mini runs: slow)"
	@echo "make notebooks  re-execute the committed notebooks in place (refresh their outputs)"
	@echo "make findings   write the findings of the profile's runs (paired intervals) into README.md and docs/findings.md"
	@echo "make screenshots  headless-browser views of index.html, 05_results and 02_mean_teacher into reports/screenshots (needs chromium)"
	@echo "make clean      remove what make report made: runs, caches, the generated data, executed notebooks and HTML"
	@echo "make distclean  also remove the virtual environment"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv   # uv: the same install, 2.5 min -> 20 s
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]' \
	  || $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m asc_lib.config.kernel >/dev/null   # kernels of this environment: no TCP notice under papermill
	touch $(STAMP)

install: $(STAMP)

data: install
ifneq ($(filter $(PROFILE),mini smoke),)
	$(BIN)/python -m asc_lib.data.minidata --profile $(PROFILE)
endif

report: install             # the plan through Snakemake (workflow/Snakefile); DRY=1 lists what would run and why
	$(BIN)/python -m asc_lib.study.workflow --profile $(PROFILE) $(if $(PLAN),--plan $(PLAN)) $(if $(JOBS),--jobs $(JOBS)) $(if $(DRY),--dry-run) $(if $(CLUSTER),--cluster $(CLUSTER))

test: install               # the tests read the mini data and the smoke data (generated once, kept in data/)
	$(BIN)/python -m asc_lib.data.minidata --profile mini
	$(BIN)/python -m asc_lib.data.minidata --profile smoke
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-full: install          # make test's tests, the checks marked 'full' and the smoke profile's full plan (splits 5, 100)
	$(BIN)/python -m asc_lib.data.minidata --profile mini
	$(BIN)/python -m asc_lib.data.minidata --profile smoke
	$(BIN)/python -m pytest --full $(PYTEST_ARGS)

gpu-check: install          # the first thing to run on a GPU machine (about five minutes); see docs/gpu.md
	$(BIN)/python -m asc_lib.study.gpu_check

test-slurm: install          # a one-node SLURM cluster on this machine runs the smoke plan (root; installs slurm-wlm)
	$(BIN)/python -m asc_lib.data.minidata --profile smoke
	workflow/test-slurm.sh

nbval: data
	$(BIN)/python -m pytest notebooks $(PYTEST_ARGS)

notebooks: data
	$(BIN)/python -m asc_lib.study.notebooks notebooks/*.ipynb

findings: install             # the generated blocks of README.md and docs/findings.md, from the runs of `make report PLAN=full`
	$(BIN)/python -m asc_lib.study.results --profile $(PROFILE) --readme

screenshots:                  # what a reader sees, rendered by a real browser (apt install chromium)
	@command -v $(CHROMIUM) >/dev/null || { echo "make screenshots needs a headless browser: apt install chromium, or CHROMIUM=<its path>"; exit 1; }
	@test -f reports/index.html || { echo "reports/index.html is missing: run make report first"; exit 1; }
	mkdir -p reports/screenshots
	for page in $(SHOTS); do \
	  $(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,4000 \
	    --screenshot=reports/screenshots/$$(basename $$page).png file://$(CURDIR)/reports/$$page.html 2>/dev/null || exit 1; \
	done

clean:
	rm -rf reports/*.ipynb reports/html reports/index.html reports/plan.json reports/times reports/failed reports/setup reports/.snakemake reports/tables reports/benchmarks reports/screenshots
	rm -rf data/runs data/cache data/mini data/smoke

distclean: clean
	rm -rf $(VENV)
