"""Loads python-paillier's own test modules with ``phe`` resolved to fastpaillier.phe.

phe 1.5.0 (in the test extra) ships its tests in site-packages as ``phe/tests/*.py``.  load()
executes one of those files, unmodified, as a private module while ``phe``, ``phe.paillier``,
``phe.encoding``, ``phe.util`` and ``phe.command_line`` in sys.modules name fastpaillier.phe's
modules, then puts sys.modules back exactly as it was: the test module keeps its references to
our modules (bound by its imports), and everything else in the session (test_phe_interop.py,
the benchmarks) still imports the real phe.  The unittest.TestCase classes of the file are
returned for a pytest module to expose, so pytest runs and reports each test.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import unittest
from pathlib import Path

import pytest

ALIASES = ("phe", "phe.paillier", "phe.encoding", "phe.util", "phe.command_line")


def upstream_tests_dir() -> Path:
    """phe's installed tests folder, found without importing phe."""
    real = sys.modules.get("phe")
    spec = real.__spec__ if real is not None else importlib.util.find_spec("phe")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("python-paillier (phe==1.5.0, in the test extra) is not installed", allow_module_level=True)
    folder = Path(list(spec.submodule_search_locations)[0]) / "tests"
    if not folder.is_dir():
        pytest.skip(f"the installed phe has no tests folder ({folder})", allow_module_level=True)
    return folder


def _ours() -> dict[str, object]:
    import fastpaillier.phe as ours

    modules = {"phe": ours, "phe.paillier": ours.paillier, "phe.encoding": ours.encoding, "phe.util": ours.util}
    command_line = getattr(ours, "command_line", None)
    if command_line is not None:
        modules["phe.command_line"] = command_line
    return modules


def load(name: str) -> dict[str, type]:
    """The TestCase classes of phe/tests/<name>.py, run against fastpaillier.phe."""
    path = upstream_tests_dir() / f"{name}.py"
    module_name = f"_fastpaillier_phe_upstream_{name}"
    saved = {key: sys.modules[key] for key in list(sys.modules) if key == "phe" or key.startswith("phe.")}
    try:
        for key in saved:
            del sys.modules[key]
        sys.modules.update(_ours())
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    finally:
        for key in [k for k in sys.modules if k == "phe" or k.startswith("phe.")]:
            del sys.modules[key]
        sys.modules.update(saved)
    return {
        attr: obj for attr, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj is not unittest.TestCase
    }
