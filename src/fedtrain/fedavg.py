"""FedAvg as pure functions over flat float vectors: client weights, the weighted mean, model layout.

Imports no torch: the command line checks its options with this module before torch is loaded, and
the aggregation server (the Flower ServerApp included), which adds vectors and ciphertexts only, runs
without it; the functions that take state dicts use the tensors' own methods, or import torch when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

from .errors import ConfigError, ProtocolError

AVERAGING_MODES = ("weighted", "mean")


@dataclass(frozen=True)
class TensorSlot:
    """One floating-point tensor of a state dict, at [offset, offset + size) of the flat vector."""

    name: str
    shape: tuple[int, ...]
    offset: int
    size: int


@dataclass(frozen=True)
class ModelLayout:
    """Which state-dict tensors are averaged and where they sit in the flat vector."""

    slots: tuple[TensorSlot, ...]

    @property
    def size(self) -> int:
        """Length of the flat vector."""
        return self.slots[-1].offset + self.slots[-1].size if self.slots else 0

    @property
    def num_tensors(self) -> int:
        return len(self.slots)

    def tensor_index(self) -> np.ndarray:
        """For each flat position, the index of the tensor it belongs to (int32)."""
        return np.repeat(np.arange(len(self.slots), dtype=np.int32), [s.size for s in self.slots])

    @classmethod
    def of(cls, state: Mapping[str, torch.Tensor]) -> "ModelLayout":
        """Layout of every floating-point tensor (BatchNorm running statistics included)."""
        slots: list[TensorSlot] = []
        offset = 0
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                continue  # e.g. BatchNorm's num_batches_tracked counter: not averaged
            size = tensor.numel()
            slots.append(TensorSlot(name, tuple(tensor.shape), offset, size))
            offset += size
        return cls(tuple(slots))


def flatten_state(state: Mapping[str, torch.Tensor], layout: ModelLayout) -> np.ndarray:
    """The floating-point tensors of `state` as one float32 vector in layout order."""
    import torch

    out = np.empty(layout.size, dtype=np.float32)
    for slot in layout.slots:
        tensor = state[slot.name]
        if tuple(tensor.shape) != slot.shape:
            raise ProtocolError(f"tensor {slot.name} has shape {tuple(tensor.shape)}, expected {slot.shape}")
        out[slot.offset:slot.offset + slot.size] = tensor.detach().to("cpu", torch.float32).reshape(-1).numpy()
    return out


def unflatten_into(state: Mapping[str, torch.Tensor], layout: ModelLayout, vector: np.ndarray) -> dict:
    """A copy of `state` whose floating-point tensors are replaced by the values of `vector`."""
    import torch

    if vector.shape != (layout.size,):
        raise ProtocolError(f"model vector has shape {vector.shape}, expected ({layout.size},)")
    out = {name: tensor.detach().clone() for name, tensor in state.items()}
    for slot in layout.slots:
        values = torch.from_numpy(np.ascontiguousarray(vector[slot.offset:slot.offset + slot.size]))
        out[slot.name] = values.reshape(slot.shape).to(out[slot.name].dtype)
    return out


def client_weights(sample_counts: Sequence[int], mode: str) -> np.ndarray:
    """FedAvg weights w_k (summing to 1): n_k / sum(n) for "weighted", 1/K for "mean" (the paper's)."""
    if mode not in AVERAGING_MODES:
        raise ConfigError(f"unknown averaging {mode!r}; choose 'weighted' or 'mean'")
    counts = np.asarray(sample_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts <= 0):
        raise ConfigError("sample_counts must be a non-empty list of positive counts")
    if mode == "mean":
        return np.full(counts.size, 1.0 / counts.size)
    return counts / counts.sum()


def weighted_delta(global_vector: np.ndarray, local_vectors: Sequence[np.ndarray],
                   weights: np.ndarray) -> np.ndarray:
    """sum_k w_k (local_k - global) in float64: the aggregate update of one round."""
    base = global_vector.astype(np.float64)
    total = np.zeros_like(base)
    for w, local in zip(weights, local_vectors):
        total += w * (local.astype(np.float64) - base)
    return total


def apply_delta(global_vector: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The next global model: global + delta, stored as float32."""
    return (global_vector.astype(np.float64) + delta).astype(np.float32)


def clamp_variances(vector: np.ndarray, layout: ModelLayout) -> np.ndarray:
    """A copy of `vector` whose BatchNorm running variances are at least 0.

    Exact FedAvg of variances is never negative; an encrypted aggregate can be, by
    the codec's rounding, where a channel's variance is small next to its tensor's
    largest update, and BatchNorm would then take the square root of a negative
    number.  Raising such a value to 0 moves it towards the exact average, never away.
    """
    out = np.array(vector, dtype=np.float32, copy=True)
    for slot in layout.slots:
        if slot.name.endswith("running_var"):
            view = out[slot.offset:slot.offset + slot.size]
            np.maximum(view, 0.0, out=view)
    return out


def fedavg(global_vector: np.ndarray, local_vectors: Sequence[np.ndarray], sample_counts: Sequence[int],
           mode: str = "weighted") -> np.ndarray:
    """Plain FedAvg: the weighted mean of the clients' models (as global + weighted mean update)."""
    weights = client_weights(sample_counts, mode)
    return apply_delta(global_vector, weighted_delta(global_vector, local_vectors, weights))
