"""Tests for fedtrain.partition: IID and Dirichlet client splits, count tables."""

from __future__ import annotations

import numpy as np
import pytest

from fedtrain.errors import ConfigError, DataError
from fedtrain.partition import (
    class_count_table,
    format_class_counts,
    partition,
    partition_dirichlet,
    partition_iid,
)


def _labels(per_class: int = 50, classes: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(classes), per_class))


def _assert_disjoint_cover(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert joined.size == n
    assert np.array_equal(np.sort(joined), np.arange(n))
    for part in parts:
        assert part.dtype == np.int64
        assert np.array_equal(part, np.sort(part))


def _skew(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between each client's label mix and the global one."""
    table = class_count_table(labels, parts, int(labels.max()) + 1).astype(float)
    global_mix = table.sum(0) / table.sum()
    mixes = table / table.sum(1, keepdims=True)
    return float(0.5 * np.abs(mixes - global_mix).sum(1).mean())


@pytest.mark.parametrize(("n", "k"), [(200, 1), (200, 3), (7, 7), (101, 10)])
def test_iid_disjoint_cover_and_balanced(n: int, k: int) -> None:
    labels = np.arange(n) % 4
    parts = partition_iid(labels, k, seed=1)
    assert len(parts) == k
    _assert_disjoint_cover(parts, n)
    sizes = [p.size for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_iid_deterministic_and_seed_dependent() -> None:
    labels = _labels()
    a = partition_iid(labels, 5, seed=3)
    b = partition_iid(labels, 5, seed=3)
    c = partition_iid(labels, 5, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("alpha", [0.05, 0.5, 100.0])
def test_dirichlet_disjoint_cover(alpha: float) -> None:
    labels = _labels()
    parts = partition_dirichlet(labels, 6, alpha=alpha, seed=0)
    assert len(parts) == 6
    _assert_disjoint_cover(parts, labels.size)
    assert min(p.size for p in parts) >= 1


def test_dirichlet_small_alpha_is_more_skewed() -> None:
    labels = _labels(per_class=100)
    skewed = np.mean([_skew(labels, partition_dirichlet(labels, 5, alpha=0.1, seed=s)) for s in range(5)])
    mild = np.mean([_skew(labels, partition_dirichlet(labels, 5, alpha=100.0, seed=s)) for s in range(5)])
    iid = np.mean([_skew(labels, partition_iid(labels, 5, seed=s)) for s in range(5)])
    assert skewed > 0.3
    assert mild < 0.1
    assert skewed > 3 * mild
    assert iid < 0.1


def test_dirichlet_deterministic() -> None:
    labels = _labels()
    a = partition_dirichlet(labels, 4, alpha=0.3, seed=7)
    b = partition_dirichlet(labels, 4, alpha=0.3, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(("k", "minimum"), [(10, 5), (20, 10), (40, 5)])
def test_dirichlet_min_per_client_holds(k: int, minimum: int) -> None:
    # alpha tiny: resampling practically never succeeds, so the fix-up must do it.
    labels = _labels(per_class=50)
    parts = partition_dirichlet(labels, k, alpha=0.01, seed=2, min_per_client=minimum)
    _assert_disjoint_cover(parts, labels.size)
    assert min(p.size for p in parts) >= minimum


def test_dirichlet_exact_fit_minimum() -> None:
    labels = _labels(per_class=5)
    parts = partition_dirichlet(labels, 10, alpha=0.05, seed=0, min_per_client=2)
    assert sorted(p.size for p in parts) == [2] * 10


def test_partition_dispatch() -> None:
    labels = _labels()
    iid = partition(labels, 3, scheme="iid", seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(iid, partition_iid(labels, 3, seed=0)))
    dirichlet = partition(labels, 3, scheme="dirichlet", alpha=0.2, seed=0)
    expected = partition_dirichlet(labels, 3, alpha=0.2, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(dirichlet, expected))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_clients": 0, "scheme": "iid"}, "at least 1"),
        ({"num_clients": -2, "scheme": "dirichlet"}, "at least 1"),
        ({"num_clients": 10, "scheme": "iid"}, "10 clients but only 7 training images; use at most 7"),
        ({"num_clients": 10, "scheme": "dirichlet"}, "use at most 7 clients"),
        ({"num_clients": 2, "scheme": "dirichlet", "alpha": 0.0}, "alpha"),
        ({"num_clients": 2, "scheme": "dirichlet", "alpha": -1.0}, "alpha"),
        ({"num_clients": 2, "scheme": "dirichlet", "alpha": float("nan")}, "finite"),
        ({"num_clients": 2, "scheme": "dirichlet", "alpha": float("inf")}, "finite"),
        ({"num_clients": 2, "scheme": "shards"}, "unknown partition scheme 'shards'"),
        ({"num_clients": 2.5, "scheme": "iid"}, "integer"),
    ],
)
def test_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        partition(np.arange(7) % 2, seed=0, **kwargs)  # type: ignore[arg-type]


def test_min_per_client_errors() -> None:
    labels = np.arange(20) % 2
    with pytest.raises(ConfigError, match="need 25 training images"):
        partition_dirichlet(labels, 5, alpha=1.0, seed=0, min_per_client=5)
    with pytest.raises(ConfigError, match="min_per_client"):
        partition_dirichlet(labels, 5, alpha=1.0, seed=0, min_per_client=-1)


def test_label_errors() -> None:
    with pytest.raises(DataError, match="1-D"):
        partition_iid(np.zeros((3, 2), dtype=np.int64), 2, seed=0)
    with pytest.raises(DataError, match="integer"):
        partition_iid(np.zeros(4), 2, seed=0)
    with pytest.raises(DataError, match="non-negative"):
        partition_iid(np.array([0, -1, 1]), 2, seed=0)


def test_class_count_table_and_format() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])
    parts = [np.array([0, 2]), np.array([1, 3, 4, 5])]
    table = class_count_table(labels, parts, 4)
    assert table.dtype == np.int64
    assert table.tolist() == [[1, 1, 0, 0], [1, 0, 3, 0]]
    text = format_class_counts(table, ("NonDemented", "VeryMild", "Mild", "Moderate"))
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["client", "NonDemented", "VeryMild", "Mild", "Moderate", "total"]
    assert lines[2].split() == ["1", "1", "0", "3", "0", "4"]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    with pytest.raises(DataError, match="out of range"):
        class_count_table(labels, parts, 2)
    with pytest.raises(DataError, match="does not match"):
        format_class_counts(table, ("a", "b"))
