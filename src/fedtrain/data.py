"""Datasets: an ImageFolder of MRI slices, or built-in phantoms (cached), as uint8 arrays."""

from __future__ import annotations

import logging
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import ConfigError, DataError
from .paths import IMAGE_EXTENSIONS, check_data_folder
from .phantoms import DEMO_CLASSES, PHANTOM_VERSION, generate_phantoms

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataBundle",
    "ImageSet",
    "SkippedFile",
    "TorchImageDataset",
    "default_cache_dir",
    "demo_dataset",
    "load_data",
    "load_image_folder",
    "read_image_file",
]

logger = logging.getLogger("fedtrain")

# What Pillow raises for truncated, corrupt or hostile files.
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Grayscale images uint8 (N, H, W) with int64 labels indexing `class_names`."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        """Check shapes, dtypes and label range."""
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise DataError(
                f"images must be uint8 (N, H, W); got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (self.images.shape[0],) or self.labels.dtype != np.int64:
            raise DataError(
                f"labels must be int64 ({self.images.shape[0]},); "
                f"got {self.labels.dtype} {self.labels.shape}"
            )
        if self.labels.size and not 0 <= self.labels.min() <= self.labels.max() < len(self.class_names):
            raise DataError(f"labels must lie in [0, {len(self.class_names)}) for the class names")

    def __len__(self) -> int:
        """Number of images."""
        return int(self.labels.size)

    def subset(self, indices: np.ndarray | Sequence[int]) -> ImageSet:
        """The images at `indices` (a copy), with the same class names."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageSet(self.images[idx], self.labels[idx], self.class_names)

    def class_counts(self) -> np.ndarray:
        """Images per class, int64 (num_classes,)."""
        return np.bincount(self.labels, minlength=len(self.class_names)).astype(np.int64)


@dataclass(frozen=True)
class SkippedFile:
    """An image file that was not used, and why."""

    path: str
    reason: str


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A train/test pair plus where it came from and how it was split."""

    train: ImageSet
    test: ImageSet
    class_names: tuple[str, ...]
    source: str
    skipped: int
    split: str
    skipped_files: tuple[SkippedFile, ...] = ()


class TorchImageDataset(torch.utils.data.Dataset):
    """An ImageSet as (float32 (1, H, W) in [0, 1], int64 label) pairs."""

    def __init__(
        self, data: ImageSet, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> None:
        """Wrap `data` (shared, not copied); `transform` is applied to each image tensor."""
        self._images = torch.from_numpy(np.ascontiguousarray(data.images))
        self._labels = torch.from_numpy(np.ascontiguousarray(data.labels))
        self._transform = transform

    def __len__(self) -> int:
        """Number of images."""
        return int(self._labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image `index` scaled to [0, 1] with a channel axis, and its label."""
        image = self._images[index].unsqueeze(0).to(torch.float32).div_(255.0)
        if self._transform is not None:
            image = self._transform(image)
        return image, self._labels[index]


def load_data(
    data_dir: str | os.PathLike[str] | None,
    *,
    image_size: int = 128,
    test_fraction: float = 0.2,
    seed: int = 0,
    demo_train_per_class: int = 320,
    demo_test_per_class: int = 80,
    cache_dir: str | os.PathLike[str] | None = None,
) -> DataBundle:
    """Load the image folder `data_dir`, or the demo phantoms when it is None."""
    if data_dir is None:
        return demo_dataset(
            cache_dir=cache_dir,
            train_per_class=demo_train_per_class,
            test_per_class=demo_test_per_class,
            seed=seed,
            image_size=image_size,
        )
    return load_image_folder(data_dir, image_size=image_size, test_fraction=test_fraction, seed=seed)


# --- image folders ---------------------------------------------------------------------------


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int = 128,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataBundle:
    """Load `root/train/<class>/*` (+ `root/test/<class>/*`) or `root/<class>/*` as grayscale.

    Classes are the train class folder names in sorted order. Without a test
    folder the images are split per class, `test_fraction` of each to test.
    """
    _check_image_size(image_size)
    _check_fraction(test_fraction)
    folder = check_data_folder(root)
    train, skipped = _read_split(folder.train, folder.class_names, folder.train_files, image_size)
    if folder.test_files is None:
        train, test = _stratified_split(train, test_fraction, seed)
        split = f"stratified {_percent(1.0 - test_fraction)}/{_percent(test_fraction)}"
    else:
        test, test_skipped = _read_split(folder.test, folder.class_names, folder.test_files, image_size,
                                         require_all=False)
        skipped += test_skipped
        split = "folder"
    # Not logged here: the caller says it once, with where the list of files went.
    return DataBundle(train, test, folder.class_names, str(folder.root), len(skipped), split, tuple(skipped))


