"""EXPERIMENT: train a CNN on Paillier ciphertexts of pixels, to measure why fedtrain does not do this.

Lim et al. (2025, sections 4.1, 4.5 and 5) describe encrypting every pixel of
the MRI images with Paillier and training ResNet50/DenseNet121 on the encrypted
images, claiming that "the encrypted images still possess enough structural
patterns" for feature extraction.  That cannot work: Paillier is IND-CPA secure
(under the decisional composite residuosity assumption), so without the private
key the ciphertext c = (1 + n)^m r^n mod n^2 of a pixel m looks like a uniformly
random element of Z*_{n^2}, whatever m is.  fedtrain therefore encrypts the
model *updates* (see fedtrain.secure_aggregation), never the images.

This module runs the nearest thing to the paper's description that can be run,
and measures the outcome:

1. every pixel value 0..255 of (downsampled) grayscale images is encrypted as
   the integer m with fastpaillier, under one key for train and test (the most
   favourable setting for the claim);
2. each ciphertext c (an integer in [0, n^2)) is mapped to one float in [0, 1)
   so that a CNN can take it as input (see MAPPINGS):

   * ``"top-bits"``: the 24 most significant bits of c relative to n^2, i.e.
     floor(2^24 * c / n^2) / 2^24 -- "the ciphertext reduced to a float" c / n^2,
     quantized to what a float32 holds.  Computed in float64 from the three
     most significant 64-bit limbs of c and n^2 (off by one unit of 2^-24 with
     probability about 2^-28 per ciphertext; irrelevant here);
   * ``"low-bits"``: the 24 least significant bits of c, (c mod 2^24) / 2^24;

3. the same small CNN (``smallcnn``) is trained centrally, with the same seed,
   epochs and optimizer (Adam, lr 1e-3, batch 32), once on the plaintext images
   and once on the mapped ciphertext images, and both test accuracies are
   reported next to chance.

The key is generated with ``insecure=True`` (512 bits by default) only to keep
the experiment fast.  The key size does not change the outcome: IND-CPA holds
for any key size against a learner that does not factor n, and a CNN does not.

This is an experiment, not a training mode: nothing else in fedtrain imports
it.  Run it with ``python -m fedtrain.encrypted_images --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastpaillier as fp

from .data import ImageSet
from .errors import ConfigError, DataError
from .models import build_model
from .training import LocalTrainingConfig, make_optimizer, resolve_device, run_epochs, seed_everything

__all__ = [
    "EXPERIMENT_NAME",
    "MAPPINGS",
    "downsample",
    "encrypt_images",
    "encrypt_pixels",
    "map_ciphertexts",
    "pixel_ciphertext_correlation",
    "run_encrypted_image_experiment",
    "write_experiment_report",
]

EXPERIMENT_NAME = "cnn-on-paillier-ciphertexts"
LABEL = (
    "EXPERIMENT: a CNN trained on Paillier-encrypted pixels (the input representation of "
    "Lim et al. 2025), measured against the same CNN on plaintext pixels. Not a training mode: "
    "it shows why fedtrain encrypts model updates instead. The key is insecure (small, for "
    "speed); the key size does not matter for the outcome, since Paillier's IND-CPA security "
    "holds for any key size against a CNN, which does not factor n."
)
MUTUAL_INFORMATION_NOTE = (
    "Paillier encryption is randomized and IND-CPA secure: without the private key, the "
    "ciphertext of a pixel value is computationally indistinguishable from the ciphertext of "
    "any other value, and fresh randomness makes equal pixels encrypt to unrelated "
    "ciphertexts. Any key-free function of a ciphertext -- including the float mappings used "
    "here -- therefore carries no information about the pixel that a CNN can use: the "
    "'encrypted images' are noise with the images' shape, and a classifier trained on them can "
    "at best learn the class frequencies. Only plaintext-derived quantities (e.g. model "
    "updates) can be learned; that is why fedtrain trains on plaintext locally and encrypts the "
    "updates it sends."
)

_FLOAT_BITS = 24  # bits kept per ciphertext: exactly what a float32 mantissa holds
_CHUNK_PIXELS = 1 << 16  # pixels encrypted per batch: ~8 MB of ciphertexts at 512 bits
_CORRELATION_SAMPLE = 1_000_000

Key = Union[fp.PublicKey, fp.PrivateKey]
PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------- ciphertext -> float mappings


def _public(key: Key) -> fp.PublicKey:
    """The public key of `key` (a PublicKey or a PrivateKey)."""
    if isinstance(key, fp.PrivateKey):
        return key.public_key
    if isinstance(key, fp.PublicKey):
        return key
    raise ConfigError(f"key must be a fastpaillier PublicKey or PrivateKey, got {type(key).__name__}")


def _top_bits(ciphertexts: np.ndarray, public_key: fp.PublicKey) -> np.ndarray:
    """floor(2^24 c / n^2) / 2^24 from the three most significant limbs of c and n^2."""
    limbs = ciphertexts.shape[1]
    k = min(3, limbs)
    weights = np.ldexp(1.0, 64 * np.arange(k))  # limb i of the top k weighs 2^(64 i)
    top_c = ciphertexts[:, limbs - k:].astype(np.float64) @ weights
    nsq = public_key.nsquare >> (64 * (limbs - k))
    ratio = top_c / float(nsq)
    scaled = np.floor(ratio * (1 << _FLOAT_BITS))
    return (np.clip(scaled, 0, (1 << _FLOAT_BITS) - 1) / (1 << _FLOAT_BITS)).astype(np.float32)


def _low_bits(ciphertexts: np.ndarray, public_key: fp.PublicKey) -> np.ndarray:
    """(c mod 2^24) / 2^24."""
    low = ciphertexts[:, 0] & np.uint64((1 << _FLOAT_BITS) - 1)
    return (low.astype(np.float64) / (1 << _FLOAT_BITS)).astype(np.float32)


#: name -> (function of (ciphertexts (M, limbs) uint64, public key) -> float32 (M,), description)
MAPPINGS: dict[str, tuple[Callable[[np.ndarray, fp.PublicKey], np.ndarray], str]] = {
    "top-bits": (_top_bits, "floor(2^24 * c / n^2) / 2^24: the ciphertext c as a fraction of n^2, 24 bits"),
    "low-bits": (_low_bits, "(c mod 2^24) / 2^24: the 24 least significant bits of the ciphertext c"),
}


def _check_mapping(mapping: str) -> None:
    if mapping not in MAPPINGS:
        raise ConfigError(f"unknown mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")


def map_ciphertexts(encrypted: fp.EncryptedArray, mapping: str = "top-bits") -> np.ndarray:
    """Each ciphertext of `encrypted` as a float32 in [0, 1), shaped like `encrypted.shape`."""
    _check_mapping(mapping)
    if encrypted.codec is not None:
        raise ConfigError("map_ciphertexts expects one raw ciphertext per value (no codec)")
    values = MAPPINGS[mapping][0](encrypted.ciphertexts, encrypted.public_key)
    return values.reshape(encrypted.shape)


# ---------------------------------------------------------------- encryption


def _check_images(images: np.ndarray) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"images must be a uint8 array (N, H, W); got {getattr(images, 'dtype', type(images).__name__)} "
            f"{getattr(images, 'shape', '')}")
    return images


def encrypt_pixels(images: np.ndarray, public_key: Key, *, threads: int | None = None) -> fp.EncryptedArray:
    """One Paillier ciphertext per pixel of uint8 `images` (N, H, W), as an EncryptedArray of that shape.

    `public_key` may be a PrivateKey: the key holder encrypts by CRT (several times
    faster; the ciphertexts have the same distribution).  Decrypting the result with
    the private key gives the pixels back as int64.
    """
    images = _check_images(images)
    _public(public_key)
    return public_key.encrypt(images.astype(np.int64), threads=threads)


def encrypt_images(images: np.ndarray, public_key: Key, *, mapping: str = "top-bits",
                   threads: int | None = None) -> np.ndarray:
    """Encrypts every pixel of uint8 `images` (N, H, W) and maps each ciphertext to a float.

    Returns float32 (N, 1, H, W) in [0, 1) -- a CNN input with one channel -- where
    entry [i, 0, y, x] is MAPPINGS[mapping] applied to a fresh encryption of
    images[i, y, x].  Pixels are encrypted in batches so that memory stays small;
    use encrypt_pixels() + map_ciphertexts() to keep the ciphertexts.  A PrivateKey
    may be given instead of a PublicKey (faster encryption by CRT).
    """
    images = _check_images(images)
    _check_mapping(mapping)
    _public(public_key)
    flat = images.reshape(-1)
    out = np.empty(flat.shape, dtype=np.float32)
    for start in range(0, flat.size, _CHUNK_PIXELS):
        chunk = flat[start:start + _CHUNK_PIXELS].astype(np.int64)
        out[start:start + chunk.size] = map_ciphertexts(public_key.encrypt(chunk, threads=threads), mapping)
    return out.reshape(images.shape[0], 1, *images.shape[1:])


def downsample(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W) -> uint8 (N, size, size) by area averaging (adaptive average pooling), rounded."""
    images = _check_images(images)
    if images.shape[1:] == (size, size):
        return images
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    pooled = torch.nn.functional.adaptive_avg_pool2d(x, size).squeeze(1).numpy()
    return np.clip(np.rint(pooled), 0, 255).astype(np.uint8)


