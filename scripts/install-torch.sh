#!/usr/bin/env bash
# Install the pinned torch (constraints.txt) into a virtualenv, preferring PyTorch's CPU build.
#
#   scripts/install-torch.sh VENV_PYTHON
#
# TORCH_INDEX (default: PyTorch's CPU wheel index, the Dockerfile's too) is added as an extra index
# for this one install, so pip takes torch's CPU build (2.13.0+cpu ranks above PyPI's 2.13.0, which
# is the multi-GB CUDA build on Linux x86_64). The index is probed first with a 10 s timeout; where it
# cannot be reached, pip installs what its own configuration finds (a local wheel folder, PyPI), with
# a short --timeout and few --retries so an unreachable host costs seconds, not minutes.
# TORCH_INDEX= (empty) skips the CPU index: PyPI's default build (CUDA on Linux x86_64).
# TORCH_INDEX=https://download.pytorch.org/whl/cu130 (say) picks a CUDA build of that version.
# Ends by saying which build was installed: the torch version and whether CUDA is in it.
set -euo pipefail

py="${1:?usage: scripts/install-torch.sh VENV_PYTHON}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
index="${TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
pip_args=(-m pip install --quiet --timeout 20 --retries 2 -c "$here/constraints.txt")

reachable() {
    "$py" - "$1" <<'EOF'
import sys
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10).close()
except Exception as e:  # DNS failure, refused, timeout, HTTP error: all mean "not usable here"
    print(f"install-torch: {sys.argv[1]} cannot be reached ({type(e).__name__}: {e})", file=sys.stderr)
    sys.exit(1)
EOF
}

if [ -n "$index" ] && reachable "$index"; then
    echo "install-torch: torch from $index (pinned in constraints.txt)" >&2
    "$py" "${pip_args[@]}" --extra-index-url "$index" torch
else
    [ -n "$index" ] && echo "install-torch: falling back to what pip finds (its own index and find-links)" >&2
    "$py" "${pip_args[@]}" torch
fi
# -W ignore: torch warns that numpy is missing, which the project install brings next
"$py" -W ignore -c '
import torch
cuda = torch.version.cuda
build = f"a CUDA {cuda} build" if cuda else "the CPU-only build"
print(f"install-torch: installed torch {torch.__version__}, {build}")
if cuda:
    print("install-torch: for the CPU build instead: rm -rf .venv, then make with TORCH_INDEX set to a "
          "reachable CPU wheel index, or PIP_FIND_LINKS to a folder holding the CPU wheel")
'
