"""Builds the fastpaillier C++/Cython extension, linked against GMP."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile

from setuptools import Extension, setup

CSRC = ["csrc/paillier_core.cpp", "csrc/codec_kernels.cpp", "csrc/csprng.cpp", "csrc/ifma_montgomery.cpp",
        "csrc/fma_montgomery.cpp", "csrc/fixed_base.cpp", "csrc/kernel_tier.cpp", "csrc/mont64.cpp"]
GMP_HINT = (
    "fastpaillier needs the GMP headers and library (gmp.h, libgmp) to build.\n"
    "  Debian/Ubuntu: apt-get install libgmp-dev\n"
    "  Fedora/RHEL:   dnf install gmp-devel\n"
    "  macOS:         brew install gmp\n"
    "Set CPATH / LIBRARY_PATH if GMP lives elsewhere."
)


def check_gmp() -> None:
    """Fails the build with a clear message when gmp.h or libgmp is missing."""
    cxx = os.environ.get("CXX", "c++")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cpp")
        with open(src, "w") as f:
            f.write("#include <gmp.h>\nint main(){mpz_t x; mpz_init(x); mpz_clear(x); return 0;}\n")
        cmd = [*shlex.split(cxx), src, "-o", os.path.join(tmp, "probe"), "-lgmp"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            sys.exit(f"error: C++ compiler '{cxx}' not found; install g++ or set CXX.")
        if proc.returncode != 0:
            sys.exit(f"error: cannot compile against GMP ({proc.stderr.strip().splitlines()[:1]}).\n{GMP_HINT}")


SANITIZERS = ("address", "undefined")


def sanitizer_flags() -> tuple[list[str], list[str]]:
    """(compile, link) flags for FASTPAILLIER_SANITIZE=address,undefined (either or both; empty: none).

    A sanitized build is for tests only: -O1 with frame pointers and debug info, and every
    undefined-behaviour report aborts (-fno-sanitize-recover) so that a test run fails on it.
    Build it with --force (the object files of a normal build are otherwise reused) and run
    Python with libasan preloaded; README, "Sanitizers", has the commands.
    """
    wanted = [s.strip() for s in os.environ.get("FASTPAILLIER_SANITIZE", "").split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SANITIZERS))
    if unknown:
        sys.exit(f"error: FASTPAILLIER_SANITIZE: unknown sanitizer(s) {', '.join(unknown)}; "
                 f"use a comma-separated subset of {', '.join(SANITIZERS)}")
    if not wanted:
        return [], []
    flag = "-fsanitize=" + ",".join(wanted)
    compile_args = [flag, "-O1", "-g", "-fno-omit-frame-pointer"]
    if "undefined" in wanted:
        compile_args.append("-fno-sanitize-recover=undefined")
    return compile_args, [flag]


def extensions() -> list[Extension]:
    from Cython.Build import cythonize

    san_compile, san_link = sanitizer_flags()
    ext = Extension(
        "fastpaillier._native",
        sources=["src/fastpaillier/_native.pyx", *CSRC],
        include_dirs=["csrc"],
        libraries=["gmp"],
        language="c++",
        extra_compile_args=["-std=c++17", "-O3", "-fvisibility=hidden", "-Wall", "-Wno-maybe-uninitialized",
                            *san_compile],
        extra_link_args=["-pthread", *san_link],
    )
    return cythonize([ext], compiler_directives={"language_level": "3"})


if __name__ == "__main__":
    if not any(arg in sys.argv for arg in ("egg_info", "sdist", "--version", "--help")):
        check_gmp()
    setup(ext_modules=extensions())
