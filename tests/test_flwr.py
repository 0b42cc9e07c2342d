"""fastpaillier.flwr: records, PaillierFedAvg and paillier_mod driven through Flower's own ClientApp and Strategy.start.

Flower's simulation engine needs Ray (flwr[simulation]), too heavy for CI; LocalGrid below is a
Grid that runs the real ClientApp (mods included) in-process per node and passes every message
through Flower's deflate/inflate object serialization, as the SuperLink does.
"""

from __future__ import annotations

import copy
from uuid import uuid4

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import (Array, ArrayRecord, ConfigRecord, Context, Error, Message, MessageType,  # noqa: E402
                      MetricRecord, RecordDict)
from flwr.app.message import message as flwr_message  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects  # noqa: E402
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

import fastpaillier as fp  # noqa: E402
from fastpaillier.flwr import (NUM_EXAMPLES_KEY, STYPE, PaillierFedAvg, decrypt_arrayrecord,  # noqa: E402
                               from_array, is_encrypted, paillier_mod, to_array)

KEY_CONFIG = "fastpaillier-private-key"
SERVER_NODE_ID = 1 << 60


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """The process identity Flower's runtime sets (here: the ServerApp's; LocalGrid switches it per node)."""
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", SERVER_NODE_ID)


def over_the_wire(obj):
    """obj deflated to Flower's object contents and inflated again (what a SuperLink transfer does)."""
    objects = get_all_nested_objects(obj)
    contents = {oid: o.deflate() for oid, o in objects.items()}
    return inflate_object_from_contents(obj.object_id, contents)


class LocalGrid(Grid):
    """A Grid that runs one ClientApp per node in this process; nodes in `drop` never reply."""

    def __init__(self, app: ClientApp, node_configs: dict[int, dict], drop_rounds: dict[int, set[int]] | None = None):
        self.app = app
        self.contexts = {nid: Context(run_id=1, node_id=nid, node_config=cfg, state=RecordDict(), run_config={})
                         for nid, cfg in node_configs.items()}
        self.drop_rounds = drop_rounds or {}
        self.server_received: list[Message] = []
        self._run = None

    def set_run(self, run):
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        raise NotImplementedError

    def pull_messages(self, message_ids):
        raise NotImplementedError

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid4().hex
            node = msg.metadata.dst_node_id
            server_round = msg.content["config"]["server-round"] if "config" in msg.content else 0
            if node in self.drop_rounds.get(server_round, set()):
                continue
            delivered = flwr_message.make_message(copy.copy(msg.metadata), over_the_wire(msg.content))
            TaskIdentity.node_id = node
            try:
                reply = self.app(delivered, self.contexts[node])
            except Exception as exc:  # the ClientApp runtime turns an exception into an error reply
                reply = Message(Error(code=1, reason=f"{type(exc).__name__}: {exc}"), reply_to=delivered)
            finally:
                TaskIdentity.node_id = SERVER_NODE_ID
            if reply.has_content():
                reply = flwr_message.make_message(reply.metadata, over_the_wire(reply.content))
            self.server_received.append(reply)
            replies.append(reply)
        return replies


# ---- a numpy ClientApp, as in Flower's templates ---------------------------------------------------

SAMPLES = {1: 3, 2: 40, 3: 300}  # very different weights: an unweighted mean is far from FedAvg's


