#!/usr/bin/env bash
# Build the condense-deploy image for linux/amd64 and linux/arm64.
#
#   scripts/build-image.sh [--target runtime|full] [--tag NAME] [--local-base] [--smoke MODEL.onnx]
#                          [-- EXTRA BUILD ARGS]
#
# With a Docker daemon: one `docker buildx build --platform linux/amd64,linux/arm64` (add `-- --push`
# to push the multi-arch manifest, or `-- --output type=oci,dest=img.tar`).
# Without one: podman, daemonless, one build per architecture (arm64 through qemu-user-static and
# binfmt_misc) joined into a manifest list TAG. The podman settings that work on a root sandbox without
# a daemon live in .cache/podman (runc, default_ulimits, vfs storage) unless CONTAINERS_CONF is set.
#   --local-base   no image registry reachable: build the base image from a debootstrap rootfs of
#                  Debian bookworm (python3.11 + venv), per architecture, cached in .cache/image
#   --smoke MODEL  after building, run `condense-deploy bench MODEL` inside each architecture's image
#                  (arm64 with /sys/devices/system/cpu masked: onnxruntime segfaults under qemu on
#                  the host's CPU topology); BENCH_ARGS adds options to that bench
# CA_BUNDLE (default: the host's /etc/ssl/certs/ca-certificates.crt when it exists) is mounted into the
# podman build steps, for networks whose TLS goes through a local certificate authority.
# TORCH_WHEELS=DIR (podman): a folder with a torch==2.13.0 CPU wheel, mounted for the full target.
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=runtime
TAG=""
LOCAL_BASE=0
SMOKE=""
PLATFORMS=(amd64 arm64)
while [ $# -gt 0 ]; do
    case "$1" in
        --target) TARGET="$2"; shift 2 ;;
        --tag) TAG="$2"; shift 2 ;;
        --local-base) LOCAL_BASE=1; shift ;;
        --smoke) SMOKE="$2"; shift 2 ;;
        --arch) PLATFORMS=("$2"); shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "build-image: unknown option $1" >&2; exit 2 ;;
    esac
done
TAG="${TAG:-condense-deploy:$TARGET}"
log() { echo "build-image: $*" >&2; }

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    platforms="$(printf 'linux/%s,' "${PLATFORMS[@]}")"
    log "docker buildx: ${platforms%,} target $TARGET -> $TAG"
    exec docker buildx build --platform "${platforms%,}" --target "$TARGET" -t "$TAG" "$@" "$PROJECT"
fi

command -v podman >/dev/null || { log "neither a Docker daemon nor podman here (apt-get install podman runc)"; exit 1; }
log "no Docker daemon: building with podman"

if [ -z "${CONTAINERS_CONF:-}" ]; then
    conf="$PROJECT/.cache/podman"
    mkdir -p "$conf"
    cat > "$conf/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
    cat > "$conf/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$conf/run"
graphroot = "$conf/storage"
EOF
    export CONTAINERS_CONF="$conf/containers.conf" CONTAINERS_STORAGE_CONF="$conf/storage.conf"
fi

ensure_binfmt() {  # run arm64 binaries in containers through qemu-user-static
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && return
    [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || { log "arm64 needs qemu-user-static"; exit 1; }
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
}

local_base() {  # local_base ARCH: import a debootstrap rootfs of bookworm as localhost/condense-base:ARCH
    local arch="$1" rootfs="$PROJECT/.cache/image/rootfs-$arch"
    if podman image exists "localhost/condense-base:$arch"; then return; fi
    if [ ! -x "$rootfs/usr/bin/python3" ]; then
        command -v debootstrap >/dev/null || { log "--local-base needs debootstrap"; exit 1; }
        log "debootstrap bookworm $arch -> $rootfs"
        rm -rf "$rootfs"
        debootstrap --arch="$arch" --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    fi
    tar -C "$rootfs" -c . | podman import --arch "$arch" - "localhost/condense-base:$arch" >/dev/null
}

extra_mounts=()
bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -f "$bundle" ] && extra_mounts=(--volume "$bundle:/etc/ssl/certs/ca-certificates.crt:ro")
# TORCH_WHEELS=DIR: a folder with a torch CPU wheel for the full target, where TORCH_INDEX is unreachable.
if [ -n "${TORCH_WHEELS:-}" ]; then
    extra_mounts+=(--volume "$(cd "$TORCH_WHEELS" && pwd):/torch-wheels:ro" --build-arg TORCH_FIND_LINKS=/torch-wheels)
fi

podman manifest rm "$TAG" >/dev/null 2>&1 || true
podman manifest create "$TAG" >/dev/null
for arch in "${PLATFORMS[@]}"; do
    [ "$arch" = amd64 ] || ensure_binfmt
    base_arg=()
    if [ "$LOCAL_BASE" = 1 ]; then
        local_base "$arch"
        base_arg=(--build-arg "BASE=localhost/condense-base:$arch")
    fi
    log "podman build linux/$arch target $TARGET -> $TAG-$arch"
    start=$(date +%s)
    podman build --arch "$arch" --build-arg "TARGETARCH=$arch" --target "$TARGET" --network host --layers=false \
        "${extra_mounts[@]}" "${base_arg[@]}" -t "$TAG-$arch" "$@" "$PROJECT"
    log "linux/$arch built in $(( $(date +%s) - start )) s"
    podman manifest add "$TAG" "containers-storage:localhost/$TAG-$arch" >/dev/null
done
log "manifest list $TAG: ${PLATFORMS[*]}"

if [ -n "$SMOKE" ]; then
    read -r -a bench_args <<< "${BENCH_ARGS:-}"
    model="$(cd "$(dirname "$SMOKE")" && pwd)/$(basename "$SMOKE")"
    for arch in "${PLATFORMS[@]}"; do
        mask=()
        if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
            mask=(--security-opt mask=/sys/devices/system/cpu)  # emulated: see the trap above
        fi
        log "condense-deploy bench inside linux/$arch"
        podman run --rm --arch "$arch" --network none "${mask[@]}" \
            --volume "$model:/home/condense/$(basename "$model"):ro" "localhost/$TAG-$arch" \
            bench "/home/condense/$(basename "$model")" "${bench_args[@]}"
    done
fi
