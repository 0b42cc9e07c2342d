"""Deterministic 4-class brain-MRI-like phantoms: the built-in demo dataset.

Each phantom is an axial "slice" of a head: scalp ring, dark CSF gap, grey
matter cortex with sulci, white matter and a butterfly of lateral ventricles.
The class sets an atrophy level: larger ventricles, wider and deeper sulci and
a brain that shrinks away from the skull. Atrophy levels of neighbouring
classes overlap a little, and every image gets its own head size and shape,
rotation, contrast, bias field, blur and noise, so a small CNN learns the task
well above chance but not perfectly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

__all__ = ["DEMO_CLASSES", "PHANTOM_VERSION", "generate_phantoms"]

DEMO_CLASSES: tuple[str, ...] = (
    "NonDemented",
    "VeryMildDemented",
    "MildDemented",
    "ModerateDemented",
)

#: Bump whenever the generator's output changes; it invalidates cached demo data.
PHANTOM_VERSION = 1

_ATROPHY_OVERLAP = 0.025  # half-width by which a class interval reaches into its neighbours
_CHUNK = 64  # images rendered at once (bounds memory: a few MB per float32 array)

# Tissue intensities before the per-image contrast changes (T1-like: WM > GM > CSF).
_SCALP = 0.62
_CSF = 0.08
_GREY = 0.50
_WHITE = 0.80


@dataclass(frozen=True)
class _Params:
    """Per-image random parameters, one array entry per image."""

    atrophy: np.ndarray
    angle: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    head_x: np.ndarray
    head_y: np.ndarray
    harm2: np.ndarray
    harm3: np.ndarray
    phase2: np.ndarray
    phase3: np.ndarray
    brain_jitter: np.ndarray
    sulci_n: np.ndarray
    sulci_phase: np.ndarray
    vent_jitter: np.ndarray
    vent_asym: np.ndarray
    bias_x: np.ndarray
    bias_y: np.ndarray
    gamma: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    blur: np.ndarray
    noise: np.ndarray

    def take(self, sl: slice) -> _Params:
        """The parameters of the images in `sl`."""
        return _Params(**{k: v[sl] for k, v in self.__dict__.items()})


def generate_phantoms(
    counts: Sequence[int], *, seed: int, size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Generate shuffled phantoms: `counts[c]` images of class `c`, uint8 (N, size, size)."""
    counts = _check_counts(counts)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ConfigError(f"phantom size must be an integer of at least 16 (got {size!r})")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
    params = _draw_params(rng, labels, len(counts))
    images = np.empty((labels.size, size, size), dtype=np.uint8)
    for start in range(0, labels.size, _CHUNK):
        sl = slice(start, start + _CHUNK)
        images[sl] = _render(params.take(sl), size, rng)
    return images, labels


def _check_counts(counts: Sequence[int]) -> list[int]:
    """Validate per-class counts and return them as plain ints."""
    values = list(counts)
    if not values:
        raise ConfigError("phantom counts must name at least one class")
    for c in values:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
            raise ConfigError(f"phantom counts must be non-negative integers (got {c!r})")
    return [int(c) for c in values]


