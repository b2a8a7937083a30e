# The newcomer's contract: `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The project, installed editable: its build compiles the rule engine's hot modules with mypyc
# in place (rules/*.so, listed in rules/_native.py), again whenever a source changes.
BUILT := $(VENV)/.built
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help venv test test-k8s lint demo run bench bench-quick docs screenshots clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: $(BUILT) ## build .venv with the pinned dependencies and the project (editable, compiled)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Without a C compiler (or if mypyc fails) the install goes on and the engine runs interpreted;
# the last line says which.
$(BUILT): $(STAMP) pyproject.toml setup.py $(wildcard rules/*.py contracts/*.py)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/k8smon --version
	touch $(BUILT)

lint: $(BUILT) ## ruff check, ruff format --check, import layers, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The engine's sources as well (an install without a C compiler runs them): the rules, the
# hostile-input suites and the pipeline oracle, with K8SMON_INTERPRETED=1.
INTERPRETED_TESTS := tests/rules tests/security/test_bad_input.py tests/security/test_memory.py \
	tests/workers/test_scan_lifecycle.py tests/workers/test_finalize_lane.py

test: lint ## lint, the whole suite (in parallel, by file), then the engine's suites interpreted
	$(BIN)/pytest
	K8SMON_INTERPRETED=1 $(BIN)/pytest $(INTERPRETED_TESTS)

# scripts/k8s-assets.sh builds etcd + kube-apiserver into a cache outside the repository on
# first use (about 15 min), or takes KUBEBUILDER_ASSETS as it is (envtest's binaries of any
# release); see docs/agent.md.
test-k8s: $(BUILT) ## the agent against a real etcd + kube-apiserver (tests/k8s)
	assets="$$(bash scripts/k8s-assets.sh)" && \
	KUBEBUILDER_ASSETS="$$assets" K8SMON_K8S_REQUIRED=1 $(BIN)/pytest tests/k8s

demo: $(BUILT) ## a local server with a demo cluster and findings (DEMO_ARGS=--serve to explore it)
	$(BIN)/python -m cli.demo $(DEMO_ARGS)

run: $(BUILT) ## the server, configured from the environment (PORT=8000 HOST=127.0.0.1)
	$(BIN)/k8smon serve --host $(HOST) --port $(PORT)

bench: $(BUILT) ## the benchmarks, full sizes; publishes docs/benchmarks.md and .json
	$(BIN)/python -m bench.run

bench-quick: $(BUILT) ## the benchmarks, small sizes; writes build/bench-quick/ (never docs/)
	$(BIN)/python -m bench.run --quick

docs: $(BUILT) ## regenerate docs/rules from the rule docstrings
	$(BIN)/k8smon rules docs --write docs/rules

screenshots: $(BUILT) ## photograph the admin pages on the bench-sized fleet (docs/screenshots)
	K8SMON_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/web/test_browser_fleet.py -q -n 0

clean: ## remove .venv, instance data, caches and the compiled modules
	rm -rf $(VENV) instance build *.egg-info .pytest_cache .ruff_cache .mypy_cache
	rm -f rules/*.so rules/_native.json k8smon_rules__mypyc.*.so
