"""Vanilla split learning (SL): clients run the first layers, the server the rest, one client at a time.

The model is cut after a named layer.  Each selected client in turn trains E local
epochs: per batch it sends the cut-layer activations and the labels (vanilla SL
shares labels), the server runs the rest of the model, steps its optimizer and
replies with the gradients of the activations, and the client backpropagates and
steps its own optimizer.  The client part's weights are handed from one client to
the next, relayed through the server ("usual sequential SL").  Client and server
exchange `fedtrain.messages.Message` bytes only, and every message is logged.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .config import CUTS, DEFAULT_CUTS, resolve_cut
from .data import ImageSet
from .errors import CheckpointError, ConfigError, FedTrainError, ProtocolError
from .fedavg import ModelLayout, flatten_state, unflatten_into
from .messages import Message, vector_from_bytes, vector_to_bytes
from .models import build_model
from .progress import PhaseEnd, PhaseHook
from .training import LocalTrainingConfig, make_loader, make_optimizer, seed_everything

__all__ = [
    "CUTS", "DEFAULT_CUTS", "MESSAGE_KINDS", "ServerPart", "SplitClient", "SplitLearning", "SplitModel",
    "SplitServer", "resolve_cut", "split_model", "split_module",
]

MESSAGE_KINDS = ("activations", "gradients", "weights")

ProgressFactory = Callable[[int, int], Callable[[int, int, int], None] | None]

_RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_SERVER = "server"


# ---------------------------------------------------------------- splitting the model


class ServerPart(nn.Module):
    """The layers after the cut (`body`) followed by the model's own pooling and classifier (`head`)."""

    def __init__(self, body: nn.Sequential, head: nn.Sequential) -> None:
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class SplitModel(nn.Module):
    """Client part and server part as one module: forward is server(client(x))."""

    def __init__(self, client: nn.Module, server: nn.Module) -> None:
        super().__init__()
        self.client = client
        self.server = server

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.server(self.client(x))


def _trunk_and_head(model: nn.Module, model_name: str) -> tuple[list[tuple[str, nn.Module]], nn.Sequential]:
    """The model's layers up to its last feature map, and what its forward applies after them."""
    if model_name == "smallcnn":
        head = nn.Sequential(OrderedDict(pool=model.pool, head=model.head))
        return list(model.features.named_children()), head
    if model_name == "resnet50":
        head = nn.Sequential(OrderedDict(avgpool=model.avgpool, flatten=nn.Flatten(1), fc=model.fc))
        return [(name, getattr(model, name)) for name in _RESNET_TRUNK], head
    # DenseNet.forward: features -> F.relu -> adaptive_avg_pool2d(1) -> flatten -> classifier.  Not in
    # place here: with a cut at the end of the features the ReLU's input would be the received leaf.
    head = nn.Sequential(OrderedDict(relu=nn.ReLU(), pool=nn.AdaptiveAvgPool2d((1, 1)), flatten=nn.Flatten(1),
                                     classifier=model.classifier))
    return list(model.features.named_children()), head


def _client_length(model_name: str, cut: str, names: list[str]) -> int:
    """How many trunk layers run on the client for `cut`."""
    if model_name == "smallcnn":
        return 4 * int(cut.removeprefix("block"))
    last = {"resnet50": "maxpool", "densenet121": "pool0"}[model_name] if cut == "stem" else cut
    return names.index(last) + 1


def split_module(model: nn.Module, model_name: str, cut: str) -> tuple[nn.Sequential, ServerPart]:
    """(client part, server part) sharing `model`'s layers, with server(client(x)) == model(x)."""
    cut = resolve_cut(model_name, cut)
    trunk, head = _trunk_and_head(model, model_name)
    k = _client_length(model_name, cut, [name for name, _ in trunk])
    return nn.Sequential(OrderedDict(trunk[:k])), ServerPart(nn.Sequential(OrderedDict(trunk[k:])), head)


def split_model(model_name: str, num_classes: int, cut: str | None, *, in_channels: int = 1,
                weights: str | os.PathLike | None = None) -> tuple[nn.Module, nn.Module]:
    """Builds `model_name` with `fedtrain.models.build_model` and cuts it after `cut` (None: the default)."""
    cut = resolve_cut(model_name, cut)
    model = build_model(model_name, num_classes=num_classes, in_channels=in_channels, weights=weights)
    return split_module(model, model_name, cut)


# ---------------------------------------------------------------- helpers


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's values as little-endian float32 bytes."""
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy(), dtype="<f4").tobytes()


