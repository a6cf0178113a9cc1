"""Build hook: ``pip install .`` also builds the native kernels (csrc/) where a C++ compiler and cmake
are present.

Everything else about the package is declared in pyproject.toml. Without g++ or cmake (or when the
onnxruntime headers cannot be fetched) the install goes on without the library and says so: the
portable ``fast`` graphs need none of it, and ``condense_deploy.native`` explains how to build it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "scripts" / "build-kernels.sh"


class BuildWithKernels(build_py):
    """build_py, then scripts/build-kernels.sh into the build tree's condense_deploy/_native/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the checkout: `make kernels` builds them there
        target = Path(self.build_lib) / "condense_deploy" / "_native"
        shutil.rmtree(target, ignore_errors=True)  # a library left by an earlier build of this tree
        if os.environ.get("CONDENSE_DEPLOY_NO_KERNELS"):
            self._say("CONDENSE_DEPLOY_NO_KERNELS is set: installing without the native kernels")
            return
        compiler = os.environ.get("CXX", "g++")
        without = "(`--optimize native` models will not run here; the portable graphs do)"
        if shutil.which(compiler) is None or not SCRIPT.is_file():
            self._say(f"no C++ compiler ({compiler}) found: installing without the native kernels {without}")
            return
        if shutil.which("cmake") is None:
            self._say(f"no cmake found: installing without the native kernels {without}")
            return
        result = subprocess.run(["bash", str(SCRIPT), "--out", str(target)], cwd=HERE, check=False)
        if result.returncode != 0:
            self._say("building the native kernels failed (see above): installing without them")

    @staticmethod
    def _say(message: str) -> None:
        print(f"condense-deploy: {message}", file=sys.stderr)


class PlatformDistribution(Distribution):
    """The wheel may hold a compiled library for this machine: tag it for this platform, so a wheel
    built on x86 is never installed on an ARM board (which builds its own)."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildWithKernels}, distclass=PlatformDistribution)
