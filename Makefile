# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,interop]'
	touch $(STAMP)

# The interop tests need the stock xmlsec1 and openssl programs, the OMF tests Prosody (an XMPP
# pubsub server); install them when we can.
tools:
	@command -v prosody >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q prosody >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q prosody >/dev/null 2>&1)) || \
	    echo "WARNING: could not install prosody; OMF tests will be skipped" >&2; \
	  else echo "WARNING: prosody missing and cannot be installed here; OMF tests will be skipped" >&2; fi; }
	@command -v xmlsec1 >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q xmlsec1 >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q xmlsec1 >/dev/null 2>&1)) || \
	    echo "WARNING: could not install xmlsec1; interop tests will be skipped" >&2; \
	  else echo "WARNING: xmlsec1 missing and cannot be installed here; interop tests will be skipped" >&2; fi; }
	@command -v ip >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q iproute2 >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q iproute2 >/dev/null 2>&1)) || \
	    echo "WARNING: could not install iproute2; the emulated-WAN tests will be skipped" >&2; \
	  else echo "WARNING: ip (iproute2) missing; the emulated-WAN tests will be skipped" >&2; fi; }

demo: $(STAMP)
	$(BIN)/python -m sfa.demo

lint: $(STAMP)
	$(BIN)/ruff check sfa tests
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy sfa tests

unit: $(STAMP) tools
	$(BIN)/pytest --cov=sfa --cov-report=term:skip-covered

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage
