# Two everyday commands (README): `make figures` and `make test`. Both install into .venv on first use.
#
# Why uv: it installs a matching torch/torchvision pair from PyPI in seconds, and it does not read pip's
# configuration, so a machine whose pip prefers a local CPU-only torch wheel (which PyPI's torchvision
# cannot import next to) still gets a working pair. Nothing is installed outside .venv.
VENV  ?= .venv
PY    := $(VENV)/bin/python
CORES ?= 8

.PHONY: install figures test lint lock clean-venv gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.9
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/uv pip install --quiet --compile-bytecode -r requirements.lock
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/uv pip install --quiet --no-deps -e .
	$(PY) -c "import torch, torchvision, snakemake, poolnas"
	touch $@

figures: install  ## every table and figure of the committed profile, from cached results
	$(VENV)/bin/snakemake --cores $(CORES) figures

test: install  ## the test suite (CPU, generated data)
	$(PY) -m pytest

gpu-check: install  ## on a machine with a GPU: CUDA tests, fp32/bf16 checks, loop speed, GPU sharing (< 10 min)
	$(PY) bench/gpu_check.py

lint: install
	$(VENV)/bin/snakemake --lint

lock: install  ## re-resolve requirements.in into exact pins
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --no-header requirements.in -o requirements.lock

clean-venv:
	rm -rf $(VENV)
