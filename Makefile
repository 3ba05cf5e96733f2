# Two commands for a newcomer: `make run` (the fast-track path, tiny profile) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PATH_NAME ?= fast-track
PROFILE   ?= tiny
# llama-cpp-python compiles llama.cpp (~8 min on 2 cores): the library only (same flags as colab/install.py)
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF

.PHONY: venv run test lint data strip clean gpu-check
.DEFAULT_GOAL := run

# torch first, alone: with torch==2.13.0 already present nothing below can pull another build.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$$(grep -E '^torch==' requirements.txt)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

venv: $(VENV)/.installed

run: venv  ## execute a learning path headless (PATH_NAME=..., PROFILE=...)
	HF_HUB_OFFLINE=1 $(PY) -m course run --path $(PATH_NAME) --profile $(PROFILE)

test: venv  ## the whole test suite (what .ci/run calls)
	HF_HUB_OFFLINE=1 $(PY) -m pytest

gpu-check: venv  ## on a CUDA machine: run the lessons as on a T4, regenerate colab/t4-budget.md
	$(PY) -m course gpu-check

lint: venv
	$(PY) -m ruff check .

data: venv  ## rebuild the shipped datasets
	$(PY) -m helpers.data build

strip: venv  ## clear outputs and execution counts of every notebook
	$(PY) -m helpers.notebooks strip notebooks/*.ipynb

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
