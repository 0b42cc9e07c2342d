"""Fuzzing that stays (issue 10): a few seconds of tools/fuzz_loaders.py's inputs under Hypothesis, the
harness's own oracle, and the bugs it found.

Every loader (keys of both format versions, classic and DJN; arrays of every codec; codec metadata)
gets mutated inputs; a loaded object is then used (decrypted, summed over every axis, re-serialized).
Only FastPaillierError may come out.  `python tools/fuzz_loaders.py --inputs 1000000` is the long run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpaillier as fp

TOOL = pathlib.Path(__file__).resolve().parent.parent / "tools" / "fuzz_loaders.py"
_spec = importlib.util.spec_from_file_location("fuzz_loaders", TOOL)
fuzz = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fuzz_loaders", fuzz)  # (dataclasses look their module up there)
_spec.loader.exec_module(fuzz)

SEEDS = fuzz.build_seeds(big=True)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_seeds_cover_every_loader_and_load():
    parsers = {s.parser for s in SEEDS}
    assert parsers == {"public", "private", "array", "codec"}
    names = " ".join(s.name for s in SEEDS)
    for part in ("public-v1", "public-v2", "private-v1", "private-v2", "djn", "raw", "FixedPointCodec",
                 "PackedCodec", "2048"):
        assert part in names
    for seed in SEEDS:
        legacy_public = seed.parser == "public" and "djn/public-v1" in seed.name
        rng = random.Random(0)
        rng.random = lambda: 0.0  # (drop_legacy_djn=True: the version 1 DJN public key then loads)
        assert fuzz.check_input(seed, seed.data, rng), seed.name
        if legacy_public:
            with pytest.raises(fp.SerializationError, match="version 1"):
                fp.PublicKey.from_bytes(seed.data, insecure=True)


def test_inputs_are_the_same_in_every_process():
    # (the seeds were encrypted with fresh randomness: a crash could not be replayed in a new process)
    again = fuzz.build_seeds(big=True)
    assert [s.data for s in again] == [s.data for s in SEEDS]
    assert fuzz.input_for(12345, 3, again)[1] == fuzz.input_for(12345, 3, SEEDS)[1]


@FUZZ
@given(index=st.integers(0, 2**40))
def test_mutated_inputs_of_the_harness(index):
    seed, data, rng = fuzz.input_for(index, 7, SEEDS)
    fuzz.check_input(seed, data, rng)  # raises on anything but FastPaillierError


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_hypothesis_mutations(seed, data):
    blob = bytearray(seed.data)
    for pos, value in data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)),
                                         max_size=4), label="edits"):
        blob[pos] = value
    offset, size = data.draw(st.sampled_from(seed.fields), label="field")
    if data.draw(st.booleans(), label="set field"):
        value = data.draw(st.integers(0, 2 ** (8 * size) - 1), label="value")
        blob[offset:offset + size] = value.to_bytes(size, "little")
    if data.draw(st.booleans(), label="resize"):
        cut = data.draw(st.integers(0, len(blob)), label="cut")
        blob = blob[:cut] + data.draw(st.binary(max_size=16), label="tail")
    fuzz.check_input(seed, bytes(blob), random.Random(data.draw(st.integers(0, 1), label="drop")))


def test_the_oracle_reports_foreign_exceptions(monkeypatch):
    args = argparse.Namespace(quick=True, max_alloc_mib=64.0, trace_alloc=True, max_seconds=1.0, report_every=10**9)
    clean = fuzz.run_range(0, 200, 5, args)
    assert clean.foreign == 0 and clean.inputs == 200 and clean.accepted + clean.rejected == 200

    def broken(data, *a, **k):
        raise ValueError("not a library error")

    monkeypatch.setattr(fp.PrivateKey, "from_bytes", broken)
    found = fuzz.run_range(0, 200, 5, args)
    assert found.foreign == found.by_parser["private"][0] > 0
    assert "foreign ValueError" in found.examples[0]["problem"]


def test_the_script_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(TOOL), "--inputs", "400", "--quick", "--json", "--report-every", "100"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(pathlib.Path(fp.__file__).resolve().parent.parent)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["inputs"] == 400 and summary["foreign_exceptions"] == summary["crashes"] == 0
    assert summary["slow_inputs"] == summary["over_alloc_inputs"] == 0


# ---- what the fuzzer found ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((0, 100), 1), ((0, 65, 3), 1), ((2, 0, 100), 2), ((0, 64), 1)])
def test_sum_over_a_long_axis_of_an_empty_array(small_keys, tier, shape, axis):
    # (0, 16130, 3).sum(axis=1) raised numpy's ValueError on the Montgomery tiers: no group to pad
    # (groups of 64 or more values that are not a multiple of 16; that shape is now refused, 2^8)
    pk, sk = small_keys
    arr = fp.EncryptedArray(pk, np.zeros((0, pk.nsq_limbs), dtype=np.uint64), shape)
    total = arr.sum(axis=axis)
    assert total.shape == shape[:axis] + shape[axis + 1:] and sk.decrypt(total).shape == total.shape
    fixed = fp.FixedPointCodec(pk).encrypt(np.zeros(shape), sk)
    assert sk.decrypt(fixed.sum(axis=axis)).shape == total.shape


def test_out_of_range_message_with_many_fractional_bits(small_keys):
    # the message computed max_int / 2.0**frac_bits: OverflowError for frac_bits above 1023
    pk, sk = small_keys
    for codec in (fp.PackedCodec(pk, value_bits=4, max_summands=2, frac_bits=1025),
                  fp.FixedPointCodec(pk, frac_bits=1074, value_bits=8)):
        assert codec.max_value > 0
        with pytest.raises(fp.EncodingOverflowError, match="outside the representable range"):
            codec.encrypt(np.array([0.5]), sk)
        values = np.array([0.0, codec.max_value, -codec.max_value])
        assert np.array_equal(sk.decrypt(codec.encrypt(values, sk)), values)
