"""Trained models out of a run directory: export to a loadable file, and predictions on new images.

A checkpoint holds the model's floating-point state as one flat float32 vector
(what FedAvg averages).  `load_run_model` rebuilds the architecture named in the
run's config.json and loads that vector into it; `export_model` writes it as a
self-describing state-dict file (or TorchScript, or ONNX where the `onnx`
package is installed), and `predict_images` scores image files with the same
preprocessing as training (grayscale, bilinear resize to the run's image size,
values scaled to [0, 1]).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import read_image_file
from .errors import CheckpointError, ConfigError
from .fedavg import ModelLayout, unflatten_into
from .models import build_model
from .paths import (EXPORT_FORMATS, atomic_write, check_model_source, check_new_file, choose_checkpoint,
                    export_target, image_paths, read_run_config)

__all__ = ["EXPORT_FORMATS", "ModelInfo", "export_model", "image_paths", "load_any_model", "load_exported",
           "load_run_model", "predict_images"]

MODEL_FILE_KIND = "fedtrain-model"
MODEL_FILE_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    """What a user of an exported model needs besides its weights."""

    model: str
    class_names: tuple[str, ...]
    image_size: int
    privacy: str
    round: int
    run_id: str
    dp_compatible: bool = False
    cut: str | None = None

    def as_dict(self) -> dict:
        return {"model": self.model, "class_names": list(self.class_names), "image_size": self.image_size,
                "privacy": self.privacy, "round": self.round, "run_id": self.run_id,
                "dp_compatible": self.dp_compatible, "cut": self.cut, "in_channels": 1,
                "input": "grayscale, resized (bilinear) to image_size x image_size, float32 in [0, 1], "
                         "shape (N, 1, image_size, image_size)"}


def _load_vector(path: Path) -> np.ndarray:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        vector = state["vector"]
    except Exception as exc:  # torch raises RuntimeError, pickle errors, KeyError, ... for a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}); it is damaged or "
                              "truncated: export another round with --round") from None
    if not isinstance(vector, torch.Tensor) or vector.ndim != 1:
        raise CheckpointError(f"checkpoint {path} holds no model vector; it was not written by fedtrain")
    return vector.detach().to(torch.float32).numpy()


def _load_into(module: nn.Module, vector: np.ndarray, what: str) -> None:
    template = {k: v.detach().clone() for k, v in module.state_dict().items()}
    layout = ModelLayout.of(template)
    if vector.shape != (layout.size,):
        raise CheckpointError(f"{what} holds {vector.size} values but the architecture has {layout.size}; "
                              "was the run directory's config.json edited?")
    module.load_state_dict(unflatten_into(template, layout, vector))


def load_run_model(run_dir: str | os.PathLike, round_: int | None = None) -> tuple[nn.Module, ModelInfo]:
    """The model of round `round_` (default: the last checkpoint) of a run, in eval mode on the CPU."""
    run = Path(run_dir)
    config = read_run_config(run)
    chosen, checkpoint = choose_checkpoint(run, round_)
    vector = _load_vector(checkpoint)
    try:
        name, classes = config["model"], tuple(config["class_names"])
        image_size, privacy = int(config["image_size"]), config.get("privacy", "none")
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{run / 'config.json'} lacks the model name, classes or image size") from None
    dp = privacy == "dp"
    cut = config.get("cut") if privacy == "split" else None
    if privacy == "split":
        from .split_learning import SplitModel, split_model

        client, server = split_model(name, len(classes), cut)
        n_client = ModelLayout.of(client.state_dict()).size
        _load_into(client, vector[:n_client], str(checkpoint))
        _load_into(server, vector[n_client:], str(checkpoint))
        model: nn.Module = SplitModel(client, server)
    else:
        model = build_model(name, num_classes=len(classes), dp_compatible=dp)
        _load_into(model, vector, str(checkpoint))
    info = ModelInfo(name, classes, image_size, privacy, chosen, str(config.get("run_id", "")), dp, cut)
    return model.eval(), info


def export_model(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, fmt: str = "state_dict",
                 round_: int | None = None) -> Path:
    """Writes the run's model to `out` (default RUN_DIR/model-round<N>.<ext>) as a state dict, TorchScript
    or ONNX; returns the path."""
    target = export_target(run_dir, out, fmt, round_)
    model, info = load_run_model(run_dir, target.round)
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 1, info.image_size, info.image_size)
    buffer = io.BytesIO()
    if fmt == "state_dict":
        torch.save({"kind": MODEL_FILE_KIND, "version": MODEL_FILE_VERSION, **info.as_dict(),
                    "state_dict": model.state_dict()}, buffer)
    elif fmt == "torchscript":
        with torch.no_grad(), _quiet_jit():
            scripted = torch.jit.trace(model, example)
            torch.jit.save(scripted, buffer, _extra_files={"fedtrain.json": json.dumps(info.as_dict())})
    else:
        try:
            import onnx  # noqa: F401  (torch.onnx needs it)
        except ImportError:
            raise ConfigError("--format onnx needs the onnx package: pip install onnx onnxscript (the onnx extra)") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning, UserWarning))
            torch.onnx.export(model, (example,), buffer, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    atomic_write(path, buffer.getvalue())
    if fmt == "onnx":
        atomic_write(path.with_name(path.name + ".json"), json.dumps(info.as_dict(), indent=2).encode())
    return path


@contextlib.contextmanager
def _quiet_jit():
    """Silences torch.jit's deprecation notices: the user asked for TorchScript by name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        yield


