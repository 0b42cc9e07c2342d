"""Tests for fedtrain.phantoms and fedtrain.data: demo phantoms, image folders, caching."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fedtrain import data as data_module
from fedtrain.data import (
    DataBundle,
    ImageSet,
    TorchImageDataset,
    demo_dataset,
    load_data,
    load_image_folder,
)
from fedtrain.errors import ConfigError, DataError
from fedtrain.phantoms import DEMO_CLASSES, generate_phantoms

# --- phantoms --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantoms() -> tuple[np.ndarray, np.ndarray]:
    """60 phantoms per class at 64 px (shared by the statistical tests)."""
    return generate_phantoms([60] * 4, seed=123, size=64)


def test_phantoms_shapes_dtypes_and_counts() -> None:
    images, labels = generate_phantoms([3, 0, 5, 2], seed=1, size=32)
    assert images.shape == (10, 32, 32)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert np.bincount(labels, minlength=4).tolist() == [3, 0, 5, 2]


def test_phantoms_default_size_and_shuffled(phantoms: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = generate_phantoms([1, 1], seed=0)
    assert images.shape == (2, 128, 128)
    _, labels = phantoms
    assert not np.array_equal(labels, np.sort(labels))


def test_phantoms_deterministic_by_seed() -> None:
    a_images, a_labels = generate_phantoms([4, 4, 4, 4], seed=7, size=32)
    b_images, b_labels = generate_phantoms([4, 4, 4, 4], seed=7, size=32)
    c_images, _ = generate_phantoms([4, 4, 4, 4], seed=8, size=32)
    assert np.array_equal(a_images, b_images)
    assert np.array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images)


def test_phantoms_are_not_blank(phantoms: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = phantoms
    assert images[:, 0, 0].mean() < 20  # dark background corner
    assert np.all(images.max(axis=(1, 2)) > 120)  # bright tissue in every image
    assert np.all(images.reshape(len(images), -1).std(axis=1) > 20)


def test_phantom_atrophy_grows_with_class(phantoms: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = phantoms
    centre = images[:, 20:44, 20:44]
    dark = (centre < 60).mean(axis=(1, 2))
    means = [dark[labels == c].mean() for c in range(4)]
    assert all(lo < hi for lo, hi in zip(means, means[1:])), means


def test_phantom_classes_overlap(phantoms: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = phantoms
    brightness = images.mean(axis=(1, 2))
    dark = (images[:, 20:44, 20:44] < 60).mean(axis=(1, 2))
    for c in range(3):
        for stat in (brightness, dark):
            lo, hi = stat[labels == c], stat[labels == c + 1]
            assert lo.max() > hi.min() and hi.max() > lo.min()  # ranges overlap
            # The best single threshold does not separate neighbouring classes.
            both = np.concatenate([lo, hi])
            truth = np.concatenate([np.zeros(lo.size), np.ones(hi.size)])
            best = max(max(np.mean((both > t) == truth), np.mean((both <= t) == truth)) for t in both)
            assert best < 0.9


@pytest.mark.parametrize(
    ("counts", "size", "message"),
    [([], 32, "at least one class"), ([1, -1], 32, "non-negative"), ([1.5], 32, "integers"), ([2], 8, "at least 16")],
)
def test_phantom_config_errors(counts: list[object], size: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate_phantoms(counts, seed=0, size=size)  # type: ignore[arg-type]


# --- image folders ---------------------------------------------------------------------------


def _write_images(
    folder: Path, count: int, *, mode: str = "L", ext: str = "png", size: tuple[int, int] = (40, 30)
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)) + count)
    for i in range(count):
        if mode == "RGB":
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        else:
            pixels = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.{ext}")


def _make_folder(root: Path, counts: dict[str, int], **kwargs: object) -> Path:
    for name, count in counts.items():
        _write_images(root / name, count, **kwargs)  # type: ignore[arg-type]
    return root


def test_train_test_folders(tmp_path: Path) -> None:
    _make_folder(tmp_path / "train", {"Very Mild Impairment": 3, "No Impairment": 4}, ext="jpg")
    _make_folder(tmp_path / "test", {"Very Mild Impairment": 2, "No Impairment": 1}, ext="png")
    bundle = load_image_folder(tmp_path, image_size=16)
    assert isinstance(bundle, DataBundle)
    assert bundle.class_names == ("No Impairment", "Very Mild Impairment")  # sorted
    assert bundle.split == "folder"
    assert bundle.skipped == 0
    assert bundle.source == str(tmp_path)
    assert bundle.train.images.shape == (7, 16, 16)
    assert bundle.train.images.dtype == np.uint8
    assert bundle.train.class_counts().tolist() == [4, 3]
    assert bundle.test.class_counts().tolist() == [1, 2]


def test_rgb_converted_to_gray_and_resized(tmp_path: Path) -> None:
    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("RGB", (50, 20), colour).save(tmp_path / name / f"{i}.png")
    bundle = load_image_folder(tmp_path, image_size=24)
    assert bundle.train.images.shape[1:] == (24, 24)
    red = bundle.train.images[bundle.train.labels == 0]
    blue = bundle.train.images[bundle.train.labels == 1]
    assert np.all(red == round(0.299 * 255))  # ITU-R 601-2 luma, as PIL's "L"
    assert np.all(blue == round(0.114 * 255))


def test_sixteen_bit_images_rescaled(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            pixels = np.full((10, 10), 1000, dtype=np.uint16)
            pixels[:5] = 4000
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    bundle = load_image_folder(tmp_path, image_size=10)
    image = bundle.train.images[0]
    assert image.max() == 255
    assert 50 < image.min() < 80  # 1000 / 4000 of full scale, not clipped to 255


def test_corrupt_files_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _make_folder(tmp_path, {"A": 5, "B": 5})
    (tmp_path / "A" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "B" / "empty.jpg").write_bytes(b"")
    (tmp_path / "B" / "notes.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING, logger="fedtrain"):
        bundle = load_image_folder(tmp_path, image_size=16)
    assert bundle.skipped == 2
    assert len(bundle.train) + len(bundle.test) == 10
    assert sorted(Path(f.path).name for f in bundle.skipped_files) == ["broken.png", "empty.jpg"]
    assert all(f.reason for f in bundle.skipped_files)
    # The loader returns the list; the run logs it once, with the file it is saved in (test_export.py).
    assert not any("unreadable" in r.getMessage() for r in caplog.records)


def test_flat_folder_stratified_split(tmp_path: Path) -> None:
    _make_folder(tmp_path, {"NonDemented": 20, "MildDemented": 10, "ModerateDemented": 5})
    bundle = load_image_folder(tmp_path, image_size=8, test_fraction=0.2, seed=3)
    assert bundle.split == "stratified 80/20"
    assert bundle.class_names == ("MildDemented", "ModerateDemented", "NonDemented")
    assert bundle.test.class_counts().tolist() == [2, 1, 4]
    assert bundle.train.class_counts().tolist() == [8, 4, 16]
    again = load_image_folder(tmp_path, image_size=8, test_fraction=0.2, seed=3)
    assert np.array_equal(bundle.test.images, again.test.images)
    other = load_image_folder(tmp_path, image_size=8, test_fraction=0.2, seed=4)
    assert not np.array_equal(bundle.test.images, other.test.images)
    # No image is in both halves.
    flat = {img.tobytes() for img in bundle.train.images}
    assert not flat & {img.tobytes() for img in bundle.test.images}


def test_split_label_of_other_fraction(tmp_path: Path) -> None:
    _make_folder(tmp_path, {"a": 8, "b": 8})
    bundle = load_image_folder(tmp_path, image_size=8, test_fraction=0.25)
    assert bundle.split == "stratified 75/25"
    assert bundle.test.class_counts().tolist() == [2, 2]


def test_train_folder_without_test_is_split(tmp_path: Path) -> None:
    _make_folder(tmp_path / "train", {"a": 5, "b": 5})
    bundle = load_image_folder(tmp_path, image_size=8)
    assert bundle.split.startswith("stratified")
    assert bundle.test.class_counts().tolist() == [1, 1]


def _error_case(tmp_path: Path, case: str) -> Path:
    if case == "missing":
        return tmp_path / "nope"
    if case == "file":
        (tmp_path / "data.zip").write_bytes(b"PK")
        return tmp_path / "data.zip"
    if case == "no_classes":
        (tmp_path / "readme.txt").write_text("x")
        return tmp_path
    if case == "no_images":
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        (tmp_path / "a" / "x.txt").write_text("x")
        return tmp_path
    if case == "one_class":
        _make_folder(tmp_path, {"only": 4})
        return tmp_path
    if case == "empty_class":
        _make_folder(tmp_path, {"a": 4})
        (tmp_path / "b").mkdir()
        return tmp_path
    if case == "unreadable_class":
        _make_folder(tmp_path, {"a": 4})
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "x.png").write_bytes(b"garbage")
        return tmp_path
    if case == "test_classes":
        _make_folder(tmp_path / "train", {"a": 2, "b": 2, "c": 2})
        _make_folder(tmp_path / "test", {"a": 1, "b": 1, "d": 1})
        return tmp_path
    if case == "too_few":
        _make_folder(tmp_path, {"a": 4, "rare": 1})
        return tmp_path
    if case == "test_only":
        _make_folder(tmp_path / "test", {"a": 1, "b": 1})
        return tmp_path
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist"),
        ("file", "not a directory"),
        ("no_classes", "no class folders"),
        ("no_images", "no images"),
        ("one_class", "only one class \\('only'\\)"),
        ("empty_class", "class 'b' has no readable images"),
        ("unreadable_class", "class 'b' has no readable images"),
        ("test_classes", "missing from .*: c; not in .*: d"),
        ("too_few", "class 'rare' has only 1 readable image"),
        ("test_only", "no train/ folder"),
    ],
)
def test_folder_errors(tmp_path: Path, case: str, message: str) -> None:
    root = _error_case(tmp_path, case)
    with pytest.raises(DataError, match=message) as info:
        load_image_folder(root, image_size=8)
    assert "\n" not in str(info.value)


def test_empty_path_is_an_error() -> None:
    with pytest.raises(DataError, match="empty path"):
        load_image_folder("", image_size=8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"image_size": 4}, "image size"), ({"test_fraction": 0.0}, "test fraction"), ({"test_fraction": 1.5}, "test fraction")],
)
def test_folder_config_errors(tmp_path: Path, kwargs: dict[str, float], message: str) -> None:
    _make_folder(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(ConfigError, match=message):
        load_image_folder(tmp_path, **kwargs)  # type: ignore[arg-type]


# --- demo data and cache ---------------------------------------------------------------------

_SMALL = {"train_per_class": 3, "test_per_class": 2, "image_size": 32}


def test_demo_dataset_shapes(tmp_path: Path) -> None:
    bundle = demo_dataset(cache_dir=tmp_path, **_SMALL)
    assert bundle.class_names == DEMO_CLASSES
    assert bundle.train.images.shape == (12, 32, 32)
    assert bundle.test.images.shape == (8, 32, 32)
    assert bundle.train.class_counts().tolist() == [3] * 4
    assert bundle.test.class_counts().tolist() == [2] * 4
    assert bundle.skipped == 0
    assert "demo phantoms" in bundle.source and str(tmp_path) in bundle.source
    assert not np.array_equal(bundle.train.images[:8], bundle.test.images)  # separate seeds


def test_demo_cache_created_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = demo_dataset(cache_dir=tmp_path, **_SMALL)
    (cache,) = tmp_path.glob("*.npz")
    assert "v" in cache.name and "32px" in cache.name
    assert not list(tmp_path.glob("*.tmp"))
    mtime = cache.stat().st_mtime_ns

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("generator called although the cache is valid")

    monkeypatch.setattr(data_module, "generate_phantoms", boom)
    second = demo_dataset(cache_dir=tmp_path, **_SMALL)
    assert cache.stat().st_mtime_ns == mtime
    assert np.array_equal(first.train.images, second.train.images)
    assert np.array_equal(first.test.labels, second.test.labels)


def test_demo_cache_key_includes_parameters(tmp_path: Path) -> None:
    demo_dataset(cache_dir=tmp_path, **_SMALL)
    demo_dataset(cache_dir=tmp_path, **{**_SMALL, "image_size": 16})
    demo_dataset(cache_dir=tmp_path, seed=1, **_SMALL)
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_corrupt_cache_regenerated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = demo_dataset(cache_dir=tmp_path, **_SMALL)
    (cache,) = tmp_path.glob("*.npz")
    good = cache.read_bytes()
    for garbage in (b"not a zip file", good[: len(good) // 2]):
        cache.write_bytes(garbage)
        with caplog.at_level(logging.WARNING, logger="fedtrain"):
            again = demo_dataset(cache_dir=tmp_path, **_SMALL)
        assert any("regenerating" in r.getMessage() for r in caplog.records)
        assert np.array_equal(first.train.images, again.train.images)
        assert cache.read_bytes()[:2] == b"PK"  # rewritten as a valid .npz


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDTRAIN_CACHE", str(tmp_path / "env-cache"))
    demo_dataset(**_SMALL)
    assert len(list((tmp_path / "env-cache").glob("*.npz"))) == 1


def test_unwritable_cache_still_returns_data(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    bundle = demo_dataset(cache_dir=blocker / "sub", **_SMALL)
    assert len(bundle.train) == 12
    assert "not cached" in bundle.source


@pytest.mark.parametrize(
    "kwargs", [{"train_per_class": 0}, {"test_per_class": -1}, {"image_size": 2}, {"seed": -1}]
)
def test_demo_config_errors(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        demo_dataset(cache_dir=tmp_path, **{**_SMALL, **kwargs})


def test_load_data_dispatch(tmp_path: Path) -> None:
    demo = load_data(None, image_size=32, demo_train_per_class=2, demo_test_per_class=1, cache_dir=tmp_path)
    assert demo.class_names == DEMO_CLASSES
    assert len(demo.train) == 8 and len(demo.test) == 4
    _make_folder(tmp_path / "images", {"x": 5, "y": 5})
    folder = load_data(str(tmp_path / "images"), image_size=8, test_fraction=0.4)
    assert folder.class_names == ("x", "y")
    assert folder.test.class_counts().tolist() == [2, 2]


# --- ImageSet and torch wrapper --------------------------------------------------------------


def _image_set() -> ImageSet:
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    return ImageSet(images, np.array([0, 1, 1, 2, 0], dtype=np.int64), ("a", "b", "c", "d"))


def test_image_set_subset_and_counts() -> None:
    data = _image_set()
    assert len(data) == 5
    assert data.class_counts().tolist() == [2, 2, 1, 0]
    sub = data.subset([4, 1])
    assert sub.labels.tolist() == [0, 1]
    assert np.array_equal(sub.images[0], data.images[4])
    assert sub.class_names == data.class_names


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((2, 4, 4), dtype=np.float32), np.zeros(2, dtype=np.int64), "uint8"),
        (np.zeros((2, 4), dtype=np.uint8), np.zeros(2, dtype=np.int64), "uint8"),
        (np.zeros((2, 4, 4), dtype=np.uint8), np.zeros(3, dtype=np.int64), "int64"),
        (np.zeros((2, 4, 4), dtype=np.uint8), np.array([0, 5], dtype=np.int64), "labels must lie"),
    ],
)
def test_image_set_validation(images: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        ImageSet(images, labels, ("a", "b"))


def test_torch_dataset() -> None:
    data = _image_set()
    dataset = TorchImageDataset(data)
    assert len(dataset) == 5
    image, label = dataset[3]
    assert image.dtype == torch.float32 and image.shape == (1, 4, 4)
    assert label.dtype == torch.int64 and int(label) == 2
    assert torch.allclose(image[0], torch.from_numpy(data.images[3]).float() / 255)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    batch, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=5)))
    assert batch.shape == (5, 1, 4, 4) and labels.tolist() == [0, 1, 1, 2, 0]
    flipped = TorchImageDataset(data, transform=lambda t: t.flip(-1))
    assert torch.equal(flipped[0][0], dataset[0][0].flip(-1))


def test_torch_dataset_on_demo(tmp_path: Path) -> None:
    bundle = demo_dataset(cache_dir=tmp_path, **_SMALL)
    image, label = TorchImageDataset(bundle.train)[0]
    assert image.shape == (1, 32, 32)
    assert int(label) == int(bundle.train.labels[0])
    assert os.path.isdir(tmp_path)
