"""Encrypted FedAvg follows plain FedAvg over several rounds (issue 11).

Each test runs 4 rounds with --privacy paillier --shadow-plain on real scans of
handwritten digits (sklearn's load_digits, as an ImageFolder tree) and checks, per
round: (1) the encrypted round differs from plain FedAvg of the same round from the
same start model by no more than the codec's bound, at every position; (2) the
distance to an independent plain run of the same seed stays within the growth bound
B_t = |bound_t| + lambda_t B_(t-1); (3) that plain shadow is bit-identical to a plain
run made on its own, so no random choice depends on the privacy mode or on what else
ran in the process.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import fedtrain.client as client_module
import fedtrain.config as config_module
import fedtrain.models as models_module
from fedtrain.runner import RunConfig, run, run_rounds, setup_run

ROUNDS = 4


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """4 classes of 8x8 digit scans (sklearn), upscaled to 16x16 PNG: 12 train and 6 test images per class."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    root = tmp_path_factory.mktemp("digits")
    d = sklearn_datasets.load_digits()
    rng = np.random.default_rng(0)
    for c in range(4):
        idx = rng.permutation(np.flatnonzero(d.target == c))
        for split, part in (("train", idx[:12]), ("test", idx[12:18])):
            out = root / split / f"digit{c}"
            out.mkdir(parents=True)
            for i in part:
                img = Image.fromarray((d.images[i] / 16.0 * 255).astype(np.uint8))
                img.resize((16, 16), Image.BILINEAR).save(out / f"{i}.png")
    return root


def _tiny_densenet(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision's DenseNet (BatchNorm before every convolution), two dense blocks of two layers, growth 8."""
    from torchvision.models import DenseNet

    model = DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=num_classes)
    model.features.conv0 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
    return model


@pytest.fixture
def tiny_densenet(monkeypatch):
    monkeypatch.setitem(models_module._BUILDERS, "densenet-tiny", _tiny_densenet)
    monkeypatch.setattr(config_module, "MODEL_NAMES", (*config_module.MODEL_NAMES, "densenet-tiny"))
    return "densenet-tiny"


def _config(data: Path, model: str, **changes) -> RunConfig:
    values = dict(data=str(data), model=model, image_size=16, clients=2, min_clients=2, rounds=ROUNDS, seed=3, batch_size=8,
                  privacy="paillier", key_bits=512, insecure_keys=True, device="cpu", shadow_plain=True)
    values.update(changes)
    return RunConfig(**values)


def _vectors(run_dir: Path, key: str = "vector") -> list[np.ndarray]:
    return [torch.load(run_dir / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)[key].numpy()
            for r in range(1, ROUNDS + 1)]


def _shadows(run_dir: Path) -> list[dict]:
    return [json.loads(line)["shadow"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _check_trajectory(tmp_path: Path, config: RunConfig) -> list[dict]:
    run(config, tmp_path / "paillier")
    shadows = _shadows(tmp_path / "paillier")
    assert len(shadows) == ROUNDS
    for r, sh in enumerate(shadows, 1):
        assert sh["step_within_bound"], f"round {r}: encrypted round off plain FedAvg by more than the codec bound"
        assert 0 < sh["step_bound_ratio"] <= 1
        assert sh["distance"] <= sh["growth_bound"] * (1 + 1e-9), f"round {r}: distance above its growth bound"
        assert np.isfinite(sh["growth_bound"])
    assert shadows[0]["distance"] == pytest.approx(shadows[0]["step_error"])  # round 1: the same start model
    assert all(sh["distance"] > 0 for sh in shadows)  # the codec did round something
    # The shadow is an independent plain run: bit-identical to one made on its own.
    run_rounds(setup_run(dataclasses.replace(config, privacy="none", shadow_plain=False), tmp_path / "plain"))
    for r, (shadow, plain) in enumerate(zip(_vectors(tmp_path / "paillier", "shadow_vector"),
                                            _vectors(tmp_path / "plain")), 1):
        assert np.array_equal(shadow, plain), f"round {r}: plain FedAvg depends on what else ran in the process"
    report = (tmp_path / "paillier" / "report.md").read_text()
    assert "Encrypted against plain FedAvg (--shadow-plain)" in report
    return shadows


def test_smallcnn_follows_plain_fedavg_for_four_rounds(digits, tmp_path):
    _check_trajectory(tmp_path, _config(digits, "smallcnn"))


def test_batchnorm_heavy_densenet_follows_plain_fedavg_for_four_rounds(digits, tmp_path, tiny_densenet):
    _check_trajectory(tmp_path, _config(digits, tiny_densenet, rounding="stochastic", value_bits=20))


def test_a_codec_worse_than_its_bound_fails_the_check(digits, tmp_path, monkeypatch):
    """The one-round check can fail: a codec that rounds to a grid 4 times coarser than it claims."""
    original = client_module.quantize

    def coarse(x, plan, rng=None):
        return original(np.ldexp(original(np.ldexp(x, -2), plan, rng), 2), plan, rng)

    monkeypatch.setattr(client_module, "quantize", coarse)
    run(_config(digits, "smallcnn", rounds=1), tmp_path / "paillier")
    shadow = json.loads((tmp_path / "paillier" / "metrics.jsonl").read_text())["shadow"]
    assert not shadow["step_within_bound"]
    assert shadow["step_bound_ratio"] > 1
