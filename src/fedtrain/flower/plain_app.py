"""Plain Flower FedAvg with fedtrain's model, data and local training: the baseline of the secure app.

What a Flower user without encryption runs: Flower's own `FedAvg` strategy (flwr.serverapp.strategy)
in the ServerApp, one `train` message per node and round, the model as an ArrayRecord in the clear.
The ClientApp trains exactly as fedtrain's (same model, same data folder from node config, same
random streams from (seed, round, client)), so that `benchmarks/bench_flower_round.py` times the
rounds of both apps on the same deployment.  It reads the same run config and server folder as
fedtrain's app (written by `fedtrain flower-setup`) and writes the time of each round to
SERVER_DIR/plain_rounds.json, the last model to SERVER_DIR/plain_model.npy.  The ServerApp imports no torch; nothing here is private.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from ..errors import ConfigError
from ..messages import Message as FedMessage, vector_from_bytes
from .common import INITIAL_MODEL_FILE, MODEL_FILE, SERVER_DIR_KEY, require, write_json

PLAIN_ROUNDS_FILE = "plain_rounds.json"
PLAIN_MODEL_FILE = "plain_model.npy"  # the last round's model (plain: this app has no secret)
MODEL_KEY = "model"

server = ServerApp()
client = ClientApp()


class TimedFedAvg(FedAvg):
    """Flower's FedAvg, noting when each round's training messages go out and when their aggregate is in."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.started: dict[int, float] = {}
        self.finished: dict[int, float] = {}

    def configure_train(self, server_round, arrays, config, grid):
        self.started[server_round] = time.time()
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):
        out = super().aggregate_train(server_round, replies)
        self.finished[server_round] = time.time()
        return out


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Runs the run config's rounds of Flower's FedAvg from the server folder's round-0 model."""
    run_config = dict(context.run_config)
    server_dir = Path(require(run_config, SERVER_DIR_KEY)).expanduser()
    model = json.loads((server_dir / MODEL_FILE).read_text())
    start = FedMessage.from_bytes((server_dir / INITIAL_MODEL_FILE).read_bytes())
    if "global" not in start.blobs:
        raise ConfigError(f"{server_dir / INITIAL_MODEL_FILE} holds no plain round-0 model")
    vector = vector_from_bytes(start.blob("global"), int(model["model_size"]))
    clients, rounds = int(require(run_config, "clients")), int(require(run_config, "rounds"))
    strategy = TimedFedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=clients,
                           min_available_nodes=clients)
    t0 = time.time()
    result = strategy.start(grid=grid, num_rounds=rounds,
                            initial_arrays=ArrayRecord({MODEL_KEY: Array(np.ascontiguousarray(vector))}))
    np.save(server_dir / PLAIN_MODEL_FILE, result.arrays[MODEL_KEY].numpy())
    write_json(server_dir / PLAIN_ROUNDS_FILE, {
        "started": t0, "rounds": [{"round": r, "started": strategy.started[r], "finished": strategy.finished[r],
                                   "seconds": strategy.finished[r] - strategy.started[r]}
                                  for r in sorted(strategy.finished)]})


@client.train()
def train(msg: Message, context: Context) -> Message:
    """Trains the received model on the hospital's images as fedtrain's client does; returns it in the clear."""
    from ..client import ModelCodec
    from ..training import local_rng, resolve_device, train_local
    from .client_app import client_id, client_data, run_config
    from .common import CLASS_NAMES_KEY, NODE_DATA_DIR, NODE_DEVICE

    config = run_config(context, secure=False)
    cid = client_id(context)
    node = context.node_config
    data, names = client_data(config, cid, node.get(NODE_DATA_DIR) or None,
                              str(context.run_config.get(CLASS_NAMES_KEY, "")))
    device = resolve_device(str(node.get(NODE_DEVICE) or config.device))
    round_ = int(msg.content["config"]["server-round"])
    codec = ModelCodec(config.model, len(names))
    model = codec.load(msg.content["arrays"][MODEL_KEY].numpy())
    with local_rng(config.seed, round_, cid, device=device) as generator:
        loss = train_local(model, data, config.training(), device=device, generator=generator)
    model.to("cpu")
    content = RecordDict({"arrays": ArrayRecord({MODEL_KEY: Array(np.ascontiguousarray(codec.vector()))}),
                          "metrics": MetricRecord({"num-examples": len(data), "train_loss": float(loss)})})
    return Message(content, reply_to=msg)
