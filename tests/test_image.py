"""The container image as a user meets it: scripts/build-image.sh, the Dockerfile, the documented lines.

Fast (no podman): --help documents every option and the podman storage, and does not print the script;
the docker path's buildx command line (a stand-in docker records it); the documented build lines use
only options the script has; both images start with an init.

Slow (podman; `.ci/run` runs them with `-m slow`):
- the manifest step, cheaply: tiny `FROM scratch` images (nothing runs, so no emulation) built by the
  script with `--arch amd64`, then `--arch arm64`: the list names both; rebuilding amd64 replaces only
  the amd64 entry and removes the image it replaced. Its own podman storage, in a temp folder.
- the runtime image for this machine's architecture, from the local debootstrap base, in the project's
  podman storage (.cache/podman, so the base is cached) under a test tag: `bench` inside it through the
  documented short name, with a writable mount and the user mapping; a command that crashes (SIGSEGV)
  through the image's init ends the container with 139 within a bound, where without the init the
  same signal is ignored by PID 1.
A prerequisite missing (podman, root, debootstrap) skips them here, and fails them under CI=true.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from _onnx_models import conv_net, native_block_net

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "scripts" / "build-image.sh"
DOCKERFILE = PROJECT / "Dockerfile"
DOCS = (PROJECT / "README.md", PROJECT / "docs" / "arm.md")
TEST_TAG = "condense-deploy-test:runtime"
# os.kill(self, SIGSEGV): a process that is PID 1 of its namespace ignores it (the kernel drops signals
# whose action is the default there); any other process dies of it. qemu-user ends an emulated process
# that faulted the same way, which is why an arm64 container without an init hung.
CRASH = 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV); print("survived SIGSEGV")'
CRASH_BOUND_S = 120  # a container start on vfs storage takes 2-15 s on the shared 2-core machine


def _script(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
            ) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def _parsed_options() -> set[str]:
    """The long options the script's argument loop takes (`--arch) ...`, `-h|--help) ...`)."""
    return set(re.findall(r"^\s+(?:-\w\|)?(--[a-z-]+)\)", SCRIPT.read_text(), re.M))


# ---- fast: no podman -------------------------------------------------------------------------------

def test_help_documents_every_option_and_the_podman_storage():
    done = _script("--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    parsed = _parsed_options()
    assert {"--arch", "--target", "--tag", "--local-base", "--smoke", "--print-env"} <= parsed
    for option in parsed:
        assert option in text, f"{option} is parsed but not in --help"
    for word in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", ".cache/podman", "binfmt_misc",
                 "qemu-user-static", "debootstrap", "runc"):
        assert word in text, word
    assert "set -euo" not in text and "#!" not in text


def test_bad_arch_and_target_are_refused_before_anything_runs():
    done = _script("--arch", "x86_64")
    assert done.returncode == 2 and "--arch takes amd64, arm64 or amd64,arm64" in done.stderr
    done = _script("--target", "slim")
    assert done.returncode == 2 and "--target takes runtime or full" in done.stderr
    done = _script("--engine", "buildah")
    assert done.returncode == 2 and "--engine takes docker or podman" in done.stderr


def test_print_env_gives_the_podman_settings_as_export_lines(tmp_path):
    env = {**os.environ, "CONTAINERS_CONF": str(tmp_path / "c.conf"),
           "CONTAINERS_STORAGE_CONF": str(tmp_path / "s.conf")}
    done = _script("--print-env", env=env)
    assert done.returncode == 0, done.stderr
    expected = f"export CONTAINERS_CONF={tmp_path}/c.conf CONTAINERS_STORAGE_CONF={tmp_path}/s.conf"
    assert done.stdout.strip() == expected
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERS_")}
    done = _script("--print-env", env=env)
    conf = PROJECT / ".cache" / "podman"
    assert f"CONTAINERS_CONF={conf}/containers.conf" in done.stdout
    assert f"CONTAINERS_STORAGE_CONF={conf}/storage.conf" in done.stdout
    assert 'graphroot = "' + str(conf / "storage") in (conf / "storage.conf").read_text()


