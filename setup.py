"""Build hook: ``pip install .`` also builds the native kernels (csrc/) where a C++ compiler and cmake
are present.

Everything else about the package is declared in pyproject.toml. Without g++ or cmake (or when the
onnxruntime headers cannot be fetched) the install goes on without the library and says so: the
portable ``fast`` graphs need none of it, and ``condense_deploy.native`` explains how to build it.
An editable install (``pip install -e .``) runs from the checkout and builds nothing: it says how to
(``make kernels``) when the checkout has no library. pip shows a build's output only with ``-v``, so
the message is also a ``warnings.warn`` (recent pip shows the backend's warnings), and ``condense-deploy
info`` tells afterwards.

``scripts/build-wheel.sh`` sets two variables: ``CONDENSE_DEPLOY_PREBUILT_KERNELS`` (a library built
for the wheel's architecture, copied in instead of building one) and ``CONDENSE_DEPLOY_WHEEL_PLATFORM``
(the wheel's platform tag, e.g. ``manylinux_2_36_aarch64``; the wheel is then ``py3-none-PLATFORM``:
it holds no Python extension, only the custom-op library).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 has its own; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - depends on the build environment
    try:
        from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]
    except ImportError:
        bdist_wheel = None  # type: ignore[assignment,misc]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "scripts" / "build-kernels.sh"


class BuildWithKernels(build_py):
    """build_py, then scripts/build-kernels.sh into the build tree's condense_deploy/_native/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            # an editable install runs from the checkout: `make kernels` builds them there
            if not (HERE / "condense_deploy" / "_native" / "libcondense_deploy_ops.so").is_file():
                self._say("editable install without the native kernels: build them with `make kernels` "
                          "(or scripts/build-kernels.sh); `condense-deploy info` shows what is missing")
            return
        target = Path(self.build_lib) / "condense_deploy" / "_native"
        shutil.rmtree(target, ignore_errors=True)  # a library left by an earlier build of this tree
        prebuilt = os.environ.get("CONDENSE_DEPLOY_PREBUILT_KERNELS")
        if prebuilt:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(prebuilt, target / "libcondense_deploy_ops.so")
            return
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
        warnings.warn(f"condense-deploy: {message}", stacklevel=2)


class PlatformWheel(bdist_wheel or object):  # type: ignore[misc]
    """``CONDENSE_DEPLOY_WHEEL_PLATFORM`` set: tag the wheel ``py3-none-PLATFORM`` (any CPython, the
    library's own architecture and glibc), as scripts/build-wheel.sh measured them."""

    def get_tag(self) -> tuple[str, str, str]:
        platform = os.environ.get("CONDENSE_DEPLOY_WHEEL_PLATFORM")
        if platform:
            return "py3", "none", platform
        return super().get_tag()


class PlatformDistribution(Distribution):
    """The wheel may hold a compiled library for this machine: tag it for this platform, so a wheel
    built on x86 is never installed on an ARM board (which builds its own)."""

    def has_ext_modules(self) -> bool:
        return True


def _scratch_options() -> dict[str, dict[str, str]]:
    """setuptools' egg-info and build folders in a temp folder, never in the source tree: a read-only
    checkout (a mounted volume, a system package source) installs, and a writable one stays clean."""
    scratch = tempfile.mkdtemp(prefix="condense-deploy-build-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return {"egg_info": {"egg_base": scratch}, "build": {"build_base": os.path.join(scratch, "build")}}


commands: dict[str, type] = {"build_py": BuildWithKernels}
if bdist_wheel is not None:
    commands["bdist_wheel"] = PlatformWheel
setup(cmdclass=commands, distclass=PlatformDistribution, options=_scratch_options())
