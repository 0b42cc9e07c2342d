"""The Flower ClientApp of fedtrain: one hospital's `fedtrain.client.Client`, answering the ServerApp's messages.

Node config (each SuperNode's own, never seen by the server):
  client-id         the hospital's fedtrain client id (0 .. clients-1); in Flower's simulation engine
                    the node's partition-id is used when it is absent
  private-key-file  the clients' shared Paillier private key (clients_private_key.bin); beside it
                    signing_key_<client-id>.bin (this client's own signing key) and verifiers.json
                    (everyone's verification keys), unless signing-key-file / verifiers-file say otherwise
  data-dir          the hospital's training images, <data-dir>/<class>/<image files>; without it the
                    client takes its part of the run's data set as `fedtrain run` splits it (the demo)
  device            cpu, cuda or auto (default: the run config's)
  min-clients       the fewest clients this hospital accepts in a round, if more than the run config's
                    (the run config comes from whoever submits the run)

Flower runs each message in a fresh ClientApp process, so the Client is rebuilt for each message and
takes up its state (round in progress, refusals, ...) from the node's Context, where it is put back
after the message: on the SuperNode, never sent to the SuperLink.  Key files are read from disk and
never enter the Context.  Only a round's start trains: for the other steps the Client is built from
the model's layout kept in the Context, without its images, and torch is not imported (seconds saved
on each of those exchanges).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ..config import RunConfig
from ..errors import ConfigError
# A message's kind, read from its header (None if it is not a message: the Client answers that as it does).
from ..messages import kind_of as _kind
from .common import (CLASS_NAMES_KEY, HELLO_KEY, NODE_CLIENT_ID, NODE_DATA_DIR, NODE_DEVICE, NODE_MIN_CLIENTS,
                     NODE_PRIVATE_KEY, NODE_SIGNING_KEY, NODE_VERIFIERS, RECORD_KEY, SIGNING_KEY_NAME,
                     TIMINGS_KEY, VERIFIERS_FILE, config_values, to_key)
from .transport import pack, unpack

STATE_META = "fedtrain.client-state"
STATE_ARRAYS = "fedtrain.client-arrays"
STATE_LAYOUT = "fedtrain.model-layout"
TRAINING_KINDS = ("round_start",)  # the steps that need the images and the model (and torch)

app = ClientApp()


@app.query("fedtrain")
def hello(msg: Message, context: Context) -> Message:
    """Says which fedtrain client this node is (the ServerApp maps client ids to node ids with it)."""
    return Message(RecordDict({HELLO_KEY: ConfigRecord({NODE_CLIENT_ID: client_id(context)})}), reply_to=msg)


@app.train("fedtrain")
def train(msg: Message, context: Context) -> Message:
    """Handles one protocol message with the hospital's Client; the reply goes back as the Message's content."""
    data = unpack(msg.content)
    client = build_client(context, training=data is None or _kind(data) in TRAINING_KINDS)
    restore(client, context.state)
    reply = client.handle(data) if data is not None else None
    save(client, context.state)
    content = RecordDict({TIMINGS_KEY: MetricRecord(
        {**{k: float(v) for k, v in client.timings.items()},
         **{f"cpu.{k}": float(v) for k, v in client.cpu_timings.items()}})})
    if reply is not None:
        content[RECORD_KEY] = pack(reply)
    return Message(content, reply_to=msg)


def client_id(context: Context) -> int:
    node = context.node_config
    value = node.get(NODE_CLIENT_ID, node.get("partition-id"))
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"node config {NODE_CLIENT_ID!r} must be the hospital's client id (an integer), "
                          f"got {value!r}")
    return value


# The run options a client uses (all of them are in the app's run config, written by `fedtrain flower-setup`).
CLIENT_OPTIONS = ("clients", "model", "seed", "insecure_keys", "run_id", "precompute", "rounds", "local_epochs",
                  "min_clients", "privacy", "device", "data", "image_size", "test_fraction", "demo_train_per_class",
                  "demo_test_per_class", "partition", "alpha", "batch_size", "lr", "optimizer", "momentum", "amp",
                  "bn_stats")


def run_config(context: Context, *, secure: bool = True) -> RunConfig:
    """The run options of the Flower run config that a client uses (the others keep RunConfig's defaults).

    `secure`: refuse a run config whose privacy is not 'paillier' (fedtrain's ClientApp); the plain
    baseline app (plain_app) passes False.
    """
    values = config_values(dict(context.run_config))
    missing = [name for name in CLIENT_OPTIONS if name not in values]
    if missing:
        raise ConfigError(f"the Flower run config lacks {', '.join(map(to_key, missing))}; make the app with "
                          "`fedtrain flower-setup`")
    config = RunConfig.from_dict({name: values[name] for name in CLIENT_OPTIONS})
    if secure and config.privacy != "paillier":
        raise ConfigError("fedtrain on Flower runs the secure round only (privacy 'paillier')")
    return config


def build_client(context: Context, *, training: bool = True):
    """The hospital's Client, from the run config and its node config (keys and data read from disk).

    `training=False` (a step after the round's training): where the node's Context holds the model's
    layout, the Client is built from it without the images, the model or torch.
    """
    from ..authentication import Signer, Verifiers
    from ..client import Client, layout_from_json
    import fastpaillier as fp

    config = run_config(context)
    cid = client_id(context)
    if not 0 <= cid < config.clients:
        raise ConfigError(f"node config {NODE_CLIENT_ID} = {cid} is not one of the run's {config.clients} clients")
    node = context.node_config
    # Flower's simulation engine gives nodes no config of their own: there (one machine) the run config may name it.
    key_file = str(node.get(NODE_PRIVATE_KEY) or context.run_config.get(NODE_PRIVATE_KEY, ""))
    if not key_file:
        raise ConfigError(f"node config {NODE_PRIVATE_KEY!r} must name the clients' private key file")
    key_path = Path(key_file).expanduser()
    signing = Path(str(node.get(NODE_SIGNING_KEY) or key_path.parent / SIGNING_KEY_NAME.format(cid=cid)))
    verifiers_path = Path(str(node.get(NODE_VERIFIERS) or key_path.parent / VERIFIERS_FILE))
    key = fp.PrivateKey.load(key_path, insecure=config.insecure_keys)
    signer = Signer.from_bytes(cid, signing.expanduser().read_bytes())
    verifiers = Verifiers.from_json(verifiers_path.expanduser().read_text())
    names = str(context.run_config.get(CLASS_NAMES_KEY, ""))
    listed, layout = class_names_of(names), None
    if not training and STATE_LAYOUT in context.state and listed:
        layout = layout_from_json(str(context.state[STATE_LAYOUT]["json"]))
        data, class_names, device = None, listed, "cpu"  # neither trains nor touches the model
    else:
        from ..training import resolve_device

        data, class_names = client_data(config, cid, node.get(NODE_DATA_DIR) or None, names)
        device = resolve_device(str(node.get(NODE_DEVICE) or config.device))
    # The run config comes from whoever submitted the run; a hospital's own floor for a round's size wins.
    own_minimum = node.get(NODE_MIN_CLIENTS, 0)
    if isinstance(own_minimum, bool) or not isinstance(own_minimum, int):
        raise ConfigError(f"node config {NODE_MIN_CLIENTS!r} must be an integer, got {own_minimum!r}")
    return Client(cid, data, model_name=config.model, num_classes=len(class_names), training=config.training(),
                  device=device, seed=config.seed, private_key=key, run_id=config.run_id,
                  precompute=config.precompute, total_epochs=config.rounds * config.local_epochs,
                  num_clients=config.clients, min_clients=max(config.min_clients, own_minimum), signer=signer,
                  verifiers=verifiers, layout=layout)


def class_names_of(text: str) -> tuple[str, ...] | None:
    """The run config's comma-separated class names (None where it lists none)."""
    return tuple(n for n in text.split(",") if n) or None


def client_data(config, cid: int, data_dir: str | None, class_names: str):
    """(training images, class names) of client `cid`: its own folder, or its part of the run's data set."""
    names = class_names_of(class_names)
    if data_dir is not None:
        from .data import load_hospital_folder

        if names is None:
            raise ConfigError(f"run config {CLASS_NAMES_KEY!r} must list the classes when a node has a data folder")
        return load_hospital_folder(data_dir, names, config.image_size), names
    train, found = _partitioned(config.data, config.image_size, config.test_fraction, config.seed,
                                config.demo_train_per_class, config.demo_test_per_class, config.clients,
                                config.partition, config.alpha)
    if names is not None and names != found:
        raise ConfigError(f"the data set has classes {list(found)}, the run config {list(names)}")
    return train[cid], found


@lru_cache(maxsize=2)
def _partitioned(data: str | None, image_size: int, test_fraction: float, seed: int, train_per_class: int,
                 test_per_class: int, clients: int, scheme: str, alpha: float):
    """Every client's part of the run's training set, as `fedtrain run` splits it (cached per process)."""
    from ..data import load_data
    from ..partition import partition

    bundle = load_data(data, image_size=image_size, test_fraction=test_fraction, seed=seed,
                       demo_train_per_class=train_per_class, demo_test_per_class=test_per_class)
    parts = partition(bundle.train.labels, clients, scheme=scheme, alpha=alpha, seed=seed)
    return [bundle.train.subset(idx) for idx in parts], bundle.class_names


def save(client, state: RecordDict) -> None:
    """The client's state into the node's Context (JSON fields and arrays, the model's layout; no key material)."""
    from ..client import layout_to_json

    meta, arrays = client.export_state()
    if STATE_LAYOUT not in state:
        state[STATE_LAYOUT] = ConfigRecord({"json": layout_to_json(client.layout)})
    state[STATE_META] = ConfigRecord({"json": json.dumps(meta)})
    state[STATE_ARRAYS] = ArrayRecord({name: Array(np.ascontiguousarray(a)) for name, a in arrays.items()})


def restore(client, state: RecordDict) -> None:
    """The client's state from the node's Context, if an earlier message left one."""
    if STATE_META not in state:
        return
    meta = json.loads(str(state[STATE_META]["json"]))
    arrays = {name: array.numpy() for name, array in state[STATE_ARRAYS].items()} if STATE_ARRAYS in state else {}
    client.restore_state(meta, arrays)
