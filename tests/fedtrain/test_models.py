"""Tests for fedtrain.models: the architectures, and starting from a local state dict (--weights)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fedtrain.errors import ConfigError
from fedtrain.models import MODEL_NAMES, SmallCNN, build_model, count_parameters, load_local_weights


def _head(model: nn.Module, name: str) -> nn.Sequential:
    return {"smallcnn": lambda: model.head, "resnet50": lambda: model.fc,
            "densenet121": lambda: model.classifier}[name]()


def _first_conv(model: nn.Module, name: str) -> nn.Conv2d:
    return {"smallcnn": lambda: model.features[0], "resnet50": lambda: model.conv1,
            "densenet121": lambda: model.features.conv0}[name]()


@pytest.fixture(scope="module")
def big_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build_model(name).eval() for name in ("resnet50", "densenet121")}


def test_model_names():
    assert MODEL_NAMES == ("smallcnn", "resnet50", "densenet121")


def test_smallcnn_forward_on_mri_sized_batch():
    torch.manual_seed(0)
    model = build_model("smallcnn").eval()
    assert isinstance(model, SmallCNN)
    with torch.no_grad():
        out = model(torch.rand(2, 1, 128, 128))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    assert count_parameters(model) > 0


def test_smallcnn_other_sizes_and_class_counts():
    model = build_model("smallcnn", num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.rand(3, 1, 32, 32)).shape == (3, 3)


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_big_models_structure(big_models, name):
    model = big_models[name]
    conv = _first_conv(model, name)
    assert conv.in_channels == 1 and conv.weight.shape[1] == 1
    head = _head(model, name)
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert isinstance(head[0], nn.Dropout) and head[0].p == 0.5
    assert isinstance(head[1], nn.Linear) and head[1].out_features == 4
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == [head[1]]  # the only linear layer is the final one, right after the dropout


def test_resnet50_residual_branches_start_as_identity(big_models):
    """zero_init_residual: each bottleneck's last BatchNorm scale is 0, every other BatchNorm's is 1."""
    from torchvision.models.resnet import Bottleneck

    blocks = [m for m in big_models["resnet50"].modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in blocks)
    assert all(torch.all(b.bn1.weight == 1) and torch.all(b.bn2.weight == 1) for b in blocks)


def test_smallcnn_structure():
    model = build_model("smallcnn")
    assert _first_conv(model, "smallcnn").in_channels == 1
    head = model.head
    assert isinstance(head[-2], nn.Dropout) and head[-2].p == 0.5
    assert isinstance(head[-1], nn.Linear) and head[-1].out_features == 4


@pytest.mark.parametrize("name, batch", [("resnet50", 1), ("densenet121", 2)])
def test_big_models_forward(big_models, name, batch):
    with torch.no_grad():
        out = big_models[name](torch.rand(batch, 1, 64, 64))
    assert out.shape == (batch, 4) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["vgg16", "", "ResNet50", "resnet"])
def test_unknown_model(name):
    with pytest.raises(ConfigError, match="unknown model"):
        build_model(name)


# -- --weights ---------------------------------------------------------------------


def test_smallcnn_weights_round_trip(tmp_path):
    torch.manual_seed(1)
    source = build_model("smallcnn")
    with torch.no_grad():  # make the BatchNorm statistics non-default too
        for module in source.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_()
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "smallcnn.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    loaded = build_model("smallcnn", weights=path)
    expected = source.state_dict()
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    fresh = build_model("smallcnn")
    assert not torch.equal(fresh.state_dict()["head.2.weight"], expected["head.2.weight"])


def test_weights_wrapped_in_a_checkpoint_dict(tmp_path):
    source = build_model("smallcnn")
    path = tmp_path / "ckpt.pt"
    torch.save({"model": source.state_dict(), "epoch": 3}, path)
    loaded = build_model("smallcnn")
    assert load_local_weights(loaded, path) == []
    assert torch.equal(loaded.state_dict()["head.2.bias"], source.state_dict()["head.2.bias"])


@pytest.fixture(scope="module")
def imagenet_resnet50(tmp_path_factory):
    """An ImageNet-style torchvision ResNet50 state dict: RGB conv1, 1000-class fc."""
    from torchvision.models import resnet50

    torch.manual_seed(3)
    model = resnet50(weights=None)
    assert model.conv1.in_channels == 3 and model.fc.out_features == 1000
    state = model.state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet50_imagenet.pth"
    torch.save(state, path)
    return path, state


def test_imagenet_resnet50_loads_into_grayscale_model(imagenet_resnet50):
    path, state = imagenet_resnet50
    torch.manual_seed(4)
    model = build_model("resnet50")
    fresh_fc = model.fc[1].weight.detach().clone()
    skipped = load_local_weights(model, path)
    assert sorted(skipped) == ["fc.1.bias", "fc.1.weight"]
    own = model.state_dict()
    assert own["conv1.weight"].shape == (64, 1, 7, 7)
    assert torch.allclose(own["conv1.weight"], state["conv1.weight"].sum(dim=1, keepdim=True))
    for name in ("layer1.0.conv1.weight", "layer4.2.bn3.running_var", "bn1.bias", "layer3.5.conv2.weight"):
        assert torch.equal(own[name], state[name]), name
    assert torch.equal(model.fc[1].weight, fresh_fc)  # the 4-class head keeps its fresh values
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 1, 64, 64)).shape == (1, 4)


def test_imagenet_resnet50_via_build_model(imagenet_resnet50):
    path, state = imagenet_resnet50
    model = build_model("resnet50", weights=str(path))
    assert torch.allclose(model.state_dict()["conv1.weight"], state["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.state_dict()["layer2.0.downsample.0.weight"], state["layer2.0.downsample.0.weight"])


def test_weights_of_another_architecture_are_refused(imagenet_resnet50):
    path, _ = imagenet_resnet50
    with pytest.raises(ConfigError, match="same architecture"):
        build_model("smallcnn", weights=path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_model("smallcnn", weights=tmp_path / "nope.pt")
    with pytest.raises(ConfigError, match="does not exist"):
        build_model("smallcnn", weights=tmp_path)  # a directory is not a file


@pytest.mark.parametrize("content", [b"", b"garbage, not a state dict" * 10, b"PK\x03\x04broken zip"])
def test_garbage_weights_file(tmp_path, content):
    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="not a readable PyTorch state dict"):
        build_model("smallcnn", weights=path)


def test_weights_file_without_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(ConfigError, match="does not hold a state dict"):
        build_model("smallcnn", weights=path)
