# looplab developer tasks. Works from a fresh clone: the targets build .venv themselves.
#
#   make test [PYTEST_ARGS="-k foo -x"]   run the test suite, one worker a core (TEST_WORKERS=0: in one process)
#   make demo                             seed the sample history into looplab-demo.db, open the app
#   make bench                            tracing overhead and writer benchmark
#   make bench-monitoring                 Monitoring/Traces queries on 1,000,000 spans
#   make clean                            remove .venv and caches
#
# PostgreSQL tests run when LOOPLAB_TEST_POSTGRES_URL is set; a throwaway server:
#   export LOOPLAB_TEST_POSTGRES_URL=$$(.ci/postgres.sh start /tmp/looplab-pg)
#   ... ; .ci/postgres.sh stop /tmp/looplab-pg

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
TEST_WORKERS ?= auto

VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip install --quiet --disable-pip-version-check

.PHONY: test deps demo demo-deps bench bench-monitoring clean

test: $(VENV)/.installed-test
	$(VPY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Dependencies only (CI times this separately from the tests).
deps: $(VENV)/.installed-test

# The demo's own SQLite file, so it never mixes with a looplab.db your app writes.
DEMO_DB ?= sqlite:///$(CURDIR)/looplab-demo.db
PORT ?= 8501

demo: $(VENV)/.installed-demo
	$(VENV)/bin/looplab seed --db $(DEMO_DB)
	$(VENV)/bin/looplab ui --db $(DEMO_DB) --port $(PORT)

demo-deps: $(VENV)/.installed-demo

bench: $(VENV)/.installed-test
	$(VPY) -m bench.tracing

bench-monitoring: $(VENV)/.installed-test
	$(VPY) -m bench.monitoring

bench-experiments: $(VENV)/.installed-test  # experiment runner: 500 items vs the ideal, memory up to 20,000 items
	$(VPY) -m bench.experiments

$(VPY):
	$(PYTHON) -m venv $(VENV)

# Stamps: re-install only when pyproject.toml changes. The stamp is written last,
# so an interrupted or failed install is retried on the next run.
$(VENV)/.installed-test: pyproject.toml | $(VPY)
	$(PIP) -e '.[test]'
	@touch $@

$(VENV)/.installed-demo: pyproject.toml | $(VPY)
	$(PIP) -e '.[ui,openai,anthropic]'
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache build dist
	find . \( -path ./.git -o -path './$(VENV)' \) -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' -o -name .pytest_cache \) -type d \
		-prune -exec rm -rf {} +