def local_update(node: int, server_round: int, received: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Deterministic 'training': the received model plus a node- and round-specific step."""
    rng = np.random.default_rng(100 * node + server_round)
    return {"w": (received[0] + rng.uniform(-1, 1, size=(4, 5))).astype(np.float32),
            "b": (received[1] + rng.uniform(-3, 3, size=(5,))).astype(np.float64)}


def make_app(log: dict, mods: list) -> ClientApp:
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        arrays = msg.content["arrays"]
        received = arrays.to_numpy_ndarrays()
        server_round = msg.content["config"]["server-round"]
        log.setdefault(("train-in", server_round), {})[context.node_id] = received
        update = local_update(context.node_id, server_round, received)
        log.setdefault(("train-out", server_round), {})[context.node_id] = update
        metrics = MetricRecord({"train_loss": float(context.node_id), "num-examples": SAMPLES[context.node_id]})
        return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in update.items()}),
                                   "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        received = msg.content["arrays"].to_numpy_ndarrays()
        log.setdefault(("eval-in", msg.content["config"]["server-round"]), {})[context.node_id] = received
        metrics = MetricRecord({"eval_acc": 0.5, "num-examples": 10})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def initial_arrays() -> ArrayRecord:
    return ArrayRecord({"w": Array(np.zeros((4, 5), dtype=np.float32)), "b": Array(np.zeros(5))})


def fedavg(updates: dict[int, dict[str, np.ndarray]], nodes) -> dict[str, np.ndarray]:
    """Exact (float64) sample-weighted mean of the nodes' updates."""
    total = sum(SAMPLES[n] for n in nodes)
    return {k: sum(SAMPLES[n] * updates[n][k].astype(np.float64) for n in nodes) / total for k in ("w", "b")}


@pytest.fixture(scope="module")
def key_files(tmp_path_factory, keys_2048):
    public_key, private_key = keys_2048
    folder = tmp_path_factory.mktemp("keys")
    private_key.save(folder / "paillier.key")
    public_key.save(folder / "paillier.pub")
    return folder / "paillier.key", folder / "paillier.pub"


def node_configs(key_path) -> dict[int, dict]:
    return {n: {KEY_CONFIG: str(key_path)} for n in SAMPLES}


def tolerance(strategy: PaillierFedAvg, total_weight: int, values: np.ndarray) -> np.ndarray:
    """The codec's stated rounding of a weighted mean, plus the float32 cast of the result where it applies."""
    codec = strategy.codec
    bound = codec.max_rounding_error(total_weight) / total_weight  # = 2^-(frac_bits+1)
    return bound + np.abs(values) * np.finfo(np.float32).eps


# ---- records ----------------------------------------------------------------------------------------


def test_array_round_trip_keeps_shape_and_goes_through_flower_chunks(keys_2048, monkeypatch):
    public_key, private_key = keys_2048
    codec = fp.PackedCodec(public_key, value_bits=16, max_summands=8, frac_bits=12)
    values = np.linspace(-2, 2, 6 * 50, dtype=np.float32).reshape(6, 50)
    encrypted = codec.encrypt(values, private_key)
    array = to_array(encrypted)
    assert array.stype == STYPE and is_encrypted(array)
    assert array.shape == (6, 50) and array.dtype == "float32"
    monkeypatch.setattr("flwr.app.message.array.FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE", 1000)
    record = ArrayRecord({"layer": array})
    assert len(array.slice_array()) == -(-len(array.data) // 1000) > 1  # Flower chunks it as usual
    back = from_array(over_the_wire(record)["layer"], public_key)
    assert back.shape == (6, 50)
    np.testing.assert_array_equal(back.ciphertexts, encrypted.ciphertexts)
    np.testing.assert_allclose(private_key.decrypt(back), values, atol=codec.max_rounding_error(1))


def test_from_array_refuses_plaintext_foreign_keys_and_wrong_shapes(keys_2048, small_keys):
    public_key, private_key = keys_2048
    with pytest.raises(fp.CodecMismatchError, match="paillier_mod"):
        from_array(Array(np.zeros(3)), public_key)
    array = to_array(private_key.encrypt(np.arange(3)))
    with pytest.raises(fp.KeyMismatchError):
        from_array(array, small_keys[0])
    forged = Array(dtype=array.dtype, shape=(1, 3), stype=STYPE, data=array.data)
    with pytest.raises(fp.SerializationError, match="shape"):
        from_array(forged, public_key)


def test_strategy_refuses_a_private_key(keys_2048):
    with pytest.raises(fp.InvalidArgumentError, match="PublicKey only"):
        PaillierFedAvg(keys_2048[1])


# ---- PaillierFedAvg + paillier_mod through Strategy.start ---------------------------------------------


def run(strategy, grid, rounds=2):
    return strategy.start(grid=grid, initial_arrays=initial_arrays(), num_rounds=rounds,
                          train_config=ConfigRecord({"lr": 0.1}))


def test_encrypted_fedavg_equals_plain_fedavg_and_the_server_sees_no_plaintext(keys_2048, key_files):
    public_key, _ = keys_2048
    enc_log, plain_log = {}, {}
    strategy = PaillierFedAvg(public_key, min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3)
    grid = LocalGrid(make_app(enc_log, [paillier_mod]), node_configs(key_files[0]))
    result = run(strategy, grid)
    plain = FedAvg(min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3)
    plain_result = run(plain, LocalGrid(make_app(plain_log, []), node_configs(key_files[0])))

    nodes = list(SAMPLES)
    total = sum(SAMPLES.values())
    # Round 2's clients received the decrypted round-1 aggregate: equal to FedAvg's up to the codec's rounding.
    expected = fedavg(enc_log[("train-out", 1)], nodes)
    unweighted = {k: np.mean([enc_log[("train-out", 1)][n][k] for n in nodes], axis=0) for k in ("w", "b")}
    flower_round1 = plain_log[("train-in", 2)][1]
    for node in nodes:
        for i, k in enumerate(("w", "b")):
            got = enc_log[("train-in", 2)][node][i]
            assert got.dtype == (np.float32 if k == "w" else np.float64) and got.shape == expected[k].shape
            tol = tolerance(strategy, total, expected[k])
            assert np.all(np.abs(got - expected[k]) <= tol)
            # the same as Flower's own FedAvg (which accumulates in float32 for "w")
            assert np.all(np.abs(got - flower_round1[i]) <= tol + np.abs(expected[k]) * 4 * np.finfo(np.float32).eps)
            assert np.abs(unweighted[k] - expected[k]).max() > 1000 * tol.max()  # a wrong weighting fails
    # evaluate messages carried the decrypted model too
    for i, k in enumerate(("w", "b")):
        assert np.all(np.abs(enc_log[("eval-in", 1)][2][i] - expected[k]) <= tolerance(strategy, total, expected[k]))

    # The server received ciphertexts only, and no sample count.
    for reply in grid.server_received:
        assert not reply.has_error()
        for record in reply.content.array_records.values():
            assert set(record) == {"w", "b", NUM_EXAMPLES_KEY}
            assert all(a.stype == STYPE for a in record.values())
        for metrics in reply.content.metric_records.values():
            assert "num-examples" not in metrics
    assert all(is_encrypted(a) for a in result.arrays.values())
    assert result.train_metrics_clientapp[1]["train_loss"] == pytest.approx(2.0)  # unweighted: counts are secret
    # A key holder can read the final model: FedAvg of round 2's updates.
    final = decrypt_arrayrecord(result.arrays, keys_2048[1])
    expected2 = fedavg(enc_log[("train-out", 2)], nodes)
    assert list(final.keys()) == ["w", "b"]
    for i, k in enumerate(("w", "b")):
        assert np.all(np.abs(final[k].numpy() - expected2[k]) <= tolerance(strategy, total, expected2[k]))
        np.testing.assert_array_equal(enc_log[("eval-in", 2)][3][i], final[k].numpy())  # what round 2 evaluated


def test_a_client_that_does_not_reply_is_left_out_of_the_round(keys_2048, key_files):
    log = {}
    strategy = PaillierFedAvg(keys_2048[0], min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3)
    grid = LocalGrid(make_app(log, [paillier_mod]), node_configs(key_files[0]), drop_rounds={1: {3}})
    run(strategy, grid)
    assert set(log[("train-out", 1)]) == {1, 2}  # node 3 got the message but never replied
    expected = fedavg(log[("train-out", 1)], [1, 2])
    got = log[("train-in", 2)][3]
    for i, k in enumerate(("w", "b")):
        assert np.all(np.abs(got[i] - expected[k]) <= tolerance(strategy, 43, expected[k]))


def test_a_failing_client_is_tolerated_and_a_wrong_key_fails_closed(keys_2048, key_files, small_keys):
    log = {}
    configs = node_configs(key_files[0])
    configs[2] = {}  # node 2 has no key configured: its ClientApp raises, an error reply comes back
    strategy = PaillierFedAvg(keys_2048[0], min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3)
    grid = LocalGrid(make_app(log, [paillier_mod]), configs)
    run(strategy, grid, rounds=1)
    errors = [r for r in grid.server_received if r.has_error()]
    assert errors and all("fastpaillier-private-key" in r.error.reason for r in errors)
    assert set(log[("train-out", 1)]) == {1, 3}
    expected = fedavg(log[("train-out", 1)], [1, 3])
    for i, k in enumerate(("w", "b")):
        assert np.all(np.abs(log[("eval-in", 1)][3][i] - expected[k]) <= tolerance(strategy, 303, expected[k]))

    # A server holding another public key: every node refuses, nothing is aggregated.
    other = fp.generate_keypair(2048)[0]
    grid = LocalGrid(make_app({}, [paillier_mod]), node_configs(key_files[0]))
    result = run(PaillierFedAvg(other, min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3), grid, 1)
    assert grid.server_received and all("KeyMismatchError" in r.error.reason for r in grid.server_received)
    assert not any(is_encrypted(a) for a in result.arrays.values())


def test_the_mod_never_sends_a_plaintext_update_to_a_plain_strategy(keys_2048, key_files):
    grid = LocalGrid(make_app({}, [paillier_mod]), node_configs(key_files[0]))
    run(FedAvg(min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3), grid, rounds=1)
    train_replies = [r for r in grid.server_received if r.metadata.message_type == MessageType.TRAIN]
    assert len(train_replies) == 3
    assert all(r.has_error() and "PaillierFedAvg" in r.error.reason for r in train_replies)


def test_aggregate_train_leaves_out_plaintext_and_malformed_replies(keys_2048, key_files):
    public_key, private_key = keys_2048
    strategy = PaillierFedAvg(public_key)
    codec = strategy.codec

    def reply(node, arrays):
        ins = Message(RecordDict(), node, MessageType.TRAIN)
        ins.metadata.__dict__["_message_id"] = uuid4().hex
        msg = Message(RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"loss": 1.0})}),
                      reply_to=ins)
        return msg

    def encrypted(x, n):
        from fastpaillier.flwr import encrypt_weighted

        return {"w": to_array(encrypt_weighted(codec, private_key, x, n, 1000), dtype=np.float32),
                NUM_EXAMPLES_KEY: to_array(private_key.encrypt(np.array([n])))}

    def encrypt_weighted_max(x):
        from fastpaillier.flwr import encrypt_weighted

        return encrypt_weighted(codec, private_key, x, 1, codec.max_summands)

    x1, x2 = np.full(3, 0.5, dtype=np.float32), np.full(3, -1.5, dtype=np.float32)
    replies = [reply(1, encrypted(x1, 1)), reply(2, encrypted(x2, 3)),
               reply(3, {"w": Array(np.full(3, 99.0, dtype=np.float32))}),            # plaintext: never added
               reply(4, {**encrypted(x1, 5), "w": Array(dtype="float32", shape=(3,), stype=STYPE,
                                                            data=b"FPAI garbage")}),  # malformed
               reply(5, {**encrypted(x1, 5), "w": to_array(encrypt_weighted_max(x1))})]  # over its headroom
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert set(arrays) == {"w", NUM_EXAMPLES_KEY} and metrics["loss"] == 1.0
    mean = decrypt_arrayrecord(arrays, private_key)["w"].numpy()
    np.testing.assert_allclose(mean, (0.5 * 1 - 1.5 * 3) / 4, atol=2.0 ** -(codec.frac_bits + 1))
    assert strategy.aggregate_train(1, replies[2:3]) == (None, None)


