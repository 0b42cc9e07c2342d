"""Tests for fedtrain.runner and fedtrain.server: resuming, client selection, what the server can see and hold."""

from __future__ import annotations

import ast
import json
import logging
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import fastpaillier as fp
import fedtrain.runner as runner
import fedtrain.server as server_module
from fedtrain.cli import main
from fedtrain.errors import ConfigError
from fedtrain.messages import Message
from fedtrain.runner import KEY_FILE_NAME, InProcessTransport, RunConfig, run_rounds, setup_run
from fedtrain.sealing import SealingKey
from fedtrain.server import Server, select_clients

CLIENTS = 3
TINY = ["--model", "smallcnn", "--image-size", "32", "--demo-train-per-class", "6", "--demo-test-per-class", "3",
        "--clients", str(CLIENTS), "--key-bits", "512", "--insecure-keys", "--quiet"]


def tiny_config(**changes) -> RunConfig:
    """The RunConfig that `fedtrain run TINY` builds (same defaults), with changes."""
    values = dict(model="smallcnn", image_size=32, demo_train_per_class=6, demo_test_per_class=3,
                  clients=CLIENTS, key_bits=512, insecure_keys=True, rounds=2, privacy="paillier", seed=0)
    values.update(changes)
    return RunConfig(**values)


@pytest.fixture(autouse=True)
def fresh_fedtrain_log():
    """main() gives the "fedtrain" logger a handler on the sys.stderr of the moment; keep it from outliving us."""
    logger = logging.getLogger("fedtrain")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers.clear()
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


class RecordingTransport(InProcessTransport):
    """InProcessTransport that keeps every (round, client, server->client bytes, client->server reply)."""

    def __init__(self, clients) -> None:
        super().__init__(clients)
        self.log: list[tuple[int, int, bytes, bytes | None]] = []

    def deliver(self, cid: int, data: bytes) -> bytes | None:
        reply = super().deliver(cid, data)
        self.log.append((Message.from_bytes(data).round, cid, data, reply))
        return reply


def recorded_run(config: RunConfig, out: Path):
    ctx = setup_run(config, out)
    transport = RecordingTransport(ctx.clients)
    ctx.transport = transport
    records = run_rounds(ctx)
    return ctx, records, transport.log


@pytest.fixture(scope="module")
def secure_a(tmp_path_factory):
    """Two uninterrupted secure rounds in dir A, every message recorded."""
    out = tmp_path_factory.mktemp("runs") / "A"
    ctx, records, log = recorded_run(tiny_config(), out)
    return out, ctx, records, log


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "plain"
    ctx, records, log = recorded_run(tiny_config(privacy="none", rounds=1), out)
    return out, ctx, records, log


def checkpoint_vector(run_dir: Path, round_: int) -> torch.Tensor:
    state = torch.load(run_dir / "checkpoints" / f"round_{round_:04d}.pt", map_location="cpu", weights_only=True)
    return state["vector"]


def metric_lines(run_dir: Path) -> list[str]:
    return (run_dir / "metrics.jsonl").read_text().splitlines()


def assert_same_final_model(run_dir: Path, reference: Path, rounds: int = 2) -> None:
    for r in range(1, rounds + 1):
        assert torch.equal(checkpoint_vector(run_dir, r), checkpoint_vector(reference, r)), f"round {r}"


def key_file(run_dir: Path) -> Path:
    """The run's private key file, from the folder config.json names."""
    return Path(json.loads((run_dir / "config.json").read_text())["keys"]) / KEY_FILE_NAME


def assert_key_file_private(run_dir: Path) -> None:
    key = key_file(run_dir)
    assert key.is_file()
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    assert run_dir.resolve() not in key.resolve().parents  # never inside the run folder
    assert not list(run_dir.rglob("*private_key*"))


# -- resuming -------------------------------------------------------------------------------


def test_uninterrupted_reference_run(secure_a):
    out, ctx, records, _ = secure_a
    assert [rec["round"] for rec in records] == [1, 2]
    assert [json.loads(line)["round"] for line in metric_lines(out)] == [1, 2]
    assert_key_file_private(out)
    assert ctx.server.model_round == 2


