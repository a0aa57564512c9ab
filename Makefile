# invoice-sync: two commands do all of the set-up on a fresh machine.
#   make demo   the main job on the local stack (moto server + a ledger sandbox), then stops;
#               LEDGER=xero or LEDGER=freshbooks plays that ledger instead of QuickBooks Online
#   make test   lint, types, template checks, unit, contract, integration and end-to-end tests
# Both create and fill .venv themselves. SAM targets (build, validate) live in mk/sam.mk, the
# template's security scan (checkov, in .venv-checkov) in mk/checkov.mk.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit contract integration e2e local-up clean
.DEFAULT_GOAL := test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

LEDGER ?= quickbooks

demo: $(STAMP)
	$(BIN)/invoice-sync demo --ledger $(LEDGER)

local-up: $(STAMP)
	$(BIN)/invoice-sync local up --ledger $(LEDGER)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

contract: $(STAMP)
	$(BIN)/pytest tests/contract -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e -q

test: lint typecheck lint-template validate
	$(BIN)/pytest -q -n 2 --dist loadfile

clean: sam-clean
	rm -rf $(VENV) .venv-sam $(CHECKOV_VENV) .mypy_cache .ruff_cache .pytest_cache

include mk/sam.mk
include mk/checkov.mk
