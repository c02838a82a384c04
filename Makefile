# Two commands for a fresh machine with Python 3.11 and pip:
#   make book   -> .venv, dependencies, the package (editable), the executed book in _build/html
#   make test   -> the same set-up, then unit tests, notebooks (quick mode), book build + browser checks
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export MINARI_DATASETS_PATH ?= $(CURDIR)/data
export PYTHONHASHSEED := 0
# OpenMP threads that sleep instead of spinning while they wait: with the default (spinning),
# one update of the 2-thread CPU build ran 30x slower whenever another process used a core.
export OMP_WAIT_POLICY ?= PASSIVE
# tqdm.auto falls back to a text bar in notebooks without ipywidgets; its warning about that is
# noise in the rendered book.
export PYTHONWARNINGS ?= ignore:IProgress not found

.PHONY: setup book test unit notebooks book-check train results bench lint data clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

book: setup
	$(VENV)/bin/jupyter-book build . --path-output . -W --keep-going

# One pytest run: unit tests, the book build + browser checks (tests/test_book.py), and every
# chapter executed through nbmake, all in quick mode (IQL_QUICK=1 shrinks every budget).
test: setup
	IQL_QUICK=1 $(PY) -m pytest -q tests book --nbmake --nbmake-timeout=900 -p no:cacheprovider

unit: setup
	$(PY) -m pytest -q tests -m "not book"

notebooks: setup
	IQL_QUICK=1 $(PY) -m pytest -q --nbmake book

# The paper's 1,000,000 gradient steps on a GPU; a CPU-sized 100,000 otherwise (override with STEPS=).
train: setup
	$(PY) -m iql_tutorial.train --dataset $(or $(DATASET),iqlbook/pendulum/medium-replay-v0) --device auto \
		--steps $(or $(STEPS),$(shell $(PY) -c "import torch; print(1000000 if torch.cuda.is_available() else 100000)")) \
		$(shell $(PY) -c "import torch; print('' if torch.cuda.is_available() else '--compile')") $(TRAIN_ARGS)

results: setup
	$(PY) -m iql_tutorial.results

bench: setup
	$(PY) -m iql_tutorial.bench $(BENCH_ARGS)

data: setup
	$(PY) -m iql_tutorial.data build --all

lint: setup
	$(VENV)/bin/ruff check iql_tutorial tests book
	$(VENV)/bin/ruff format --check iql_tutorial tests

clean:
	rm -rf _build runs .pytest_cache
