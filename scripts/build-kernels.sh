#!/usr/bin/env bash
# Build the native onnxruntime custom-op library (csrc/) as libcondense_deploy_ops.so.
#
#   scripts/build-kernels.sh [--arch x86_64|aarch64] [--out DIR] [--test] [--bench]
#
# --arch     target architecture (default: the host's, from uname -m); aarch64 cross-compiles
#            with aarch64-linux-gnu-g++ (csrc/cmake/aarch64-linux-gnu.cmake).
# --out      output folder (default: condense_deploy/_native/).
# --test     also build the micro-kernel test driver (csrc/tests/) as DIR/test_microkernels
#            (static when cross-compiling, so qemu-aarch64-static runs it) and the bench-only op
#            library DIR/libcondense_deploy_bench_ops.so (DenseBlock and GroupedConv).
# --bench    also build the micro-kernel bench DIR/bench_microkernels and the bench-only op library.
#
# The build is csrc/CMakeLists.txt (cmake 3.18+); this script does what CMake cannot: fetch
# onnxruntime's C/C++ headers from Debian's libonnxruntime-dev (trixie) with apt-get download
# against a private sources list (the system's apt sources are not touched). The library does not
# link against libonnxruntime. The header cache and the CMake build tree are in .cache/ of the
# checkout for a default build; with --out, or when the checkout is not writable, they are in
# ${XDG_CACHE_HOME:-~/.cache}/condense-deploy/ (a temporary folder if that is not writable either).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arch="$(uname -m)"
out=""
want_test=0
want_bench=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --test) want_test=1; shift ;;
    --bench) want_bench=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build-kernels: unknown argument: $1" >&2; exit 2 ;;
  esac
done
fail() { echo "build-kernels: $*" >&2; exit 1; }

toolchain=()
case "$arch" in
  x86_64|amd64) arch=x86_64; cxx="${CXX:-g++}"
    [ "$(uname -m)" = x86_64 ] || fail "building for x86_64 on $(uname -m) is not supported" ;;
  aarch64|arm64) arch=aarch64
    if [ "$(uname -m)" = aarch64 ]; then cxx="${CXX:-g++}"
    else cxx="${CXX_AARCH64:-aarch64-linux-gnu-g++}"; toolchain=(-DCMAKE_TOOLCHAIN_FILE="$here/csrc/cmake/aarch64-linux-gnu.cmake"); fi ;;
  *) echo "build-kernels: unsupported --arch $arch (x86_64 or aarch64)" >&2; exit 2 ;;
esac
command -v "$cxx" >/dev/null 2>&1 || fail "C++ compiler '$cxx' not found (install g++ or g++-aarch64-linux-gnu)"
command -v cmake >/dev/null 2>&1 || fail "cmake not found (install cmake 3.18 or newer)"
cxx_path="$(command -v "$cxx")"

# --- where the header cache and the build tree go ---------------------------------------------
scratch_root=""
if [ -z "$out" ] && [ -w "$here" ]; then
  cache="$here/.cache"
else
  cache="${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/condense-deploy"
  if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    scratch_root="$(mktemp -d)"; cache="$scratch_root"
  fi
fi
[ -n "$out" ] || out="$here/condense_deploy/_native"
trap '[ -z "$scratch_root" ] || rm -rf "$scratch_root"' EXIT

