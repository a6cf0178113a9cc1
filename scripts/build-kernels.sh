#!/usr/bin/env bash
# Build the native onnxruntime custom-op library (csrc/) as libcondense_deploy_ops.so.
#
#   scripts/build-kernels.sh [--arch x86_64|aarch64] [--out DIR] [--test]
#
# --arch     target architecture (default: the host's, from uname -m); aarch64 cross-compiles
#            with aarch64-linux-gnu-g++.
# --out      output folder (default: condense_deploy/_native/).
# --test     also build the micro-kernel test driver (csrc/tests/) as DIR/test_microkernels
#            (static when cross-compiling, so qemu-aarch64-static runs it).
#
# onnxruntime's C/C++ headers come from Debian's libonnxruntime-dev (trixie), fetched into
# .cache/onnxruntime-headers/ with apt-get download against a private sources list (the system's
# apt sources are not touched). The library does not link against libonnxruntime.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arch="$(uname -m)"
out="$here/condense_deploy/_native"
want_test=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --test) want_test=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build-kernels: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64; cxx="${CXX:-g++}" ;;
  aarch64|arm64) arch=aarch64
    if [ "$(uname -m)" = aarch64 ]; then cxx="${CXX:-g++}"; else cxx="${CXX_AARCH64:-aarch64-linux-gnu-g++}"; fi ;;
  *) echo "build-kernels: unsupported --arch $arch (x86_64 or aarch64)" >&2; exit 2 ;;
esac
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "build-kernels: C++ compiler '$cxx' not found (install g++ or g++-aarch64-linux-gnu)" >&2
  exit 1
fi

# --- onnxruntime headers -------------------------------------------------------------------
cache="$here/.cache/onnxruntime-headers"
inc="$cache/usr/include/onnxruntime"
if [ ! -f "$inc/onnxruntime_cxx_api.h" ]; then
  echo "build-kernels: fetching onnxruntime's C/C++ headers (Debian libonnxruntime-dev) into $cache" >&2
  scratch="$here/.cache/apt-scratch"
  rm -rf "$scratch"; mkdir -p "$scratch/lists/partial" "$scratch/cache/archives/partial" "$scratch/pkg"
  echo "deb http://deb.debian.org/debian trixie main" > "$scratch/sources.list"
  aptopts=(-o "Dir::Etc::sourcelist=$scratch/sources.list" -o "Dir::Etc::sourceparts=-"
           -o "Dir::State::Lists=$scratch/lists" -o "Dir::Cache=$scratch/cache"
           -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
  if ! apt-get "${aptopts[@]}" update >"$scratch/update.log" 2>&1; then
    echo "build-kernels: apt-get update for the trixie list failed (see $scratch/update.log)" >&2; exit 1
  fi
  if ! (cd "$scratch/pkg" && apt-get "${aptopts[@]}" download libonnxruntime-dev >"$scratch/download.log" 2>&1); then
    echo "build-kernels: apt-get download libonnxruntime-dev failed (see $scratch/download.log)" >&2; exit 1
  fi
  deb="$(ls "$scratch"/pkg/libonnxruntime-dev_*.deb 2>/dev/null | head -n1)"
  if [ -z "$deb" ]; then echo "build-kernels: no libonnxruntime-dev .deb downloaded" >&2; exit 1; fi
  mkdir -p "$cache"
  dpkg-deb -x "$deb" "$cache"
  if [ ! -f "$inc/onnxruntime_cxx_api.h" ]; then
    echo "build-kernels: $deb has no onnxruntime_cxx_api.h under usr/include/onnxruntime" >&2; exit 1
  fi
  rm -rf "$scratch"
fi

# --- compile -------------------------------------------------------------------------------
# run a compiler command; on failure say which step failed (the compiler's own errors are above)
run() {
  local what="$1"; shift
  echo "build-kernels: $what" >&2
  if ! "$@"; then echo "build-kernels: $what failed ($cxx, --arch $arch)" >&2; exit 1; fi
}
mkdir -p "$out"
obj="$(mktemp -d)"
trap 'rm -rf "$obj"' EXIT
common=(-std=c++17 -O3 -fPIC -fno-math-errno -fvisibility=hidden -fvisibility-inlines-hidden
        -ffp-contract=fast -Wall -Wextra -Wno-unused-parameter -I"$here/csrc" -I"$inc")
# one micro-kernel translation unit per ISA, from the same templated source
if [ "$arch" = x86_64 ]; then
  isas=("scalar:-fno-tree-vectorize" "sse:-msse2" "avx2:-mavx2 -mfma" "avx512:-mavx512f -mavx512vl -mavx512dq -mfma -mprefer-vector-width=512" "avx512y:-mavx512f -mavx512vl -mavx512dq -mfma")
  defs=(-DCD_HAVE_X86=1)
else
  isas=("scalar:-fno-tree-vectorize" "neon:")
  defs=(-DCD_HAVE_NEON=1)
fi
objs=()
for spec in "${isas[@]}"; do
  name="${spec%%:*}"; flags="${spec#*:}"
  # shellcheck disable=SC2086
  run "compiling the $name micro-kernels" \
    "$cxx" "${common[@]}" "${defs[@]}" $flags -DCD_ISA_NAME="$name" -c "$here/csrc/kernels/microkernels_isa.cc" -o "$obj/mk_$name.o"
  objs+=("$obj/mk_$name.o")
done
for src in kernels/reference.cc dispatch.cc dense_block.cc grouped_conv.cc ort_binding.cc; do
  run "compiling csrc/$src" "$cxx" "${common[@]}" "${defs[@]}" -c "$here/csrc/$src" -o "$obj/$(basename "${src%.cc}").o"
  objs+=("$obj/$(basename "${src%.cc}").o")
done
lib="$out/libcondense_deploy_ops.so"
run "linking $lib" "$cxx" -shared -o "$lib.tmp" "${objs[@]}" -Wl,--version-script="$here/csrc/exports.map" -lpthread
mv -f "$lib.tmp" "$lib"
what="$lib ($arch, ISAs: $(printf '%s ' "${isas[@]%%:*}"| sed 's/ $//'), onnxruntime headers $(grep -m1 -o 'ORT_API_VERSION [0-9]*' "$inc/onnxruntime_c_api.h"))"

if [ "$want_test" = 1 ]; then
  static=()
  [ "$arch" = aarch64 ] && [ "$(uname -m)" != aarch64 ] && static=(-static)
  run "building the micro-kernel test driver" "$cxx" "${common[@]}" "${defs[@]}" "${static[@]}" -o "$out/test_microkernels" \
    "$here/csrc/tests/test_microkernels.cc" "${objs[@]:0:${#isas[@]}}" "$obj/reference.o" "$obj/dispatch.o" -lpthread
  what="$what + $out/test_microkernels"
fi
echo "build-kernels: built $what"