def _shape_field(message: Message, what: str) -> tuple[int, ...]:
    """The message's `shape` field as a tuple of positive ints."""
    shape = message.get("shape")
    if not (isinstance(shape, list) and shape and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                      for d in shape)):
        raise ProtocolError(f"{what} shape {shape!r} is not a list of positive integers")
    return tuple(shape)


def _float_tensor(message: Message, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Blob `name` as a float32 tensor of `shape`; ProtocolError on a wrong dtype, size or non-finite value."""
    if message.get("dtype") != "float32":
        raise ProtocolError(f"{message.kind!r} message has dtype {message.get('dtype')!r}, expected 'float32'")
    data = message.blob(name)
    expected = 4 * math.prod(shape)
    if len(data) != expected:
        raise ProtocolError(f"{name} blob has {len(data)} bytes, expected {expected} for float32 {list(shape)}")
    values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise ProtocolError(f"{name} blob holds NaN or infinite values")
    return torch.from_numpy(values.reshape(shape))


def _finite_number(value: Any, what: str) -> float:
    """`value` as a finite float; ProtocolError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(f"{what} {value!r} is not a finite number")
    return float(value)


# ---------------------------------------------------------------- the two roles


class SplitClient:
    """One hospital: its images, its replica of the client part, and that part's optimizer."""

    def __init__(self, cid: int, data: ImageSet, client_part: nn.Module, *, training: LocalTrainingConfig,
                 device: torch.device, seed: int, progress: ProgressFactory | None = None) -> None:
        if len(data) == 0:
            raise ConfigError(f"client {cid} has no training images; use fewer clients")
        self.cid = cid
        self.data = data
        self.part = client_part.to(device)
        self.training = training
        self.device = device
        self.seed = seed
        self.name = f"client:{cid}"
        self.timings: dict[str, float] = {}
        self.loss_sum = 0.0
        self.samples_seen = 0
        self._template = {k: v.detach().to("cpu").clone() for k, v in self.part.state_dict().items()}
        self.layout = ModelLayout.of(self._template)
        self._progress = progress
        self._bar: Callable[[int, int, int], None] | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._loader: DataLoader | None = None
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._round = 0
        self._epoch = 0
        self._batch = 0
        self._step = 0
        self._pending: tuple[int, torch.Tensor] | None = None

    @property
    def num_samples(self) -> int:
        return len(self.data)

    def _tick(self, start: float) -> None:
        self.timings["train"] = self.timings.get("train", 0.0) + time.perf_counter() - start

    def receive_weights(self, data: bytes) -> None:
        """Starts a turn: loads the relayed client-part weights, makes a fresh optimizer, seeds the data order."""
        start = time.perf_counter()
        message = Message.from_bytes(data)
        if message.kind != "weights" or message.sender != _SERVER:
            raise ProtocolError(f"{self.name} expected 'weights' from the server, got {message.kind!r} from "
                                f"{message.sender!r}")
        if self._pending is not None:
            raise ProtocolError(f"{self.name} got new weights while a batch awaits its gradients")
        vector = vector_from_bytes(message.blob("weights"), self.layout.size)
        self.part.load_state_dict(unflatten_into(self._template, self.layout, vector))
        self.part.to(self.device).train()
        self._optimizer = make_optimizer(self.part, self.training)
        self._round = message.round
        generator = seed_everything(self.seed, message.round, self.cid)
        self._loader = make_loader(self.data, self.training, generator)
        self._batches = iter(self._loader)
        self._epoch, self._batch, self._step = 0, 0, 0
        self.loss_sum, self.samples_seen = 0.0, 0
        self.timings = {}
        self._bar = self._progress(self.cid, message.round) if self._progress else None
        self._tick(start)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The next batch of the turn's E epochs (batches of one skipped: BatchNorm cannot train on them)."""
        while self._batches is not None:
            try:
                images, labels = next(self._batches)
            except StopIteration:
                self._epoch += 1
                self._batch = 0
                self._batches = iter(self._loader) if self._epoch < self.training.epochs else None
                continue
            self._batch += 1
            if images.shape[0] > 1:
                return images, labels
        return None

    def next_activations(self) -> bytes | None:
        """The next batch's `activations` message (cut-layer output and labels), or None when the turn is done."""
        if self._pending is not None:
            raise ProtocolError(f"{self.name} cannot send a batch before the previous one's gradients arrive")
        if self._optimizer is None:
            raise ProtocolError(f"{self.name} has no weights for this turn")
        start = time.perf_counter()
        batch = self._next_batch()
        if batch is None:
            self._tick(start)
            return None
        images, labels = batch
        self._optimizer.zero_grad(set_to_none=True)
        activations = self.part(images.to(self.device, non_blocking=True))
        self._step += 1
        self._pending = (self._step, activations)
        message = Message("activations", self._round, self.name,
                          {"step": self._step, "shape": list(activations.shape), "dtype": "float32",
                           "labels_dtype": "int64"},
                          {"activations": _tensor_bytes(activations),
                           "labels": np.ascontiguousarray(labels.numpy(), dtype="<i8").tobytes()})
        data = message.to_bytes()
        self._tick(start)
        return data

    def receive_gradients(self, data: bytes) -> float:
        """Backpropagates the server's gradients through the client part and steps; returns the batch loss."""
        start = time.perf_counter()
        message = Message.from_bytes(data)
        if self._pending is None:
            raise ProtocolError(f"{self.name} got gradients but awaits none")
        step, activations = self._pending
        message.expect("gradients", self._round)
        if message.sender != _SERVER:
            raise ProtocolError(f"{self.name} got gradients from {message.sender!r}, not the server")
        if message.get("step") != step:
            raise ProtocolError(f"gradients are for step {message.get('step')!r}, expected {step}")
        shape = _shape_field(message, "gradients")
        if shape != tuple(activations.shape):
            raise ProtocolError(f"gradients have shape {list(shape)}, the activations sent {list(activations.shape)}")
        gradients = _float_tensor(message, "gradients", shape)
        loss = _finite_number(message.get("loss"), "batch loss")
        activations.backward(gradients.to(self.device, dtype=activations.dtype))
        self._optimizer.step()
        self._pending = None
        self.loss_sum += loss * shape[0]
        self.samples_seen += shape[0]
        if self._bar is not None:
            self._bar(self._epoch, self._batch, len(self._loader))
        self._tick(start)
        return loss

    def finish_turn(self) -> bytes:
        """Ends the turn: the `weights` message of the trained client part, for the server to relay."""
        if self._loader is None:
            raise ProtocolError(f"{self.name} has no turn to finish")
        if self._pending is not None or self._batches is not None:
            raise ProtocolError(f"{self.name} cannot hand over its weights before its turn's batches are done")
        start = time.perf_counter()
        vector = flatten_state(self.part.state_dict(), self.layout)
        data = Message("weights", self._round, self.name, {"size": self.layout.size},
                       {"weights": vector_to_bytes(vector)}).to_bytes()
        self._optimizer = None
        self._loader = None
        self._tick(start)
        return data


class SplitServer:
    """The server: the layers after the cut, their optimizer (kept across turns) and the weights relay."""

    def __init__(self, server_part: nn.Module, *, num_classes: int, training: LocalTrainingConfig,
                 device: torch.device, sample_shape: tuple[int, ...], client_weights: np.ndarray) -> None:
        self.part = server_part.to(device)
        self.num_classes = num_classes
        self.training = training
        self.device = device
        self.sample_shape = tuple(sample_shape)
        self.client_state_size = int(client_weights.size)
        self.relay = vector_to_bytes(client_weights)
        self.timings: dict[str, float] = {}
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = make_optimizer(self.part, training)
        self.layout = ModelLayout.of(self.part.state_dict())
        self._turn: tuple[int, str] | None = None

    def _tick(self, start: float) -> None:
        self.timings["server"] = self.timings.get("server", 0.0) + time.perf_counter() - start

    def new_optimizer(self) -> None:
        """Replaces the optimizer (its momentum is not part of the state vector)."""
        self.optimizer = make_optimizer(self.part, self.training)

    def weights_for(self, round_: int, cid: int) -> bytes:
        """Opens client `cid`'s turn: the relayed client-part weights, as a `weights` message."""
        start = time.perf_counter()
        if self._turn is not None:
            raise ProtocolError(f"{self._turn[1]}'s turn has not ended")
        self._turn = (round_, f"client:{cid}")
        data = Message("weights", round_, _SERVER, {"size": self.client_state_size},
                       {"weights": self.relay}).to_bytes()
        self._tick(start)
        return data

    def handle(self, data: bytes) -> bytes | None:
        """Processes a message of the client whose turn it is: activations -> gradients; weights -> stored."""
        start = time.perf_counter()
        message = Message.from_bytes(data)
        if self._turn is None or (message.round, message.sender) != self._turn:
            raise ProtocolError(f"{message.kind!r} message of round {message.round} from {message.sender!r} is out "
                                f"of turn (expected round and sender {self._turn!r})")
        if message.kind == "activations":
            reply = self._on_activations(message)
        elif message.kind == "weights":
            self.relay = vector_to_bytes(vector_from_bytes(message.blob("weights"), self.client_state_size))
            self._turn = None
            reply = None
        else:
            raise ProtocolError(f"the split-learning server got an unexpected {message.kind!r} message")
        self._tick(start)
        return reply

    def _on_activations(self, message: Message) -> bytes:
        """Forward, loss, backward and step on the server part; the reply carries d loss / d activations."""
        shape = _shape_field(message, "activations")
        if shape[1:] != self.sample_shape:
            raise ProtocolError(f"activations have per-sample shape {list(shape[1:])}, expected "
                                f"{list(self.sample_shape)}")
        if shape[0] < 2:
            raise ProtocolError("a batch of activations needs at least 2 samples (BatchNorm)")
        activations = _float_tensor(message, "activations", shape)
        labels = self._labels(message, shape[0])
        x = activations.to(self.device).requires_grad_(True)
        self.part.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.part(x), labels.to(self.device))
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FedTrainError(f"split learning diverged: the loss of round {message.round} step "
                                f"{message.get('step')} is {value}; lower --lr")
        loss.backward()
        self.optimizer.step()
        return Message("gradients", message.round, _SERVER,
                       {"step": message.get("step"), "shape": list(shape), "dtype": "float32", "loss": value},
                       {"gradients": _tensor_bytes(x.grad)}).to_bytes()

    def _labels(self, message: Message, batch: int) -> torch.Tensor:
        """The `labels` blob as int64 (batch,) in [0, num_classes)."""
        if message.get("labels_dtype") != "int64":
            raise ProtocolError(f"labels have dtype {message.get('labels_dtype')!r}, expected 'int64'")
        data = message.blob("labels")
        if len(data) != 8 * batch:
            raise ProtocolError(f"labels blob has {len(data)} bytes, expected {8 * batch} for {batch} int64 labels")
        labels = np.frombuffer(data, dtype="<i8").astype(np.int64)
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ProtocolError(f"labels must lie in [0, {self.num_classes})")
        return torch.from_numpy(labels)


