# The newcomer's contract: `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-k8s lint demo run bench bench-quick docs clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

# The agent against a real etcd + kube-apiserver (tests/k8s). scripts/k8s-assets.sh builds
# them into a cache outside the repository on first use (about 15 min), or takes
# KUBEBUILDER_ASSETS as it is (envtest's binaries of any release); see docs/agent.md.
test-k8s: $(STAMP)
	assets="$$(bash scripts/k8s-assets.sh)" && \
	KUBEBUILDER_ASSETS="$$assets" K8SMON_K8S_REQUIRED=1 $(BIN)/pytest tests/k8s

demo: $(STAMP)
	$(BIN)/python -m cli.demo

run: $(STAMP)
	$(BIN)/k8smon serve

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

docs: $(STAMP)
	$(BIN)/k8smon rules docs --write docs/rules

clean:
	rm -rf $(VENV) instance build *.egg-info .pytest_cache .ruff_cache