def pixel_ciphertext_correlation(pixels: np.ndarray, mapped: np.ndarray, *, sample: int = _CORRELATION_SAMPLE,
                                 seed: int = 0) -> tuple[float | None, int]:
    """(Pearson correlation between pixel values and their mapped ciphertexts, pixels used).

    Over a random sample of at most `sample` pixels; None when either side is constant.
    """
    p = np.asarray(pixels, dtype=np.float64).reshape(-1)
    m = np.asarray(mapped, dtype=np.float64).reshape(-1)
    if p.shape != m.shape:
        raise DataError(f"pixels ({p.size}) and mapped values ({m.size}) differ in size")
    if p.size > sample:
        idx = np.random.default_rng(seed).choice(p.size, size=sample, replace=False)
        p, m = p[idx], m[idx]
    if p.size < 2 or p.std() == 0 or m.std() == 0:
        return None, int(p.size)
    return float(np.corrcoef(p, m)[0, 1]), int(p.size)


# ---------------------------------------------------------------- the experiment


def _train_and_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                     num_classes: int, config: LocalTrainingConfig, seed: int,
                     device: torch.device) -> dict[str, Any]:
    """Trains smallcnn on float inputs (N, 1, H, W); identical init and batch order for identical seeds."""
    generator = seed_everything(seed, 0xE1C)
    model = build_model("smallcnn", num_classes=num_classes)
    loader = DataLoader(TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
                        batch_size=config.batch_size, shuffle=True, generator=generator, num_workers=0)
    start = time.perf_counter()
    model.to(device).train()
    loss = run_epochs(model, loader, make_optimizer(model, config), config, device=device)
    seconds = time.perf_counter() - start
    train_pred = _predict(model, x_train, device)
    test_pred = _predict(model, x_test, device)
    return {
        "train_accuracy": float(np.mean(train_pred == y_train)),
        "test_accuracy": float(np.mean(test_pred == y_test)),
        "test_prediction_counts": np.bincount(test_pred, minlength=num_classes).astype(int).tolist(),
        "last_epoch_loss": float(loss),
        "train_seconds": seconds,
    }