def test_resume_after_a_crash_while_writing_round_2(secure_a, tmp_path, monkeypatch, capsys):
    reference = secure_a[0]
    b = tmp_path / "B"
    real_save = runner._save_round

    def crash_in_round_2(out, r, vector, y_true, probs, record, **kw):
        real_save(out, r, vector, y_true, probs, record, **kw)
        if r == 2:  # checkpoint and predictions written, the metrics line cut off half-way: then the crash
            path = out / "metrics.jsonl"
            lines = path.read_bytes().splitlines(keepends=True)
            path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_save_round", crash_in_round_2)
    assert main(["run", *TINY, "--rounds", "2", "--out", str(b)]) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(runner, "_save_round", real_save)
    round_1 = metric_lines(b)[0]
    assert len(metric_lines(b)) == 2 and not (b / "metrics.jsonl").read_text().endswith("\n")
    key_bytes = key_file(b).read_bytes()

    with pytest.warns(RuntimeWarning, match="incomplete"):
        assert main(["run", "--resume", str(b), "--rounds", "2", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"Report: {b / 'report.md'}"
    lines = metric_lines(b)
    assert [json.loads(line)["round"] for line in lines] == [1, 2]
    assert json.loads(lines[0]) == json.loads(round_1)
    assert lines[0] == round_1
    assert (b / "metrics.jsonl").read_text().endswith("\n")
    assert_same_final_model(b, reference)
    assert_key_file_private(b)
    assert key_file(b).read_bytes() == key_bytes  # the run's key was reused, not replaced
    assert (b / "report.md").is_file()


def test_resume_a_finished_shorter_run_for_more_rounds(secure_a, tmp_path, capsys):
    reference = secure_a[0]
    c = tmp_path / "C"
    assert main(["run", *TINY, "--rounds", "1", "--out", str(c)]) == 0
    round_1 = metric_lines(c)[0]
    assert main(["run", "--resume", str(c), "--rounds", "2", "--quiet"]) == 0
    lines = metric_lines(c)
    assert [json.loads(line)["round"] for line in lines] == [1, 2]
    assert lines[0] == round_1
    assert_same_final_model(c, reference)
    assert_key_file_private(c)
    assert json.loads((c / "config.json").read_text())["rounds"] == 2

    # --resume without --rounds keeps the run's own number of rounds (it does not fall back to the default 5)
    capsys.readouterr()
    assert main(["run", "--resume", str(c), "--quiet"]) == 0
    assert [json.loads(line)["round"] for line in metric_lines(c)] == [1, 2]
    assert not (c / "checkpoints" / "round_0003.pt").exists()
    assert json.loads((c / "config.json").read_text())["rounds"] == 2


def test_resume_after_a_crash_while_writing_round_1(secure_a, tmp_path, monkeypatch):
    """No round complete, but a half-written metrics line: the resumed run must not append to it."""
    reference = secure_a[0]
    d = tmp_path / "D"
    real_save = runner._save_round

    def crash_in_round_1(out, r, vector, y_true, probs, record, **kw):
        real_save(out, r, vector, y_true, probs, record, **kw)
        path = out / "metrics.jsonl"
        path.write_bytes(path.read_bytes()[:40])
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_save_round", crash_in_round_1)
    assert main(["run", *TINY, "--rounds", "1", "--out", str(d)]) == 130
    monkeypatch.setattr(runner, "_save_round", real_save)
    with pytest.warns(RuntimeWarning, match="incomplete"):
        assert main(["run", "--resume", str(d), "--quiet"]) == 0
    text = (d / "metrics.jsonl").read_text()
    assert [json.loads(line)["round"] for line in text.splitlines()] == [1]
    assert_same_final_model(d, reference, rounds=1)


def test_resume_in_process_runs_only_the_missing_rounds(secure_a, tmp_path):
    reference = secure_a[0]
    e = tmp_path / "E"
    ctx = setup_run(tiny_config(rounds=1, privacy="none"), e)
    run_rounds(ctx)
    ctx = setup_run(tiny_config(rounds=2), e, resume=True)  # the saved config (privacy none) wins
    assert ctx.start_round == 2 and ctx.config.privacy == "none" and ctx.config.rounds == 2
    assert [rec["round"] for rec in run_rounds(ctx)] == [2]
    assert not (e / "keys").exists()
    assert len(metric_lines(e)) == 2


# -- client selection -------------------------------------------------------------------------


@pytest.mark.parametrize("k, fraction, count", [
    (10, 1.0, 10), (10, 0.3, 3), (10, 0.34, 3), (10, 0.36, 4), (4, 0.1, 1), (1, 0.01, 1), (7, 0.5, 4),
    (100, 0.05, 5), (3, 0.9, 3), (20, 0.26, 5),
])
def test_selection_count_distinct_sorted(k, fraction, count):
    assert count == max(1, round(fraction * k))
    for r in range(1, 6):
        chosen = select_clients(k, fraction, seed=3, round_=r)
        assert len(chosen) == count
        assert chosen == sorted(set(chosen))
        assert all(isinstance(c, int) and 0 <= c < k for c in chosen)


def test_selection_is_deterministic_per_seed_and_round():
    for r in range(1, 8):
        assert select_clients(10, 0.4, seed=5, round_=r) == select_clients(10, 0.4, seed=5, round_=r)


def test_selection_varies_across_rounds_and_seeds():
    by_round = {tuple(select_clients(10, 0.3, seed=0, round_=r)) for r in range(1, 21)}
    assert len(by_round) > 5
    by_seed = {tuple(select_clients(10, 0.3, seed=s, round_=1)) for s in range(20)}
    assert len(by_seed) > 5


def test_full_participation_selects_everyone():
    assert select_clients(6, 1.0, seed=9, round_=4) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.0001, 1.5, float("nan"), float("inf")])
