"""Split learning: the cut reproduces the model, SL trains, and only cut-layer tensors cross."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fedtrain.data import ImageSet
from fedtrain.errors import CheckpointError, ConfigError, ProtocolError
from fedtrain.messages import Message
from fedtrain.models import build_model
from fedtrain.split_learning import (CUTS, DEFAULT_CUTS, MESSAGE_KINDS, SplitLearning, resolve_cut, split_model,
                                     split_module)
from fedtrain.training import LocalTrainingConfig, predict

CLASSES = ("a", "b", "c", "d")
SIZE = 32


def _separable(per_class: int, seed: int) -> ImageSet:
    """4 classes of 32x32 images: class k has a bright quadrant k on a noisy dark background."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    half = SIZE // 2
    for label in range(len(CLASSES)):
        for _ in range(per_class):
            image = rng.integers(0, 60, size=(SIZE, SIZE))
            r, c = divmod(label, 2)
            image[r * half:(r + 1) * half, c * half:(c + 1) * half] += 180
            images.append(image.astype(np.uint8))
            labels.append(label)
    order = rng.permutation(len(labels))
    return ImageSet(np.stack(images)[order], np.asarray(labels, dtype=np.int64)[order], CLASSES)


def _sl(seed: int = 3, *, clients: int = 2, per_class: int = 3, epochs: int = 1, lr: float = 0.01,
        cut: str | None = None, on_phase=None) -> SplitLearning:
    data = [_separable(per_class, 100 + c) for c in range(clients)]
    training = LocalTrainingConfig(epochs=epochs, batch_size=4, lr=lr, optimizer="sgd", momentum=0.9)
    return SplitLearning(model_name="smallcnn", num_classes=len(CLASSES), cut=cut, client_data=data,
                         training=training, device=torch.device("cpu"), seed=seed, on_phase=on_phase)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster, and far more steadily on a busy machine, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the cut


