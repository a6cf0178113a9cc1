"""Remote bench against a real OpenSSH server that this test starts on 127.0.0.1 (loopback only).

The "board" is this machine: sshd on a free port with a throwaway host key and user key, and the
remote Python is this venv's (CONDENSE_DEPLOY_REMOTE_PYTHON), so the whole path is real: scp of the
model, the bench over ssh, scp of the JSON back, the remote temp folder removed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _prereq import missing_prerequisite

from condense_deploy.errors import CondenseDeployError
from condense_deploy.runtime.bench import BenchSettings
from condense_deploy.runtime.remote import REMOTE_PYTHON_ENV, SSH_OPTIONS_ENV, run_remote_bench

SSHD = "/usr/sbin/sshd"


def _ensure_sshd() -> None:
    if os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("scp"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        missing_prerequisite("sshd is not installed and this user cannot apt-get install openssh-server")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
    done = subprocess.run(["apt-get", "install", "-y", "-q", "openssh-server", "openssh-client"],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not os.path.exists(SSHD):
        missing_prerequisite(f"cannot install openssh-server: {done.stderr.strip().splitlines()[-1:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    """An sshd on 127.0.0.1:PORT accepting root with a throwaway key; yields the client options."""
    _ensure_sshd()
    if os.geteuid() != 0:
        missing_prerequisite("the loopback sshd test logs in as root and needs to run as root")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")
    port = _free_port()
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "StrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
    log = open(d / "sshd.log", "wb")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()[-500:]}")
            time.sleep(0.1)
    options = [f"Port={port}", f"IdentityFile={d / 'user_key'}", "IdentitiesOnly=yes",
               f"UserKnownHostsFile={d / 'known_hosts'}", "StrictHostKeyChecking=yes"]
    yield options
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def remote_env(sshd: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv(SSH_OPTIONS_ENV, " ".join(sshd))
    monkeypatch.setenv(REMOTE_PYTHON_ENV, sys.executable)
    return sshd


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real ONNX model (conv + relu + global pool + gemm), made with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((8, 10)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=[w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(model, path)
    return path


def _remote_temp_folders() -> set[str]:
    return set(glob.glob("/tmp/condense-deploy.*"))


def test_unreachable_port_is_one_clear_line(remote_env: list[str], tiny_model: Path) -> None:
    options = [o for o in remote_env if not o.startswith("Port=")] + [f"Port={_free_port()}"]
    with pytest.raises(CondenseDeployError) as e:
        run_remote_bench("root@127.0.0.1", [tiny_model], BenchSettings(), ssh_options=options)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("root@127.0.0.1: could not create a temp folder: ")
    assert "refused" in message


def test_unknown_key_is_refused_without_prompt(remote_env: list[str], tiny_model: Path,
                                               tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   check=True)
    options = [o for o in remote_env if not o.startswith("IdentityFile=")]
    options.append(f"IdentityFile={tmp_path / 'other'}")
    with pytest.raises(CondenseDeployError, match=r"Permission denied"):
        run_remote_bench("root@127.0.0.1", [tiny_model], BenchSettings(), ssh_options=options)


def test_remote_without_toolkit_says_so_and_cleans_up(remote_env: list[str], tiny_model: Path) -> None:
    before = _remote_temp_folders()
    with pytest.raises(CondenseDeployError, match="condense-deploy is not installed"):
        # The system python3 -I (isolated) does not see this checkout.
        run_remote_bench("root@127.0.0.1", [tiny_model], BenchSettings(), remote_python="python3 -I")
    assert _remote_temp_folders() == before


def test_bad_input_before_any_connection(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(CondenseDeployError, match="no such model file"):
        run_remote_bench("root@127.0.0.1", [tmp_path / "missing.onnx"], BenchSettings())
    with pytest.raises(CondenseDeployError, match="expected Key=Value"):
        run_remote_bench("root@127.0.0.1", [tiny_model], BenchSettings(), ssh_options=["-p2222"])
    with pytest.raises(CondenseDeployError, match="USER@HOST"):
        run_remote_bench("-oProxyCommand=x", [tiny_model], BenchSettings())


def test_bench_remote_then_report(remote_env: list[str], tiny_model: Path, tmp_path: Path, runner) -> None:
    """The user's path: bench on the "board" over ssh, bench here, merge both into one table."""
    from condense_deploy.cli import cli

    before = _remote_temp_folders()
    remote_json = tmp_path / "board.json"
    done = runner.invoke(cli, ["bench", str(tiny_model), "--remote", "root@127.0.0.1", "--warmup", "1",
                               "--runs", "5", "--json", str(remote_json)])
    assert done.exit_code == 0, done.output
    assert "Traceback" not in done.output
    assert _remote_temp_folders() == before  # the remote temp folder is gone
    report = json.loads(remote_json.read_text())
    [result] = report["results"]
    assert result["model"] == "tiny" and result["runs"] == 5 and result["latency_p50_ms"] > 0
    assert report["machine"]["hostname"] == socket.gethostname()

    local_json = tmp_path / "here.json"
    done = runner.invoke(cli, ["bench", str(tiny_model), "--warmup", "1", "--runs", "5",
                               "--json", str(local_json)])
    assert done.exit_code == 0, done.output
    table = tmp_path / "table.md"
    done = runner.invoke(cli, ["report", str(remote_json), str(local_json), "-o", str(table)])
    assert done.exit_code == 0, done.output
    text = table.read_text()
    assert text.count("| tiny |") == 2  # one row per run: the "board" and this machine


def test_bench_remote_failure_is_one_error_line(remote_env: list[str], tiny_model: Path,
                                                monkeypatch: pytest.MonkeyPatch, runner) -> None:
    from condense_deploy.cli import cli

    monkeypatch.setenv(SSH_OPTIONS_ENV, " ".join(
        [o for o in remote_env if not o.startswith("Port=")] + [f"Port={_free_port()}"]))
    done = runner.invoke(cli, ["bench", str(tiny_model), "--remote", "root@127.0.0.1"])
    assert done.exit_code == 1
    assert "Traceback" not in done.output
    errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "could not create a temp folder" in errors[0]