def test_selection_fraction_outside_0_1(fraction):
    with pytest.raises(ConfigError, match="fraction"):
        select_clients(10, fraction, seed=0, round_=1)


# -- the server never holds the private key ------------------------------------------------------

_ATOMS = (str, bytes, bytearray, memoryview, int, float, complex, bool, type(None), np.ndarray, np.generic,
          torch.Tensor, type, types.ModuleType, types.BuiltinFunctionType)


def reachable(root: object):
    """Every object reachable from root through containers, __dict__, __slots__, closures and bound methods."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj  # keeps obj alive, so ids are not reused
        yield obj
        if isinstance(obj, _ATOMS):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
            continue
        if isinstance(obj, types.MethodType):
            stack.extend([obj.__self__, obj.__func__])
            continue
        if isinstance(obj, types.FunctionType):
            stack.extend(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell))
            stack.extend(obj.__defaults__ or ())
            continue
        if hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
        for cls in type(obj).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            for name in [slots] if isinstance(slots, str) else slots:
                if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                    stack.append(getattr(obj, name))


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def secrets_in(root: object) -> list[object]:
    return [o for o in reachable(root) if isinstance(o, (fp.PrivateKey, SealingKey))]


def test_walker_finds_the_keys_a_client_holds(secure_a):
    ctx = secure_a[1]
    found = secrets_in(ctx.clients[0])
    assert any(isinstance(o, fp.PrivateKey) for o in found)
    assert any(isinstance(o, SealingKey) for o in found)
    assert secrets_in(ctx.evaluator)  # the evaluator is a key holder too


def test_no_private_key_is_reachable_from_the_server(secure_a):
    server = secure_a[1].server
    assert server.secure and type(server.public_key) is fp.PublicKey
    assert secrets_in(server) == []
    kept = Message.from_bytes(server.global_message())
    assert set(kept.blobs) == {"sealed_global"}  # the trained model is kept sealed
    assert all(isinstance(v, bytes) for v in server.reports.values())  # reports are sealed


def _server_args(**changes):
    args = dict(num_clients=3, fraction=1.0, seed=0, privacy="paillier", avg="weighted", value_bits=16,
                model_size=10, public_key=None)
    args.update(changes)
    return args


def test_server_refuses_a_private_key():
    private_key = fp.generate_keypair(512, insecure=True)[1]
    with pytest.raises(ConfigError, match="never a private key"):
        Server(**_server_args(public_key=private_key))
    with pytest.raises(ConfigError):
        Server(**_server_args(public_key=None))
    with pytest.raises(ConfigError):
        Server(**_server_args(public_key=SealingKey(private_key, run_id="x")))
    server = Server(**_server_args(public_key=private_key.public_key))
    assert server.public_key is private_key.public_key
    assert Server(**_server_args(privacy="none", public_key=private_key)).public_key is None


def test_server_rejects_bad_modes():
    with pytest.raises(ConfigError, match="privacy"):
        Server(**_server_args(privacy="rsa"))
    with pytest.raises(ConfigError, match="averaging"):
        Server(**_server_args(privacy="none", avg="median"))


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                ids.add(id(body[0].value))
    return ids


def test_server_source_never_imports_sealing_or_uses_private_keys():
    source = Path(server_module.__file__).read_text()
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            assert "sealing" not in module and "client" not in module, ast.dump(node)
            assert all("sealing" not in a.name and "PrivateKey" not in a.name for a in node.names)
            assert not (node.level == 1 and module == "" and any(a.name in ("sealing", "client")
                                                                 for a in node.names))
        elif isinstance(node, ast.Import):
            assert all("sealing" not in a.name for a in node.names), ast.dump(node)
        elif isinstance(node, ast.Name):
            assert "PrivateKey" not in node.id and "Sealing" not in node.id
        elif isinstance(node, ast.Attribute):
            assert node.attr not in ("PrivateKey", "decrypt", "private_key") and "Sealing" not in node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            assert "PrivateKey" not in node.value
    code_only = [line.split("#", 1)[0] for line in source.splitlines()]
    assert not any(line.lstrip().startswith(("import", "from")) and "sealing" in line for line in code_only)


# -- what the server sees ---------------------------------------------------------------------------

_ALLOWED_REPLY_FIELDS = {"chunk", "model_round"}


def test_secure_replies_carry_no_plaintext(secure_a):
    log = secure_a[3]
    replies = [(r, cid, reply) for r, cid, _, reply in log if reply is not None]
    assert replies
    kinds = set()
    for r, cid, data in replies:
        message = Message.from_bytes(data)
        kinds.add(message.kind)
        assert message.round == r and message.sender == f"client:{cid}"
        assert set(message.fields) <= _ALLOWED_REPLY_FIELDS, message.fields
        assert "samples" not in message.fields and "report" not in message.fields
        assert all(isinstance(v, int) for v in message.fields.values())
        assert not {"model", "global"} & set(message.blobs), list(message.blobs)
        for name, blob in message.blobs.items():
            assert name in {"count", "maxabs", "report", "share", "sealed_global"} or \
                (name.startswith("chunk") and name[5:].isdigit()), name
        assert b"samples" not in data and b"train_loss" not in data
    assert kinds == {"stats", "update", "share", "global"}


def test_secure_model_is_sealed_after_round_1(secure_a):
    log = secure_a[3]
    for r, _, data, _ in log:
        message = Message.from_bytes(data)
        assert "model" not in message.blobs
        if message.kind == "round_start":
            assert message.get("model_round") == r - 1
            # round 1 starts from the random initial model (plain); later rounds only ever from a sealed one
            assert set(message.blobs) == ({"global"} if r == 1 else {"sealed_global"})


def test_plain_replies_carry_samples_and_model(plain_run):
    _, ctx, _, log = plain_run
    updates = [Message.from_bytes(reply) for _, _, _, reply in log if reply is not None]
    assert len(updates) == CLIENTS
    size = ctx.evaluator.models.layout.size
    for message in updates:
        assert message.kind == "update"
        cid = int(message.sender.split(":")[1])
        assert message.get("samples") == ctx.clients[cid].num_samples
        assert set(message.blobs) == {"model"} and len(message.blob("model")) == 4 * size
        assert message.get("report")["samples"] == ctx.clients[cid].num_samples


@pytest.mark.parametrize("which", ["secure", "plain"])
def test_bytes_in_metrics_are_the_message_lengths(which, secure_a, plain_run):
    out, _, records, log = secure_a if which == "secure" else plain_run
    saved = [json.loads(line) for line in metric_lines(out)]
    assert [rec["round"] for rec in saved] == [rec["round"] for rec in records]
    for rec, from_file in zip(records, saved):
        r = rec["round"]
        sent = {str(c): 0 for c in rec["selected_clients"]}
        received = dict(sent)
        for round_, cid, data, reply in log:
            if round_ == r:
                received[str(cid)] += len(data)
                sent[str(cid)] += len(reply) if reply is not None else 0
        assert rec["bytes"]["sent_per_client"] == sent
        assert rec["bytes"]["received_per_client"] == received
        assert from_file["bytes"] == rec["bytes"]
        assert all(v > 0 for v in sent.values()) and all(v > 0 for v in received.values())


@pytest.mark.parametrize("blob", ["chunkX", "chunk", "model", "chunk99"])
def test_server_rejects_update_blobs_that_are_not_chunks(small_keys, blob):
    from fedtrain.errors import ProtocolError
    from fedtrain.messages import Message
    from fedtrain.server import Server

    pk, _ = small_keys
    server = Server(num_clients=2, fraction=1.0, seed=0, privacy="paillier", avg="weighted", value_bits=16,
                    model_size=3, public_key=pk, min_clients=2)
    server.initialize(np.zeros(3, dtype=np.float32))
    selected = sorted(server.start_round(1))
    replies = {c: Message("update", 1, f"client:{c}", {}, {blob: b"x"}).to_bytes() for c in selected}
    with pytest.raises(ProtocolError, match="unexpected blob"):
        server.on_updates(1, replies)
