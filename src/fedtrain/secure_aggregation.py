"""The arithmetic of encrypted FedAvg: per-tensor scales, rounding, packed fixed-point encoding, chunks, bounds.

A round in secure mode, for K selected clients with counts c_k (sample counts, or 1
for the plain mean), C = sum c_k and weights w_k = c_k / C:

1. Statistics.  Client k sends Enc(c_k) and, per tensor t, Enc(u_kt) with
   u_kt = c_k * max |delta_k| over tensor t, rounded UP to the grid 2^-stats_frac_bits.
   The server adds them; the clients decrypt C and S_t = sum_k u_kt / C, which is
   at least sum_k w_k max|delta_k|: it bounds every |w_k delta_k| and every
   |sum_k w_k delta_k| in tensor t, so step 2 cannot overflow.  (Weighting the maxima
   makes S_t about K times smaller than the plain sum of maxima, which gains log2 K
   bits of precision at the same ciphertext count.)
2. Update.  Client k computes x_k = w_k * delta_k / S_t (|x_k| <= 1), rounds it to the
   grid 2^-f (f = value_bits - 2), to nearest by default, and encodes it with a
   PackedCodec of `value_bits` signed bits, in chunks aligned to whole ciphertexts,
   and encrypts them.  The server adds them.
3. Decryption.  Client j decrypts chunk j of the aggregate, giving sum_k q_k exactly,
   and the update S_t * that sum.

Rounding and its bound, per position of tensor t (q_k the rounded x_k):
- "stochastic": q_k = floor(x_k 2^f + U) / 2^f with U uniform on [0, 1) drawn from
  (seed, round, client).  E[q_k] = x_k exactly (unbiased), |q_k - x_k| < 2^-f, so the
  decrypted update differs from the exact sum_k w_k delta_k by less than K 2^-f S_t,
  with mean 0 and standard deviation at most sqrt(K) 2^-(f+1) S_t.
- "nearest": q_k = rint(x_k 2^f) / 2^f, |q_k - x_k| <= 2^-(f+1), so the error is at most
  K 2^-(f+1) S_t; deterministic, and biased: an update below half a grid step is
  dropped every round, so small coordinates of a tensor never move.
The stored model adds one float32 rounding of global + update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastpaillier import PackedCodec, PublicKey

from .errors import ConfigError, FedTrainError
from .fedavg import ModelLayout, apply_delta, clamp_variances

STATS_RANGE_BITS = 17  # |max update| per tensor must stay below 2^17: anything larger means divergence
COUNT_BITS = 20  # with --avg weighted, a client's sample count must stay below 2^20
ROUNDING_MODES = ("stochastic", "nearest")
_ROUNDING_DOMAIN = 0x5EC0DE  # keeps the rounding bits apart from every other stream derived from the seed


@dataclass(frozen=True)
class EncodingPlan:
    """Codec parameters of one secure round, known to every party from the round's config."""

    value_bits: int
    summands: int
    rounding: str = "nearest"
    weighted: bool = True  # counts are sample counts (--avg weighted), else 1 each (--avg mean)
    # The most statistics a round of this run may add (the number of clients): fixes the statistics grid
    # at round start, so that it is the same whoever drops later (None: the selection's size).
    headroom: int | None = None

    def __post_init__(self) -> None:
        if self.headroom is not None and self.headroom < self.summands:
            raise ConfigError(f"a statistics headroom of {self.headroom} is below the {self.summands} summands")
        if self.rounding not in ROUNDING_MODES:
            raise ConfigError(f"unknown --rounding {self.rounding!r}; choose stochastic or nearest")
        if self.stats_frac_bits < 8:
            raise ConfigError(f"{self.summands} clients per round leave the statistics codec "
                              f"{self.stats_frac_bits} fractional bits; select fewer clients per round")

    @property
    def frac_bits(self) -> int:
        """Fractional bits of the update codec: values |x| <= 1 need value_bits - 2."""
        return self.value_bits - 2

    @property
    def stats_value_bits(self) -> int:
        """Width of the statistics codec: the widest that fits a 62-bit slot with `headroom` summands."""
        return 62 - (self.headroom or self.summands).bit_length()

    @property
    def stats_range_bits(self) -> int:
        """Integer bits of a statistic c_k * max|delta_k|: the maximum's range, plus the count's when weighted."""
        return STATS_RANGE_BITS + (COUNT_BITS if self.weighted else 0)

    @property
    def stats_frac_bits(self) -> int:
        return self.stats_value_bits - 1 - self.stats_range_bits

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


