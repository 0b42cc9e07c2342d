"""Client-side DP-SGD with Opacus (per-sample clipping, Gaussian noise, RDP accountant): the DP baseline.

Each client keeps one privacy engine for the whole run, so its accountant composes
every local step it ever takes; the noise multiplier is chosen once so that a
client selected in every round spends at most `target_epsilon` over all rounds.
Noise is drawn from torch's generator seeded from the run's seed, so runs are
repeatable; that suits a comparison study, while a production DP deployment
should use Opacus' secure_mode (a cryptographic RNG).
"""

from __future__ import annotations

import types
import warnings

import torch
from torch import nn

from .config import DPConfig  # noqa: F401  (re-exported)
from .data import ImageSet
from .errors import ConfigError
from .training import LocalTrainingConfig, make_loader, make_optimizer, run_epochs

DP_CONVERSION_NOTE = ("BatchNorm layers were replaced by GroupNorm (Opacus' ModuleValidator.fix), as DP-SGD "
                      "needs per-sample gradients, which BatchNorm's batch statistics do not allow; in-place "
                      "ReLUs and residual additions were made out-of-place for Opacus' hooks (same function)")


def make_dp_compatible(model: nn.Module) -> nn.Module:
    """The model with BatchNorm replaced by GroupNorm and in-place ReLUs made out-of-place."""
    from opacus.validators import ModuleValidator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = ModuleValidator.fix(model)
    _remove_inplace_ops(fixed)
    errors = ModuleValidator.validate(fixed, strict=False)
    if errors:
        raise ConfigError(f"this model cannot be trained with DP-SGD even after conversion: {errors[0]}")
    return fixed


def _bottleneck_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's Bottleneck.forward with `out + identity` instead of the in-place `+=`."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    return self.relu(self.bn3(self.conv3(out)) + identity)


def _densenet_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's DenseNet.forward with an out-of-place final ReLU."""
    out = torch.relu(self.features(x))
    return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(out, (1, 1)), 1))


def _remove_inplace_ops(model: nn.Module) -> None:
    """Opacus' backward hooks forbid in-place updates of module outputs: make ReLUs and residual adds out of place."""
    from torchvision.models.densenet import DenseNet
    from torchvision.models.resnet import Bottleneck

    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
        elif isinstance(module, Bottleneck):
            module.forward = types.MethodType(_bottleneck_forward, module)
        elif isinstance(module, DenseNet):
            module.forward = types.MethodType(_densenet_forward, module)


# Renyi orders of the accountant: Opacus' defaults (1.1 ... 10.9, 12 ... 63) and larger ones up to 4096.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [2 ** k for k in range(6, 13)]


class DPTrainer:
    """One client's DP-SGD state: its noise multiplier and its privacy accountant across rounds."""

    def __init__(self, config: DPConfig, *, samples: int, batch_size: int, total_epochs: int) -> None:
        from opacus import PrivacyEngine
        from opacus.accountants.utils import get_noise_multiplier

        if config.delta >= 1.0 / samples:
            warnings.warn(f"--delta {config.delta} is not below 1/{samples} (one over the client's data size); "
                          "the DP guarantee is weak", RuntimeWarning, stacklevel=2)
        self.config = config
        self.sample_rate = min(1.0, batch_size / samples)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            self.noise_multiplier = float(get_noise_multiplier(
                target_epsilon=config.target_epsilon, target_delta=config.delta, sample_rate=self.sample_rate,
                epochs=total_epochs, accountant="rdp", alphas=RDP_ORDERS))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Secure RNG turned off")  # see the module docstring
            self.engine = PrivacyEngine(accountant="rdp")

    def train(self, model: nn.Module, data: ImageSet, training: LocalTrainingConfig, *, device: torch.device,
              generator: torch.Generator, progress: object | None = None) -> float:
        """Trains `model` in place with DP-SGD for training.epochs epochs; returns the mean loss."""
        model.to(device).train()
        loader = make_loader(data, training, generator)
        optimizer = make_optimizer(model, training)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            private_model, private_optimizer, private_loader = self.engine.make_private(
                module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.config.max_grad_norm, poisson_sampling=True, noise_generator=generator)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                return run_epochs(private_model, private_loader, private_optimizer, training, device=device,
                                  progress=progress)
        finally:
            if hasattr(private_model, "remove_hooks"):  # the next round wraps the model afresh
                private_model.remove_hooks()

    def epsilon(self) -> float:
        """The epsilon this client has spent so far at the configured delta (RDP accountant)."""
        if not self.engine.accountant.history:
            return 0.0
        # Opacus' default orders stop at 63, where the optimum lies for the first rounds of a long run
        # (and it warns each time); more orders give a tighter, still valid, epsilon.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(self.engine.accountant.get_epsilon(delta=self.config.delta, alphas=RDP_ORDERS))