def test_docker_path_builds_with_buildx_and_loads_unless_told_where(tmp_path):
    """With a docker that answers (a stand-in that records its arguments): buildx for the asked
    platforms, `--load` unless the extra args say where the image goes; no buildx: one clear line."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        '#!/bin/sh\n[ "$1 $2" = "buildx version" ] && [ -n "$NO_BUILDX" ] && exit 1\n'
        f'echo "$*" >> {calls}\n')
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    assert _script("--arch", "arm64", env=env).returncode == 0
    assert _script("--target", "full", "--tag", "r.example/cd:full", "--", "--push", env=env).returncode == 0
    builds = [line for line in calls.read_text().splitlines() if line.startswith("buildx build")]
    assert builds == [
        f"buildx build --platform linux/arm64 --target runtime -t condense-deploy:runtime --load {PROJECT}",
        "buildx build --platform linux/amd64,linux/arm64 --target full -t r.example/cd:full"
        f" --push {PROJECT}",
    ]
    done = _script(env={**env, "NO_BUILDX": "1"})
    assert done.returncode == 1 and "no buildx plugin" in done.stderr and "--engine podman" in done.stderr


def test_both_images_run_the_cli_under_an_init():
    text = DOCKERFILE.read_text()
    entrypoints = re.findall(r"^ENTRYPOINT (.*)$", text, re.M)
    assert len(entrypoints) == 1  # in the stage both targets build on
    assert json.loads(entrypoints[0]) == ["tini", "--", "condense-deploy"]  # no -s: fails under qemu
    assert "COPY --from=build /usr/bin/tini /usr/bin/tini" in text
    assert "TARGETARCH" not in SCRIPT.read_text()  # no build arg the Dockerfile does not consume


def test_documented_build_lines_use_options_the_script_has():
    parsed = _parsed_options()
    for doc in DOCS:
        text = doc.read_text()
        lines = [line for line in text.splitlines() if "scripts/build-image.sh" in line]
        assert lines, doc
        for line in lines:
            call = line.split("scripts/build-image.sh", 1)[1].split(" -- ")[0].split("#")[0]
            for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", call):
                assert option in parsed, f"{doc.name}: {line.strip()}: {option}"
        # one copy-paste path per engine, each with the user mapping for a writable mount
        assert re.search(r'docker run .*--user "\$\(id -u\):\$\(id -g\)"', text), doc.name
        assert "podman run" in text and "--userns=keep-id" in text, doc.name
        assert "apt-get install" in text and "podman runc" in text, doc.name


# ---- slow: podman ----------------------------------------------------------------------------------

def _require(ok: bool, why: str) -> None:
    """Skip here when this machine lacks a prerequisite; under CI=true that is a failure."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to run this test: {why}")
    pytest.skip(why)


def _require_podman() -> None:
    _require(shutil.which("podman") is not None, "podman is not installed (apt-get install podman runc)")
    _require(os.geteuid() == 0, "needs root (vfs storage, binfmt_misc for arm64)")


def _podman(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            ) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def _entries(tag: str, env: dict[str, str]) -> dict[str, str]:
    done = _podman("manifest", "inspect", tag, env=env)
    assert done.returncode == 0, done.stderr
    manifests = json.loads(done.stdout).get("manifests") or []
    archs = [m["platform"]["architecture"] for m in manifests]
    assert len(archs) == len(set(archs)), f"one entry per architecture: {archs}"
    return {m["platform"]["architecture"]: m["digest"] for m in manifests}


