# The newcomer's contract: `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo run bench bench-quick docs screenshots clean

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

# The admin pages photographed by the Chromium test on the bench-sized fleet (docs/operators.md).
screenshots: $(STAMP)
	K8SMON_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/web/test_browser_fleet.py -q

clean:
	rm -rf $(VENV) instance build *.egg-info .pytest_cache .ruff_cache
