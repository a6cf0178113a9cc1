#!/usr/bin/env bash
# Build a condense-deploy wheel for one architecture, holding the native kernels built for it, to copy
# to a board (or a fleet, or an offline machine) and install there with pip: no compiler, no torch.
#
#   scripts/build-wheel.sh [--arch aarch64|x86_64] [--out DIR]
#
# --arch   target architecture (default: this machine's); aarch64 on an x86 workstation cross-compiles
#          the kernels with aarch64-linux-gnu-g++ (Debian: apt-get install g++-aarch64-linux-gnu).
# --out    where the wheel goes (default: dist/).
#
# The kernels are built by scripts/build-kernels.sh with libstdc++ and libgcc linked statically, so
# the library needs only glibc; its tag is read from the library itself: manylinux_X_Y_ARCH where
# GLIBC_X.Y is the newest glibc symbol version it imports (readelf --version-info). The wheel is
# py3-none-manylinux_X_Y_ARCH (no Python extension inside: any CPython >= 3.10) and depends on the
# runtime set (onnxruntime, onnx, numpy, click, pillow), never torch. On the board:
#   pip install --only-binary=:all: condense_deploy-*.whl
# or, from the workstation, into a folder to copy (pip takes --platform literally: list the older
# manylinux tags the dependencies' wheels carry too):
#   pip install --only-binary=:all: --platform manylinux_X_Y_aarch64 --platform manylinux_2_28_aarch64 \
#       --platform manylinux_2_17_aarch64 --python-version 3.11 --implementation cp --target DIR WHEEL
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arch="$(uname -m)"
out="$here/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build-wheel: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64; elf="X86-64"; real="${CXX:-g++}" ;;
  aarch64|arm64) arch=aarch64; elf="AArch64"
    if [ "$(uname -m)" = aarch64 ]; then real="${CXX:-g++}"; else real="${CXX_AARCH64:-aarch64-linux-gnu-g++}"; fi ;;
  *) echo "build-wheel: unsupported --arch $arch (x86_64 or aarch64)" >&2; exit 2 ;;
esac
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$here/.venv/bin/python" ]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python3; fi
fi
command -v "$real" >/dev/null 2>&1 || {
  echo "build-wheel: C++ compiler '$real' not found (install g++, or g++-aarch64-linux-gnu to cross-compile)" >&2
  exit 1; }
real="$(command -v "$real")"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. the kernels, through a compiler wrapper that links libstdc++ and libgcc statically (kept at a
#    fixed path, so build-kernels.sh reuses its CMake build tree from one wheel build to the next)
wrapper_dir="$here/.cache/wheel-toolchain/$arch"
mkdir -p "$wrapper_dir"
wrapper="$wrapper_dir/c++"
printf '#!/bin/sh\nexec "%s" "$@" -static-libstdc++ -static-libgcc\n' "$real" > "$tmp/c++"
if ! cmp -s "$tmp/c++" "$wrapper"; then cp "$tmp/c++" "$wrapper"; chmod +x "$wrapper"; fi
if [ "$arch" = aarch64 ] && [ "$(uname -m)" != aarch64 ]; then export CXX_AARCH64="$wrapper"; else export CXX="$wrapper"; fi
bash "$here/scripts/build-kernels.sh" --arch "$arch" --out "$tmp/native" >&2
lib="$tmp/native/libcondense_deploy_ops.so"

# 2. what the library really needs from the system: its architecture, its libraries, its glibc
machine="$(readelf -h "$lib" | sed -n 's/^ *Machine: *//p')"
case "$machine" in *"$elf"*) ;; *) echo "build-wheel: $lib is '$machine', not $arch" >&2; exit 1 ;; esac
needed="$(readelf -d "$lib" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
for so in $needed; do
  case "$so" in
    libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|ld-linux-*) ;;
    *) echo "build-wheel: $lib needs $so, which is not part of glibc (static link failed?)" >&2; exit 1 ;;
  esac
done
versions="$(readelf -W --version-info "$lib" | grep -o 'Name: [A-Z_]*[0-9.]*' | sed 's/Name: //' | sort -u)"
if echo "$versions" | grep -qv '^GLIBC_'; then
  echo "build-wheel: $lib needs symbol versions beyond glibc: $(echo "$versions" | grep -v '^GLIBC_' | tr '\n' ' ')" >&2
  exit 1
fi
newest="$(echo "$versions" | sed -n 's/^GLIBC_//p' | grep -v PRIVATE | sort -V | tail -n1)"
[ -n "$newest" ] || { echo "build-wheel: no GLIBC symbol versions found in $lib" >&2; exit 1; }
major="${newest%%.*}"; minor="${newest#*.}"; minor="${minor%%.*}"
tag="manylinux_${major}_${minor}_${arch}"

# 3. the package from a copy of the sources (the checkout gets no build/ or egg-info), library inside
mkdir -p "$tmp/src"
(cd "$here" && tar -c --exclude=__pycache__ --exclude=_native pyproject.toml setup.py README.md \
   condense_deploy models scripts/build-kernels.sh) | tar -x -C "$tmp/src"
isolation=--no-build-isolation
"$PYTHON" -c 'import setuptools.command.bdist_wheel' 2>/dev/null || isolation=
CONDENSE_DEPLOY_PREBUILT_KERNELS="$lib" CONDENSE_DEPLOY_WHEEL_PLATFORM="$tag" \
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps $isolation -w "$tmp/wheel" "$tmp/src" >&2
wheel="$(ls "$tmp"/wheel/condense_deploy-*.whl)"
mkdir -p "$out"
cp "$wheel" "$out/"
echo "build-wheel: $(basename "$wheel") ($arch kernels, needs glibc >= $newest: $(echo "$needed" | sed 's/ $//'))" >&2
echo "$out/$(basename "$wheel")"
