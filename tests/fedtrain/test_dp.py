"""DP baseline: finite epsilon that grows with rounds, per-sample clipping bounds the update, GroupNorm model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fedtrain.data import ImageSet
from fedtrain.differential_privacy import DPConfig, DPTrainer, make_dp_compatible
from fedtrain.errors import ConfigError
from fedtrain.models import build_model
from fedtrain.report import write_report
from fedtrain.runner import RunConfig, run_rounds, setup_run
from fedtrain.training import LocalTrainingConfig, seed_everything, train_local


def _images(n: int = 32, size: int = 16, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = rng.integers(0, 256, size=(n, size, size)).astype(np.uint8)
    return ImageSet(images, labels.astype(np.int64), ("a", "b", "c", "d"))


def test_epsilon_is_finite_and_grows_with_rounds(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDTRAIN_CACHE", str(tmp_path / "cache"))
    config = RunConfig(model="smallcnn", clients=2, rounds=3, privacy="dp", image_size=32,
                       demo_train_per_class=8, demo_test_per_class=2, batch_size=8, target_epsilon=4.0,
                       delta=1e-3, device="cpu", seed=1)
    ctx = setup_run(config, tmp_path / "run")
    records = run_rounds(ctx)
    eps = [r["epsilon"] for r in records]
    assert all(math.isfinite(e) and e > 0 for e in eps)
    assert eps[0] < eps[1] < eps[2]
    assert eps[-1] <= config.target_epsilon * 1.01  # the noise was calibrated for every round
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ctx.clients[0].models.model.modules())
    text = write_report(ctx.out_dir).read_text()
    assert "Epsilon spent" in text and f"{eps[-1]:.2f}" in text
    assert "GroupNorm" in text  # the report says the model was converted


def test_per_sample_clipping_bounds_the_step():
    """With noise off and every sample in the batch, one SGD step moves the weights by at most lr * C."""
    data = _images(n=16)
    data = ImageSet(data.images, data.labels, data.class_names)
    training = LocalTrainingConfig(epochs=1, batch_size=16, lr=1.0, optimizer="sgd", momentum=0.0)
    clip = 0.01

    def step_norm(dp: bool) -> float:
        generator = seed_everything(3)
        model = build_model("smallcnn", num_classes=4, dp_compatible=True)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        if dp:
            trainer = DPTrainer(DPConfig(target_epsilon=1.0, delta=1e-3, max_grad_norm=clip), samples=16,
                                batch_size=16, total_epochs=1)
            trainer.noise_multiplier = 0.0
            trainer.train(model, data, training, device=torch.device("cpu"), generator=generator)
        else:
            train_local(model, data, training, device=torch.device("cpu"), generator=generator)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return float(torch.linalg.vector_norm(after - before))

    dp_step = step_norm(True)
    assert 0 < dp_step <= training.lr * clip * (1 + 1e-4)
    assert step_norm(False) > 10 * dp_step  # unclipped, the same step is far larger


def test_model_conversion_replaces_batchnorm():
    for name in ("smallcnn", "resnet50"):
        model = make_dp_compatible(build_model(name))
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        assert any(isinstance(m, nn.GroupNorm) for m in model.modules())


@pytest.mark.parametrize("kwargs", [dict(target_epsilon=0), dict(delta=1.5), dict(max_grad_norm=-1),
                                    dict(target_epsilon=float("inf"))])
def test_bad_dp_settings_raise(kwargs):
    with pytest.raises(ConfigError):
        DPConfig(**kwargs)


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_converted_torchvision_models_compute_the_same_function_and_train_with_dp(name):
    torch.manual_seed(0)
    model = build_model(name, dp_compatible=True).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        patched = model(x)
        original = type(model).forward(model, x)  # torchvision's own forward, in-place ops included
    torch.testing.assert_close(patched, original)
    data = _images(n=4, size=32)
    trainer = DPTrainer(DPConfig(delta=1e-2), samples=4, batch_size=2, total_epochs=1)
    loss = trainer.train(model, data, LocalTrainingConfig(batch_size=2), device=torch.device("cpu"),
                         generator=seed_everything(0))
    assert math.isfinite(loss) and trainer.epsilon() > 0
