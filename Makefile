# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint package bench soak check-invariants trace-demo screenshots clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## run: emulators + both functions on 127.0.0.1; prints "ready"; Ctrl-C stops it all
run: $(STAMP)
	$(PY) -m lib.tools.localstack

## test: the whole suite; it starts and stops its own emulators
test: $(STAMP)
	$(PY) -m pytest

## lint: ruff on everything, mypy on lib/
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy lib

## package: build the Cloud Functions bundle into build/ and check it imports in a fresh venv
package: $(STAMP)
	$(PY) scripts/package.py

SWEEP_INTERVAL_SECONDS ?= 60

## check-invariants: report operations that break the model's rules; exit 1 if any
## (reads GOOGLE_CLOUD_PROJECT, OPERATIONS_COLLECTION, FIRESTORE_EMULATOR_HOST)
check-invariants: $(STAMP)
	$(PY) -m lib.tools.invariants --sweep-interval-seconds $(SWEEP_INTERVAL_SECONDS)

## bench: starts its own stack, measures, prints the table; writes bench/results.json
## and bench/latency.png (see BENCHMARKS.md)
bench: $(STAMP)
	$(PY) bench/run.py

## soak: ~5 minutes of mixed load with faults injected (writes bench/soak.json),
## then thousands of fuzz cases and property examples
soak: $(STAMP)
	$(PY) scripts/soak.py
	FUZZ_CASES=3000 FUZZ_COVERAGE=1 PROPERTY_EXAMPLES=1000 \
		$(PY) -m pytest -q tests/e2e/test_fuzz.py tests/unit/test_properties.py

## trace-demo: a stack exporting to an in-process OTLP receiver; runs a job, cancels
## one, prints their traces as trees, the lifecycle events and the metrics
trace-demo: $(STAMP)
	$(PY) scripts/trace_demo.py

## screenshots: starts its own stack, makes a few operations, and writes the console's
## PNGs into docs/images/ (Playwright driving Debian's chromium)
screenshots: $(STAMP)
	$(PY) scripts/screenshots.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
