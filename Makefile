# Suanwang: `make run` serves the demo portal, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
NAME ?=
ARGS ?=

.PHONY: install run test lint format bench services stack messages clean

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo
	@echo "  Suanwang portal:  http://$(HOST):$(PORT)/"
	@echo "  REST API docs:    http://$(HOST):$(PORT)/api/docs/"
	@echo "  Health:           http://$(HOST):$(PORT)/healthz"
	@echo
	SUANWANG_TICK_SITES=1 $(VENV)/bin/uvicorn portal.asgi:application --host $(HOST) --port $(PORT) \
		--ws websockets-sansio --ws-per-message-deflate false --no-access-log

test: install
	$(VENV)/bin/pytest $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff format .

bench: install
	$(PY) -m bench $(NAME)

# Make sure PostgreSQL and Redis run on this machine (installs them on Debian if missing).
services:
	bash scripts/services.sh

# Production-like stack on this machine: PostgreSQL, Redis, Celery worker + beat, 2 ASGI processes.
stack: install services
	bash scripts/stack.sh

# A real single-host Slurm with slurmrestd (root; installs Debian's Slurm packages if missing): see README,
# "Real centres (Slurm)". `make run` does not need it.
.PHONY: slurm
slurm:
	bash scripts/local-slurm.sh start

messages: install
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var
	$(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf var .pytest_cache .ruff_cache
