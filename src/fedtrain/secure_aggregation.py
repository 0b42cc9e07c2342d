"""The arithmetic of encrypted FedAvg: per-tensor scales, packed fixed-point encoding, chunks, error bound.

A round in secure mode, for K selected clients with weights w_k (summing to 1):

1. Statistics.  Client k sends Enc(c_k) (c_k = its sample count, or 1 for the
   plain mean) and, per tensor t, Enc(m_kt) where m_kt = max |delta_k| over tensor
   t, rounded UP to the grid 2^-STATS_FRAC_BITS.  The server adds them; the clients
   decrypt C = sum c_k and S_t = sum_k m_kt.  S_t bounds every |w_k delta_k| and
   every |sum_k w_k delta_k| in tensor t, so step 2 cannot overflow.
2. Update.  Client k encodes x_k = w_k * delta_k / S_t (|x_k| <= 1) with a
   PackedCodec of `value_bits` signed bits and frac_bits = value_bits - 2, in
   chunks aligned to whole ciphertexts, and encrypts them.  The server adds them.
3. Decryption.  Client j decrypts chunk j of the aggregate, giving
   sum_k round(x_k * 2^f) / 2^f, and the update S_t * that sum.

Error bound: each encoding rounds by at most 2^-(f+1), so the decrypted update of
tensor t differs from the exact sum_k w_k delta_k by at most K * 2^-(f+1) * S_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastpaillier import PackedCodec, PublicKey

from .errors import FedTrainError
from .fedavg import ModelLayout

STATS_RANGE_BITS = 17  # |max update| per tensor must stay below 2^17: anything larger means divergence


@dataclass(frozen=True)
class EncodingPlan:
    """Codec parameters of one secure round, known to every party from the round's config."""

    value_bits: int
    summands: int

    @property
    def frac_bits(self) -> int:
        """Fractional bits of the update codec: values |x| <= 1 need value_bits - 2."""
        return self.value_bits - 2

    @property
    def stats_value_bits(self) -> int:
        """Width of the statistics codec: the widest that fits a 62-bit slot with `summands` headroom."""
        return 62 - self.summands.bit_length()

    @property
    def stats_frac_bits(self) -> int:
        return self.stats_value_bits - 1 - STATS_RANGE_BITS

    def update_codec(self, public_key: PublicKey) -> PackedCodec:
        """The packed codec of the scaled updates."""
        return PackedCodec(public_key, value_bits=self.value_bits, max_summands=self.summands,
                           frac_bits=self.frac_bits)

    def stats_codec(self, public_key: PublicKey) -> PackedCodec:
        """The packed codec of the per-tensor maxima."""
        return PackedCodec(public_key, value_bits=self.stats_value_bits, max_summands=self.summands,
                           frac_bits=self.stats_frac_bits)

    def relay_dtype(self) -> np.dtype:
        """Dtype that holds a decoded chunk exactly (float32 while value_bits + log2 K <= 24)."""
        return np.dtype(np.float32) if self.value_bits + self.summands.bit_length() <= 24 else np.dtype(np.float64)


def tensor_max_abs(delta: np.ndarray, layout: ModelLayout) -> np.ndarray:
    """max |delta| of each tensor of the layout (float64, length num_tensors)."""
    if not np.all(np.isfinite(delta)):
        raise FedTrainError("the local update holds NaN or infinite values: training diverged; "
                            "lower --lr or check the data")
    starts = np.array([s.offset for s in layout.slots], dtype=np.int64)
    return np.maximum.reduceat(np.abs(delta.astype(np.float64)), starts) if layout.size else np.zeros(0)


def round_up_to_grid(values: np.ndarray, frac_bits: int) -> np.ndarray:
    """Each value rounded up to a multiple of 2^-frac_bits, checked against the statistics range."""
    limit = 2.0 ** STATS_RANGE_BITS
    if np.any(values >= limit):
        raise FedTrainError(f"a local update has a magnitude of {float(values.max()):.3g} (limit {limit:g}): "
                            "training diverged; lower --lr")
    return np.ldexp(np.ceil(np.ldexp(values, frac_bits)), -frac_bits)


def scaled_update(delta: np.ndarray, weight: float, scales: np.ndarray, layout: ModelLayout) -> np.ndarray:
    """x = weight * delta / S_t per position (0 where S_t = 0), in float64."""
    per_position = np.repeat(scales, [s.size for s in layout.slots])
    out = np.zeros(layout.size, dtype=np.float64)
    nonzero = per_position > 0
    out[nonzero] = weight * delta.astype(np.float64)[nonzero] / per_position[nonzero]
    return out


def unscale(decoded: np.ndarray, scales: np.ndarray, layout: ModelLayout) -> np.ndarray:
    """The aggregate update S_t * decoded per position (float64)."""
    return decoded.astype(np.float64) * np.repeat(scales, [s.size for s in layout.slots])


def rounding_bound(scales: np.ndarray, plan: EncodingPlan, clients: int, layout: ModelLayout) -> np.ndarray:
    """Per-position bound on |decrypted update - exact update|: K * 2^-(f+1) * S_t."""
    per_tensor = clients * 2.0 ** -(plan.frac_bits + 1) * scales
    return np.repeat(per_tensor, [s.size for s in layout.slots])


def chunk_bounds(size: int, parts: int, slots: int) -> list[tuple[int, int]]:
    """Splits [0, size) into `parts` ranges whose starts fall on whole ciphertexts of `slots` values."""
    rows = -(-size // slots)
    per_part = -(-rows // parts) if rows else 0
    bounds = []
    for j in range(parts):
        start = min(size, j * per_part * slots)
        stop = min(size, (j + 1) * per_part * slots)
        bounds.append((start, stop))
    return bounds
