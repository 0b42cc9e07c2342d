"""Encrypted FedAvg equals plaintext FedAvg up to the codec's stated rounding bound."""

from __future__ import annotations

import numpy as np
import pytest

import fastpaillier as fp
from fedtrain.fedavg import ModelLayout, TensorSlot, apply_delta, client_weights, fedavg, weighted_delta
from fedtrain.runner import RunConfig, setup_run, run_rounds
from fedtrain.secure_aggregation import (EncodingPlan, chunk_bounds, quantize, rounding_bound, rounding_rng,
                                         scale_statistics, scaled_update, scales_from_statistics, tensor_max_abs,
                                         unscale)


def _tiny_config(privacy: str, **overrides) -> RunConfig:
    values = dict(model="smallcnn", clients=3, rounds=1, privacy=privacy, key_bits=512, insecure_keys=True,
                  image_size=32, demo_train_per_class=8, demo_test_per_class=3, batch_size=8, seed=7,
                  device="cpu", run_id="test-run")
    values.update(overrides)
    return RunConfig(**values)


@pytest.mark.parametrize("avg, randomness", [("weighted", "djn"), ("mean", "classic")])
def test_encrypted_round_equals_plaintext_round_within_bound(tmp_path, demo_cache, avg, randomness):
    secure = setup_run(_tiny_config("paillier", avg=avg, value_bits=12, randomness=randomness),
                       tmp_path / "secure")
    assert secure.clients[0]._key.public_key.randomness == randomness
    plain = setup_run(_tiny_config("none", avg=avg, value_bits=12), tmp_path / "plain")
    start_plain = plain.evaluator.open(plain.server.global_message())[0]
    start_secure = secure.evaluator.open(secure.server.global_message())[0]
    np.testing.assert_array_equal(start_plain, start_secure)

    run_rounds(secure)
    run_rounds(plain)
    enc_model = secure.evaluator.open(secure.server.global_message())[0]
    plain_model = plain.evaluator.open(plain.server.global_message())[0]

    bound = secure.clients[min(secure.clients)].rounding_bound()
    # Both models are float32 roundings of float64 values at most `bound` apart.
    ulp = np.spacing(np.maximum(np.abs(enc_model), np.abs(plain_model)).astype(np.float32))
    diff = np.abs(enc_model.astype(np.float64) - plain_model.astype(np.float64))
    assert np.all(diff <= bound + ulp)
    # The encryption is not a no-op: the models differ somewhere, and by far less than the update.
    assert np.any(diff > 0)
    update = np.abs(plain_model.astype(np.float64) - start_plain.astype(np.float64))
    assert diff.max() < 0.05 * update.max()


def _layout(*sizes: int) -> ModelLayout:
    slots, offset = [], 0
    for i, size in enumerate(sizes):
        slots.append(TensorSlot(f"t{i}", (size,), offset, size))
        offset += size
    return ModelLayout(tuple(slots))


@pytest.mark.parametrize("seed, rounding, weighted", [(0, "stochastic", True), (1, "nearest", True),
                                                     (2, "stochastic", False), (3, "nearest", False)])