def _is_torchscript(path: Path) -> bool:
    """Whether `path` is a TorchScript archive (a zip with code/ and constants.pkl), not a torch.save file."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def load_exported(path: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """A model written by `export_model` (state_dict or torchscript format), in eval mode on the CPU."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"model file {source} does not exist")
    if _is_torchscript(source):
        extra = {"fedtrain.json": ""}
        try:
            with _quiet_jit():
                scripted = torch.jit.load(str(source), map_location="cpu", _extra_files=extra)
            meta = json.loads(extra["fedtrain.json"])
        except (RuntimeError, ValueError):
            raise CheckpointError(f"{source} is a TorchScript file without fedtrain's metadata or damaged; "
                                  "export it again with `fedtrain export RUN --format torchscript`") from None
        return scripted.eval(), _info(meta)
    try:
        saved = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{source} is neither a fedtrain model file nor TorchScript ({type(exc).__name__}); "
                              "export one with `fedtrain export RUN`") from None
    if not isinstance(saved, dict) or saved.get("kind") != MODEL_FILE_KIND:
        raise CheckpointError(f"{source} is not a fedtrain model file; export one with `fedtrain export RUN`")
    info = _info(saved)
    if info.privacy == "split":
        from .split_learning import SplitModel, split_model

        model: nn.Module = SplitModel(*split_model(info.model, len(info.class_names), info.cut))
    else:
        model = build_model(info.model, num_classes=len(info.class_names), dp_compatible=info.dp_compatible)
    model.load_state_dict(saved["state_dict"])
    return model.eval(), info


def _info(meta: dict) -> ModelInfo:
    try:
        return ModelInfo(meta["model"], tuple(meta["class_names"]), int(meta["image_size"]), meta["privacy"],
                         int(meta["round"]), str(meta["run_id"]), bool(meta.get("dp_compatible", False)),
                         meta.get("cut"))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError("the model file's metadata is incomplete; export it again") from None


def load_any_model(source: str | os.PathLike, round_: int | None = None) -> tuple[nn.Module, ModelInfo]:
    """A run directory (its last or given round) or an exported model file."""
    path = Path(source)
    check_model_source(path, round_)
    if path.is_dir():
        return load_run_model(path, round_)
    return load_exported(path)


@torch.no_grad()
def predict_images(model: nn.Module, info: ModelInfo, files: list[Path], out_csv: str | os.PathLike,
                   *, batch_size: int = 64) -> tuple[Path, int, int]:
    """Writes one CSV row per file (class probabilities, predicted class, or why it was unreadable).

    Returns (csv path, images scored, files unreadable).
    """
    out = Path(out_csv)
    check_new_file(out, "predictions")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    scored = unreadable = 0
    for start in range(0, len(files), batch_size):
        batch = files[start:start + batch_size]
        images, kept = [], []
        for path in batch:
            image, reason = read_image_file(path, info.image_size)
            if image is None:
                rows.append([str(path), "", *([""] * len(info.class_names)), f"unreadable: {reason}"])
                unreadable += 1
                continue
            images.append(image)
            kept.append(path)
        if not images:
            continue
        x = torch.from_numpy(np.stack(images)).unsqueeze(1).to(torch.float32).div_(255.0)
        probs = torch.softmax(model(x).float(), dim=1).numpy()
        for path, p in zip(kept, probs):
            rows.append([str(path), info.class_names[int(p.argmax())], *(f"{v:.6f}" for v in p), ""])
            scored += 1
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "predicted", *(f"p_{name}" for name in info.class_names), "error"])
    writer.writerows(rows)
    atomic_write(out, buffer.getvalue().encode())
    return out, scored, unreadable