def _read_split(
    folder: Path, class_names: tuple[str, ...], files: dict[str, list[Path]], size: int, *,
    require_all: bool = True,
) -> tuple[ImageSet, list[SkippedFile]]:
    """Read the image files of every class folder of `folder`; returns the images and the unreadable files."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[SkippedFile] = []
    for label, name in enumerate(class_names):
        read = 0
        for path in files[name]:
            image, reason = read_image_file(path, size)
            if image is None:
                skipped.append(SkippedFile(str(path), reason))
                continue
            images.append(image)
            labels.append(label)
            read += 1
        if read == 0 and require_all:
            raise DataError(
                f"class {name!r} has no readable images in {folder / name}; add images or remove the folder"
            )
        if read == 0:
            logger.warning("class %r has no readable images in %s", name, folder / name)
    stacked = np.stack(images) if images else np.zeros((0, size, size), dtype=np.uint8)
    return ImageSet(stacked, np.asarray(labels, dtype=np.int64), class_names), skipped


def read_image_file(path: str | os.PathLike[str], size: int) -> tuple[np.ndarray | None, str]:
    """(uint8 (size, size) grayscale image, "") or (None, why it cannot be decoded): training's preprocessing."""
    try:
        with Image.open(path) as im:
            im.load()
            gray = _to_gray(im)
            return np.asarray(gray.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8), ""
    except _UNREADABLE as exc:
        logger.debug("cannot read %s: %s", path, exc)
        return None, f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


def _to_gray(im: Image.Image) -> Image.Image:
    """Convert to 8-bit grayscale; high-bit-depth images are rescaled by their maximum."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        arr = np.asarray(im, dtype=np.float64)
        arr = arr - min(arr.min(), 0.0)
        peak = arr.max()
        scaled = arr * (255.0 / peak) if peak > 0 else arr
        return Image.fromarray(np.rint(scaled).astype(np.uint8))
    return im.convert("L")


def _stratified_split(data: ImageSet, test_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Per class, move round(n * test_fraction) images (at least 1) to test; keep at least 1."""
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for label, name in enumerate(data.class_names):
        idx = rng.permutation(np.flatnonzero(data.labels == label))
        if idx.size < 2:
            raise DataError(
                f"class {name!r} has only {idx.size} readable image(s); need at least 2 to split "
                "into train and test (add images or provide a test/ folder)"
            )
        n_test = min(max(1, round(idx.size * test_fraction)), idx.size - 1)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    return data.subset(np.sort(np.concatenate(train_idx))), data.subset(np.sort(np.concatenate(test_idx)))


def _percent(fraction: float) -> str:
    """A fraction as a compact percentage number ('80', '87.5')."""
    return f"{round(fraction * 100, 2):g}"


def _check_image_size(image_size: int) -> None:
    """Reject an image size that is not an integer of at least 8."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ConfigError(f"image size must be an integer of at least 8 (got {image_size!r})")


def _check_fraction(test_fraction: float) -> None:
    """Reject a test fraction outside (0, 1)."""
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test fraction must be between 0 and 1, exclusive (got {test_fraction!r})")


# --- demo phantoms ---------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """`$FEDTRAIN_CACHE` if set, else `~/.cache/fedtrain`."""
    env = os.environ.get("FEDTRAIN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fedtrain"


def demo_dataset(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    train_per_class: int = 320,
    test_per_class: int = 80,
    seed: int = 0,
    image_size: int = 128,
) -> DataBundle:
    """Balanced phantom train and test sets (different seeds), cached as one .npz file."""
    for what, count in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ConfigError(f"demo {what} must be a positive integer (got {count!r})")
    _check_image_size(image_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer (got {seed!r})")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / (
        f"demo-v{PHANTOM_VERSION}-{image_size}px-{train_per_class}x{test_per_class}-seed{seed}.npz"
    )
    shape = (train_per_class, test_per_class, image_size)
    arrays = _read_cache(path, shape)
    if arrays is None:
        arrays = _make_demo(train_per_class, test_per_class, seed, image_size)
        source = f"demo phantoms (cached at {path})" if _write_cache(path, arrays) else "demo phantoms (not cached)"
    else:
        source = f"demo phantoms (cached at {path})"
    train = ImageSet(arrays["train_images"], arrays["train_labels"], DEMO_CLASSES)
    test = ImageSet(arrays["test_images"], arrays["test_labels"], DEMO_CLASSES)
    return DataBundle(train, test, DEMO_CLASSES, source, 0, "generated (separate train/test seeds)")


def _make_demo(train_per_class: int, test_per_class: int, seed: int, size: int) -> dict[str, np.ndarray]:
    """Generate train and test phantoms from two seeds derived from `seed`."""
    train_seed, test_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    k = len(DEMO_CLASSES)
    train_images, train_labels = generate_phantoms([train_per_class] * k, seed=train_seed, size=size)
    test_images, test_labels = generate_phantoms([test_per_class] * k, seed=test_seed, size=size)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def _read_cache(path: Path, shape: tuple[int, int, int]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing, corrupt or of the wrong shape."""
    if not path.is_file():
        return None
    train_per_class, test_per_class, size = shape
    k = len(DEMO_CLASSES)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ("train_images", "train_labels", "test_images", "test_labels")}
        for split, per_class in (("train", train_per_class), ("test", test_per_class)):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            ok = images.dtype == np.uint8 and images.shape == (per_class * k, size, size)
            ok = ok and labels.dtype == np.int64 and labels.shape == (per_class * k,)
            if not ok or np.bincount(labels, minlength=k).tolist() != [per_class] * k:
                raise ValueError(f"unexpected {split} arrays")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        logger.warning("demo cache %s is unreadable (%s); regenerating it", path, exc)
        return None
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write the arrays atomically (temp file + rename); False (and a warning) on failure."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=path.stem + ".", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            np.savez_compressed(tmp, **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        logger.warning("cannot write demo cache %s (%s); continuing without it", path, exc)
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        return False
    return True