def test_protocol_arithmetic_meets_bound_on_random_updates(small_keys, seed, rounding, weighted):
    pk, sk = small_keys
    rng = np.random.default_rng(seed)
    layout = _layout(50, 7, 1, 130)
    k = 3
    plan = EncodingPlan(value_bits=14, summands=k, rounding=rounding, weighted=weighted)
    base = rng.normal(size=layout.size).astype(np.float32)
    magnitudes = np.repeat([1e-3, 5.0, 0.0, 1e-6], [50, 7, 1, 130])
    locals_ = [(base + rng.normal(size=layout.size) * magnitudes).astype(np.float32) for _ in range(k)]
    counts = [int(c) for c in rng.integers(1, 100, size=k)] if weighted else [1] * k
    deltas = [loc.astype(np.float64) - base for loc in locals_]

    stats_codec = plan.stats_codec(pk)
    maxima = [tensor_max_abs(d, layout) for d in deltas]
    enc_max = fp.sum_arrays([stats_codec.encrypt(scale_statistics(m, c, plan), sk) for m, c in zip(maxima, counts)])
    enc_count = fp.sum_arrays([sk.encrypt(np.array([c])) for c in counts])
    total = int(sk.decrypt(enc_count)[0])
    scales = scales_from_statistics(sk.decrypt(enc_max), total)
    assert total == sum(counts)
    weights = client_weights(counts, "weighted")
    assert np.all(scales >= sum(w * m for w, m in zip(weights, maxima)))  # S_t bounds sum_k w_k max|delta_k|
    assert np.all(scales <= sum(maxima) + 1e-9)  # and is no larger than the unweighted sum of maxima

    codec = plan.update_codec(pk)
    xs = [scaled_update(d, c / total, scales, layout) for d, c in zip(deltas, counts)]
    assert max(np.abs(x).max() for x in xs) <= 1.0
    qs = [quantize(x, plan, rounding_rng(seed, 1, j)) for j, x in enumerate(xs)]
    decoded = np.empty(layout.size)
    for a, b in chunk_bounds(layout.size, k, codec.slots):
        if b > a:
            decoded[a:b] = sk.decrypt(fp.sum_arrays([codec.encrypt(q[a:b], sk) for q in qs]))
    np.testing.assert_array_equal(decoded, sum(qs))  # the codec adds no rounding of its own to grid values
    secure_delta = unscale(decoded, scales, layout)
    exact = weighted_delta(base, locals_, weights)
    assert np.all(np.abs(secure_delta - exact) <= rounding_bound(scales, plan, k, layout))
    np.testing.assert_allclose(apply_delta(base, exact), fedavg(base, locals_, counts), rtol=0, atol=0)


def test_chunks_cover_and_align():
    for size, parts, slots in [(1000, 4, 37), (5, 4, 37), (0, 2, 10), (74, 2, 37), (75, 3, 37)]:
        bounds = chunk_bounds(size, parts, slots)
        assert len(bounds) == parts
        assert bounds[0][0] == 0 and bounds[-1][1] == size
        for (a, b), (c, _) in zip(bounds, bounds[1:]):
            assert b == c and a <= b
        assert all(a % slots == 0 for a, b in bounds if b > a)


def test_divergent_update_is_refused():
    layout = _layout(3)
    from fedtrain.errors import FedTrainError

    with pytest.raises(FedTrainError, match="diverged"):
        tensor_max_abs(np.array([0.0, np.nan, 1.0]), layout)
    with pytest.raises(FedTrainError, match="diverged"):
        scale_statistics(np.array([2.0 ** 20]), 1, EncodingPlan(16, 4))
    with pytest.raises(FedTrainError, match="samples per client"):
        scale_statistics(np.array([1.0]), 2 ** 20, EncodingPlan(16, 4))


@pytest.mark.parametrize("weighted", [True, False])
def test_scaled_values_never_exceed_one(weighted):
    rng = np.random.default_rng(0)
    layout = _layout(10, 10)
    deltas = [rng.normal(size=20) * 10 ** rng.uniform(-8, 3) for _ in range(4)]
    counts = [int(c) for c in rng.integers(1, 5000, size=4)] if weighted else [1] * 4
    plan = EncodingPlan(16, 4, weighted=weighted)
    summed = sum(scale_statistics(tensor_max_abs(d, layout), c, plan) for d, c in zip(deltas, counts))
    scales = scales_from_statistics(summed, sum(counts))
    xs = [scaled_update(d, c / sum(counts), scales, layout) for d, c in zip(deltas, counts)]
    assert max(np.abs(x).max() for x in xs) <= 1.0
    assert np.abs(sum(xs)).max() <= 1.0