# ---------------------------------------------------------------- orchestration


class SplitLearning:
    """Sequential split learning in process: clients take turns, the client part is relayed between them."""

    def __init__(self, *, model_name: str, num_classes: int, cut: str | None, client_data: list[ImageSet],
                 training: LocalTrainingConfig, device: torch.device, seed: int,
                 weights: str | os.PathLike | None = None, progress: ProgressFactory | None = None,
                 on_phase: PhaseHook | None = None) -> None:
        if not client_data:
            raise ConfigError("split learning needs at least one client")
        sizes = {tuple(d.images.shape[1:]) for d in client_data}
        if len(sizes) != 1:
            raise ConfigError(f"all clients' images must have the same size, got {sorted(sizes)}")
        self.model_name = model_name
        self.num_classes = num_classes
        self.cut = resolve_cut(model_name, cut)
        self.training = training
        self.device = device
        self.seed = seed
        self._on_phase = on_phase  # told as each client's turn ends
        seed_everything(seed, 0, 0xA11)  # the same initial model as the federated runner
        client_part, server_part = split_model(model_name, num_classes, self.cut, weights=weights)
        (height, width), = sizes
        self.sample_shape = self._cut_shape(client_part, height, width)
        self._client_template = client_part
        self._client_layout = ModelLayout.of(client_part.state_dict())
        initial = flatten_state(client_part.state_dict(), self._client_layout)
        self.clients = [SplitClient(cid, data, copy.deepcopy(client_part), training=training, device=device,
                                    seed=seed, progress=progress) for cid, data in enumerate(client_data)]
        self.server = SplitServer(server_part, num_classes=num_classes, training=training, device=device,
                                  sample_shape=self.sample_shape, client_weights=initial)
        self.transcript: list[dict[str, Any]] = []

    @staticmethod
    def _cut_shape(client_part: nn.Module, height: int, width: int) -> tuple[int, ...]:
        """Per-sample shape of the cut-layer activations for (1, height, width) images."""
        client_part.eval()
        with torch.no_grad():
            shape = tuple(client_part(torch.zeros(1, 1, height, width)).shape[1:])
        client_part.train()
        return shape

    def _log(self, round_: int, cid: int, direction: str, data: bytes) -> None:
        """Records one message's kind, blob sizes and length in the transcript."""
        message = Message.from_bytes(data)
        self.transcript.append({"round": round_, "client": cid, "direction": direction, "kind": message.kind,
                                "blobs": {name: len(blob) for name, blob in message.blobs.items()},
                                "nbytes": len(data)})

    def _to_server(self, round_: int, cid: int, data: bytes) -> bytes | None:
        """Delivers a client's message to the server (logged); returns the reply."""
        self._log(round_, cid, "to_server", data)
        return self.server.handle(data)

    def _to_client(self, round_: int, cid: int, data: bytes) -> bytes:
        """Logs a server message for client `cid` and returns it for delivery."""
        self._log(round_, cid, "to_client", data)
        return data

    def run_round(self, round_: int, selected: list[int]) -> dict[str, Any]:
        """One round: each selected client, in the given order, trains E epochs with the server.

        `transcript` is reset and then holds every message of this round.
        """
        if not selected or len(set(selected)) != len(selected) or \
                any(not 0 <= c < len(self.clients) for c in selected):
            raise ConfigError(f"selected clients {selected!r} must be distinct ids in [0, {len(self.clients)})")
        self.transcript = []
        self.server.timings = {}
        wall = time.perf_counter()
        train = 0.0
        loss_sum, seen = 0.0, 0
        for cid in selected:
            client = self.clients[cid]
            client.receive_weights(self._to_client(round_, cid, self.server.weights_for(round_, cid)))
            while (activations := client.next_activations()) is not None:
                client.receive_gradients(self._to_client(round_, cid, self._to_server(round_, cid, activations)))
            self._to_server(round_, cid, client.finish_turn())
            train += client.timings.get("train", 0.0)
            if self._on_phase is not None:
                self._on_phase(PhaseEnd(cid, round_, "train", client.timings.get("train", 0.0)))
            loss_sum += client.loss_sum
            seen += client.samples_seen
        server = self.server.timings.get("server", 0.0)
        sent = {str(c): 0 for c in selected}
        received = {str(c): 0 for c in selected}
        cut_bytes = {kind: 0 for kind in MESSAGE_KINDS}
        for entry in self.transcript:
            (sent if entry["direction"] == "to_server" else received)[str(entry["client"])] += entry["nbytes"]
            cut_bytes[entry["kind"]] += entry["nbytes"]
        timings = {"train": train, "server": server, "encrypt": 0.0, "aggregate": 0.0, "decrypt": 0.0}
        return {
            "selected_clients": list(selected),
            "train_loss": loss_sum / seen if seen else float("nan"),
            "timings": timings,
            "critical_path": {**timings, "round": train + server},
            "round_wall": time.perf_counter() - wall,
            "bytes": {"sent_per_client": sent, "received_per_client": received},
            "cut_bytes": cut_bytes,
        }

    def client_vector(self) -> np.ndarray:
        """The relayed client-part weights (float32), as held after the last turn."""
        return vector_from_bytes(self.server.relay, self._client_layout.size)

    def full_model(self) -> SplitModel:
        """A copy of client part + server part as one module, for `fedtrain.training.predict`."""
        client = copy.deepcopy(self._client_template)
        template = {k: v.detach().clone() for k, v in client.state_dict().items()}
        client.load_state_dict(unflatten_into(template, self._client_layout, self.client_vector()))
        return SplitModel(client.to(self.device), copy.deepcopy(self.server.part))

    def state_vector(self) -> np.ndarray:
        """Float32 floating-point state of the client part then the server part (for checkpoints)."""
        server = flatten_state(self.server.part.state_dict(), self.server.layout)
        return np.concatenate([self.client_vector(), server]).astype(np.float32)

    def load_state_vector(self, vector: np.ndarray) -> None:
        """Restores a `state_vector()`; the server's optimizer starts afresh (its momentum is not saved)."""
        n_client, n_server = self._client_layout.size, self.server.layout.size
        vector = np.asarray(vector)
        if vector.shape != (n_client + n_server,) or not np.all(np.isfinite(vector)):
            raise CheckpointError(f"split-learning state vector has shape {vector.shape}, expected "
                                  f"({n_client + n_server},) finite values; was it saved with another model or cut?")
        vector = vector.astype(np.float32)
        self.server.relay = vector_to_bytes(vector[:n_client])
        state = self.server.part.state_dict()
        self.server.part.load_state_dict(unflatten_into(state, self.server.layout, vector[n_client:]))
        self.server.new_optimizer()
