# make serve : set up .venv and run the server (embedded defaults: demo ensemble) on :8000
# make test  : set up .venv with the test tools, run the linter (ruff) and the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint setup setup-dev system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools<81" wheel

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps "face_recognition==1.3.0"

setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "face_recognition==1.3.0"

serve: setup
	set -a && . ./configs/serve.env && set +a && $(BIN)/serve run configs/serve.yaml

# system packages the tests use, from Debian: chromium for the browser tests (no browser download), a CJK
# font for the catalogue's names, prometheus and promtool for the metrics and alert-rule tests
system-deps:
	@if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi wenquanyi || ! command -v promtool >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei prometheus >/dev/null; \
	fi

lint: setup-dev
	$(BIN)/ruff check .

test: setup-dev system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
