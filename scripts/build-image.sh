#!/usr/bin/env bash
# Build the condense-deploy image for linux/amd64 and linux/arm64 (docs/arm.md has the whole path).
#
#   scripts/build-image.sh [--target runtime|full] [--tag NAME] [--arch amd64|arm64|amd64,arm64]
#                          [--local-base] [--smoke MODEL.onnx] [--engine docker|podman]
#                          [-- EXTRA BUILD ARGS]
#   scripts/build-image.sh --print-env      the podman settings, as export lines: eval "$(...)"
#   scripts/build-image.sh -h|--help        this text
#
#   --target      runtime (default: onnxruntime + the toolkit, no torch) or full (with torch)
#   --tag         default condense-deploy:TARGET
#   --arch        the architectures to build (default amd64,arm64); building one adds it to TAG's
#                 manifest list, replacing only that architecture's earlier image
#   --local-base  no image registry reachable: build the base image from a debootstrap rootfs of
#                 Debian bookworm (python3.11 + venv), per architecture, cached in .cache/image
#   --smoke MODEL after building, run `condense-deploy bench MODEL` inside each architecture's image
#                 (BENCH_ARGS adds options to that bench)
#   --engine      docker (needs a running daemon and the buildx plugin) or podman; default: docker
#                 when `docker info` answers, else podman
#
# With docker: one `docker buildx build --platform ...`, loaded into docker (`--load`) unless
# the extra args say where the image goes (`-- --push`, `-- --output type=oci,dest=img.tar`).
#
# Without one: podman, daemonless, one build per architecture, each tagged TAG-ARCH and added to the
# manifest list TAG (so `podman run TAG` takes the host's architecture, `--arch arm64` the other);
# the image an architecture's rebuild replaces is removed. Unless CONTAINERS_CONF is set, podman's
# settings are the project's own, in .cache/podman (runc, default_ulimits, vfs storage in
# .cache/podman/storage): a plain `podman images` does not see these images; --print-env gives the
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF lines that make it (and podman run) see them.
# Host packages: podman runc (and debootstrap for --local-base, qemu-user-static for arm64 on x86).
# arm64 on an x86 host runs under qemu: if /proc/sys/fs/binfmt_misc has no qemu-aarch64 entry, the
# script registers Debian's (host-wide, until reboot; this needs root). An emulated arm64 container
# needs /sys/devices/system/cpu masked (--security-opt mask=/sys/devices/system/cpu) or onnxruntime
# segfaults at import; the smoke run does that.
# CA_BUNDLE (default: the host's /etc/ssl/certs/ca-certificates.crt when it exists) is mounted into the
# podman build steps, for networks whose TLS goes through a local certificate authority.
# TORCH_WHEELS=DIR (podman): a folder with a torch==2.13.0 CPU wheel, mounted for the full target.
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=runtime
TAG=""
LOCAL_BASE=0
SMOKE=""
PRINT_ENV=0
ENGINE=""
PLATFORMS=(amd64 arm64)
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --target) TARGET="$2"; shift 2 ;;
        --tag) TAG="$2"; shift 2 ;;
        --local-base) LOCAL_BASE=1; shift ;;
        --smoke) SMOKE="$2"; shift 2 ;;
        --arch) IFS=, read -r -a PLATFORMS <<< "$2"; shift 2 ;;
        --print-env) PRINT_ENV=1; shift ;;
        --engine) ENGINE="$2"; shift 2 ;;
        --) shift; break ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build-image: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
for arch in "${PLATFORMS[@]}"; do
    case "$arch" in
        amd64|arm64) ;;
        *) echo "build-image: --arch takes amd64, arm64 or amd64,arm64, not '$arch'" >&2; exit 2 ;;
    esac
done
case "$TARGET" in
    runtime|full) ;;
    *) echo "build-image: --target takes runtime or full, not '$TARGET'" >&2; exit 2 ;;
esac
case "$ENGINE" in
    ""|docker|podman) ;;
    *) echo "build-image: --engine takes docker or podman, not '$ENGINE'" >&2; exit 2 ;;
esac
TAG="${TAG:-condense-deploy:$TARGET}"
log() { echo "build-image: $*" >&2; }

write_if_changed() {  # write_if_changed FILE TEXT: only when different (a root-owned file stays readable)
    [ -f "$1" ] && [ "$(cat "$1")" = "$2" ] && return
    mkdir -p "$(dirname "$1")"
    printf '%s\n' "$2" > "$1"
}

podman_settings() {  # the project's podman settings in .cache/podman, unless CONTAINERS_CONF is set
    [ -z "${CONTAINERS_CONF:-}" ] || return 0
    local conf="$PROJECT/.cache/podman"
    write_if_changed "$conf/containers.conf" '[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"'
    write_if_changed "$conf/storage.conf" "[storage]
driver = \"vfs\"
runroot = \"$conf/run\"
graphroot = \"$conf/storage\""
    export CONTAINERS_CONF="$conf/containers.conf" CONTAINERS_STORAGE_CONF="$conf/storage.conf"
}

if [ "$PRINT_ENV" = 1 ]; then
    podman_settings
    printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_CONF" "${CONTAINERS_STORAGE_CONF:-}"
    exit 0
fi

if [ -z "$ENGINE" ]; then
    ENGINE=podman
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker; fi
fi
if [ "$ENGINE" = docker ]; then
    docker buildx version >/dev/null 2>&1 || {
        log "docker here has no buildx plugin: install docker-buildx-plugin (Docker's packages) or" \
            "docker-buildx (Ubuntu), or build with --engine podman"; exit 1; }
    platforms="$(printf 'linux/%s,' "${PLATFORMS[@]}")"
    output=(--load)
    for arg in "$@"; do
        case "$arg" in --push|--load|--output|--output=*|-o) output=() ;; esac
    done
    log "docker buildx: ${platforms%,} target $TARGET -> $TAG"
    exec docker buildx build --platform "${platforms%,}" --target "$TARGET" -t "$TAG" "${output[@]}" "$@" "$PROJECT"