@pytest.mark.parametrize("cut", CUTS["smallcnn"])
def test_smallcnn_split_equals_full_model(cut):
    torch.manual_seed(0)
    model = build_model("smallcnn", num_classes=4)
    client, server = split_module(model, "smallcnn", cut)
    x = torch.rand(3, 1, SIZE, SIZE)
    model.eval(), client.eval(), server.eval()
    with torch.no_grad():
        torch.testing.assert_close(server(client(x)), model(x), rtol=0, atol=0)
    model.train(), client.train(), server.train()  # dropout: the same draws under the same seed
    torch.manual_seed(1)
    full = model(x)
    torch.manual_seed(1)
    torch.testing.assert_close(server(client(x)), full, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_large_models_split_equals_full_model(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=4).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        full = model(x)
        for cut in CUTS[name]:
            client, server = split_module(model, name, cut)
            torch.testing.assert_close(server(client(x)), full, rtol=1e-5, atol=1e-6, msg=f"cut {cut}")


def test_split_model_parts_hold_all_weights_and_default_cuts_are_valid():
    for name, cut in DEFAULT_CUTS.items():
        assert cut in CUTS[name] and resolve_cut(name, None) == cut
    torch.manual_seed(0)
    client, server = split_model("smallcnn", 4, None)
    full = build_model("smallcnn", num_classes=4)
    count = sum(p.numel() for p in client.parameters()) + sum(p.numel() for p in server.parameters())
    assert count == sum(p.numel() for p in full.parameters())
    assert len(client) == 8  # two conv blocks of four modules


def test_unknown_cut_raises_config_error_listing_valid_cuts():
    with pytest.raises(ConfigError, match="layer1, layer2"):
        split_model("resnet50", 4, "block2")
    with pytest.raises(ConfigError, match="block1, block2, block3, block4"):
        _sl(cut="layer9")
    with pytest.raises(ConfigError):
        split_model("vgg16", 4, None)


# ---------------------------------------------------------------- training


def test_split_learning_trains_and_full_model_evaluates():
    sl = _sl(per_class=4)
    data = ImageSet(np.concatenate([c.data.images for c in sl.clients]),
                    np.concatenate([c.data.labels for c in sl.clients]), CLASSES)
    before, _, _ = predict(sl.full_model(), data, device=torch.device("cpu"))
    losses = [sl.run_round(r, [0, 1])["train_loss"] for r in range(1, 5)]
    after, y_true, probs = predict(sl.full_model(), data, device=torch.device("cpu"))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert after < 0.5 * before
    assert (probs.argmax(axis=1) == y_true).mean() >= 0.9
    assert probs.shape == (len(data), 4) and y_true.shape == (len(data),)


def test_round_record_counts_every_message_and_only_cut_tensors_cross(monkeypatch):
    sl = _sl(per_class=3, epochs=2)  # 12 images per client, batches of 4: 3 batches per epoch
    raw: list[tuple[int, str, bytes]] = []
    log = sl._log

    def tap(round_: int, cid: int, direction: str, data: bytes) -> None:
        raw.append((cid, direction, data))
        log(round_, cid, direction, data)

    monkeypatch.setattr(sl, "_log", tap)
    record = sl.run_round(1, [1, 0])

    assert {e["kind"] for e in sl.transcript} <= set(MESSAGE_KINDS)
    assert len(sl.transcript) == len(raw) == 2 * (2 * 3 * 2 + 2)
    cut_size = math.prod(sl.sample_shape)
    assert sl.sample_shape == (32, 8, 8)
    for entry in sl.transcript:
        if entry["kind"] == "activations":
            assert entry["direction"] == "to_server"
            assert set(entry["blobs"]) == {"activations", "labels"}
            assert entry["blobs"]["activations"] == 4 * cut_size * 4  # batch x cut output x float32
            assert entry["blobs"]["labels"] == 4 * 8
        elif entry["kind"] == "gradients":
            assert entry["direction"] == "to_client" and entry["blobs"] == {"gradients": 4 * cut_size * 4}
        else:
            assert entry["blobs"] == {"weights": 4 * sl._client_layout.size}
    # No message carries an image, raw or scaled to [0, 1] as the model sees it.
    for client in sl.clients:
        for image in client.data.images:
            patterns = (image.tobytes(), (image.astype(np.float32) / 255.0).astype("<f4").tobytes())
            assert not any(p in data for _, _, data in raw for p in patterns)
    # The byte counts are the messages' lengths.
    for cid in (0, 1):
        sent = sum(len(d) for c, direction, d in raw if c == cid and direction == "to_server")
        received = sum(len(d) for c, direction, d in raw if c == cid and direction == "to_client")
        assert record["bytes"]["sent_per_client"][str(cid)] == sent > 0
        assert record["bytes"]["received_per_client"][str(cid)] == received > 0
    assert sum(record["cut_bytes"].values()) == sum(len(d) for _, _, d in raw)
    assert record["cut_bytes"]["weights"] == sum(e["nbytes"] for e in sl.transcript if e["kind"] == "weights")
    timings = record["timings"]
    assert timings["train"] > 0 and timings["server"] > 0
    assert timings["encrypt"] == timings["aggregate"] == timings["decrypt"] == 0.0
    assert record["critical_path"]["train"] == timings["train"]
    assert record["selected_clients"] == [1, 0]
    assert [e["client"] for e in sl.transcript][:1] == [1]  # turns in the given order


def test_each_clients_turn_is_reported_as_it_ends():
    events = []
    sl = _sl(on_phase=events.append)
    record = sl.run_round(1, [1, 0])
    assert [(e.round, e.client, e.phase, e.ciphertexts) for e in events] == [(1, 1, "train", 0), (1, 0, "train", 0)]
    assert sum(e.seconds for e in events) == pytest.approx(record["timings"]["train"])


def test_same_seed_same_result_other_seed_differs():
    a, b, c = _sl(seed=5), _sl(seed=5), _sl(seed=6)
    results = [[sl.run_round(r, [0, 1])["train_loss"] for r in (1, 2)] for sl in (a, b, c)]
    assert results[0] == results[1]
    np.testing.assert_array_equal(a.state_vector(), b.state_vector())
    assert results[0] != results[2]


def test_state_vector_round_trip():
    a = _sl(seed=5)
    a.run_round(1, [0, 1])
    b = _sl(seed=9)
    b.load_state_vector(a.state_vector())
    np.testing.assert_array_equal(a.state_vector(), b.state_vector())
    x = torch.rand(2, 1, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(a.full_model().eval()(x), b.full_model().eval()(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError):
        b.load_state_vector(a.state_vector()[:-1])


# ---------------------------------------------------------------- malformed messages


def _first_batch(sl: SplitLearning) -> tuple[bytes, Message]:
    """Starts client 0's turn of round 1 and returns its first activations message and the server's reply."""
    client = sl.clients[0]
    client.receive_weights(sl.server.weights_for(1, 0))
    activations = client.next_activations()
    return activations, Message.from_bytes(sl.server.handle(activations))


def _with(message: Message, *, fields: dict | None = None, blobs: dict | None = None, kind: str | None = None,
          sender: str | None = None) -> bytes:
    return Message(kind or message.kind, message.round, sender or message.sender, {**message.fields, **(fields or {})},
                   {**message.blobs, **(blobs or {})}).to_bytes()


def test_malformed_gradients_raise_protocol_error():
    sl = _sl()
    _, reply = _first_batch(sl)
    grads = reply.blob("gradients")
    nan = np.frombuffer(grads, dtype="<f4").copy()
    nan[0] = np.nan
    bad = [
        _with(reply, blobs={"gradients": grads[:-4]}),  # truncated
        _with(reply, fields={"shape": [reply.get("shape")[0] - 1, *reply.get("shape")[1:]]}),  # wrong shape
        _with(reply, fields={"dtype": "float16"}),
        _with(reply, fields={"step": 2}),
        _with(reply, blobs={"gradients": nan.tobytes()}),
        _with(reply, kind="weights"),
        _with(reply, sender="client:1"),
        Message("gradients", 1, "server", {"step": 1, "dtype": "float32", "loss": 1.0}, {}).to_bytes(),
        reply.to_bytes()[:-1],
        b"not a message",
    ]
    for data in bad:
        with pytest.raises(ProtocolError):
            sl.clients[0].receive_gradients(data)
    assert math.isfinite(sl.clients[0].receive_gradients(reply.to_bytes()))  # the batch still awaits them
    with pytest.raises(ProtocolError):
        sl.clients[0].receive_gradients(reply.to_bytes())  # none pending now


def test_malformed_activations_raise_protocol_error():
    sl = _sl()
    activations, _ = _first_batch(sl)
    message = Message.from_bytes(activations)
    shape = message.get("shape")
    bad = [
        _with(message, fields={"shape": [shape[0], shape[1] + 1, *shape[2:]]}),
        _with(message, blobs={"labels": np.full(shape[0], 7, dtype="<i8").tobytes()}),
        _with(message, blobs={"labels": message.blob("labels")[:-8]}),
        _with(message, fields={"labels_dtype": "int32"}),
        _with(message, sender="client:1"),  # not its turn
        _with(message, kind="gradients"),
    ]
    for data in bad:
        with pytest.raises(ProtocolError):
            sl.server.handle(data)
