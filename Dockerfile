# condense-deploy images for linux/amd64 and linux/arm64 (Raspberry Pi 4/5 with a 64-bit OS).
#
#   runtime  (default for a board): onnxruntime + the toolkit; bench, inspect, optimize. No torch.
#   full     adds torch (CPU build), onnxsim, onnxscript, matplotlib, pillow: export, convert, train.
#
# Build both with scripts/build-image.sh, or by hand:
#   docker buildx build --platform linux/amd64,linux/arm64 --target runtime -t condense-deploy:runtime .
# BASE is any Debian-based image (apt-get brings tini) with python3 (>= 3.10) and its venv module: the
# default below, or a local base imported from a debootstrap rootfs where no image registry is reachable.
# PID 1 is tini (Debian's package): it forwards signals to condense-deploy, and when the CLI dies of a
# signal the container ends with 128+N (139 for a segfault). Without an init the CLI is PID 1, which
# the kernel does not let a signal's default action end: under qemu an arm64 segfault then hung the
# container for as long as we waited, instead of exiting.
# torch: PyPI's torch 2.13.0 wheels are CUDA builds on both arches (on arm64 too: built from PyPI here,
# the arm64 full image was 5.4 GB with the nvidia-* packages it pulls), so the full target takes torch
# from TORCH_INDEX (PyTorch's CPU wheel index, which has amd64 and arm64 wheels).
# Set TORCH_INDEX=https://pypi.org/simple to take torch from PyPI instead (CUDA build), or
# TORCH_FIND_LINKS=DIR for a folder with the CPU wheel mounted into the build (scripts/build-image.sh
# does this with TORCH_WHEELS=DIR).
ARG BASE=python:3.11.14-slim-bookworm

# ---- build: the toolkit wheel and a venv with the pinned runtime set ----------------------------------
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Debian packages of the build stage: tini, copied into both final images, and g++ and cmake for the
# native kernels (csrc/, csrc/CMakeLists.txt), which `pip wheel` builds through setup.py for the stage's
# own architecture (on arm64 natively in the arm64 stage). scripts/build-kernels.sh fetches
# onnxruntime's headers itself.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=0.19.0-1*" "g++=4:12.2.0-*" "cmake=3.25.*" \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python3 -m venv /opt/condense-deploy \
    && /opt/condense-deploy/bin/pip install --no-cache-dir "setuptools==84.2.1"
# The context is what .dockerignore lets through: pyproject.toml, setup.py, README.md, condense_deploy/,
# models/, csrc/ and scripts/build-kernels.sh.
COPY . ./
RUN /opt/condense-deploy/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist . \
    && /opt/condense-deploy/bin/pip install --no-cache-dir \
        "onnxruntime==1.32.0" "onnx==1.23.2" "numpy==2.4.6" "click==8.5.1" \
    && /opt/condense-deploy/bin/pip install --no-cache-dir --no-deps /dist/*.whl \
    && /opt/condense-deploy/bin/pip uninstall --yes setuptools \
    && /opt/condense-deploy/bin/python -I -c "import condense_deploy.native.library as k; print(k.library_path())"
# Everything both targets ship is under /opt/condense-deploy (runtime copies it, build-full builds on
# this stage), the native kernels inside the installed package (the last line fails the build
# without them).

# ---- what both final images share: tini, the non-root user, the CLI as entrypoint ------------------
FROM ${BASE} AS final
ENV PATH=/opt/condense-deploy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /usr/bin/tini /usr/bin/tini
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin condense
USER 10001
WORKDIR /home/condense
# No -s (subreaper): qemu-user does not implement that prctl, and tini -s fails under emulation.
ENTRYPOINT ["tini", "--", "condense-deploy"]
CMD ["--help"]

# ---- runtime: slim, for a board ----------------------------------------------------------------------
FROM final AS runtime
COPY --from=build /opt/condense-deploy /opt/condense-deploy

# ---- full: + torch (CPU), onnxsim, onnxscript, matplotlib, pillow -------------------------------------
FROM build AS build-full
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# A folder holding a torch==2.13.0 CPU wheel (mounted into the build), instead of TORCH_INDEX.
ARG TORCH_FIND_LINKS=""
# torch from the CPU index on both arches, or from a mounted folder of wheels.
RUN set -- --index-url "$TORCH_INDEX"; \
    if [ -n "$TORCH_FIND_LINKS" ]; then set -- --find-links "$TORCH_FIND_LINKS"; fi \
    && /opt/condense-deploy/bin/pip install --no-cache-dir "$@" "torch==2.13.0" \
    && /opt/condense-deploy/bin/pip install --no-cache-dir \
        "onnxsim==0.8.1" "onnxscript==0.7.2" "matplotlib==3.11.2" "pillow==13.0.0"

FROM final AS full
COPY --from=build-full /opt/condense-deploy /opt/condense-deploy
