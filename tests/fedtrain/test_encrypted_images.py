"""Tests for the EXPERIMENT fedtrain.encrypted_images (a CNN on Paillier-encrypted pixels)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastpaillier as fp
from fedtrain.data import ImageSet
from fedtrain.encrypted_images import (
    EXPERIMENT_NAME,
    MAPPINGS,
    downsample,
    encrypt_images,
    encrypt_pixels,
    map_ciphertexts,
    pixel_ciphertext_correlation,
    run_encrypted_image_experiment,
    write_experiment_report,
)
from fedtrain.errors import ConfigError, DataError
from fedtrain.phantoms import DEMO_CLASSES, generate_phantoms


@pytest.fixture(scope="module")
def key(small_keys) -> fp.PrivateKey:
    """The suite's fixed 256-bit key from conftest's SMALL_P, SMALL_Q (insecure, tests only)."""
    return small_keys[1]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(3, 8, 8), dtype=np.uint8)


@pytest.mark.parametrize("mapping", sorted(MAPPINGS))
@pytest.mark.parametrize("use_private", [False, True])
def test_encrypt_images_shape_dtype_range(images, key, mapping, use_private):
    k = key if use_private else key.public_key
    out = encrypt_images(images, k, mapping=mapping)
    assert out.shape == (3, 1, 8, 8)
    assert out.dtype == np.float32
    assert np.all(out >= 0.0) and np.all(out < 1.0)
    assert np.all(out * 2**24 == np.floor(out * 2**24))  # 24-bit values, exact in float32


@pytest.mark.parametrize("mapping", sorted(MAPPINGS))
def test_equal_pixels_encrypt_to_different_floats(key, mapping):
    same = np.full((2, 16, 16), 128, dtype=np.uint8)
    out = encrypt_images(same, key.public_key, mapping=mapping).reshape(-1)
    # Randomized encryption: 512 encryptions of one value; 24-bit collisions are very unlikely.
    assert len(np.unique(out)) >= 500
    again = encrypt_images(same, key.public_key, mapping=mapping).reshape(-1)
    assert not np.array_equal(out, again)


def test_round_trip_through_the_key(images, key):
    encrypted = encrypt_pixels(images, key.public_key)
    assert encrypted.shape == images.shape
    assert encrypted.ciphertexts.shape == (images.size, key.public_key.nsq_limbs)
    np.testing.assert_array_equal(key.decrypt(encrypted), images.astype(np.int64))
    # The CRT path of the key holder gives valid ciphertexts too.
    np.testing.assert_array_equal(key.decrypt(encrypt_pixels(images, key)), images.astype(np.int64))


def _as_ints(encrypted: fp.EncryptedArray) -> list[int]:
    return [int.from_bytes(row.astype("<u8").tobytes(), "little") for row in encrypted.ciphertexts]


def test_mappings_match_their_definitions(images, key):
    pk = key.public_key
    encrypted = encrypt_pixels(images, pk)
    ints = _as_ints(encrypted)
    top = map_ciphertexts(encrypted, "top-bits").reshape(-1)
    low = map_ciphertexts(encrypted, "low-bits").reshape(-1)
    assert top.shape == low.shape == (images.size,)
    expected_top = np.array([(c << 24) // pk.nsquare for c in ints], dtype=np.float64) / 2**24
    expected_low = np.array([c % 2**24 for c in ints], dtype=np.float64) / 2**24
    # top-bits is computed in float64 from the top limbs: at most one unit of 2^-24 off (practically never).
    assert np.max(np.abs(top - expected_top)) <= 2**-24
    np.testing.assert_array_equal(low, expected_low)
    assert map_ciphertexts(encrypted.reshape(3, 64), "low-bits").shape == (3, 64)


def test_mapping_with_a_one_limb_key():
    tiny = fp.PrivateKey(293, 433, insecure=True)  # n^2 fits in one limb
    enc = encrypt_pixels(np.arange(64, dtype=np.uint8).reshape(1, 8, 8), tiny.public_key)
    ints = np.array(_as_ints(enc), dtype=np.float64)
    top = map_ciphertexts(enc, "top-bits").reshape(-1)
    np.testing.assert_allclose(top, np.floor(ints * 2**24 / tiny.public_key.nsquare) / 2**24, atol=2**-24)


def test_correlation_near_zero(key):
    pixels = np.random.default_rng(2).integers(0, 256, size=(40, 16, 16), dtype=np.uint8)
    mapped = encrypt_images(pixels, key)
    corr, n = pixel_ciphertext_correlation(pixels, mapped)
    assert n == pixels.size
    assert abs(corr) < 5 / np.sqrt(n)  # ~0: 5 standard errors of a zero correlation
    # The statistic itself sees a real dependence.
    assert pixel_ciphertext_correlation(pixels, pixels / 255.0)[0] == pytest.approx(1.0)
    assert pixel_ciphertext_correlation(np.zeros(10), np.arange(10.0))[0] is None


def test_downsample():
    img = np.zeros((1, 32, 32), dtype=np.uint8)
    img[0, :16, :16] = 200
    small = downsample(img, 16)
    assert small.shape == (1, 16, 16) and small.dtype == np.uint8
    assert small[0, :8, :8].min() == 200 and small[0, 8:, 8:].max() == 0
    assert downsample(img, 32) is img


def test_bad_inputs(key):
    with pytest.raises(DataError):
        encrypt_images(np.zeros((2, 4, 4), dtype=np.float32), key)
    with pytest.raises(DataError):
        encrypt_images(np.zeros((4, 4), dtype=np.uint8), key)
    with pytest.raises(ConfigError):
        encrypt_images(np.zeros((1, 4, 4), dtype=np.uint8), key, mapping="raw")
    with pytest.raises(ConfigError):
        encrypt_images(np.zeros((1, 4, 4), dtype=np.uint8), "not a key")


@pytest.fixture(scope="module")
def tiny_result() -> dict:
    train_images, train_labels = generate_phantoms([12, 12, 12, 12], seed=0, size=32)
    test_images, test_labels = generate_phantoms([12, 12, 12, 12], seed=1, size=32)
    train = ImageSet(train_images, train_labels, DEMO_CLASSES)
    test = ImageSet(test_images, test_labels, DEMO_CLASSES)
    return run_encrypted_image_experiment(train=train, test=test, key_bits=256, image_size=16, epochs=2, seed=0)


def test_experiment_fields(tiny_result):
    r = tiny_result
    json.dumps(r, allow_nan=False)  # JSON-serializable, no NaN
    assert r["experiment"] == EXPERIMENT_NAME
    assert r["label"].startswith("EXPERIMENT:")
    assert r["mapping"] == "top-bits" and r["mapping_description"] == MAPPINGS["top-bits"][1]
    assert r["key_bits"] == 256 and r["key_insecure"] is True
    assert r["image_size"] == 16 and r["epochs"] == 2
    assert r["train_images"] == 48 and r["test_images"] == 48
    assert r["ciphertexts"] == 96 * 16 * 16
    assert r["chance_accuracy"] == pytest.approx(0.25) and r["uniform_chance"] == pytest.approx(0.25)
    assert 0 < r["chance_band"] < 0.25
    for field in ("plain_accuracy", "encrypted_accuracy", "plain_train_accuracy", "encrypted_train_accuracy"):
        assert 0.0 <= r[field] <= 1.0
        assert r[field] * 48 == pytest.approx(round(r[field] * 48))  # a count of 48 images
    assert sum(r["plain_prediction_counts"]) == sum(r["encrypted_prediction_counts"]) == 48
    assert r["encrypt_seconds"] > 0 and r["ciphertexts_per_second"] > 0
    assert r["correlation_sample"] == r["ciphertexts"]
    assert abs(r["pixel_ciphertext_correlation"]) < 5 / np.sqrt(r["correlation_sample"])
    assert r["mutual_information_note"] and r["conclusion"]
    assert f"{r['encrypted_accuracy']:.1%}" in r["conclusion"]


def test_experiment_rejects_bad_options(tiny_result):
    images, labels = generate_phantoms([2, 2], seed=0, size=16)
    data = ImageSet(images, labels, ("a", "b"))
    other = ImageSet(images, labels, ("a", "c"))
    with pytest.raises(DataError):
        run_encrypted_image_experiment(train=data, test=other, key_bits=256, image_size=16)
    with pytest.raises(ConfigError):
        run_encrypted_image_experiment(train=data, test=data, key_bits=256, image_size=8)
    with pytest.raises(ConfigError):
        run_encrypted_image_experiment(train=data, test=data, key_bits=256, mapping="nope")


def test_report_files(tiny_result, tmp_path):
    md_path = write_experiment_report(tiny_result, tmp_path / "out")
    assert md_path == tmp_path / "out" / "encrypted_images.md"
    assert json.loads((tmp_path / "out" / "encrypted_images.json").read_text()) == tiny_result
    md = md_path.read_text()
    assert "EXPERIMENT:" in md
    assert "| Input | Test accuracy | Chance |" in md
    assert f"| Plaintext pixels | {tiny_result['plain_accuracy'] * 100:.1f}% | 25.0% |" in md
    assert f"| Paillier ciphertexts (top-bits) | {tiny_result['encrypted_accuracy'] * 100:.1f}% | 25.0% |" in md
    assert tiny_result["conclusion"] in md


def test_conclusion_follows_the_numbers(tiny_result):
    from fedtrain.encrypted_images import conclusion

    r = dict(tiny_result, chance_accuracy=0.25, uniform_chance=0.25, chance_band=0.05, plain_accuracy=0.9)
    assert "within the chance level" in conclusion(dict(r, encrypted_accuracy=0.27))
    assert "above chance" in conclusion(dict(r, encrypted_accuracy=0.40))
    assert "15.0 points above" in conclusion(dict(r, encrypted_accuracy=0.40))
    assert "below chance" in conclusion(dict(r, encrypted_accuracy=0.10))
