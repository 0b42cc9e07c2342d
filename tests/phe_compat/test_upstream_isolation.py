"""The upstream harness resolves phe to fastpaillier.phe only while it loads phe's test files."""

import sys

import phe_upstream


def test_real_phe_is_importable_after_loading_upstream_tests():
    classes = phe_upstream.load("util_test")
    import phe
    import phe.util

    import fastpaillier.phe as ours

    assert phe is not ours and phe.util is not ours.util
    assert phe.__version__ == "1.5.0" and "fastpaillier" not in phe.__file__
    assert sys.modules["phe"] is phe
    # ...while the loaded tests are bound to ours
    module = sys.modules[classes["PaillierUtilTest"].__module__]
    assert module.util is ours.util


def test_loading_restores_a_previously_imported_real_phe():
    import phe as before

    phe_upstream.load("math_test")
    import phe as after

    assert after is before
