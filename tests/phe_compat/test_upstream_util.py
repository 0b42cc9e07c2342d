"""python-paillier 1.5.0's own phe/tests/util_test.py, run against fastpaillier.phe (see phe_upstream)."""

from phe_upstream import load

globals().update(load("util_test"))
