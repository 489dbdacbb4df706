VENV := .venv
PY := $(VENV)/bin/python

.PHONY: up down test lint format system clean

up: $(VENV)/.installed system  ## run the whole local stack
	$(VENV)/bin/recog up

down:  ## stop what `make up` started
	@if [ -x $(VENV)/bin/recog ]; then $(VENV)/bin/recog down; else echo "nothing to stop"; fi

test: $(VENV)/.installed system  ## ruff, then the whole test suite on real services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

system:
	@bash scripts/install-system.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[worker,dev]'
	touch $@

clean: down
	rm -rf .recog
