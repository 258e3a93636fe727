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
# pubsub server), the emulated-WAN tests ip; install them when we can (root with apt), else warn.
# $(call ensure,COMMAND,DEBIAN PACKAGE,WHAT IS SKIPPED WITHOUT IT)
define ensure
	@command -v $(1) >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q $(2) >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(2) >/dev/null 2>&1)) || \
	    echo "WARNING: could not install $(2); $(3) will be skipped" >&2; \
	  else echo "WARNING: $(1) missing and cannot be installed here; $(3) will be skipped" >&2; fi; }
endef

tools:
	$(call ensure,prosody,prosody,the OMF tests)
	$(call ensure,xmlsec1,xmlsec1,the interop tests)
	$(call ensure,ip,iproute2,the emulated-WAN tests)

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