# --- onnxruntime headers -------------------------------------------------------------------
headers="$cache/onnxruntime-headers"
inc="$headers/usr/include/onnxruntime"
if [ ! -f "$inc/onnxruntime_cxx_api.h" ]; then
  mkdir -p "$cache" || fail "cannot create the cache folder $cache"
  scratch="$(mktemp -d "$cache/apt-scratch.XXXXXX")"
  mkdir -p "$scratch/lists/partial" "$scratch/cache/archives/partial" "$scratch/pkg" "$scratch/root"
  echo "deb http://deb.debian.org/debian trixie main" > "$scratch/sources.list"
  aptopts=(-o "Dir::Etc::sourcelist=$scratch/sources.list" -o "Dir::Etc::sourceparts=-"
           -o "Dir::State::Lists=$scratch/lists" -o "Dir::Cache=$scratch/cache"
           -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
  if ! apt-get "${aptopts[@]}" update >"$scratch/update.log" 2>&1; then
    fail "apt-get update for the trixie list failed (see $scratch/update.log)"
  fi
  if ! (cd "$scratch/pkg" && apt-get "${aptopts[@]}" download libonnxruntime-dev >"$scratch/download.log" 2>&1); then
    fail "apt-get download libonnxruntime-dev failed (see $scratch/download.log)"
  fi
  deb="$(ls "$scratch"/pkg/libonnxruntime-dev_*.deb 2>/dev/null | head -n1)"
  [ -n "$deb" ] || fail "no libonnxruntime-dev .deb downloaded (see $scratch/download.log)"
  dpkg-deb -x "$deb" "$scratch/root"
  [ -f "$scratch/root/usr/include/onnxruntime/onnxruntime_cxx_api.h" ] \
    || fail "$deb has no onnxruntime_cxx_api.h under usr/include/onnxruntime"
  # into place in one rename (a concurrent build may have got there first: keep its copy)
  [ -f "$inc/onnxruntime_cxx_api.h" ] || rm -rf "$headers"
  mv -T "$scratch/root" "$headers" 2>/dev/null || true
  rm -rf "$scratch"
  [ -f "$inc/onnxruntime_cxx_api.h" ] || fail "the onnxruntime headers did not land in $headers"
fi

# --- configure and build with CMake --------------------------------------------------------
# one build tree per checkout, architecture and compiler, reused by later builds
key="$(printf '%s\n' "$here" "$arch" "$cxx_path" | cksum | cut -d' ' -f1)"
build="$cache/build/$arch-$key"
mkdir -p "$build" || fail "cannot create the build folder $build"
if command -v flock >/dev/null 2>&1; then  # one build at a time in one build tree
  exec 9>"$build.lock"; flock 9
fi
if ! cmake -S "$here/csrc" -B "$build" "${toolchain[@]}" -DCMAKE_CXX_COMPILER="$cxx_path" \
     -DONNXRUNTIME_INCLUDE_DIR="$inc" >"$build/configure.log" 2>&1; then
  cat "$build/configure.log" >&2
  fail "configuring csrc/ with cmake failed ($cxx, --arch $arch; see $build/configure.log)"
fi
targets=(condense_deploy_ops)
extras=()  # built files that go into --out beside the library
if [ "$want_test" = 1 ]; then
  targets+=(test_microkernels condense_deploy_bench_ops); extras+=(test_microkernels libcondense_deploy_bench_ops.so)
fi
if [ "$want_bench" = 1 ]; then
  targets+=(bench_microkernels condense_deploy_bench_ops); extras+=(bench_microkernels libcondense_deploy_bench_ops.so)
fi
if ! cmake --build "$build" --parallel "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
     --target "${targets[@]}" >"$build/build.log" 2>&1; then
  grep -v '^\[ *[0-9]*%\]\|^make\|^gmake' "$build/build.log" >&2 || true
  fail "compiling csrc/ failed ($cxx, --arch $arch; see $build/build.log)"
fi

# --- into --out (each file by an atomic rename) ----------------------------------------------
mkdir -p "$out" || fail "cannot create the output folder $out"
install_file() {
  cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2" || fail "cannot write $2"
}
lib="$out/libcondense_deploy_ops.so"
install_file "$build/libcondense_deploy_ops.so" "$lib"
isas="$(sed -n 's/^-- condense_deploy ops: ISAs //p' "$build/configure.log")"
what="$lib ($arch, ISAs: $isas, onnxruntime headers $(grep -m1 -o 'ORT_API_VERSION [0-9]*' "$inc/onnxruntime_c_api.h"))"
for file in $(printf '%s\n' "${extras[@]}" | sort -u); do
  install_file "$build/$file" "$out/$file"
  what="$what + $out/$file"
done
echo "build-kernels: built $what"