def _image_id(ref: str, env: dict[str, str]) -> str:
    done = _podman("image", "inspect", "--format", "{{.Id}}", ref, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_per_arch_builds_add_to_one_manifest_list(tmp_path):
    _require_podman()
    if platform.machine() != "aarch64":
        _require(Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
                 or Path("/usr/lib/binfmt.d/qemu-aarch64.conf").exists(),
                 "arm64 on x86 needs qemu-user-static (apt-get install qemu-user-static)")
    (tmp_path / "containers.conf").write_text('[engine]\nruntime = "runc"\n')
    (tmp_path / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{tmp_path}/run"\ngraphroot = "{tmp_path}/storage"\n')
    env = {**os.environ, "CONTAINERS_CONF": str(tmp_path / "containers.conf"),
           "CONTAINERS_STORAGE_CONF": str(tmp_path / "storage.conf")}
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM scratch AS runtime\nCOPY pyproject.toml /\n")
    tag, ref = "cd-manifest-test:runtime", "localhost/cd-manifest-test:runtime"

    def build(arch: str, label: str) -> None:
        done = _script("--engine", "podman", "--arch", arch, "--tag", tag,
                       "--", "-f", str(containerfile), "--label", f"n={label}", env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"manifest list {ref}:" in done.stderr

    build("amd64", "1")
    first = _entries(tag, env)
    assert list(first) == ["amd64"]
    old_amd64 = _image_id(f"{ref}-amd64", env)

    build("arm64", "1")
    both = _entries(tag, env)
    assert sorted(both) == ["amd64", "arm64"], "the arm64 build replaced the list instead of adding to it"
    assert both["amd64"] == first["amd64"]

    build("amd64", "2")  # a rebuild replaces its own entry, keeps the other, removes the old image
    again = _entries(tag, env)
    assert sorted(again) == ["amd64", "arm64"]
    assert again["arm64"] == both["arm64"] and again["amd64"] != both["amd64"]
    assert _podman("image", "exists", old_amd64, env=env).returncode == 1, "the replaced image is still there"
    dangling = _podman("images", "--filter", "dangling=true", "--quiet", env=env).stdout.split()
    assert dangling == [], dangling


def _host_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]


@pytest.fixture(scope="module")
def runtime_image(tmp_path_factory: pytest.TempPathFactory):
    """The runtime image for this machine's architecture, built by the script from the local base
    (debootstrap) into the project's podman storage, smoke-benched on a tiny model; removed after
    (the base stays cached)."""
    _require_podman()
    _require(shutil.which("debootstrap") is not None,
             "--local-base needs debootstrap (apt-get install debootstrap)")
    work = tmp_path_factory.mktemp("image")
    conv_net(work / "tiny.onnx")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERS_")}
    env["BENCH_ARGS"] = "--runs 5 --warmup 1"
    start = time.monotonic()
    done = _script("--engine", "podman", "--local-base", "--arch", _host_arch(), "--tag", TEST_TAG,
                   "--smoke", str(work / "tiny.onnx"), env=env, timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    print(f"runtime image for {_host_arch()} built and smoke-benched in {time.monotonic() - start:.0f} s")
    assert re.search(r"^tiny\s+1\s+[0-9.]+", done.stdout, re.M), done.stdout  # the bench's table row
    exports = _script("--print-env", env=env).stdout.split(None, 1)[1]
    for pair in exports.split():
        key, value = pair.split("=", 1)
        env[key] = value
    yield {"work": str(work), **env}
    _podman("manifest", "rm", TEST_TAG, env=env)
    _podman("rmi", f"{TEST_TAG}-{_host_arch()}", env=env)


@pytest.mark.slow
def test_runtime_image_bench_writes_to_a_mount_with_the_user_mapping(runtime_image):
    env, work = dict(runtime_image), Path(runtime_image["work"])
    mount = work / "checkout"  # a user's checkout: owned by them, not writable by others
    mount.mkdir()
    shutil.copy(work / "tiny.onnx", mount)
    os.chown(mount, 4242, 4242)
    os.chmod(mount, 0o755)
    run = ["run", "--rm", "--network", "none", "-v", f"{mount}:/work", "-w", "/work"]
    bench = [TEST_TAG, "bench", "tiny.onnx", "--runs", "5", "--warmup", "1", "--json", "out.json"]

    done = _podman(*run, *bench, env=env)  # the image's user 10001: the documented failure
    assert done.returncode == 1 and "not writable" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    done = _podman(*run, "--user", "4242:4242", *bench, env=env)  # the short name resolves locally
    assert done.returncode == 0, done.stderr
    result = json.loads((mount / "out.json").read_text())
    assert (mount / "out.json").stat().st_uid == 4242
    assert result and "tiny" in json.dumps(result)


@pytest.mark.slow
def test_runtime_image_runs_a_model_on_the_native_kernels(runtime_image):
    """The image's build stage compiled the kernels: a DenseBlock model runs there by itself."""
    env, work = dict(runtime_image), Path(runtime_image["work"])
    mount = work / "native"
    mount.mkdir()
    native_block_net(mount / "block.onnx")
    os.chmod(mount, 0o777)
    done = _podman("run", "--rm", "--network", "none", "-v", f"{mount}:/work", "-w", "/work", TEST_TAG,
                   "bench", "block.onnx", "--runs", "5", "--warmup", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^block\s+1\s+[0-9.]+", done.stdout, re.M), done.stdout


@pytest.mark.slow
def test_a_crash_inside_the_image_ends_the_container(runtime_image):
    env = dict(runtime_image)
    entrypoint = json.loads(_podman("image", "inspect", "--format", "{{json .Config.Entrypoint}}", TEST_TAG,
                                    env=env).stdout)
    assert entrypoint[-1] == "condense-deploy" and entrypoint[0] == "tini"
    init = entrypoint[:-1]  # the image's own init and its flags, with python3 in place of the CLI

    start = time.monotonic()
    done = _podman("run", "--rm", "--network", "none", "--entrypoint", json.dumps([*init, "python3", "-c"]),
                   TEST_TAG, CRASH, env=env, timeout=CRASH_BOUND_S)
    elapsed = time.monotonic() - start
    assert done.returncode == 139, (done.returncode, done.stdout, done.stderr)  # 128 + SIGSEGV
    assert "survived" not in done.stdout and elapsed < CRASH_BOUND_S

    # the same command as PID 1 (no init): the signal is ignored; this is what hung emulated arm64
    done = _podman("run", "--rm", "--network", "none", "--entrypoint", json.dumps(["python3", "-c"]),
                   TEST_TAG, CRASH, env=env, timeout=CRASH_BOUND_S)
    assert done.returncode == 0 and "survived SIGSEGV" in done.stdout

    done = _podman("run", "--rm", "--network", "none", TEST_TAG, env=env)  # CMD --help, through tini
    assert done.returncode == 0 and "bench" in done.stdout
