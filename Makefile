# The two commands of the README: `make reproduce` (the notebook series) and `make test` (the test suite).
# Both create or update the virtual environment in .venv first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PRESET ?= quick
# Tests must never overwrite the committed figures or runs: send them to build/.
TEST_ENV := DIALS_FIGURES_DIR=$(CURDIR)/build/test/figures DIALS_RUNS_DIR=$(CURDIR)/build/test/runs DIALS_RECORDS_DIR=$(CURDIR)/build/test/records MPLBACKEND=Agg
NBVAL_FLAGS := --nbval-lax --nbval-current-env --nbval-sanitize-with .nbval_sanitize.cfg

.PHONY: help venv reproduce train train-sumo status publish-records publish test test-unit test-notebooks lab bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,sumo]'
	@touch $(STAMP)

venv: $(STAMP)  ## create or update .venv with the package and its dev extras

reproduce: $(STAMP)  ## run every notebook with PRESET=smoke|quick|full4|paper (default quick) into build/notebooks/
	$(PY) -m dials_lib.series --preset $(PRESET)

train: $(STAMP)  ## train (or resume) PRESET's runs without the notebooks, niced (the long presets: full4, scale)
	nice -n 10 $(PY) -m dials_lib.series --preset $(PRESET) --train-only

train-sumo: $(STAMP)  ## train (or resume) PRESET's sumo-traffic runs of notebook 11, niced (quick: 9 runs, ~3 CPU-hours)
	nice -n 10 $(PY) -m dials_lib.analysis.sumo_study --preset $(PRESET)

status: $(STAMP)  ## where each training run of PRESET stands (steps done, last return, CPU hours), also while it trains
	$(PY) -m dials_lib.series --preset $(PRESET) --status

publish-records: $(STAMP)  ## copy PRESET's finished runs' records and timed runs to records/ (committed; maintainers)
	$(PY) -c "from dials_lib.analysis.preset_plan import publish_records; print(*publish_records('$(PRESET)'), sep='\n')"

publish: $(STAMP)  ## copy the outputs of the last PRESET run back into notebooks/ (maintainers)
	$(PY) -m dials_lib.series --preset $(PRESET) --publish-only

test: $(STAMP)  ## the whole test suite: unit tests, then every notebook with the smoke preset (both always run)
	@unit=passed; notebooks=passed; \
	$(MAKE) --no-print-directory test-unit || unit=FAILED; \
	$(MAKE) --no-print-directory test-notebooks || notebooks=FAILED; \
	echo "unit tests: $$unit; notebook checks: $$notebooks"; \
	[ $$unit = passed ] && [ $$notebooks = passed ]

test-unit: $(STAMP)  ## unit tests in tests/ (pytest exit 5, "no tests collected", counts as success)
	$(TEST_ENV) $(PY) -m pytest tests -q || [ $$? -eq 5 ]

test-notebooks: $(STAMP)  ## execute every notebook with its smoke defaults under nbval
	$(TEST_ENV) $(PY) -m pytest $(NBVAL_FLAGS) notebooks -q -p no:cacheprovider || [ $$? -eq 5 ]

LAB_ARGS ?=
lab: $(STAMP)  ## open the notebooks in JupyterLab (as root too); more flags with LAB_ARGS="--ip 0.0.0.0 --no-browser"
	$(VENV)/bin/jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# Every benchmark that writes results (sim_traffic, sim_warehouse and sim_ials are parts of simulators.py).
BENCH_ALL := simulators sim_sumo ppo adam compute training stacked_groups dials_groups startup sumo_training_share
BENCH ?= $(BENCH_ALL)
bench: $(STAMP)  ## run the benchmarks (BENCH="ppo adam" for some), writing benchmarks/results/*.json and *.md
	cd benchmarks && for name in $(BENCH); do \
		case " $(BENCH_ALL) " in *" $$name "*) ;; *) echo "BENCH: no benchmark '$$name'; one of: $(BENCH_ALL)"; exit 2;; esac; \
		echo "[bench] $$name.py"; ../$(PY) $$name.py || exit 1; done

lint: $(STAMP)  ## ruff over the package, tests, benchmarks and notebooks
	$(VENV)/bin/ruff check .

clean:  ## remove build outputs (not .venv, not runs/)
	rm -rf build .pytest_cache
