# `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DASHBOARD := integration_monitoring/admin/dashboard
VENDOR := $(DASHBOARD)/vendor/chart.umd.js
MICROSOFT := tests/microsoft/node_modules/.package-lock.json
CHROMIUM := /usr/bin/chromium
PROMTOOL := /usr/bin/promtool

.PHONY: run test lint bench clean venv screenshot

venv: $(STAMP)

# Front-end dependencies from the npm registry, served by the app (no CDN).
$(VENDOR): $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json
	cd $(DASHBOARD) && npm ci --no-audit --no-fund --silent
	mkdir -p $(DASHBOARD)/vendor
	cp $(DASHBOARD)/node_modules/chart.js/dist/chart.umd.js $@

# Microsoft's own checkers for the tests, from the npm registry: Kusto.Language (the KQL
# analyser behind Log Analytics) and Azurite (the Storage emulator).
$(MICROSOFT): tests/microsoft/package.json tests/microsoft/package-lock.json
	cd tests/microsoft && npm ci --no-audit --no-fund --silent
	touch $@

# Debian's prometheus package ships promtool; the rule tests need only that binary.
$(PROMTOOL):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
	-systemctl disable --now prometheus 2>/dev/null

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

run: $(STAMP) $(VENDOR)
	$(BIN)/python -m integration_monitoring serve

test: $(STAMP) $(VENDOR) $(MICROSOFT) $(CHROMIUM) $(PROMTOOL)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n auto --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench

# Regenerates docs/dashboard.png from the local app with demo data.
screenshot: $(STAMP) $(VENDOR) $(CHROMIUM)
	$(BIN)/python -m tests.screenshot docs/dashboard.png

clean:
	rm -rf $(VENV) .data .pytest_cache $(DASHBOARD)/node_modules $(DASHBOARD)/vendor \
		tests/microsoft/node_modules
