# Two commands for a fresh machine with Python 3.11 and pip:
#   make book   -> .venv, dependencies, the package (editable), the executed book in _build/html,
#                  then the page checks (tools/check_book.py) on that HTML
#   make test   -> the same set-up, then the unit tests and the quick-mode book build + page checks
# and, to run the notebooks yourself:
#   make lab    -> JupyterLab on book/ with this environment's kernel (live progress bars)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export MINARI_DATASETS_PATH ?= $(CURDIR)/data
export PYTHONHASHSEED := 0
# No OpenMP or thread variables are exported: the trainer decides its threads itself, visibly
# (iql_tutorial.speed.threads; override with IQL_THREADS), and the benchmark measures your defaults.
# tqdm.auto falls back to a text bar in notebooks without ipywidgets; its warning about that is
# noise in the rendered book.
export PYTHONWARNINGS ?= ignore:IProgress not found

# The notebooks are executed for the book as the book shows them: every progress bar as one text
# line, its final state, and no ipywidgets (a widget is an empty box in a static page).
# IQL_PROGRESS=final switches iql_tutorial.utils.progress_bar; every kernel runs
# tools/book_kernel_startup.py (IPython's PYTHONSTARTUP) first, which does the same to the
# notebooks' own tqdm.auto bars. tests/test_book.py builds with the same two variables.
BOOK_ENV := IQL_PROGRESS=final PYTHONSTARTUP=$(CURDIR)/tools/book_kernel_startup.py

.PHONY: setup book book-check test unit notebooks lab train results bench gpu-kit lint data clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The full-budget book, then the page checks on the HTML just built (fails when a page fails;
# screenshots in _build/screenshots).
book: setup
	$(BOOK_ENV) $(VENV)/bin/jupyter-book build . --path-output . -W --keep-going
	$(PY) tools/check_book.py _build/html

# The page checks alone, on the last `make book`.
book-check: setup
	$(PY) tools/check_book.py _build/html

# One pytest run, in quick mode (IQL_QUICK=1 shrinks every budget): unit tests, JupyterLab
# (tests/test_lab.py), and the book build + page checks (tests/test_book.py), which executes
# every chapter once (a notebook that raises fails the build).
test: setup
	IQL_QUICK=1 $(PY) -m pytest -q tests -p no:cacheprovider

unit: setup
	$(PY) -m pytest -q tests -m "not book"

# Every chapter through nbmake, in quick mode, without building the book (ad hoc; `make test`
# executes them in its book build).
notebooks: setup
	IQL_QUICK=1 $(PY) -m pytest -q --nbmake book

# JupyterLab on book/, with the kernel of this environment (JUPYTER_PATH puts .venv's `python3`
# kernel first) and MINARI_DATASETS_PATH (exported above). Progress bars are live ipywidgets.
# Pass options with LAB_ARGS, e.g. make lab LAB_ARGS="--no-browser --port=8899".
lab: setup
	JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter $(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR)/book \
		--MappingKernelManager.default_kernel_name=python3 $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The paper's 1,000,000 gradient steps on a GPU; a CPU-sized 100,000 otherwise (override with STEPS=).
# The budget (1M gradient steps on a GPU, 100k on a CPU) and the mode (CUDA graph on a GPU, the
# compiled step on a CPU) are the trainer's own defaults (iql_tutorial.runs.train.default_steps).
train: setup
	$(PY) -m iql_tutorial.train --dataset $(or $(DATASET),iqlbook/pendulum/medium-replay-v0) \
		$(if $(STEPS),--steps $(STEPS)) $(TRAIN_ARGS)

results: setup
	$(PY) -m iql_tutorial.results

bench: setup
	$(PY) -m iql_tutorial.bench $(BENCH_ARGS)

# The wheels a GPU machine without internet needs for tools/gpu_check.sh (its image has PyTorch,
# numpy, h5py, pandas and tqdm but not these): pure Python, for Python 3.12, into .whl/ (ignored;
# the device tool carries it).
GPU_WHEELS := gymnasium==1.4.0 farama-notifications==0.0.6 minari==0.5.4
gpu-kit:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

data: setup
	$(PY) -m iql_tutorial.data build --all

lint: setup
	$(VENV)/bin/ruff check iql_tutorial tests tools book
	$(VENV)/bin/ruff format --check iql_tutorial tests tools book/*.ipynb
	$(VENV)/bin/mypy

clean:
	rm -rf _build runs .pytest_cache