@torch.no_grad()
def _predict(model: torch.nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    model.eval()
    preds = [model(torch.from_numpy(x[i:i + batch_size]).to(device)).argmax(1).cpu().numpy()
             for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, dtype=np.int64)


def _chance_band(p: float, n: int) -> float:
    """Half-width of a 95% normal interval for the accuracy of a chance-level classifier on n images."""
    return 1.96 * math.sqrt(p * (1.0 - p) / max(n, 1))


def conclusion(result: dict[str, Any]) -> str:
    """One or two sentences drawn from the measured numbers of `result` (not fixed in advance)."""
    chance = max(result["chance_accuracy"], result["uniform_chance"])
    band = result["chance_band"]
    enc, plain = result["encrypted_accuracy"], result["plain_accuracy"]
    diff = enc - chance
    if abs(diff) <= band:
        first = (f"On ciphertexts the CNN reached {enc:.1%} test accuracy, within the chance level "
                 f"({chance:.1%} +/- {band:.1%}, 95% band for {result['test_images']} test images): "
                 f"it learned nothing usable about the images from their encryptions.")
    elif diff > 0:
        first = (f"On ciphertexts the CNN reached {enc:.1%} test accuracy, {diff * 100:.1f} points above "
                 f"chance ({chance:.1%}; the 95% band is +/- {band:.1%}), so the mapped ciphertexts carried "
                 f"some usable signal in this run; check the mapping and rerun with more test images.")
    else:
        first = (f"On ciphertexts the CNN reached {enc:.1%} test accuracy, {-diff * 100:.1f} points below "
                 f"chance ({chance:.1%}; the 95% band is +/- {band:.1%}).")
    second = (f"The same CNN on the plaintext images reached {plain:.1%} "
              f"({(plain - enc) * 100:+.1f} points relative to the ciphertexts).")
    return f"{first} {second}"


def run_encrypted_image_experiment(*, train: ImageSet, test: ImageSet, key_bits: int = 512, image_size: int = 32,
                                   epochs: int = 5, seed: int = 0, device: str = "cpu",
                                   mapping: str = "top-bits", batch_size: int = 32, lr: float = 1e-3,
                                   key: Key | None = None) -> dict[str, Any]:
    """EXPERIMENT: the same CNN trained on plaintext pixels and on Paillier-encrypted pixels.

    Images are downsampled to image_size x image_size, every pixel of train and test
    is encrypted under one key (a fresh `key_bits` key with insecure=True, or `key`)
    and mapped to a float by `mapping`; smallcnn is trained centrally on each
    representation with the same seed, epochs and optimizer (Adam).  Returns a
    JSON-serializable dict of the measurements (accuracies next to chance, timings,
    the pixel/ciphertext correlation) and a conclusion drawn from them.  Paillier
    randomness is not seeded, so the encrypted accuracy varies a little between runs.
    """
    _check_mapping(mapping)
    if tuple(train.class_names) != tuple(test.class_names):
        raise DataError("train and test sets must have the same class names")
    if len(train) == 0 or len(test) == 0:
        raise DataError("train and test sets must both hold images")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ConfigError(f"image_size must be an integer of at least 16 for smallcnn (got {image_size!r})")
    torch_device = resolve_device(device)
    num_classes = len(train.class_names)
    config = LocalTrainingConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adam")

    train_px = downsample(train.images, int(image_size))
    test_px = downsample(test.images, int(image_size))

    if key is None:
        start = time.perf_counter()
        _, key = fp.generate_keypair(int(key_bits), insecure=True)
        keygen_seconds = time.perf_counter() - start
    else:
        keygen_seconds = 0.0
    public_key = _public(key)

    start = time.perf_counter()
    enc_train = encrypt_images(train_px, key, mapping=mapping)
    enc_test = encrypt_images(test_px, key, mapping=mapping)
    encrypt_seconds = time.perf_counter() - start
    ciphertexts = int(train_px.size + test_px.size)

    correlation, corr_n = pixel_ciphertext_correlation(
        np.concatenate([train_px.reshape(-1), test_px.reshape(-1)]),
        np.concatenate([enc_train.reshape(-1), enc_test.reshape(-1)]), seed=seed)

    plain_train = (train_px.astype(np.float32) / 255.0)[:, None]
    plain_test = (test_px.astype(np.float32) / 255.0)[:, None]
    plain = _train_and_score(plain_train, train.labels, plain_test, test.labels, num_classes, config, seed,
                             torch_device)
    encrypted = _train_and_score(enc_train, train.labels, enc_test, test.labels, num_classes, config, seed,
                                 torch_device)

    test_counts = test.class_counts()
    chance = float(test_counts.max() / len(test))
    uniform = 1.0 / num_classes
    result: dict[str, Any] = {
        "experiment": EXPERIMENT_NAME,
        "label": LABEL,
        "mapping": mapping,
        "mapping_description": MAPPINGS[mapping][1],
        "key_bits": public_key.bits,
        "key_insecure": True,
        "image_size": int(image_size),
        "epochs": int(epochs),
        "seed": int(seed),
        "optimizer": f"adam lr={lr:g} batch={batch_size}",
        "model": "smallcnn",
        "device": str(torch_device),
        "class_names": list(train.class_names),
        "train_images": len(train),
        "test_images": len(test),
        "test_class_counts": test_counts.astype(int).tolist(),
        "chance_accuracy": chance,
        "uniform_chance": uniform,
        "chance_band": _chance_band(max(chance, uniform), len(test)),
        "plain_accuracy": plain["test_accuracy"],
        "encrypted_accuracy": encrypted["test_accuracy"],
        "plain_train_accuracy": plain["train_accuracy"],
        "encrypted_train_accuracy": encrypted["train_accuracy"],
        "plain_prediction_counts": plain["test_prediction_counts"],
        "encrypted_prediction_counts": encrypted["test_prediction_counts"],
        "plain_train_seconds": plain["train_seconds"],
        "encrypted_train_seconds": encrypted["train_seconds"],
        "keygen_seconds": keygen_seconds,
        "encrypt_seconds": encrypt_seconds,
        "ciphertexts": ciphertexts,
        "ciphertexts_per_second": ciphertexts / encrypt_seconds if encrypt_seconds > 0 else None,
        "encrypted_by": "private key (CRT)" if isinstance(key, fp.PrivateKey) else "public key",
        "pixel_ciphertext_correlation": correlation,
        "correlation_sample": corr_n,
        "correlation_noise_level": 1.96 / math.sqrt(corr_n) if corr_n else None,
        "mutual_information_note": MUTUAL_INFORMATION_NOTE,
    }
    result["conclusion"] = conclusion(result)
    return result


# ---------------------------------------------------------------- report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def write_experiment_report(result: dict[str, Any], out_dir: PathLike) -> Path:
    """Writes `encrypted_images.json` and `encrypted_images.md` to out_dir; returns the Markdown path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "encrypted_images.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    chance = max(result["chance_accuracy"], result["uniform_chance"])
    corr = result.get("pixel_ciphertext_correlation")
    corr_text = "n/a" if corr is None else f"{corr:+.4f}"
    noise = result.get("correlation_noise_level")
    noise_text = ("" if noise is None else
                  f" (95% band of a zero correlation: +/- {noise:.4f} for {result['correlation_sample']} pixels)")
    lines = [
        "## Experiment: a CNN on Paillier-encrypted images",
        "",
        f"> {result['label']}",
        "",
        f"Every pixel of {result['train_images']} training and {result['test_images']} test images, "
        f"downsampled to {result['image_size']}x{result['image_size']}, was encrypted with Paillier "
        f"({result['key_bits']}-bit key, {result['ciphertexts']} ciphertexts in "
        f"{result['encrypt_seconds']:.1f} s) under one key for train and test. Each ciphertext c was "
        f"mapped to one network input with the `{result['mapping']}` mapping: "
        f"{result['mapping_description']}. The same CNN ({result['model']}, {result['optimizer']}, "
        f"{result['epochs']} epochs, seed {result['seed']}) was trained on the plaintext images and on "
        f"the encrypted ones.",
        "",
        "| Input | Test accuracy | Chance |",
        "|---|---|---|",
        f"| Plaintext pixels | {_pct(result['plain_accuracy'])} | {_pct(chance)} |",
        f"| Paillier ciphertexts ({result['mapping']}) | {_pct(result['encrypted_accuracy'])} | {_pct(chance)} |",
        "",
        f"Chance is the larger of the majority-class share of the test set and 1/{len(result['class_names'])}; "
        f"its 95% band for {result['test_images']} test images is +/- {_pct(result['chance_band'])}. "
        f"Correlation between pixel value and mapped ciphertext: {corr_text}{noise_text}.",
        "",
        f"**Conclusion.** {result['conclusion']}",
        "",
        f"Why: {result['mutual_information_note']}",
        "",
    ]
    path = folder / "encrypted_images.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fedtrain.encrypted_images --out DIR`: the default experiment on the demo phantoms."""
    from .data import demo_dataset

    parser = argparse.ArgumentParser(prog="python -m fedtrain.encrypted_images", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for encrypted_images.json and .md")
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--key-bits", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mapping", choices=sorted(MAPPINGS), default="top-bits")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    bundle = demo_dataset(train_per_class=args.train_per_class, test_per_class=args.test_per_class,
                          seed=args.seed, image_size=128)
    result = run_encrypted_image_experiment(train=bundle.train, test=bundle.test, key_bits=args.key_bits,
                                            image_size=args.image_size, epochs=args.epochs, seed=args.seed,
                                            device=args.device, mapping=args.mapping)
    path = write_experiment_report(result, args.out)
    print(path.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
