"""setup.py's FASTPAILLIER_SANITIZE option (issue 10: AddressSanitizer and UBSan builds for the tests)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

SETUP = pathlib.Path(__file__).resolve().parent.parent / "setup.py"


@pytest.fixture
def setup_module():
    spec = importlib.util.spec_from_file_location("fastpaillier_setup", SETUP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # setup() itself runs only as __main__
    return module


def test_no_sanitizer_by_default(setup_module, monkeypatch):
    monkeypatch.delenv("FASTPAILLIER_SANITIZE", raising=False)
    assert setup_module.sanitizer_flags() == ([], [])
    monkeypatch.setenv("FASTPAILLIER_SANITIZE", " ")
    assert setup_module.sanitizer_flags() == ([], [])


def test_address_and_undefined(setup_module, monkeypatch):
    monkeypatch.setenv("FASTPAILLIER_SANITIZE", "address,undefined")
    compile_args, link_args = setup_module.sanitizer_flags()
    assert "-fsanitize=address,undefined" in compile_args and link_args == ["-fsanitize=address,undefined"]
    assert "-fno-sanitize-recover=undefined" in compile_args and "-fno-omit-frame-pointer" in compile_args
    monkeypatch.setenv("FASTPAILLIER_SANITIZE", "address")
    compile_args, link_args = setup_module.sanitizer_flags()
    assert link_args == ["-fsanitize=address"] and "-fno-sanitize-recover=undefined" not in compile_args


def test_unknown_sanitizer_stops_the_build(setup_module, monkeypatch):
    monkeypatch.setenv("FASTPAILLIER_SANITIZE", "address,thread")
    with pytest.raises(SystemExit, match="thread"):
        setup_module.sanitizer_flags()