def _draw_params(rng: np.random.Generator, labels: np.ndarray, num_classes: int) -> _Params:
    """Draw every image's parameters at once; the class only moves the atrophy level."""
    n = labels.size
    low = labels / num_classes - _ATROPHY_OVERLAP
    high = (labels + 1) / num_classes + _ATROPHY_OVERLAP
    atrophy = np.clip(rng.uniform(low, high), 0.0, 1.0)
    head = rng.uniform(0.90, 1.04, n)

    def u(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    return _Params(
        atrophy=atrophy,
        angle=np.deg2rad(u(-10.0, 10.0)),
        shift_x=u(-0.04, 0.04),
        shift_y=u(-0.04, 0.04),
        head_x=0.74 * head * u(0.95, 1.05),
        head_y=0.90 * head * u(0.96, 1.04),
        harm2=u(0.0, 0.03),
        harm3=u(0.0, 0.02),
        phase2=u(0.0, 2 * np.pi),
        phase3=u(0.0, 2 * np.pi),
        brain_jitter=u(-0.025, 0.025),
        sulci_n=rng.integers(13, 19, n).astype(np.float64),
        sulci_phase=u(0.0, 2 * np.pi),
        vent_jitter=u(0.85, 1.15),
        vent_asym=u(-0.12, 0.12),
        bias_x=u(-0.12, 0.12),
        bias_y=u(-0.12, 0.12),
        gamma=u(0.8, 1.25),
        gain=u(0.75, 1.2),
        offset=u(-0.04, 0.06),
        blur=u(0.0, 1.0),
        noise=u(0.015, 0.06),
    )


def _col(values: np.ndarray) -> np.ndarray:
    """Shape a per-image vector (B,) for broadcasting against (B, H, W) as float32."""
    return values.astype(np.float32)[:, None, None]


def _soft_inside(dist: np.ndarray, edge: float) -> np.ndarray:
    """Antialiased mask: 1 where `dist` < 0, 0 where `dist` > 0, linear over `edge`."""
    return np.clip(0.5 - dist / edge, 0.0, 1.0)


def _blend(img: np.ndarray, mask: np.ndarray, value: float | np.ndarray) -> np.ndarray:
    """Paint `value` over `img` with opacity `mask` (in place)."""
    img += mask * (value - img)
    return img


def _ellipse(u: np.ndarray, v: np.ndarray, cx: np.ndarray, cy: np.ndarray,
             ax: np.ndarray, ay: np.ndarray, tilt: float | np.ndarray) -> np.ndarray:
    """Normalized radius of points (u, v) for a tilted ellipse (1 on its border)."""
    c, s = np.cos(tilt), np.sin(tilt)
    du, dv = u - cx, v - cy
    return np.sqrt(((c * du + s * dv) / ax) ** 2 + ((-s * du + c * dv) / ay) ** 2)


def _render(p: _Params, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one chunk of phantoms from their parameters (vectorized over the chunk)."""
    b = p.atrophy.size
    a = _col(p.atrophy)
    grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = grid[None, :, None], grid[None, None, :]
    theta = _col(p.angle)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    xs, ys = x - _col(p.shift_x), y - _col(p.shift_y)
    u = cos_t * xs + sin_t * ys  # head-aligned coordinates (B, H, W)
    v = -sin_t * xs + cos_t * ys
    hx, hy = _col(p.head_x), _col(p.head_y)

    # Head outline with a wobbly (low-harmonic) shape; rho = 1 on the scalp's inner edge.
    phi = np.arctan2(v / hy, u / hx)
    wobble = 1.0 + _col(p.harm2) * np.cos(2 * phi + _col(p.phase2))
    wobble += _col(p.harm3) * np.cos(3 * phi + _col(p.phase3))
    rho = np.sqrt((u / hx) ** 2 + (v / hy) ** 2) / wobble
    edge = 2.5 / (size * 0.8)  # about one pixel in rho units

    img = np.zeros((b, size, size), dtype=np.float32)
    _blend(img, _soft_inside(rho - 1.09, edge), _SCALP)
    _blend(img, _soft_inside(rho - 0.98, edge), _CSF)

    # Brain shrinks away from the skull as atrophy grows; cortex thins a little.
    r_brain = 0.95 - 0.13 * a + _col(p.brain_jitter)
    _blend(img, _soft_inside(rho - r_brain, edge), _GREY)
    r_white = (r_brain - 0.17 * (1.0 - 0.3 * a)) * (1.0 + 0.035 * np.cos(7 * phi + _col(p.sulci_phase)))
    _blend(img, _soft_inside(rho - r_white, 2 * edge), _WHITE)

    # Sulci: dark radial gaps from the brain surface inwards, wider and deeper with atrophy.
    width = np.pi * (0.06 + 0.30 * a)  # angular duty cycle of a sulcus
    twist = 0.6 * np.sin(3 * phi) + 0.5 * np.sin(5 * phi + _col(p.phase3))
    bend = 6.0 * (rho - r_brain) * np.sign(np.sin(_col(p.sulci_phase)))  # sulci curve inwards
    wave = np.cos(_col(p.sulci_n) * phi + _col(p.sulci_phase) + twist + bend)
    depth = (0.05 + 0.16 * a) * (0.75 + 0.25 * np.cos(4 * phi + _col(p.phase2)))
    in_gap = _soft_inside(np.cos(width) - wave, 0.15)
    in_band = _soft_inside(r_brain - depth - rho, edge) * _soft_inside(rho - r_brain - edge, edge)
    _blend(img, in_gap * in_band, _CSF)
    fissure = _soft_inside(np.abs(u) - (0.008 + 0.03 * a) * hx / 0.74, edge)
    fissure *= _soft_inside(0.30 - np.abs(v / hy), 0.05) * _soft_inside(rho - r_brain, edge)
    _blend(img, fissure, _CSF)

    # Lateral ventricles: a tilted pair ("butterfly") plus a small third ventricle.
    scale = _col(p.vent_jitter) * (0.35 + 0.95 * a) * hx / 0.74
    asym = _col(p.vent_asym)
    vents = np.zeros_like(img)
    for side in (-1.0, 1.0):
        cx = side * (0.07 + 0.06 * a) * hx / 0.74
        r = _ellipse(u, v, cx, -0.04 * hy, 0.075 * scale * (1.0 + side * asym),
                     0.28 * scale, side * -0.35)
        np.maximum(vents, _soft_inside(r - 1.0, 0.12), out=vents)
    third = _ellipse(u, v, 0.0, 0.24 * hy, 0.018 * scale, 0.07 * scale, 0.0)
    np.maximum(vents, _soft_inside(third - 1.0, 0.2), out=vents)
    _blend(img, vents, _CSF)

    # Acquisition: tissue texture, bias field, contrast (gamma, gain, offset), blur and noise.
    img *= 1.0 + 0.08 * _smooth_field(rng, b, size) + _col(p.bias_x) * x + _col(p.bias_y) * y
    np.clip(img, 0.0, 1.0, out=img)
    img **= _col(p.gamma)
    img *= _col(p.gain)
    img += _col(p.offset) * (img > 0.02)
    _blend(img, _col(p.blur), _box_blur(img))
    img += _col(p.noise) * rng.standard_normal(img.shape, dtype=np.float32)
    np.clip(img, 0.0, 1.0, out=img)
    return np.rint(img * 255.0).astype(np.uint8)


def _box_blur(img: np.ndarray) -> np.ndarray:
    """A separable [1, 2, 1] / 4 blur along both image axes (edges replicated)."""
    out = img.copy()
    for axis in (1, 2):
        padded = np.pad(out, [(0, 0) if i != axis else (1, 1) for i in range(3)], mode="edge")
        lo = np.take(padded, np.arange(0, out.shape[axis]), axis=axis)
        mid = np.take(padded, np.arange(1, out.shape[axis] + 1), axis=axis)
        hi = np.take(padded, np.arange(2, out.shape[axis] + 2), axis=axis)
        out = 0.25 * lo + 0.5 * mid + 0.25 * hi
    return out


def _smooth_field(rng: np.random.Generator, count: int, size: int, coarse: int = 12) -> np.ndarray:
    """Smooth random fields (count, size, size), unit scale: coarse noise upsampled bilinearly."""
    pos = np.linspace(0.0, coarse - 1.0, size)
    lo = np.minimum(pos.astype(np.int64), coarse - 2)
    frac = (pos - lo).astype(np.float32)
    interp = np.zeros((size, coarse), dtype=np.float32)
    interp[np.arange(size), lo] = 1.0 - frac
    interp[np.arange(size), lo + 1] = frac
    noise = rng.standard_normal((count, coarse, coarse), dtype=np.float32)
    return interp @ noise @ interp.T
