# Two commands do all set-up on a fresh machine: `make demo` and `make test` (both build the kernels).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the native kernels (csrc/): built into the package folder, where condense_deploy.kernels finds them
KERNELS := condense_deploy/_native/libcondense_deploy_ops.so

.PHONY: demo test test-all lint clean kernels wheel

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[full,test]'
	touch $(STAMP)

$(KERNELS): $(shell find csrc -type f) scripts/build-kernels.sh
	bash scripts/build-kernels.sh

kernels: $(KERNELS)

# a wheel for a board, with the kernels built for ARCH (cross-compiled for aarch64): `make wheel ARCH=aarch64`
ARCH ?= $(shell uname -m)
wheel: $(STAMP)
	bash scripts/build-wheel.sh --arch $(ARCH) --out dist

demo: $(STAMP) $(KERNELS)
	$(PY) -m condense_deploy demo

test: $(STAMP) $(KERNELS)
	$(PY) -m pytest -q

test-all: $(STAMP) $(KERNELS)
	$(PY) -m pytest -q -m ''

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info condense_deploy/_native