def test_out_of_range_values_name_the_array_and_the_fix(keys_2048):
    from fastpaillier.flwr import encrypt_weighted

    strategy = PaillierFedAvg(keys_2048[0], value_bits=16, frac_bits=12)
    with pytest.raises(fp.EncodingOverflowError, match="array 'w'.*value_bits"):
        encrypt_weighted(strategy.codec, keys_2048[1], np.array([100.0]), 1, 10, name="array 'w'")
    with pytest.raises(fp.SummandLimitError, match="max_summands"):
        encrypt_weighted(strategy.codec, keys_2048[1], np.array([1.0]), 11, 10)


# ---- the README's examples ---------------------------------------------------------------------------


def readme_flower_block(index: int) -> str:
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("\n## Flower\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[index]


def test_readme_numpy_example_runs_encrypted(key_files):
    namespace: dict = {}
    exec(compile(readme_flower_block(0), "README.md", "exec"), namespace)
    grid = LocalGrid(namespace["client_app"], node_configs(key_files[0]))
    context = Context(run_id=1, node_id=SERVER_NODE_ID, node_config={}, state=RecordDict(),
                      run_config={"fastpaillier-public-key": str(key_files[1])})
    namespace["server_app"](grid, context)
    assert len(grid.server_received) == 3 * len(SAMPLES)
    for reply in grid.server_received:
        assert not reply.has_error(), reply.error.reason
        assert all(a.stype == STYPE for r in reply.content.array_records.values() for a in r.values())


def test_pytorch_template_flow_gives_fedavg(keys_2048, key_files):
    """The PyTorch template's ClientApp code (state_dict in and out) unchanged, with paillier_mod."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.fc = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    seen: dict = {}
    app = ClientApp(mods=[paillier_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        model = Net()
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        seen[(msg.content["config"]["server-round"], context.node_id)] = {
            k: v.clone() for k, v in model.state_dict().items()}
        torch.manual_seed(context.node_id)
        x, y = torch.randn(SAMPLES[context.node_id], 1, 4, 4), torch.randint(0, 2, (SAMPLES[context.node_id],))
        opt = torch.optim.SGD(model.parameters(), lr=msg.content["config"]["lr"])
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen[("out", msg.content["config"]["server-round"], context.node_id)] = {
            k: v.detach().clone().double() for k, v in model.state_dict().items()}
        metrics = MetricRecord({"train_loss": loss.item(), "num-examples": len(x)})
        return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)

    torch.manual_seed(0)
    strategy = PaillierFedAvg(keys_2048[0], min_available_nodes=3, min_train_nodes=3, fraction_evaluate=0.0)
    grid = LocalGrid(app, node_configs(key_files[0]))
    strategy.start(grid=grid, initial_arrays=ArrayRecord(Net().state_dict()), num_rounds=2,
                   train_config=ConfigRecord({"lr": 0.5}))
    assert not [r.error.reason for r in grid.server_received if r.has_error()]
    total = sum(SAMPLES.values())
    for name, got in seen[(2, 1)].items():
        expected = sum(SAMPLES[n] * seen[("out", 1, n)][name] for n in SAMPLES) / total
        bound = strategy.codec.max_rounding_error(total) / total + expected.abs() * np.finfo(np.float32).eps
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert bool(((got.double() - expected).abs() <= bound).all()), name