fi

command -v podman >/dev/null || {
    log "no podman here (Debian/Ubuntu: apt-get install podman runc), and no Docker daemon"; exit 1; }
log "building with podman"
podman_settings

ensure_binfmt() {  # run arm64 binaries in containers through qemu-user-static
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && return
    [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || {
        log "arm64 on $(uname -m) needs qemu-user-static (apt-get install qemu-user-static)"; exit 1; }
    log "registering qemu-aarch64 in the host's binfmt_misc (host-wide, until reboot;" \
        "undo: echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64)"
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
}

local_base() {  # local_base ARCH: import a debootstrap rootfs of bookworm as localhost/condense-base:ARCH
    local arch="$1" rootfs="$PROJECT/.cache/image/rootfs-$arch"
    if podman image exists "localhost/condense-base:$arch"; then return; fi
    if [ ! -x "$rootfs/usr/bin/python3" ]; then
        command -v debootstrap >/dev/null || { log "--local-base needs debootstrap (apt-get install debootstrap)"; exit 1; }
        log "debootstrap bookworm $arch -> $rootfs"
        rm -rf "$rootfs"
        debootstrap --arch="$arch" --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    fi
    tar -C "$rootfs" -c . | podman import --arch "$arch" - "localhost/condense-base:$arch" >/dev/null
}

# manifest_put LIST IMAGE ARCH: LIST (created if absent) lists IMAGE for ARCH, and no other ARCH image.
manifest_put() {
    local list="$1" image="$2" arch="$3" digest
    if ! podman manifest exists "$list"; then
        podman manifest create "$list" >/dev/null
    fi
    for digest in $(podman manifest inspect "$list" | python3 -c '
import json, sys
arch = sys.argv[1]
for m in json.load(sys.stdin).get("manifests") or []:
    if m.get("platform", {}).get("architecture") == arch:
        print(m["digest"])' "$arch"); do
        podman manifest remove "$list" "$digest" >/dev/null
    done
    podman manifest add "$list" "containers-storage:$image" >/dev/null
}

image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

extra_mounts=()
bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -f "$bundle" ] && extra_mounts=(--volume "$bundle:/etc/ssl/certs/ca-certificates.crt:ro")
# TORCH_WHEELS=DIR: a folder with a torch CPU wheel for the full target, where TORCH_INDEX is unreachable.
if [ -n "${TORCH_WHEELS:-}" ]; then
    extra_mounts+=(--volume "$(cd "$TORCH_WHEELS" && pwd):/torch-wheels:ro" --build-arg TORCH_FIND_LINKS=/torch-wheels)
fi

case "$TAG" in */*) ref="$TAG" ;; *) ref="localhost/$TAG" ;; esac
[[ "${ref%%/*}" == *[.:]* || "${ref%%/*}" == localhost ]] || ref="localhost/$ref"
for arch in "${PLATFORMS[@]}"; do
    [ "$arch" = amd64 ] || [ "$(uname -m)" = aarch64 ] || ensure_binfmt
    base_arg=()
    if [ "$LOCAL_BASE" = 1 ]; then
        local_base "$arch"
        base_arg=(--build-arg "BASE=localhost/condense-base:$arch")
    fi
    log "podman build linux/$arch target $TARGET -> $ref-$arch"
    old="$(image_id "$ref-$arch")"
    start=$(date +%s)
    podman build --arch "$arch" --target "$TARGET" --network host --layers=false \
        "${extra_mounts[@]}" "${base_arg[@]}" -t "$ref-$arch" "$@" "$PROJECT"
    log "linux/$arch built in $(( $(date +%s) - start )) s"
    manifest_put "$ref" "$ref-$arch" "$arch"
    if [ -n "$old" ] && [ "$old" != "$(image_id "$ref-$arch")" ]; then
        podman rmi "$old" >/dev/null 2>&1 && log "removed the image this build replaced (${old:0:12})" \
            || log "kept the replaced image ${old:0:12} (a container or another tag uses it)"
    fi
done
log "manifest list $ref: $(podman manifest inspect "$ref" | python3 -c '
import json, sys
print(" ".join(m["platform"]["architecture"] for m in json.load(sys.stdin).get("manifests") or []))')"

if [ -n "$SMOKE" ]; then
    read -r -a bench_args <<< "${BENCH_ARGS:-}"
    model="$(cd "$(dirname "$SMOKE")" && pwd)/$(basename "$SMOKE")"
    for arch in "${PLATFORMS[@]}"; do
        mask=()
        if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
            mask=(--security-opt mask=/sys/devices/system/cpu)  # emulated: see the note in --help
        fi
        log "condense-deploy bench inside linux/$arch"
        # With the mask, onnxruntime's CPU detection (cpuinfo) prints nine lines about the unreadable
        # sysfs: counted here instead of shown.
        { podman run --rm --arch "$arch" --network none "${mask[@]}" \
            --volume "$model:/home/condense/$(basename "$model"):ro" "$ref-$arch" \
            bench "/home/condense/$(basename "$model")" "${bench_args[@]}" 2>&1 1>&3 3>&- \
            | awk '/cpuinfo/ { n++; next } { print; fflush() }
                   END { if (n) printf "build-image: %d lines of onnxruntime cpuinfo warnings hidden" \
                         " (the masked /sys/devices/system/cpu; expected under emulation)\n", n }' >&2
        } 3>&1
    done
fi
log "run it: eval \"\$($0 --print-env)\"; podman run --rm $TAG --help"
