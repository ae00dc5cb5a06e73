# Affinity — the two commands a new user needs:
#   make run    set up, seed the demo store if empty, run web + worker + scheduler (SQLite, no servers)
#   make test   set up and run the whole test suite (uses DATABASE_URL / REDIS_URL when set)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000

.PHONY: run test setup migrate demo lint clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

migrate: setup
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py bootstrap_demo

run: demo
	$(PY) manage.py runstore --port $(PORT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var/ staticfiles/ .pytest_cache/
