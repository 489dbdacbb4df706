VENV := .venv
PY := $(VENV)/bin/python

.PHONY: up down test lint format system system-docker clean images compose-up compose-down constraints

up: $(VENV)/.installed system  ## run the whole local stack
	$(VENV)/bin/recog up

down:  ## stop what `make up` started
	@if [ -x $(VENV)/bin/recog ]; then $(VENV)/bin/recog down; else echo "nothing to stop"; fi

test: $(VENV)/.installed system-docker  ## ruff, then the whole test suite on real services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest
	$(VENV)/bin/pytest -m compose tests/compose

images: $(VENV)/.installed system-docker  ## build every image from Debian, npm and PyPI (no Docker Hub)
	$(VENV)/bin/recog images

compose-up: $(VENV)/.installed system-docker  ## the whole stack under docker compose, healthy
	$(VENV)/bin/recog compose-up

compose-down:  ## stop the compose stack and the engine compose-up started; VOLUMES=1 removes the data
	@if [ -x $(VENV)/bin/recog ]; then $(VENV)/bin/recog compose-down $(if $(VOLUMES),--volumes); else echo "nothing to stop"; fi

constraints:  ## rewrite constraints.txt from the venv, after changing pyproject.toml's dependencies
	bash scripts/constraints.sh

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

system:
	@bash scripts/install-system.sh

system-docker:
	@bash scripts/install-system.sh docker

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[worker,dev]'
	touch $@

clean: down compose-down
	rm -rf .recog
