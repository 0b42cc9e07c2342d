"""python-paillier 1.5.0's own phe/tests/paillier_test.py, run against fastpaillier.phe (see phe_upstream)."""

from phe_upstream import load

globals().update(load("paillier_test"))
