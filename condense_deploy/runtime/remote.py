"""Run the runtime bench on another machine (a Raspberry Pi, say) over ssh and bring its JSON back.

System ``ssh``/``scp`` with key authentication only (BatchMode: never a password prompt), so the user's
``~/.ssh/config``, agent and known_hosts apply as for any ssh command. The board needs only the runtime
install (the board wheel, docs/arm.md); results from it and from this machine then merge into one
table with ``condense-deploy report``. Never imports torch.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import CondenseDeployError
from .bench import BenchReport, BenchSettings

__all__ = ["REMOTE_PYTHON_ENV", "SSH_OPTIONS_ENV", "run_remote_bench", "ssh_options_from_env"]

# Extra ssh options as `Key=Value` words (ssh_config names), e.g. "Port=2222 IdentityFile=~/.ssh/pi".
SSH_OPTIONS_ENV = "CONDENSE_DEPLOY_SSH_OPTIONS"
# The Python on the remote machine that has condense-deploy installed (default python3), e.g. a venv's.
REMOTE_PYTHON_ENV = "CONDENSE_DEPLOY_REMOTE_PYTHON"
_CONNECT_TIMEOUT_S = 15
_RESULT_NAME = "bench.json"


def ssh_options_from_env() -> list[str]:
    """The `Key=Value` ssh options in $CONDENSE_DEPLOY_SSH_OPTIONS (shell-style words)."""
    return shlex.split(os.environ.get(SSH_OPTIONS_ENV, ""))


def run_remote_bench(
    host: str,
    models: Sequence[str | os.PathLike[str]],
    settings: BenchSettings | None = None,
    *,
    threads: str | None = None,
    ssh_options: Sequence[str] | None = None,
    remote_python: str | None = None,
    timeout_s: float | None = None,
) -> BenchReport:
    """Copy ``models`` to ``host`` ([USER@]HOST), run ``python3 -m condense_deploy bench`` there with
    ``settings`` (``threads``: a thread-count text the remote side parses, e.g. ``all``), and return
    the JSON it wrote. Remote temp files are removed whatever happens.

    ``ssh_options`` are `Key=Value` ssh_config options given to both ssh and scp as ``-o Key=Value``
    (default: those in $CONDENSE_DEPLOY_SSH_OPTIONS), which is how a port or identity is chosen
    without ~/.ssh/config: ``Port=2222``, ``IdentityFile=/path/key``. ``remote_python`` defaults to
    $CONDENSE_DEPLOY_REMOTE_PYTHON, else ``python3``.
    """
    remote_python = remote_python or os.environ.get(REMOTE_PYTHON_ENV) or "python3"
    bench_args = (settings or BenchSettings()).to_args(threads)
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        raise CondenseDeployError(f"--remote {host!r}: expected USER@HOST or HOST")
    paths = [Path(m) for m in models]
    if not paths:
        raise CondenseDeployError(f"{host}: no model to bench")
    for path in paths:
        if not path.is_file():
            raise CondenseDeployError(f"{path}: no such model file")
    names = [p.name for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CondenseDeployError(f"{duplicates[0]}: two models with the same file name; rename one")
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            raise CondenseDeployError(f"--remote {host}: '{tool}' not found (install the OpenSSH client)")

    options = _option_args(ssh_options if ssh_options is not None else ssh_options_from_env())
    remote_dir = _ssh(host, options, "mktemp -d /tmp/condense-deploy.XXXXXXXX", "create a temp folder",
                      timeout_s).strip()
    if not remote_dir.startswith("/tmp/condense-deploy."):
        raise CondenseDeployError(f"{host}: unexpected temp folder {remote_dir!r} from mktemp")
    try:
        _scp(options, [str(p) for p in paths], f"{host}:{remote_dir}/", host, "copy the models", timeout_s)
        remote_models = [f"{remote_dir}/{name}" for name in names]
        remote_json = f"{remote_dir}/{_RESULT_NAME}"
        # --json PATH, not -o PATH: the spelling every installed version on a board reads (newer ones
        # accept it as a deprecated alias of -o, with a warning on the remote stderr, which stays there)
        command = shlex.join([*shlex.split(remote_python), "-m", "condense_deploy", "bench",
                              *remote_models, *bench_args, "--json", remote_json])
        _ssh(host, options, f"cd {shlex.quote(remote_dir)} && {command}", "run the bench", timeout_s)
        with tempfile.TemporaryDirectory(prefix="condense-deploy-remote-") as local:
            local_json = Path(local) / _RESULT_NAME
            _scp(options, [f"{host}:{remote_json}"], str(local_json), host, "fetch the results", timeout_s)
            try:
                data = json.loads(local_json.read_text())
            except (OSError, ValueError) as e:
                raise CondenseDeployError(f"{host}: bench results {remote_json} are not JSON ({e})") from e
            return BenchReport.from_dict(data, f"{host}: {remote_json}")
    finally:
        try:
            _ssh(host, options, f"rm -rf -- {shlex.quote(remote_dir)}", "remove the temp folder", timeout_s)
        except CondenseDeployError:
            pass  # the first error is the one to report; a stale /tmp folder is harmless


def _option_args(options: Sequence[str]) -> list[str]:
    args = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={_CONNECT_TIMEOUT_S}"]
    for option in options:
        if "=" not in option or option.startswith("-"):
            raise CondenseDeployError(f"ssh option {option!r}: expected Key=Value, e.g. Port=2222")
        args += ["-o", option]
    return args


def _ssh(host: str, options: list[str], command: str, what: str, timeout_s: float | None) -> str:
    return _run(["ssh", *options, host, command], host, what, timeout_s)


def _scp(options: list[str], sources: list[str], dest: str, host: str, what: str,
         timeout_s: float | None) -> None:
    _run(["scp", "-q", *options, *sources, dest], host, what, timeout_s)


def _run(argv: list[str], host: str, what: str, timeout_s: float | None) -> str:
    """Run one ssh/scp command; a failure becomes one line saying what failed and why."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as e:
        raise CondenseDeployError(f"{host}: could not {what}: no answer in {timeout_s:g} s") from e
    except OSError as e:
        raise CondenseDeployError(f"{host}: could not {what}: {e.strerror}") from e
    if done.returncode != 0:
        raise CondenseDeployError(f"{host}: could not {what}: {_reason(done.stderr, done.returncode)}")
    return done.stdout


def _reason(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if any("No module named condense_deploy" in line for line in lines):
        return ("condense-deploy is not installed for that Python there (pip install the board wheel from "
                "scripts/build-wheel.sh there: docs/arm.md)")
    errors = [line for line in lines if line.startswith("Error:")]
    if errors:
        return errors[-1]
    if lines:
        return lines[-1]
    if returncode == 255:
        return "ssh failed (exit 255)"
    return f"exit status {returncode}"
