#!/usr/bin/env bash
# An emulated aarch64 (Raspberry Pi 4/5 class) Python userland, to check that exported models give the
# same outputs on aarch64 onnxruntime as on x86. Correctness only: emulated timing says nothing about
# a real board.
#
#   scripts/aarch64-env.sh setup            build (or reuse) the cached userland, print its folder
#   scripts/aarch64-env.sh run ARGS...      run `python3.11 ARGS...` on emulated aarch64 (sets up first)
#   scripts/aarch64-env.sh clean            remove the cache
#
# What it builds, under ${AARCH64_CACHE:-.cache/aarch64} (each step skipped when its stamp is current):
#   root/     arm64 debs of python3.11, python3-venv, libstdc++6, libgcc-s1 and their dependencies,
#             fetched with a private APT_CONFIG for arch arm64 and unpacked with dpkg-deb -x
#   site/     aarch64 wheels (onnxruntime, onnx, numpy, click) for CPython 3.11, manylinux_2_28
#   toolkit/  this project installed as pure Python (pip install --target --no-deps .) plus the native
#             kernels cross-compiled for aarch64 (scripts/build-kernels.sh --arch aarch64), rebuilt when
#             its sources change
# AARCH64_PYTHONPATH=DIR[:DIR...] makes `run` use those folders instead of toolkit/ and site/ (and
# skips building them): e.g. a folder the aarch64 wheel from scripts/build-wheel.sh was installed into
# with `pip install --target DIR --platform manylinux_2_X_aarch64 ...`, as a board would have it.
# The runner executes `qemu-aarch64-static -L root root/usr/bin/python3.11` with QEMU_CPU (default
# cortex-a72, the Pi 4; cortex-a76 for a Pi 5) inside `unshare -m` with a tmpfs over
# /sys/devices/system/cpu: onnxruntime on aarch64 segfaults at import under qemu when it reads the
# host's CPU topology there. AARCH64_QEMU picks another qemu binary (benchmarks/arm_model.py uses the
# dynamic qemu-aarch64 of qemu-user, which loads TCG plugins given in QEMU_PLUGIN).
#
# Exit status 77: this machine cannot run the setup at all (not root, or no qemu-user-static package).
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AARCH64_CACHE:-$PROJECT/.cache/aarch64}"
ROOT="$CACHE/root"
SITE="$CACHE/site"
TOOLKIT="$CACHE/toolkit"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$PROJECT/.venv/bin/python" ]; then PYTHON="$PROJECT/.venv/bin/python"; else PYTHON=python3; fi
fi
export QEMU_CPU="${QEMU_CPU:-cortex-a72}"
QEMU_BIN="${AARCH64_QEMU:-qemu-aarch64-static}"

# Pins: the same versions as the x86 development install, so a difference is the architecture's.
WHEELS=(onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6 click==8.5.1)
DEBS=(python3.11 python3-venv libstdc++6 libgcc-s1)

log() { echo "aarch64-env: $*" >&2; }
cannot() { log "cannot run here: $*"; exit 77; }

ensure_qemu() {
    command -v qemu-aarch64-static >/dev/null && return
    [ "$(id -u)" = 0 ] || cannot "not root, and qemu-aarch64-static is not installed"
    command -v apt-get >/dev/null || cannot "no apt-get to install qemu-user-static"
    log "installing qemu-user-static"
    apt-get update -q >/dev/null
    if ! apt-cache policy qemu-user-static | grep -q 'Candidate: [0-9]'; then
        cannot "no qemu-user-static package available"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static >/dev/null
}

