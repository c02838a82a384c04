# Two commands for a fresh machine with Python 3.11 and pip:
#   make book   -> .venv, dependencies, the package (editable), the executed book in _build/html,
#                  then the page checks (tools/check_book.py) on that HTML
#   make test   -> the same set-up, then the unit tests, every chapter once in quick mode through
#                  nbmake, the quick-mode book rendered from those notebooks, and the page checks
# and, to run the notebooks yourself:
#   make lab    -> JupyterLab on book/ with this environment's kernel (live progress bars)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export MINARI_DATASETS_PATH ?= $(CURDIR)/data
export PYTHONHASHSEED := 0
# No OpenMP or thread variables are exported: the trainer decides its threads itself, visibly
# (iql_tutorial.utils.threads; override with IQL_THREADS), and the benchmark measures your defaults.
# tqdm.auto falls back to a text bar in notebooks without ipywidgets; its warning about that is
# noise in the rendered book.
export PYTHONWARNINGS ?= ignore:IProgress not found

# The notebooks are executed for the book as the book shows them: every progress bar as one text
# line, its final state, and no ipywidgets (a widget is an empty box in a static page).
# IQL_PROGRESS=final switches iql_tutorial.utils.progress_bar; every kernel runs
# tools/book_kernel_startup.py (IPython's PYTHONSTARTUP) first, which does the same to the
# notebooks' own tqdm.auto bars. tests/test_book.py builds with the same two variables.
BOOK_ENV := IQL_PROGRESS=final PYTHONSTARTUP=$(CURDIR)/tools/book_kernel_startup.py

.PHONY: setup book book-check test unit quick-book page-report notebooks lab train results bench gpu-kit lint data clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The full-budget book, then the page checks on the HTML just built (fails when a page fails;
# screenshots in _build/screenshots). The notebooks the cache lacks are executed first, one per
# core and the longest first (tools/execute_book.py), into jupyter-book's cache, so that the build
# only renders them; a notebook that raises stops here with its traceback. BOOK_JOBS=1 executes
# them one at a time.
BOOK_JOBS ?=
book: setup
	$(BOOK_ENV) $(PY) tools/execute_book.py --cache _build/.jupyter_cache $(if $(BOOK_JOBS),--jobs $(BOOK_JOBS)) \
		$(sort $(wildcard book/*.ipynb))
	$(BOOK_ENV) $(VENV)/bin/jupyter-book build . --path-output . -W --keep-going
	$(PY) tools/check_book.py _build/html

# The page checks alone, on the last `make book`.
book-check: setup
	$(PY) tools/check_book.py _build/html

# The per-page code figures (visible, collapsed and removed code lines, code share of the page
# height) of the last `make book`, measured in the browser (tools/page_report.py).
page-report: setup
	$(PY) tools/page_report.py _build/html

# In quick mode (IQL_QUICK=1 shrinks every budget): the unit tests, JupyterLab (tests/test_lab.py)
# and the page checker's self-tests on a tiny book (tests/test_book.py), then `quick-book`. Every
# chapter is executed once, by nbmake; tests/test_book.py's own real-book build (which would
# execute them a second time) is deselected here (run it alone with
# `pytest tests/test_book.py -k real_book`).
test: setup
	IQL_QUICK=1 $(PY) -m pytest -q tests -p no:cacheprovider \
		--deselect tests/test_book.py::test_real_book_builds_and_renders
	$(MAKE) quick-book

# The quick-mode book, each chapter executed once:
# 1. book/, _toc.yml, _static and _config.yml copied into $(QUICK)/src (data/ linked: chapters read
#    ../data/results), the config with
#    execute_notebooks: off (the committed notebooks are never written to). $(QUICK) is not under
#    _build/ because nbmake collects no notebook with a `_build` folder in its path; it ignores
#    itself (its own .gitignore);
# 2. every notebook of that copy executed in place by nbmake (pytest --nbmake --overwrite), in quick
#    mode and with the book's kernel start-up (BOOK_ENV), so the outputs are the book's: a notebook
#    that raises fails here, with its cell and traceback;
# 3. jupyter-book renders the copy with execution off (-W: warnings are errors);
# 4. the page checks on that HTML (screenshots in $(QUICK)/_build/screenshots).
QUICK ?= _build-quick
NBMAKE_TIMEOUT ?= 1800
quick-book: setup
	rm -rf $(QUICK) && mkdir -p $(QUICK)/src && echo '*' > $(QUICK)/.gitignore
	cp -R book _static _toc.yml $(QUICK)/src/
	ln -s $(CURDIR)/data $(QUICK)/src/data
	$(PY) -c 'import sys, yaml; c = yaml.safe_load(open("_config.yml")); c["execute"]["execute_notebooks"] = "off"; \
		yaml.safe_dump(c, open(sys.argv[1], "w"), sort_keys=False)' $(QUICK)/src/_config.yml
	IQL_QUICK=1 $(BOOK_ENV) $(PY) -m pytest -q -p no:cacheprovider --nbmake --overwrite \
		--nbmake-kernel=python3 --nbmake-timeout=$(NBMAKE_TIMEOUT) $(QUICK)/src/book
	$(BOOK_ENV) $(VENV)/bin/jupyter-book build $(QUICK)/src --path-output $(QUICK) -W --keep-going
	$(PY) tools/check_book.py $(QUICK)/_build/html --src $(QUICK)/src

unit: setup
	$(PY) -m pytest -q tests -m "not book"

# Every chapter through nbmake, in quick mode, in place and without building the book (ad hoc;
# `make test` runs them through nbmake into its build folder and renders them).
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
	$(PY) -m iql_tutorial train --dataset $(or $(DATASET),iqlbook/pendulum/medium-replay-v0) \
		$(if $(STEPS),--steps $(STEPS)) $(TRAIN_ARGS)

# writes runs/sweeps/sweep.{csv,json}; committing results for the book is explicit: add --results data/results
results: setup
	$(PY) -m iql_tutorial sweep $(RESULTS_ARGS)

bench: setup
	$(PY) -m iql_tutorial bench $(BENCH_ARGS)

# The wheels a GPU machine without internet needs for tools/gpu_check.sh (its image has PyTorch,
# numpy, h5py, pandas and tqdm but not these): pure Python, for Python 3.12, into .whl/ (ignored;
# the device tool carries it).
GPU_WHEELS := gymnasium==1.4.0 farama-notifications==0.0.6 minari==0.5.4
gpu-kit:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

data: setup
	$(PY) -m iql_tutorial data build --all

lint: setup
	$(VENV)/bin/ruff check iql_tutorial tests tools book
	$(VENV)/bin/ruff format --check iql_tutorial tests tools book/*.ipynb
	$(VENV)/bin/mypy

clean:
	rm -rf _build _build-quick runs .pytest_cache
