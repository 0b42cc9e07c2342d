"""Split training indices among federated clients: IID or label-skewed (Dirichlet)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError, DataError

__all__ = [
    "SCHEMES",
    "class_count_table",
    "format_class_counts",
    "partition",
    "partition_dirichlet",
    "partition_iid",
]

SCHEMES: tuple[str, ...] = ("iid", "dirichlet")

_DIRICHLET_TRIES = 100  # resampling rounds before the deterministic fix-up


def partition(
    labels: np.ndarray, num_clients: int, *, scheme: str, alpha: float = 0.5, seed: int
) -> list[np.ndarray]:
    """Partition sample indices among `num_clients` clients with the named scheme."""
    if scheme == "iid":
        return partition_iid(labels, num_clients, seed=seed)
    if scheme == "dirichlet":
        return partition_dirichlet(labels, num_clients, alpha=alpha, seed=seed)
    raise ConfigError(f"unknown partition scheme {scheme!r}; use one of: {', '.join(SCHEMES)}")


def partition_iid(labels: np.ndarray, num_clients: int, *, seed: int) -> list[np.ndarray]:
    """Shuffle and deal indices into `num_clients` near-equal parts (sizes differ by at most 1)."""
    labels = _check_labels(labels)
    check_num_clients(num_clients, labels.size)
    perm = np.random.default_rng(seed).permutation(labels.size)
    return [np.sort(part) for part in np.array_split(perm, num_clients)]


def partition_dirichlet(
    labels: np.ndarray,
    num_clients: int,
    *,
    alpha: float,
    seed: int,
    min_per_client: int = 1,
) -> list[np.ndarray]:
    """Split each class among clients by Dirichlet(alpha) proportions (small alpha: skewed)."""
    labels = _check_labels(labels)
    check_num_clients(num_clients, labels.size)
    check_alpha(alpha)
    _check_min_per_client(min_per_client, num_clients, labels.size)
    rng = np.random.default_rng(seed)
    owner = np.empty(0, dtype=np.int64)
    for _ in range(_DIRICHLET_TRIES):
        owner = _dirichlet_owners(labels, num_clients, alpha, rng)
        if np.bincount(owner, minlength=num_clients).min() >= min_per_client:
            break
    else:
        owner = _top_up(owner, labels, num_clients, min_per_client)
    return [np.flatnonzero(owner == k) for k in range(num_clients)]


def _dirichlet_owners(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """One draw: the client that owns each sample."""
    owner = np.empty(labels.size, dtype=np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        share = rng.dirichlet(np.full(num_clients, alpha))
        if not np.all(np.isfinite(share)) or share.sum() <= 0:  # alpha so small it underflows
            share = np.eye(num_clients)[rng.integers(num_clients)]
        cuts = np.rint(np.cumsum(share)[:-1] * idx.size).astype(np.int64)
        owner[idx] = np.repeat(np.arange(num_clients), np.diff(cuts, prepend=0, append=idx.size))
    return owner


def _top_up(owner: np.ndarray, labels: np.ndarray, num_clients: int, minimum: int) -> np.ndarray:
    """Move samples from the largest client to the smallest until every client has `minimum`."""
    owner = owner.copy()
    sizes = np.bincount(owner, minlength=num_clients)
    while sizes.min() < minimum:
        small, large = int(np.argmin(sizes)), int(np.argmax(sizes))
        mine = np.flatnonzero(owner == large)
        common = np.bincount(labels[mine]).argmax()  # give away its most common class
        moved = mine[labels[mine] == common][-1]
        owner[moved] = small
        sizes[large] -= 1
        sizes[small] += 1
    return owner


def class_count_table(
    labels: np.ndarray, parts: Sequence[np.ndarray], num_classes: int
) -> np.ndarray:
    """Per-client class counts, int64 (num_clients, num_classes)."""
    labels = _check_labels(labels)
    if labels.size and labels.max() >= num_classes:
        raise DataError(f"label {labels.max()} is out of range for {num_classes} classes")
    table = np.zeros((len(parts), num_classes), dtype=np.int64)
    for k, part in enumerate(parts):
        table[k] = np.bincount(labels[np.asarray(part, dtype=np.int64)], minlength=num_classes)
    return table


def format_class_counts(table: np.ndarray, class_names: Sequence[str]) -> str:
    """An aligned text table with one row of class counts (and total) per client."""
    table = np.asarray(table, dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != len(class_names):
        raise DataError(
            f"class count table of shape {table.shape} does not match {len(class_names)} class names"
        )
    header = ["client", *class_names, "total"]
    rows = [[str(k), *(str(v) for v in row), str(row.sum())] for k, row in enumerate(table)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _check_labels(labels: np.ndarray) -> np.ndarray:
    """Labels as a 1-D int64 array of non-negative class indices."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise DataError(f"labels must be a 1-D array (got shape {arr.shape})")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"labels must be integer class indices (got dtype {arr.dtype})")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise DataError(f"labels must be non-negative class indices (got {arr.min()})")
    return arr


def check_num_clients(num_clients: int, num_samples: int) -> None:
    """Reject a client count below 1 or above the number of samples."""
    if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)):
        raise ConfigError(f"number of clients must be an integer (got {num_clients!r})")
    if num_clients < 1:
        raise ConfigError(f"number of clients must be at least 1 (got {num_clients})")
    if num_clients > num_samples:
        raise ConfigError(
            f"{num_clients} clients but only {num_samples} training images; "
            f"use at most {num_samples} clients"
        )


def check_alpha(alpha: float) -> None:
    """Reject a Dirichlet concentration that is not a finite positive number."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"Dirichlet alpha must be a number (got {alpha!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"Dirichlet alpha must be a finite number > 0 (got {alpha!r})")


def _check_min_per_client(minimum: int, num_clients: int, num_samples: int) -> None:
    """Reject a per-client minimum that cannot be met."""
    if isinstance(minimum, bool) or not isinstance(minimum, (int, np.integer)) or minimum < 0:
        raise ConfigError(f"min_per_client must be a non-negative integer (got {minimum!r})")
    if minimum * num_clients > num_samples:
        raise ConfigError(
            f"{num_clients} clients with at least {minimum} images each need "
            f"{minimum * num_clients} training images but there are only {num_samples}; "
            "use fewer clients or a smaller minimum"
        )
