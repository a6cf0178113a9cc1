# Two commands do all set-up on a fresh machine: `make demo` and `make test` (both build the kernels).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the native kernels (csrc/): built into the package folder, where condense_deploy.kernels finds them
KERNELS := condense_deploy/_native/libcondense_deploy_ops.so

.PHONY: demo test test-all lint clean kernels tools wheel

# torch comes from PyTorch's CPU wheel index where it is reachable (scripts/install-torch.sh);
# `make TORCH_INDEX= ...` takes pip's default build instead (CUDA on Linux x86_64), and
# `make TORCH_INDEX=https://download.pytorch.org/whl/cu130 ...` a CUDA build of that index.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
export TORCH_INDEX

$(STAMP): pyproject.toml constraints.txt scripts/install-torch.sh
	@echo "make: creating $(VENV) and installing condense-deploy with torch, onnx, onnxruntime (a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	bash scripts/install-torch.sh $(PY)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[full,test]'
	touch $(STAMP)

$(KERNELS): $(shell find csrc -type f) scripts/build-kernels.sh
	@echo "make: building the native kernels (csrc/, one compile per ISA; minutes on a small machine)"
	bash scripts/build-kernels.sh

kernels: $(KERNELS)

# the qemu TCG plugin benchmarks/arm_model.py loads: a host tool of csrc/CMakeLists.txt (CD_TOOLS),
# not part of the shipped library
TB_PROFILE := build/tools/libtb_profile.so
$(TB_PROFILE): csrc/tools/tb_profile.c csrc/tools/CMakeLists.txt csrc/CMakeLists.txt
	cmake -S csrc -B build/tools -DCD_TOOLS=ON >/dev/null
	cmake --build build/tools --target tb_profile

tools: $(TB_PROFILE)

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
