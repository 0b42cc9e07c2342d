"""Checks of the files and folders the commands are given, made before any image, checkpoint or torch is loaded.

Nothing here imports torch, Pillow or scikit-learn: `fedtrain` runs these checks first, so that
a wrong path is reported at once.  The loaders (fedtrain.data, fedtrain.export, fedtrain.runner)
use the same functions, so the messages are the same either way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CheckpointError, ConfigError, DataError

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_SUFFIXES",
    "IMAGE_EXTENSIONS",
    "ExportTarget",
    "ImageFolder",
    "atomic_write",
    "check_data_folder",
    "check_model_source",
    "check_new_file",
    "checkpoint_files",
    "choose_checkpoint",
    "export_target",
    "image_files",
    "image_paths",
    "read_run_config",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
EXPORT_FORMATS = ("state_dict", "torchscript", "onnx")
EXPORT_SUFFIXES = {"state_dict": "pt", "torchscript": "torchscript.pt", "onnx": "onnx"}
CONFIG_FILE = "config.json"


def atomic_write(path: Path, data: bytes) -> None:
    """Writes `data` to `path` through a synced temporary file: readers see the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --- image folders ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFolder:
    """A data folder's layout: train and test folders, class names and image files (none read yet)."""

    root: Path
    train: Path
    test: Path | None  # None: the images of `train` are split into train and test
    class_names: tuple[str, ...]
    train_files: dict[str, list[Path]]
    test_files: dict[str, list[Path]] | None


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively, sorted), by extension; hidden files skipped."""
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def check_data_folder(root: str | os.PathLike[str]) -> ImageFolder:
    """The layout of `root/train/<class>/*` (+ `root/test/<class>/*`) or `root/<class>/*`; DataError if unusable."""
    if os.fspath(root) == "":
        raise DataError("data folder is an empty path; pass the folder that holds the class folders")
    base = Path(root).expanduser()
    if not base.exists():
        raise DataError(f"data folder {base} does not exist; check the path")
    if not base.is_dir():
        raise DataError(f"data path {base} is not a directory; pass the folder that holds the class folders")
    train_dir, test_dir = _layout(base)
    class_names = _class_folders(train_dir)
    train_files = _files_of(train_dir, class_names)
    if len(class_names) < 2:
        raise DataError(f"only one class ({class_names[0]!r}) in {train_dir}; need at least two class folders")
    test_files = None
    if test_dir is not None:
        test_names = _class_folders(test_dir)
        if set(test_names) != set(class_names):
            raise DataError(_class_mismatch(train_dir, test_dir, class_names, test_names))
        test_files = _files_of(test_dir, class_names)
    return ImageFolder(base, train_dir, test_dir, class_names, train_files, test_files)


def _layout(base: Path) -> tuple[Path, Path | None]:
    """The train folder and the test folder (None when the images must be split)."""
    train, test = base / "train", base / "test"
    if train.is_dir():
        return train, test if test.is_dir() else None
    if test.is_dir():
        raise DataError(f"{base} has a test/ folder but no train/ folder; add {train}")
    return base, None


def _class_folders(folder: Path) -> tuple[str, ...]:
    """Sorted names of the visible sub-folders of `folder`."""
    names = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not names:
        raise DataError(f"no class folders in {folder}; expected {folder}/<class name>/<image files>")
    return names


def _files_of(folder: Path, class_names: tuple[str, ...]) -> dict[str, list[Path]]:
    """The image files of each class folder of `folder`; DataError if there are none at all."""
    files = {name: image_files(folder / name) for name in class_names}
    if not any(files.values()):
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"no images ({exts}) found in the class folders of {folder}")
    return files


def _class_mismatch(train_dir: Path, test_dir: Path, train_names: tuple[str, ...],
                    test_names: tuple[str, ...]) -> str:
    """Message naming the class folders that train and test do not share."""
    missing = sorted(set(train_names) - set(test_names))
    extra = sorted(set(test_names) - set(train_names))
    parts = []
    if missing:
        parts.append(f"missing from {test_dir}: {', '.join(missing)}")
    if extra:
        parts.append(f"not in {train_dir}: {', '.join(extra)}")
    return f"test and train class folders differ ({'; '.join(parts)}); use the same class names"


def image_paths(images: str | os.PathLike) -> list[Path]:
    """One image file, or every image file under a folder (recursively, sorted): what `fedtrain predict` scores."""
    root = Path(images)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"images path {root} does not exist; pass an image file or a folder of images")
    files = image_files(root)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {root}")
    return files


# --- run directories -------------------------------------------------------------------------


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The config.json of a run directory; CheckpointError if it is missing or not JSON."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no {CONFIG_FILE}; pass a fedtrain run directory")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc}); the run directory is damaged") from None


def checkpoint_files(run_dir: str | os.PathLike) -> dict[int, Path]:
    """Round number -> checkpoint file of the run."""
    found = {}
    for path in (Path(run_dir) / "checkpoints").glob("round_*.pt"):
        digits = path.stem[len("round_"):]
        if digits.isascii() and digits.isdigit():
            found[int(digits)] = path
    return found


def choose_checkpoint(run_dir: str | os.PathLike, round_: int | None = None) -> tuple[int, Path]:
    """(round, checkpoint file) of round `round_`, default the last one; CheckpointError if there is none."""
    run = Path(run_dir)
    files = checkpoint_files(run)
    if not files:
        raise CheckpointError(f"{run} has no checkpoints yet; run at least one round first")
    chosen = max(files) if round_ is None else round_
    if chosen not in files:
        raise CheckpointError(f"{run} has no checkpoint of round {chosen}; rounds available: "
                              f"{', '.join(map(str, sorted(files)))}")
    return chosen, files[chosen]


@dataclass(frozen=True)
class ExportTarget:
    """Which checkpoint `fedtrain export` writes, and to which file."""

    round: int
    checkpoint: Path
    path: Path


def export_target(run_dir: str | os.PathLike, out: str | os.PathLike | None, fmt: str,
                  round_: int | None = None) -> ExportTarget:
    """The checkpoint to export and the file to write (default RUN_DIR/model-round<N>.<ext>), never an existing one."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    read_run_config(run_dir)
    chosen, checkpoint = choose_checkpoint(run_dir, round_)
    path = Path(out) if out is not None else Path(run_dir) / f"model-round{chosen}.{EXPORT_SUFFIXES[fmt]}"
    check_new_file(path, "exports")
    return ExportTarget(chosen, checkpoint, path)


def check_new_file(path: Path, what: str) -> None:
    """ConfigError if `path` exists: `what` ("exports", "predictions") never overwrite a file."""
    if path.exists():
        raise ConfigError(f"{path} exists; choose another --out or remove it ({what} never overwrite)")


def check_model_source(source: str | os.PathLike, round_: int | None = None) -> None:
    """Raises unless `source` is a run directory with the round asked for, or a model file (without --round)."""
    path = Path(source)
    if path.is_dir():
        read_run_config(path)
        choose_checkpoint(path, round_)
        return
    if round_ is not None:
        raise ConfigError("--round applies to a run directory, not to an exported model file")
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
