"""paillier_mod: a ClientApp mod that decrypts the incoming aggregate and encrypts outgoing train replies."""

from __future__ import annotations

import os
import threading

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from ..errors import InvalidArgumentError, KeyMismatchError
from ..keys import PrivateKey
from ..packed import PackedCodec
from .records import NUM_EXAMPLES_KEY, STYPE, _count, decrypt_arrayrecord, encrypt_weighted, to_array
from .strategy import CONFIG_RECORD_KEY

# Node-config (deployment: flower-supernode --node-config) or run-config (simulation) key of the
# path to this node's private key file, written by `python -m fastpaillier keygen`.
PRIVATE_KEY_CONFIG_KEY = "fastpaillier-private-key"


class PaillierMod:
    """ClientApp mod in the style of Flower's secaggplus_mod: the ClientApp sees plaintext, the server ciphertexts.

    On train and evaluate messages from PaillierFedAvg it decrypts the encrypted global model
    into plain numpy Arrays before the ClientApp runs; on the train reply it encrypts every
    array as E(n_k x) (n_k: the reply's `num-examples` metric, which is then removed from the
    metrics) and adds E(n_k).  The weight key is removed from evaluate replies as well.  The
    private key is read from the file named by node config (or, for the simulation engine,
    run config) key `fastpaillier-private-key`.  A train reply with arrays to a server that did
    not send fastpaillier parameters is refused: updates never leave the node in plaintext.
    """

    def __init__(self, config_key: str = PRIVATE_KEY_CONFIG_KEY) -> None:
        self.config_key = config_key
        self._keys: dict[tuple[str, int, int], PrivateKey] = {}
        self._lock = threading.Lock()

    def private_key(self, context: Context) -> PrivateKey:
        """This node's private key, loaded (once per file version) from the path in node or run config."""
        path = context.node_config.get(self.config_key, context.run_config.get(self.config_key))
        if not isinstance(path, str) or not path:
            raise InvalidArgumentError(
                f"node config has no {self.config_key!r}: start the SuperNode with --node-config "
                f"\"{self.config_key}='/path/outside/the/app/paillier.key'\" (simulation: set it in the run "
                "config), the file written by `python -m fastpaillier keygen --out DIR`")
        path = os.path.expanduser(path)
        st = os.stat(path)
        cache_key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            key = self._keys.get(cache_key)
            if key is None:
                key = PrivateKey.load(path)
                self._keys = {cache_key: key}
        return key

    def __call__(self, msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        category = msg.metadata.message_type.split(".", 1)[0]
        if category not in (MessageType.TRAIN, MessageType.EVALUATE) or not msg.has_content():
            return call_next(msg, ctxt)
        params = msg.content.config_records.get(CONFIG_RECORD_KEY)
        encrypted_in = any(a.stype == STYPE for r in msg.content.array_records.values() for a in r.values())
        key = self.private_key(ctxt) if params is not None or encrypted_in else None
        if params is not None:
            del msg.content[CONFIG_RECORD_KEY]
            _check_fingerprint(params, key)
        if encrypted_in:
            for name, record in list(msg.content.array_records.items()):
                msg.content[name] = decrypt_arrayrecord(record, key)
        reply = call_next(msg, ctxt)
        if not reply.has_content():
            return reply
        if category == MessageType.TRAIN and reply.content.array_records:
            if params is None:
                raise InvalidArgumentError(
                    "the server sent no fastpaillier parameters, so this train reply would leave in plaintext; "
                    "the ServerApp must use fastpaillier.flwr.PaillierFedAvg (or remove paillier_mod)")
            _encrypt_reply(reply.content, params, key)
        elif params is not None:
            _pop_weight(reply.content, str(params["weighted-by-key"]))
        return reply


def _check_fingerprint(params: ConfigRecord, key: PrivateKey) -> None:
    theirs = str(params.get("fingerprint", ""))
    ours = key.public_key.fingerprint.hex()
    if theirs != ours:
        raise KeyMismatchError(
            f"the server's PaillierFedAvg holds the public key with fingerprint {theirs or '(none)'}, this "
            f"node's private key has fingerprint {ours}: give the server this key's public key file")


def _pop_weight(content: RecordDict, weight_key: str) -> object:
    """Removes weight_key from the reply's MetricRecords; its value (None if absent)."""
    value = None
    for name, metrics in list(content.metric_records.items()):
        if weight_key in metrics:
            value = metrics[weight_key]
            content[name] = MetricRecord({k: v for k, v in metrics.items() if k != weight_key})
    return value


def _encrypt_reply(content: RecordDict, params: ConfigRecord, key: PrivateKey) -> None:
    """Replaces the reply's one ArrayRecord by E(n_k x) per array plus E(n_k), and drops n_k from the metrics."""
    weight_key = str(params["weighted-by-key"])
    weight = _pop_weight(content, weight_key)
    if weight is None:
        raise InvalidArgumentError(
            f"the train reply's MetricRecord has no {weight_key!r}: the ClientApp must report its number of "
            "training examples there, as for Flower's FedAvg")
    weight = _count(weight, weight_key)
    if len(content.array_records) != 1:
        raise InvalidArgumentError(
            f"a train reply must hold exactly one ArrayRecord (the model), got {len(content.array_records)}")
    codec = PackedCodec(key.public_key, value_bits=int(params["value-bits"]),
                        max_summands=int(params["max-summands"]), frac_bits=int(params["frac-bits"]))
    bound = int(params["max-weight"])
    name, record = next(iter(content.array_records.items()))
    out = ArrayRecord()
    for array_key, array in record.items():
        if array_key == NUM_EXAMPLES_KEY:
            raise InvalidArgumentError(f"array key {NUM_EXAMPLES_KEY!r} is reserved for fastpaillier")
        values = array.numpy()
        encrypted = encrypt_weighted(codec, key, values, weight, bound, name=f"array {array_key!r}")
        out[array_key] = to_array(encrypted, dtype=values.dtype)
    out[NUM_EXAMPLES_KEY] = to_array(key.encrypt(np.array([weight], dtype=np.int64)))
    content[name] = out


paillier_mod = PaillierMod()
