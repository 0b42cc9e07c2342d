"""fedtrain on Flower, in-process: the ServerApp and ClientApp through Flower's Message API equal `fedtrain run`.

The Grid of flower_grid.py runs fedtrain's ClientApp (Flower's ClientApp object, its routing and Context)
per node in this process and passes every message through Flower's serialization; the deployment engine
with real SuperLink and SuperNode processes is tested in test_flower_deployment.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("flwr", reason="fedtrain on Flower needs the flwr extra (pip install '.[flwr]', flwr==1.42.0)")

from flwr.app import Context, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

import fastpaillier as fp  # noqa: E402
import fedtrain  # noqa: E402
from fedtrain.cli import main  # noqa: E402
from fedtrain.flower.client_app import app as client_app  # noqa: E402
from fedtrain.flower.common import MESSAGE_TYPE, read_events  # noqa: E402
from fedtrain.flower.data import export_hospital_folder, load_hospital_folder  # noqa: E402
from fedtrain.flower.evaluate import evaluate_run  # noqa: E402
from fedtrain.flower.prepare import FlowerSetup, prepare  # noqa: E402
from fedtrain.flower.server_app import serve  # noqa: E402
from fedtrain.flower.transport import discover, refresh  # noqa: E402
from fedtrain.messages import Message as FedMessage  # noqa: E402
from fedtrain.runner import RunConfig, run_rounds, setup_run  # noqa: E402

from flower_grid import (SERVER_NODE_ID, LocalGrid, LosingTransport, app_run_config,  # noqa: E402
                         assert_same_record)

TINY = dict(model="smallcnn", image_size=32, demo_train_per_class=4, demo_test_per_class=2, clients=3,
            key_bits=512, insecure_keys=True, rounds=2, min_clients=2, seed=0, privacy="paillier")
NODE = 100  # Flower node id of client c: NODE + c


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    """The process identity Flower's runtime sets (here: the ServerApp's; LocalGrid switches it per node)."""
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", SERVER_NODE_ID)


def config(tmp: Path, **changes) -> RunConfig:
    return RunConfig(**{**TINY, "keys": str(tmp / "keys"), **changes})


def checkpoint(run_dir: Path, round_: int) -> torch.Tensor:
    return torch.load(run_dir / "checkpoints" / f"round_{round_:04d}.pt", map_location="cpu",
                      weights_only=True)["vector"]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(run_dir: Path, reference: Path, rounds: int = 2) -> None:
    for r in range(1, rounds + 1):
        assert torch.equal(checkpoint(run_dir, r), checkpoint(reference, r)), f"round {r}"
    for ours, theirs in zip(metrics(run_dir), metrics(reference), strict=True):
        assert_same_record(ours, theirs)


def in_process(tmp: Path, transport=None, **changes) -> Path:
    ctx = setup_run(config(tmp, **changes), tmp / "run")
    if transport is not None:
        ctx.transport = transport(ctx.clients)
    run_rounds(ctx)
    return tmp / "run"


def on_flower(tmp: Path, silent=None, **changes) -> tuple[Path, FlowerSetup, LocalGrid]:
    setup = prepare(config(tmp, **changes), tmp / "run", hospitals_dir=tmp / "hospitals")
    run_config = app_run_config(setup.app_dir)
    grid = LocalGrid(client_app, {NODE + c: setup.node_configs[c] for c in range(setup.clients)}, run_config,
                     silent=silent)
    serve(grid, run_config, flower_run_id=7)
    evaluate_run(tmp / "run")
    return tmp / "run", setup, grid


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """`fedtrain run` of TINY in-process (setup_run + run_rounds)."""
    return in_process(tmp_path_factory.mktemp("in-process"))


@pytest.fixture(scope="module")
def flower_run(tmp_path_factory):
    """TINY through fedtrain's ServerApp and ClientApp, each hospital given its own data folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TaskIdentity, "_task_id", 1)
        mp.setattr(TaskIdentity, "_run_id", 1)
        mp.setattr(TaskIdentity, "_node_id", SERVER_NODE_ID)
        return on_flower(tmp_path_factory.mktemp("flower"))


@pytest.mark.parametrize("modules", [
    # the server side: it never needs torch
    "fedtrain.flower.server_app, fedtrain.flower.transport, fedtrain.flower.local, fedtrain.rounds, fedtrain.server",
    # the client side: torch only once it trains (a round's start)
    "fedtrain.client, fedtrain.flower.client_app"])
