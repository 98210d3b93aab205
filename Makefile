# gradtrack — `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: run test setup catalogs extract migrate lint typecheck pytest browser poppler clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) catalogs

## Compile the gettext catalogs (locales/*/LC_MESSAGES/messages.po -> .mo)
catalogs: $(STAMP)
	$(BIN)/pybabel compile --statistics -d locales -D messages

## Re-extract the bot's strings into locales/messages.pot and merge them into every .po
extract: $(STAMP)
	$(BIN)/pybabel extract -F locales/babel.cfg -k _ -k N_ --no-location --sort-output \
	  --project=gradtrack -o locales/messages.pot bot conversations storage
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --no-fuzzy-matching --ignore-obsolete

migrate: setup
	$(BIN)/gradtrack migrate

run: setup
	$(BIN)/gradtrack run

## Debian's Chromium for the browser tests (Playwright drives it; nothing is downloaded by it)
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "chromium is missing and we are not root: browser tests will be skipped"; exit 0; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	fi

## Debian's poppler-utils (pdftoppm, pdftotext): the tests render the programme report's PDF
poppler:
	@if ! command -v pdftoppm >/dev/null || ! command -v pdftotext >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "poppler-utils is missing and we are not root: PDF tests will be skipped"; exit 0; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq poppler-utils; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy bot conversations storage tests bench

pytest: setup
	$(BIN)/python -m pytest

test: setup browser poppler lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
