"""fedtrain with fastpaillier's key format 2 (issue 10, item 2): old run keys, DJN fingerprints, sealing."""

from __future__ import annotations

import numpy as np
import pytest

import fastpaillier as fp
from fastpaillier import _wire
from fedtrain.runner import LEGACY_PRIVATE_KEY_FILE, RunConfig, _load_or_create_keys
from fedtrain.sealing import SealingKey

SMALL_P = 0xF7E75FDC469067FFDC4E847C51F452DF
SMALL_Q = 0xE85CED54AF57E53E092113E62F436F4F


@pytest.fixture(scope="module")
def djn_key() -> fp.PrivateKey:
    return fp.PrivateKey(SMALL_P, SMALL_Q, insecure=True).with_djn()


def _version_1_bytes(sk: fp.PrivateKey) -> bytes:
    """The run key as fastpaillier's format version 1 stored it (fingerprint of n, h_s only)."""
    return (_wire.header(_wire.KIND_PRIVATE_KEY, _wire.key_fingerprint(sk.public_key.n), 1)
            + _wire.u32_bigint(sk.p) + _wire.u32_bigint(sk.q)
            + _wire.extension(_wire.EXT_DJN_BASE, sk.public_key.djn_base))


def test_resume_with_a_version_1_djn_run_key(djn_key, tmp_path):
    path = tmp_path / LEGACY_PRIVATE_KEY_FILE  # a run made before --keys: the key inside the run
    path.parent.mkdir(parents=True)
    path.write_bytes(_version_1_bytes(djn_key))
    config = RunConfig(key_bits=256, insecure_keys=True)
    loaded = _load_or_create_keys(config, tmp_path, resume=True)
    assert loaded == djn_key and loaded.public_key.randomness == "djn"
    assert path.read_bytes() == _version_1_bytes(djn_key)  # resuming reads the run's key, never rewrites it
    # each client loads its own copy from the key's bytes (now format 2): all copies agree
    copy = fp.PrivateKey.from_bytes(loaded.to_bytes(), insecure=True)
    assert copy == loaded and copy.public_key.fingerprint == loaded.public_key.fingerprint
    sealed = SealingKey(loaded, run_id="r").seal(b"global model", "global:1")
    assert SealingKey(copy, run_id="r").open(sealed, "global:1") == b"global model"


def test_server_takes_client_arrays_only_under_the_run_key(djn_key):
    codec = fp.PackedCodec(djn_key.public_key, value_bits=16, max_summands=4, frac_bits=14)
    update = np.linspace(-1, 1, 40)
    blob = codec.encrypt(update, djn_key).to_bytes()
    server_key = fp.PublicKey.from_bytes(djn_key.public_key.to_bytes(), insecure=True)
    total = fp.sum_arrays([fp.EncryptedArray.from_bytes(blob, server_key)] * 2)
    assert np.abs(djn_key.decrypt(total) - 2 * update).max() <= codec.max_rounding_error(2)
    # a server holding the classic key of the same n, or another h_s, does not take them
    for wrong in (server_key.without_djn(), djn_key.with_djn().public_key):
        with pytest.raises(fp.KeyMismatchError):
            fp.EncryptedArray.from_bytes(blob, wrong)