ensure_root() {
    local stamp="$ROOT/.complete" want="${DEBS[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
    [ "$(id -u)" = 0 ] || cannot "not root (unshare -m and mount need it)"
    log "fetching arm64 debs: $want (+ dependencies)"
    local apt="$CACHE/apt"
    rm -rf "$ROOT" "$apt/state/lists"
    mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial" "$apt/etc/sources.list.d" \
             "$apt/etc/preferences.d" "$apt/etc/apt.conf.d" "$ROOT.tmp"
    : > "$apt/state/status"
    # The host's own Debian sources (bookworm), which carry arm64 too.
    cp /etc/apt/sources.list.d/*.sources "$apt/etc/sources.list.d/" 2>/dev/null || true
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$apt/etc/sources.list"
    [ -f "$apt/etc/sources.list" ] || : > "$apt/etc/sources.list"
    cat > "$apt/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::State "$apt/state";
Dir::State::status "$apt/state/status";
Dir::Cache "$apt/cache";
Dir::Etc "$apt/etc";
Dir::Etc::Trusted "/etc/apt/trusted.gpg";
Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d";
APT::Install-Recommends "false";
pkgCacheGen::Essential "none";
Debug::NoLocking "true";
EOF
    APT_CONFIG="$apt/apt.conf" apt-get update -q >/dev/null
    APT_CONFIG="$apt/apt.conf" DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --download-only "${DEBS[@]}" >/dev/null
    rm -rf "$ROOT.tmp" && mkdir -p "$ROOT.tmp"
    local deb n=0
    for deb in "$apt/cache/archives/"*_arm64.deb "$apt/cache/archives/"*_all.deb; do
        [ -e "$deb" ] || continue
        dpkg-deb -x "$deb" "$ROOT.tmp"
        n=$((n + 1))
    done
    [ -x "$ROOT.tmp/usr/bin/python3.11" ] || { log "python3.11 missing after unpacking $n debs"; exit 1; }
    mv "$ROOT.tmp" "$ROOT"
    echo "$want" > "$stamp"
    log "unpacked $n arm64 debs into $ROOT"
}

pip_target() {  # pip_target DIR ARGS...: install aarch64 CPython 3.11 wheels into DIR
    local dir="$1"; shift
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$dir" --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux_2_28_aarch64 "$@"
}

ensure_site() {
    local stamp="$SITE/.complete" want="${WHEELS[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
    log "installing aarch64 wheels: $want"
    rm -rf "$SITE" "$SITE.tmp"
    pip_target "$SITE.tmp" "${WHEELS[@]}"
    mv "$SITE.tmp" "$SITE"
    echo "$want" > "$stamp"
}

source_hash() {
    (cd "$PROJECT" && find condense_deploy models pyproject.toml csrc scripts/build-kernels.sh -type f \
        \( -name '*.py' -o -name '*.json' -o -name '*.toml' -o -name '*.cc' -o -name '*.h' -o -name '*.map' \
           -o -name '*.sh' \) -not -path '*/_native/*' -print0 | sort -z | xargs -0 sha256sum) |
        sha256sum | cut -d' ' -f1
}

ensure_toolkit() {
    local stamp="$TOOLKIT/.complete" want
    want="$(source_hash)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
    log "installing condense-deploy (pure Python) for aarch64"
    rm -rf "$TOOLKIT" "$TOOLKIT.tmp"
    local build
    build="$(mktemp -d)"
    # Build from a copy, so the source tree gets no build/ or egg-info folders.
    (cd "$PROJECT" && tar -c --exclude=.venv --exclude=.cache --exclude=.git --exclude='*.egg-info' \
        --exclude=build --exclude=__pycache__ pyproject.toml README.md condense_deploy models) |
        tar -x -C "$build"
    local isolation=--no-build-isolation
    "$PYTHON" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 68)' \
        2>/dev/null || isolation=
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$TOOLKIT.tmp" --no-deps $isolation "$build" >/dev/null
    rm -rf "$build"
    # The native kernels, cross-compiled for aarch64 into the installed package (as a board's
    # `pip install .` builds them natively there).
    if ! command -v aarch64-linux-gnu-g++ >/dev/null; then
        [ "$(id -u)" = 0 ] || cannot "not root, and aarch64-linux-gnu-g++ is not installed"
        log "installing g++-aarch64-linux-gnu"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++-aarch64-linux-gnu >/dev/null
    fi
    log "cross-compiling the native kernels for aarch64"
    bash "$PROJECT/scripts/build-kernels.sh" --arch aarch64 --out "$TOOLKIT.tmp/condense_deploy/_native" >&2
    mv "$TOOLKIT.tmp" "$TOOLKIT"
    echo "$want" > "$stamp"
}

setup() {
    ensure_qemu
    mkdir -p "$CACHE"
    ensure_root
    ensure_site
    ensure_toolkit
}

run() {
    local path="${AARCH64_PYTHONPATH:-}"
    if [ -n "$path" ]; then
        ensure_qemu
        mkdir -p "$CACHE"
        ensure_root
    else
        setup
        path="$TOOLKIT:$SITE"
    fi
    command -v "$QEMU_BIN" >/dev/null || { log "$QEMU_BIN not found (AARCH64_QEMU)"; exit 1; }
    # A one-CPU topology in a private tmpfs instead of the host's (see the trap above).
    local mask='mount -t tmpfs -o size=1m tmpfs /sys/devices/system/cpu &&
        echo 0 > /sys/devices/system/cpu/possible && echo 0 > /sys/devices/system/cpu/present &&
        exec "$@"'
    # -L ROOT: the arm64 loader and libraries; PYTHONPATH: the toolkit, then the wheels.
    env -u PYTHONHOME -u VIRTUAL_ENV PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \
        PYTHONPATH="$path" QEMU_CPU="$QEMU_CPU" \
        unshare -m -- sh -c "$mask" sh \
        "$QEMU_BIN" -L "$ROOT" "$ROOT/usr/bin/python3.11" "$@"
}

case "${1:-setup}" in
    setup) setup; echo "$CACHE" ;;
    run) shift; run "$@" ;;
    clean) rm -rf "$CACHE" ;;
    *) echo "usage: $0 setup | run PYTHON-ARGS... | clean" >&2; exit 2 ;;
esac
