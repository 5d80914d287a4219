# Two entry points, each working from a fresh clone:
#   make demo   set up (only what the demo needs) and run the end-to-end demo on the embedded store
#   make test   set up (system packages, virtual environment) and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.abkit-demo
TEST_STAMP := $(VENV)/.abkit-test
BENCH_STAMP := $(VENV)/.abkit-bench

.PHONY: demo test lint typecheck bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each stamp records one install; pip's own progress is shown and kept in install.log.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing abkit[demo] into $(VENV) (log: $(VENV)/install.log)"
	$(BIN)/python -m pip install --progress-bar on -e '.[demo]' 2>&1 | tee $(VENV)/install.log \
	  | grep -E '^(Collecting|Installing|Successfully)' ; test $${PIPESTATUS[0]} -eq 0
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing abkit[all] into $(VENV) (log: $(VENV)/install.log)"
	$(BIN)/python -m pip install -e '.[all]' > $(VENV)/install.log 2>&1 \
	  || { tail -n 40 $(VENV)/install.log; exit 1; }
	@touch $@ $(DEMO_STAMP)

$(BENCH_STAMP): $(TEST_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all,bench]'
	@touch $@

demo: $(DEMO_STAMP)
	$(BIN)/abkit demo --scenario all

system-deps:
	bash scripts/system-deps.sh

# two workers (the machine's cores); the Spark tests share one (loadgroup "spark"): one
# cluster, and the Connect test after every test of the classic session it stops
test: system-deps $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

bench: system-deps $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
