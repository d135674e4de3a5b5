# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint package bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## run: emulators + both functions on 127.0.0.1; prints "ready"; Ctrl-C stops it all
run: $(STAMP)
	$(PY) -m lib.localstack

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

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