def test_modules_import_no_torch(modules):
    src = Path(fedtrain.__file__).resolve().parents[1]
    code = (f"import sys\nimport {modules}\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not bad, bad\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_flower_run_equals_fedtrain_run(flower_run, reference):
    run_dir, setup, grid = flower_run
    assert_same_run(run_dir, reference)
    assert (run_dir / "report.md").is_file() and (run_dir / "accuracy_loss.png").is_file()
    assert all(m["transport"] == "flower" for m in metrics(run_dir))
    # one Flower message per client and exchange: round 1's model is assembled by round 2's clients
    # (3 exchanges: stats, update, decryption), round 2's by its leader (a 4th exchange, to one client)
    protocol = [node for node, kind in grid.delivered if kind == MESSAGE_TYPE]
    assert len(protocol) == (3 + 3 + 3) + (3 + 3 + 3 + 1)
    assert [m["exchanges"] for m in metrics(run_dir)] == [3, 4]
    assert "exchanges (server to the round's clients and back) per round: 1: 3, 2: 4." in \
        (run_dir / "report.md").read_text()
    assert [m["sealed_by"] for m in metrics(run_dir)] == [0, 0] and metrics(run_dir)[0]["leader"] is None


def test_an_unfolded_flower_run_equals_fedtrain_run_byte_for_byte(tmp_path, reference):
    """--no-fold: every round has its leader exchange, as in-process; the records agree in every byte count."""
    setup = prepare(config(tmp_path), tmp_path / "run", hospitals_dir=tmp_path / "hospitals", fold=False)
    run_config = app_run_config(setup.app_dir)
    grid = LocalGrid(client_app, {NODE + c: setup.node_configs[c] for c in range(setup.clients)}, run_config)
    serve(grid, run_config, flower_run_id=7)
    evaluate_run(tmp_path / "run")
    assert_same_run(tmp_path / "run", reference)
    assert [m["exchanges"] for m in metrics(tmp_path / "run")] == [4, 4]
    assert len([node for node, kind in grid.delivered if kind == MESSAGE_TYPE]) == 2 * (3 + 3 + 3 + 1)


def test_the_server_keeps_sealed_models_and_logs_each_step(flower_run):
    run_dir, setup, _ = flower_run
    events = read_events(setup.server_dir / "events.jsonl")
    assert [e["event"] for e in events][:1] == ["start"] and events[-1]["event"] == "done"
    assert {e["client"] for e in events if e["event"] == "hello"} == {0, 1, 2}
    assert json.loads((setup.server_dir / "run.json").read_text())["status"] == "completed"
    for r in (1, 2):
        record = FedMessage.from_bytes((setup.server_dir / "rounds" / f"round_{r:04d}.msg").read_bytes())
        model = FedMessage.from_bytes(record.blob("global"))
        assert "sealed_global" in model.blobs and "global" not in model.blobs  # the server cannot read it
        assert sorted(record.blobs) == ["global", "report0", "report1", "report2"]


def test_no_key_enters_the_app_or_the_server_folder(flower_run):
    run_dir, setup, _ = flower_run
    assert sorted(p.name for p in setup.app_dir.iterdir()) == ["pyproject.toml"]
    secrets = [p.read_bytes() for p in setup.keys_dir.iterdir()
               if p.name.startswith(("signing_key", "dealer_secret", "clients_private"))]
    assert len(secrets) == 3 + 2
    key = fp.PrivateKey.load(setup.keys_dir / "clients_private_key.bin", insecure=True)
    primes = [f.to_bytes((f.bit_length() + 7) // 8, order) for f in (key.p, key.q) for order in ("big", "little")]
    for folder in (setup.app_dir, setup.server_dir, run_dir / "hospitals"):
        for path in (p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            assert not any(s in data for s in secrets if len(s) <= 64), path
            assert not any(prime in data for prime in primes), path
    assert setup.keys_dir.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in setup.keys_dir.glob("signing_key_*.bin"))
    assert run_dir.resolve() not in setup.keys_dir.resolve().parents


def test_a_lost_node_leaves_the_round_to_the_rest_as_in_process(tmp_path):
    """Client 2's node never answers from round 2's start on: the round completes with clients 0 and 1, and
    the model is the one `fedtrain run` makes when client 2 goes away at the same step."""
    lost = {"gone": False}

    def silent(node, message):
        if node == NODE + 2 and message.metadata.message_type == MESSAGE_TYPE and message.metadata.group_id == "2":
            lost["gone"] = True
        return lost["gone"] and node == NODE + 2

    run_dir, _, _ = on_flower(tmp_path / "flower", silent=silent, deadline=1.0)
    records = metrics(run_dir)
    assert records[0]["dropped"] == {} and records[1]["survivors"] == [0, 1]
    assert list(records[1]["dropped"]) == ["2"] and "deadline" in records[1]["dropped"]["2"]
    reference = in_process(tmp_path / "in-process",
                           transport=lambda clients: LosingTransport(clients, 2, 2, "round_start"))
    for r in (1, 2):
        assert torch.equal(checkpoint(run_dir, r), checkpoint(reference, r)), r


def test_a_hospital_can_raise_the_minimum_but_not_lower_it(flower_run):
    from fedtrain.flower.client_app import build_client

    _, setup, _ = flower_run
    run_config = app_run_config(setup.app_dir)
    for own, effective in ((3, 3), (0, 2), (1, 2)):
        node = dict(setup.node_configs[1], **{"min-clients": own})
        context = Context(run_id=7, node_id=NODE + 1, node_config=node, state=RecordDict(), run_config=run_config)
        assert build_client(context).min_clients == effective


def test_a_second_flower_run_goes_on_after_the_last_round(tmp_path, reference):
    """One round, then the app submitted again with rounds=2: the same two rounds as `fedtrain run`."""
    setup = prepare(config(tmp_path, rounds=1), tmp_path / "run", hospitals_dir=tmp_path / "hospitals")
    run_config = app_run_config(setup.app_dir)
    nodes = {NODE + c: setup.node_configs[c] for c in range(setup.clients)}
    serve(LocalGrid(client_app, nodes, run_config), run_config)
    evaluate_run(tmp_path / "run")
    again = dict(run_config, rounds=2)  # flwr run ... --run-config 'rounds=2'; new Flower run, fresh Contexts
    assert [r["survivors"] for r in serve(LocalGrid(client_app, nodes, again), again)] == [[0, 1, 2]]
    evaluate_run(tmp_path / "run")
    assert_same_run(tmp_path / "run", reference)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["rounds"] == 2
    starts = [e for e in read_events(setup.server_dir / "events.jsonl") if e["event"] == "start"]
    assert [e["after_round"] for e in starts] == [0, 1]


def test_a_round_without_enough_nodes_fails_the_run_and_says_so(tmp_path):
    from fedtrain.errors import RoundFailed

    setup = prepare(config(tmp_path), tmp_path / "run", hospitals_dir=tmp_path / "hospitals")
    run_config = dict(app_run_config(setup.app_dir), **{"connect-timeout": 0.5})
    grid = LocalGrid(client_app, {NODE: setup.node_configs[0]}, run_config)  # hospitals 1 and 2 never connect
    with pytest.raises(RoundFailed, match="failed 3 times"):
        serve(grid, run_config)
    info = json.loads((setup.server_dir / "run.json").read_text())
    assert info["status"] == "failed" and "RoundFailed" in info["error"]
    events = read_events(setup.server_dir / "events.jsonl")
    assert events[-1]["event"] == "failed"
    assert "no Flower node answered as this client" in json.dumps(events)


def test_node_ids_come_from_the_nodes_own_config():
    nodes = {7: {"client-id": 1}, 8: {"client-id": 0}, 9: {"client-id": 1}, 10: {"client-id": 5},
             11: {"partition-id": 2}}
    grid = LocalGrid(client_app, nodes, {})
    events = []
    found = discover(grid, 3, run_id="r", timeout=5, events=lambda e, **kw: events.append((e, kw)), poll=0.01)
    assert found == {1: 7, 0: 8, 2: 11}  # the first claim of an id keeps it; ids outside the run are refused
    assert [e for e, _ in events].count("hello duplicate") == 1 and [e for e, _ in events].count("hello refused") == 1


def test_a_node_that_left_is_forgotten_and_a_new_one_takes_its_place():
    grid = LocalGrid(client_app, {7: {"client-id": 0}, 8: {"client-id": 1}}, {})
    nodes = discover(grid, 2, run_id="r", timeout=5, poll=0.01)
    assert nodes == {0: 7, 1: 8}
    del grid.contexts[8]  # hospital 1's SuperNode went away and came back as node 9
    grid.contexts[9] = Context(run_id=7, node_id=9, node_config={"client-id": 1}, state=RecordDict(), run_config={})
    events = []
    refresh(grid, nodes, 2, run_id="r", events=lambda e, **kw: events.append((e, kw)))
    assert nodes == {0: 7, 1: 9} and [e for e, _ in events] == ["node gone", "hello"]


def test_a_hospital_folder_reads_back_in_order(tmp_path):
    from fedtrain.data import load_data

    train = load_data(None, image_size=32, demo_train_per_class=5, demo_test_per_class=1, seed=3).train
    part = train.subset(np.array([9, 2, 14, 0, 7]))
    export_hospital_folder(part, tmp_path / "h")
    back = load_hospital_folder(tmp_path / "h", part.class_names, 32)
    np.testing.assert_array_equal(back.images, part.images)
    np.testing.assert_array_equal(back.labels, part.labels)


def test_flower_setup_prints_the_commands(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["flower-setup", "--out", str(out), "--keys", str(tmp_path / "keys"), "--model", "smallcnn",
                 "--image-size", "32", "--demo-train-per-class", "4", "--demo-test-per-class", "2",
                 "--clients", "3", "--min-clients", "2", "--key-bits", "512", "--insecure-keys"]) == 0
    printed = capsys.readouterr().out
    assert "flower-superlink --insecure" in printed and printed.count("flower-supernode") == 3
    assert "--disable-runtime-dependency-installation" in printed and "flwr run" in printed
    run_config = app_run_config(out / "flower_app")
    assert run_config["privacy"] == "paillier" and run_config["min-clients"] == 2 and run_config["keys"] == ""
    assert run_config["server-dir"] == str((out / "server").resolve())


def test_the_plain_flower_fedavg_baseline_trains_as_fedtrain_plain_fedavg(tmp_path):
    """plain_app (Flower's own FedAvg, the benchmark's baseline) ends where `fedtrain run --privacy none` does."""
    from fedtrain.flower import plain_app

    setup = prepare(config(tmp_path), tmp_path / "run", hospitals_dir=tmp_path / "hospitals")
    run_config = app_run_config(setup.app_dir)
    grid = LocalGrid(plain_app.client, {NODE + c: setup.node_configs[c] for c in range(setup.clients)}, run_config)
    context = Context(run_id=1, node_id=SERVER_NODE_ID, node_config={}, state=RecordDict(), run_config=run_config)
    plain_app.main(grid, context)
    rounds = json.loads((setup.server_dir / plain_app.PLAIN_ROUNDS_FILE).read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert len([node for node, kind in grid.delivered if kind.startswith("train")]) == 2 * 3  # one exchange a round
    ours = np.load(setup.server_dir / plain_app.PLAIN_MODEL_FILE)
    theirs = checkpoint(in_process(tmp_path / "plain", privacy="none"), 2).numpy()
    # the same training and weights; the two averages round differently (float32 sums against float64)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


def test_only_a_rounds_start_builds_the_model_and_loads_the_images(tmp_path, monkeypatch):
    """The ClientApp's other steps run from the layout kept in the node's Context (no torch needed for them)."""
    import fedtrain.client as client_module
    import fedtrain.flower.client_app as client_app_module

    handling, built, loaded = {"kind": None}, [], []
    real_kind, real_codec, real_data = client_app_module._kind, client_module.ModelCodec, client_app_module.client_data

    def kind(data):
        handling["kind"] = real_kind(data)
        return handling["kind"]

    class CountingCodec(real_codec):
        def __init__(self, *args, **kwargs):
            built.append(handling["kind"])
            super().__init__(*args, **kwargs)

    def data(*args, **kwargs):
        loaded.append(handling["kind"])
        return real_data(*args, **kwargs)

    setup = prepare(config(tmp_path), tmp_path / "run", hospitals_dir=tmp_path / "hospitals")
    run_config = app_run_config(setup.app_dir)
    grid = LocalGrid(client_app, {NODE + c: setup.node_configs[c] for c in range(setup.clients)}, run_config)
    with monkeypatch.context() as mp:
        mp.setattr(client_app_module, "_kind", kind)
        mp.setattr(client_module, "ModelCodec", CountingCodec)
        mp.setattr(client_app_module, "client_data", data)
        serve(grid, run_config, flower_run_id=7)
    assert built == loaded == ["round_start"] * 6  # 3 nodes, 2 rounds
    assert len([n for n, k in grid.delivered if k == MESSAGE_TYPE]) == 19
    evaluate_run(tmp_path / "run")
    assert_same_run(tmp_path / "run", in_process(tmp_path / "reference"))
