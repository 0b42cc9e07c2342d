"""The CNNs of the paper (ResNet50, DenseNet121) for 1-channel 128x128 MRI, and a small CNN for CPUs."""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from .config import MODEL_NAMES
from .errors import ConfigError


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU-pool blocks, global average pooling, dropout 0.5 and a linear head."""

    def __init__(self, num_classes: int = 4, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for out in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def _resnet50(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision ResNet50 (no weights), 1-channel stem, dropout 0.5 before the final linear layer.

    The last BatchNorm of every residual branch starts at zero (zero_init_residual, Goyal et al.
    2017; timm's default), so each block starts as the identity: from scratch with SGD at lr 0.05 the
    default init diverged (train loss 18, chance after 4 rounds) where this one trains.
    """
    from torchvision.models import resnet50

    model = resnet50(weights=None, zero_init_residual=True)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(model.fc.in_features, num_classes))
    return model


def _densenet121(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision DenseNet121 (no weights), 1-channel stem, dropout 0.5 before the classifier."""
    from torchvision.models import densenet121

    model = densenet121(weights=None)
    model.features.conv0 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(model.classifier.in_features, num_classes))
    return model


_BUILDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "smallcnn": lambda c, i: SmallCNN(c, i),
    "resnet50": _resnet50,
    "densenet121": _densenet121,
}


def build_model(name: str, *, num_classes: int = 4, in_channels: int = 1,
                weights: str | os.PathLike | None = None, dp_compatible: bool = False) -> nn.Module:
    """Builds a model by name; `weights` is a local state-dict file (nothing is downloaded).

    dp_compatible=True converts it for DP-SGD (GroupNorm instead of BatchNorm), after loading weights.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    model = _BUILDERS[name](num_classes, in_channels)
    if weights is not None:
        load_local_weights(model, weights)
    if dp_compatible:
        from .differential_privacy import make_dp_compatible

        model = make_dp_compatible(model)
    return model


def load_local_weights(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Loads a local state dict, adapting an RGB stem and skipping a head of another class count.

    A 3-channel first convolution (ImageNet weights) is summed over its input
    channels, the usual way to start a grayscale model from RGB weights.  Keys of
    the classification head whose shapes differ are left at their fresh values.
    Returns the names of the tensors that were not loaded.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"--weights file {os.fspath(path)!r} does not exist; give a local state-dict file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ConfigError(f"--weights file {os.fspath(path)!r} is not a readable PyTorch state dict: {exc}") from None
    if isinstance(loaded, dict) and "model" in loaded and isinstance(loaded["model"], dict):
        loaded = loaded["model"]
    if not isinstance(loaded, dict):
        raise ConfigError(f"--weights file {os.fspath(path)!r} does not hold a state dict")
    own = model.state_dict()
    renamed = {_match_name(k, own): v for k, v in loaded.items()}
    adapted: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for name, target in own.items():
        value = renamed.get(name)
        if value is None:
            skipped.append(name)
            continue
        if value.dim() == 4 and target.dim() == 4 and value.shape[1] != target.shape[1] and target.shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        if value.shape != target.shape:
            skipped.append(name)
            continue
        adapted[name] = value.to(target.dtype)
    if len(adapted) < len(own) // 2:
        raise ConfigError(
            f"--weights file {os.fspath(path)!r} matches only {len(adapted)} of {len(own)} tensors of this "
            "model; pass weights of the same architecture")
    model.load_state_dict(adapted, strict=False)
    return skipped


def _match_name(key: str, own: dict[str, torch.Tensor]) -> str:
    """Maps torchvision's head names (fc.weight, classifier.weight) onto our Sequential heads."""
    if key in own:
        return key
    for head in ("fc", "classifier"):
        for leaf in ("weight", "bias"):
            if key == f"{head}.{leaf}" and f"{head}.1.{leaf}" in own:
                return f"{head}.1.{leaf}"
    return key


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
