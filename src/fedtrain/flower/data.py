"""A hospital's own training folder (a SuperNode's node config `data-dir`), and the demo's copies of them.

Layout: <folder>/<class name>/<image files> (searched recursively), for the run's class names (a
hospital may lack some).  Images are ordered by their path inside the class folder first and by
class second, so that a folder written by `export_hospital_folder` (files 000000.png, 000001.png, ...)
trains in exactly the order of the client's part of the data set in `fedtrain run`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..data import IMAGE_EXTENSIONS, ImageSet, read_image_file
from ..errors import DataError

log = logging.getLogger("fedtrain")


def load_hospital_folder(folder: str | os.PathLike, class_names: Sequence[str], image_size: int) -> ImageSet:
    """The training images of `folder` (grayscale, resized to image_size) labelled by `class_names`."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise DataError(f"data folder {base} does not exist or is not a folder (node config data-dir)")
    entries = []
    for label, name in enumerate(class_names):
        root = base / name
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file():
                entries.append((path.relative_to(root).as_posix(), label, path))
    entries.sort(key=lambda e: (e[0], e[1]))
    images, labels, skipped = [], [], 0
    for _, label, path in entries:
        image, reason = read_image_file(path, image_size)
        if image is None:
            skipped += 1
            log.warning("skipped %s: %s", path, reason)
            continue
        images.append(image)
        labels.append(label)
    if not images:
        raise DataError(f"no readable images in {base}/<class>/ for the classes {', '.join(class_names)}")
    if skipped:
        log.warning("%d unreadable image file(s) skipped in %s", skipped, base)
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(class_names))


def export_hospital_folder(data: ImageSet, folder: str | os.PathLike) -> Path:
    """Writes `data` as <folder>/<class>/<position>.png (lossless), the order load_hospital_folder reads back."""
    base = Path(folder)
    for name in data.class_names:
        (base / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(data.images, data.labels)):
        Image.fromarray(np.ascontiguousarray(image)).save(base / data.class_names[int(label)] / f"{i:06d}.png")
    return base