def scale_statistics(maxima: np.ndarray, count: int, plan: EncodingPlan) -> np.ndarray:
    """u_kt = count * max|delta_k| per tensor, rounded up to the statistics grid (what client k encrypts)."""
    if not 1 <= count < 2 ** (COUNT_BITS if plan.weighted else 1):
        raise FedTrainError(f"a client count of {count} does not fit the statistics codec (limit "
                            f"{2 ** COUNT_BITS - 1} samples per client with --avg weighted)")
    limit = 2.0 ** STATS_RANGE_BITS
    if np.any(maxima >= limit):
        raise FedTrainError(f"a local update has a magnitude of {float(maxima.max()):.3g} (limit {limit:g}): "
                            "training diverged; lower --lr")
    return np.ldexp(np.ceil(np.ldexp(count * maxima.astype(np.float64), plan.stats_frac_bits)),
                    -plan.stats_frac_bits)


def scales_from_statistics(summed: np.ndarray, total: int) -> np.ndarray:
    """S_t = sum_k u_kt / C: at least sum_k w_k max|delta_k| for every tensor t."""
    return summed.astype(np.float64) / total


def rounding_rng(seed: int, round_: int, client: int) -> np.random.Generator:
    """The generator of client `client`'s stochastic rounding in round `round_`: a function of the three only."""
    return np.random.default_rng([seed, round_, client, _ROUNDING_DOMAIN])


def quantize(x: np.ndarray, plan: EncodingPlan, rng: np.random.Generator | None = None) -> np.ndarray:
    """x on the grid 2^-frac_bits (float64), rounded as the plan says; the codec then encodes it exactly."""
    scaled = np.ldexp(np.asarray(x, dtype=np.float64), plan.frac_bits)
    if plan.rounding == "nearest":
        q = np.rint(scaled)  # ties to even, as the codec itself rounds
    else:
        if rng is None:
            raise FedTrainError("stochastic rounding needs its generator (rounding_rng)")
        q = np.floor(scaled + rng.random(scaled.shape))  # up with probability frac(scaled): unbiased
    return np.ldexp(q, -plan.frac_bits)


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
    """Per-position bound on |decrypted update - exact update|: K 2^-f S_t (stochastic), K 2^-(f+1) S_t (nearest)."""
    step = 2.0 ** -plan.frac_bits if plan.rounding == "stochastic" else 2.0 ** -(plan.frac_bits + 1)
    return np.repeat(clients * step * scales, [s.size for s in layout.slots])


def plaintext_round(global_vector: np.ndarray, local_vectors: list[np.ndarray], counts: list[int],
                    plan: EncodingPlan, layout: ModelLayout,
                    rngs: list[np.random.Generator | None]) -> tuple[np.ndarray, np.ndarray]:
    """(new global model, S_t) of a secure round computed without encryption: the same numbers, for checks.

    `counts` are the c_k of the protocol (sample counts, or 1 each for the plain mean)
    and `rngs` each client's rounding generator.
    """
    total = int(sum(counts))
    deltas = [local.astype(np.float64) - global_vector.astype(np.float64) for local in local_vectors]
    summed = sum(scale_statistics(tensor_max_abs(d, layout), c, plan) for d, c in zip(deltas, counts))
    scales = scales_from_statistics(summed, total)
    decoded = sum(quantize(scaled_update(d, c / total, scales, layout), plan, rng)
                  for d, c, rng in zip(deltas, counts, rngs))
    decoded = decoded.astype(plan.relay_dtype()).astype(np.float64)
    return clamp_variances(apply_delta(global_vector, unscale(decoded, scales, layout)), layout), scales


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
