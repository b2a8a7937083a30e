# The newcomer's contract: `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help venv test lint demo run bench bench-quick docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: $(STAMP) ## build .venv with the pinned dependencies and the project (editable)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

lint: $(STAMP) ## ruff check, ruff format --check, import layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint ## lint, then the whole suite (in parallel, by file)
	$(BIN)/pytest

demo: $(STAMP) ## a local server with a demo cluster and findings (DEMO_ARGS=--serve to explore it)
	$(BIN)/python -m cli.demo $(DEMO_ARGS)

run: $(STAMP) ## the server, configured from the environment (PORT=8000 HOST=127.0.0.1)
	$(BIN)/k8smon serve --host $(HOST) --port $(PORT)

bench: $(STAMP) ## the benchmarks (docs/benchmarks.md)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP) ## the benchmarks, small sizes
	$(BIN)/python -m bench.run --quick

docs: $(STAMP) ## regenerate docs/rules from the rule docstrings
	$(BIN)/k8smon rules docs --write docs/rules

clean: ## remove .venv, instance data and caches
	rm -rf $(VENV) instance build *.egg-info .pytest_cache .ruff_cache
