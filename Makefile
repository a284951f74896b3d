# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.finer-traits-installed

.PHONY: demo test install lint bench tutorial clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision are pinned here (constraints.txt), never in pyproject.
	$(PY) -m pip install --quiet -c constraints.txt torch torchvision
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m evaluation.demo

test: $(STAMP)
	$(PY) -m pytest -q

# ruff for style and bugs; import-linter for the layers (contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline prompts traits evaluation tests tutorials
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m evaluation.benchmarks.cam_speed

# The workshop notebook, executed top to bottom offline: tutorials/build/finer-cam-workshop.{ipynb,html}.
tutorial: $(STAMP)
	$(PY) tutorials/run_notebook.py --out tutorials/build

clean-venv:
	rm -rf $(VENV)
