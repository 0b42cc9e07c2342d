"""C-level cross-check of the 64-bit Montgomery kernels against GMP (issue 9).

Compiles tests/mont64_check.cpp, which #includes csrc/mont64.cpp to reach the
internal templates, and runs it: mont_mul, mont_sqr and redc on both row
flavours (mulx where the CPU has BMI2 + ADX, portable C++) for L = 4 ... 132
limbs, Karatsuba sizes included.  Skipped where no C++ compiler is found.
"""

import pathlib
import shutil
import subprocess

import pytest

from fastpaillier import _native  # noqa: F401  (the extension must build first)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cpu_has_mulx() -> bool:
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " bmi2" in flags and " adx" in flags


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.skipif(not _cpu_has_mulx(), reason="the check runs the mulx rows too")
def test_mont64_matches_gmp(tmp_path):
    exe = tmp_path / "mont64_check"
    build = subprocess.run(
        ["g++", "-std=c++17", "-O2", f"-I{ROOT / 'csrc'}", str(ROOT / "tests" / "mont64_check.cpp"),
         str(ROOT / "csrc" / "kernel_tier.cpp"), str(ROOT / "csrc" / "ifma_montgomery.cpp"),
         str(ROOT / "csrc" / "fma_montgomery.cpp"),
         "-o", str(exe), "-lgmp"],
        capture_output=True, text=True)
    if build.returncode != 0 and "gmp.h" in build.stderr:
        pytest.skip("GMP headers not found")
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("OK"), run.stdout
