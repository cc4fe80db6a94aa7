# shadownet: one-command setup, demo and tests on Debian 12 (run as root).
VENV := .venv
BIN := $(VENV)/bin
DEMO_TOPO ?= ring,6

.PHONY: setup demo test unit integration lint bench clean

setup:
	SHADOWNET_DEV=1 bash vagrant/provision.sh .

demo: setup
	$(BIN)/shadownet lab run pingall --topo $(DEMO_TOPO)

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
