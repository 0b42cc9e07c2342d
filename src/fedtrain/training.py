"""Local training and evaluation of one model on one ImageSet (the client's and evaluator's inner loops)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .config import BN_STATS_MODES, OPTIMIZERS, LocalTrainingConfig  # noqa: F401  (re-exported)
from .data import ImageSet, TorchImageDataset
from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def derive_seed(*seed_parts: int) -> int:
    """A 63-bit seed that depends on the tuple of integers only."""
    return int(np.random.SeedSequence(list(seed_parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_everything(*seed_parts: int) -> torch.Generator:
    """Seeds torch's global RNG from the tuple and returns a generator for data shuffling."""
    seed = derive_seed(*seed_parts)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@contextlib.contextmanager
def local_rng(*seed_parts: int, device: torch.device) -> Iterator[torch.Generator]:
    """Runs a block on torch's global RNG seeded from the tuple alone, restoring the previous state after.

    Yields the data-order generator.  Dropout draws from the global RNG, so with this
    every random choice of local training depends on (seed, round, client) and on
    nothing that ran before it in the process (another client, a crypto call, a shadow run).
    """
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        yield seed_everything(*seed_parts)


def train_local(model: nn.Module, data: ImageSet, config: LocalTrainingConfig, *, device: torch.device,
                generator: torch.Generator, progress: object | None = None) -> float:
    """Trains `model` in place for config.epochs epochs; returns the mean training loss of the last epoch.

    `progress` is an optional callable(epoch, batches_done, batches_total) for progress bars.
    Mixed precision (config.amp) applies on CUDA only.
    """
    loader = make_loader(data, config, generator)
    model.to(device).train()
    loss = run_epochs(model, loader, make_optimizer(model, config), config, device=device, progress=progress)
    if config.bn_stats == "recompute":
        recompute_batchnorm_stats(model, data, config, device=device)
    return loss


def recompute_batchnorm_stats(model: nn.Module, data: ImageSet, config: LocalTrainingConfig, *,
                              device: torch.device) -> None:
    """Sets every BatchNorm's running statistics to the mean over `data`'s batches under the current weights.

    PyTorch's running statistics are an exponential average (momentum 0.1) over the
    steps of local training, so after one short round they still hold a large share
    of the statistics the round started from, which belonged to other weights.
    After this pass (as torch.optim.swa_utils.update_bn: equal weight per batch, in
    data order, no gradients, dropout off) they describe the weights the client sends.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    loader = DataLoader(TorchImageDataset(data), batch_size=config.batch_size, shuffle=False, num_workers=0)
    momenta = [m.momentum for m in norms]
    was_training = model.training
    model.to(device).eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches of this pass
        m.train()
    try:
        with torch.no_grad():
            for images, _ in loader:
                if images.shape[0] > 1:  # BatchNorm cannot take statistics of a batch of one
                    model(images.to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)


def make_loader(data: ImageSet, config: LocalTrainingConfig, generator: torch.Generator) -> DataLoader:
    """A shuffling loader over `data`, its order fixed by `generator`."""
    return DataLoader(TorchImageDataset(data), batch_size=config.batch_size, shuffle=True,
                      generator=generator, num_workers=0, drop_last=False)


def make_optimizer(model: nn.Module, config: LocalTrainingConfig) -> torch.optim.Optimizer:
    """SGD with momentum or Adam over the model's parameters, as configured."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def run_epochs(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
               config: LocalTrainingConfig, *, device: torch.device, progress: object | None = None) -> float:
    """The inner loop: config.epochs passes over `loader`; returns the last epoch's mean loss."""
    criterion = nn.CrossEntropyLoss()
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    has_bn = _has_batchnorm(model)
    last_loss = float("nan")
    for epoch in range(config.epochs):
        total, seen = 0.0, 0
        for step, (images, labels) in enumerate(loader):
            if images.shape[0] == 0 or (images.shape[0] == 1 and has_bn):
                continue  # an empty Poisson batch (DP), or a batch of one that BatchNorm cannot train on
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
            with ctx:
                loss = criterion(model(images), labels)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            total += float(loss.detach()) * images.shape[0]
            seen += images.shape[0]
            if progress is not None:
                progress(epoch, step + 1, len(loader))
        last_loss = total / max(seen, 1)
    return last_loss


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def predict(model: nn.Module, data: ImageSet, *, device: torch.device,
            batch_size: int = 64) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean cross-entropy, true labels, softmax probabilities (N, C)) of `model` on `data`."""
    loader = DataLoader(TorchImageDataset(data), batch_size=batch_size, shuffle=False, num_workers=0)
    model.to(device).eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    total, probs, labels = 0.0, [], []
    for images, y in loader:
        images, y = images.to(device), y.to(device)
        logits = model(images).float()
        total += float(criterion(logits, y))
        probs.append(torch.softmax(logits, dim=1).cpu().numpy())
        labels.append(y.cpu().numpy())
    n = max(len(data), 1)
    return total / n, np.concatenate(labels).astype(np.int64), np.concatenate(probs).astype(np.float32)


def warm_up(model: nn.Module, *, device: torch.device, image_size: int, steps: int = 2) -> None:
    """A few throw-away training steps on random data, so one-time start-up costs stay out of timings."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    images = torch.rand(4, 1, image_size, image_size, device=device)
    labels = torch.zeros(4, dtype=torch.long, device=device)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    model.load_state_dict(state)
