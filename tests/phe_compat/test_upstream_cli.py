"""python-paillier 1.5.0's own phe/tests/cli_test.py, run against fastpaillier.phe (see phe_upstream)."""

import pytest

pytest.importorskip("click", reason="phe's command line and its tests need click (in the test extra)")

from phe_upstream import load  # noqa: E402

globals().update(load("cli_test"))
