"""Orchestration of a federated run: set-up, the round loop over a transport, evaluation, checkpoints.

Client and server exchange bytes only; `InProcessTransport` delivers them by
function call and counts them.  Evaluation on the test set is done by an
`Evaluator`, a key holder like the clients (in secure mode the server never sees
the model in plain).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import fastpaillier as fp

from .client import Client, GlobalModel, ModelCodec, open_global, open_global_model
from .config import RUN_MODES, RunConfig, resumed_config  # noqa: F401  (re-exported: RunConfig lives in config)
from .data import DataBundle, ImageSet, load_data
from .differential_privacy import DP_CONVERSION_NOTE
from .errors import CheckpointError, ProtocolError, RoundFailed
from .messages import Message
from .metrics import evaluate_predictions
from .models import build_model
from .partition import class_count_table, format_class_counts, partition
from .progress import PhaseHook
from .report import load_metrics, predictions_path, write_report
from .authentication import DEALER_SECRET_BYTES, derive_all, new_dealer_secret
from .paths import atomic_write as _atomic_write
from .protocol import report_context
from .rounds import run_round, run_round_with_retries  # noqa: F401 (run_round re-exported)
from .sealing import SealingKey, SignedSealing
from .server import Server, select_clients
from .split_learning import SplitLearning, resolve_cut
from .training import LocalTrainingConfig, predict, resolve_device, seed_everything

log = logging.getLogger("fedtrain")

KEY_FILE_NAME = "clients_private_key.bin"
LEGACY_PRIVATE_KEY_FILE = f"keys/{KEY_FILE_NAME}"  # inside the run folder, as runs before --keys kept it
SKIPPED_FILES = "skipped_files.csv"
DEALER_SECRET_NAME = "dealer_secret.bin"  # beside the clients' key: their signing keys derive from it; no client holds it


class InProcessTransport:
    """Delivers message bytes to in-process clients, counts bytes per client, and drops late or failed replies.

    Each message is handled on a daemon thread of its own, so that a client that never answers costs the
    exchange its deadline and no more; a client still busy with an earlier message gets no new one.
    """

    def __init__(self, clients: dict[int, Client], *, deadline: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.clients = clients
        self.deadline = deadline
        self.clock = clock
        self.sent: dict[int, int] = {}
        self.received: dict[int, int] = {}
        self.failures: dict[int, str] = {}  # this round's clients whose reply was dropped, and why
        self._busy: dict[int, threading.Thread] = {}  # the thread of each client's latest message

    def reset(self) -> None:
        self.sent, self.received, self.failures = {}, {}, {}

    def deliver(self, cid: int, data: bytes) -> bytes | None:
        """Hands `data` to client `cid`; returns its reply."""
        self.received[cid] = self.received.get(cid, 0) + len(data)
        reply = self.clients[cid].handle(data)
        if reply is not None:
            self.sent[cid] = self.sent.get(cid, 0) + len(reply)
        return reply

    def _call(self, cid: int, data: bytes) -> bytes | None:
        """`deliver` on a daemon thread, waited for up to the deadline; TimeoutError past it."""
        previous = self._busy.get(cid)
        if previous is not None and previous.is_alive():
            raise TimeoutError("still busy with an earlier message")
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["reply"] = self.deliver(cid, data)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = exc

        thread = threading.Thread(target=target, name=f"fedtrain-client-{cid}", daemon=True)
        self._busy[cid] = thread
        thread.start()
        thread.join(self.deadline)
        if thread.is_alive():
            raise TimeoutError(f"no reply within the {self.deadline:g} s deadline")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    def client_timings(self, cid: int) -> tuple[dict[str, float], dict[str, float]]:
        """(wall, CPU) seconds per phase of client `cid` in its current round (rounds.Transport)."""
        return self.clients[cid].timings, self.clients[cid].cpu_timings

    def exchange(self, outgoing: dict[int, bytes]) -> dict[int, bytes]:
        """Delivers each message and collects the replies that came back in time (the rest in `failures`)."""
        replies = {}
        for cid, data in outgoing.items():
            start = self.clock()
            try:
                reply = self._call(cid, data)
            except Exception as exc:  # noqa: BLE001 - a failing client is dropped, the server decides the rest
                self.failures[cid] = f"{type(exc).__name__}: {exc}"
                continue
            if self.deadline is not None and self.clock() - start > self.deadline:
                self.failures[cid] = f"late: replied after the {self.deadline:g} s deadline"
            elif reply is None:
                self.failures[cid] = "no reply"
            else:
                replies[cid] = reply
        return replies


class Evaluator:
    """A key holder that opens the global model and scores it on the test set."""

    def __init__(self, models: ModelCodec, test: ImageSet, device: torch.device,
                 sealing: SignedSealing | None) -> None:
        self.models = models
        self.test = test
        self.device = device
        self.sealing = sealing

    def open(self, global_message: bytes) -> tuple[np.ndarray, int]:
        """The plaintext global model vector and its round."""
        return open_global(Message.from_bytes(global_message), self.sealing, self.models.layout.size)

    def open_model(self, global_message: bytes, *, sealed_by: set[int] | None = None) -> GlobalModel:
        """The global model (signed by a client in `sealed_by`), its round, and whether that round was refused."""
        return open_global_model(Message.from_bytes(global_message), self.sealing, self.models.layout.size,
                                 sealed_by=sealed_by)

    def train_loss(self, reports: dict[int, Any], round_: int) -> float:
        """Sample-weighted mean of the clients' reported training losses."""
        opened = []
        for cid, report in reports.items():
            if isinstance(report, bytes):
                report = json.loads(self.sealing.open(report, report_context(round_, cid), allowed={cid}))
            if not report.get("refused"):
                opened.append(report)
        total = sum(r["samples"] for r in opened)
        if not opened:
            return float("nan")
        return float(sum(r["train_loss"] * r["samples"] for r in opened) / max(total, 1))

    def evaluate(self, vector: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        model = self.models.load(vector)
        return predict(model, self.test, device=self.device)


@dataclass
class RunContext:
    """Everything a run needs, set up once."""

    config: RunConfig
    out_dir: Path
    data: DataBundle
    server: Server | None
    clients: dict[int, Client]
    evaluator: Evaluator | None
    transport: InProcessTransport | None
    start_round: int
    split: SplitLearning | None = None
    device: torch.device | None = None
    shadow: "PlainShadow | None" = None


def default_keys_dir(run_id: str) -> Path:
    """Where a run's key goes without --keys: $FEDTRAIN_KEYS/<run id>, else ~/.fedtrain/keys/<run id>."""
    root = os.environ.get("FEDTRAIN_KEYS")
    return (Path(root).expanduser() if root else Path.home() / ".fedtrain" / "keys") / run_id


def private_key_path(config: RunConfig, out_dir: Path) -> Path:
    """The clients' private key file of a run (never inside the run folder, except for older runs)."""
    if config.keys is None:
        legacy = out_dir / LEGACY_PRIVATE_KEY_FILE
        if legacy.exists():
            return legacy
        return default_keys_dir(config.run_id) / KEY_FILE_NAME
    return Path(config.keys).expanduser() / KEY_FILE_NAME


def _load_or_create_keys(config: RunConfig, out_dir: Path, resume: bool) -> fp.PrivateKey | None:
    if config.privacy != "paillier":
        return None
    path = private_key_path(config, out_dir)
    if resume and path.exists():
        try:
            return fp.PrivateKey.load(path, insecure=config.insecure_keys)
        except fp.FastPaillierError as exc:
            raise CheckpointError(f"the run's private key file {path} cannot be loaded: {exc}") from None
    if resume:  # checkpoints are plain models: a fresh key can carry the run on
        log.warning("the run's private key file %s is missing; the run goes on with a new key pair", path)
    _, private_key = fp.generate_keypair(config.key_bits, insecure=config.insecure_keys,
                                         randomness=config.randomness)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    private_key.save(path)
    log.info("clients' private key written to %s (folder mode 0700; it is not in the run folder: "
             "share it only with the hospitals)", path)
    return private_key


def _load_checkpoint(out_dir: Path, round_: int) -> dict:
    """The checkpoint of `round_`, or a CheckpointError naming the file and the round before it."""
    path = checkpoint_path(out_dir, round_)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not isinstance(state.get("vector"), torch.Tensor):
            raise ValueError("no model vector")
        return state
    except Exception as exc:  # torch raises RuntimeError, pickle and zip errors for a damaged file
        earlier = (f"round {round_ - 1} is the last round before it: move {path.name} and "
                   f"{predictions_path(out_dir, round_).name} aside and resume again to redo round {round_}"
                   if round_ > 1 else "move it aside and resume again to start from round 1")
        raise CheckpointError(f"checkpoint {path} of round {round_} cannot be read ({type(exc).__name__}: it is "
                              f"damaged or truncated); {earlier}") from None


def _load_or_create_dealer_secret(config: RunConfig, out_dir: Path, resume: bool) -> bytes | None:
    """The dealer secret of the clients' signing keys (kept with the Paillier key; never given to a client)."""
    if config.privacy != "paillier":
        return None
    path = private_key_path(config, out_dir).parent / DEALER_SECRET_NAME
    if resume and path.exists():
        secret = path.read_bytes()
        if len(secret) != DEALER_SECRET_BYTES:
            raise CheckpointError(f"{path} holds {len(secret)} bytes, not a {DEALER_SECRET_BYTES}-byte dealer secret")
        return secret
    secret = new_dealer_secret()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _atomic_write(path, secret)
    os.chmod(path, 0o600)
    return secret


def checkpoint_path(out_dir: Path, round_: int) -> Path:
    return out_dir / "checkpoints" / f"round_{round_:04d}.pt"


def _last_complete_round(out_dir: Path) -> int:
    """The last round with both a metrics line and a checkpoint (0 if none)."""
    done = {int(rec["round"]) for rec in load_metrics(out_dir)}
    last = 0
    for r in sorted(done):
        if r == last + 1 and checkpoint_path(out_dir, r).exists():
            last = r
        else:
            break
    return last


def _truncate_metrics(out_dir: Path, last_round: int) -> None:
    """Keeps only metrics lines of rounds <= last_round (drops a half-written tail)."""
    path = out_dir / "metrics.jsonl"
    if not path.exists():
        return
    keep = [json.dumps(rec) for rec in load_metrics(out_dir) if int(rec["round"]) <= last_round]
    _atomic_write(path, "".join(line + "\n" for line in keep).encode())


def _write_skipped(out: Path, files) -> None:
    """skipped_files.csv: path and reason of every image file that was not used."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "reason"])
    writer.writerows([f.path, f.reason] for f in files)
    _atomic_write(out / SKIPPED_FILES, buffer.getvalue().encode())


def setup_run(config: RunConfig, out_dir: str | os.PathLike, *, resume: bool = False,
              progress: Callable[[int, int], Any] | None = None, on_phase: PhaseHook | None = None) -> RunContext:
    """Loads data, partitions it, makes keys, clients, server and evaluator (resuming if asked).

    A new run that fails while being set up (a bad --weights file, say) leaves nothing behind:
    the run folder and the key folder it created are removed again.
    """
    out = Path(out_dir)
    fresh_out = not resume and not (out.exists() and any(out.iterdir()))
    keys_before = config.keys
    fresh_keys = keys_before is None or not Path(keys_before).expanduser().exists()
    try:
        return _setup_run(config, out, resume=resume, progress=progress, on_phase=on_phase)
    except BaseException:
        if fresh_out:
            shutil.rmtree(out, ignore_errors=True)
            if fresh_keys and config.keys is not None:
                shutil.rmtree(Path(config.keys).expanduser(), ignore_errors=True)
        raise


def _setup_run(config: RunConfig, out: Path, *, resume: bool,
               progress: Callable[[int, int], Any] | None, on_phase: PhaseHook | None = None) -> RunContext:
    if resume:
        config = resumed_config(out, config.rounds)
    config.validate()
    device = resolve_device(config.device)
    data = load_data(config.data, image_size=config.image_size, test_fraction=config.test_fraction,
                     seed=config.seed, demo_train_per_class=config.demo_train_per_class,
                     demo_test_per_class=config.demo_test_per_class)
    parts = partition(data.train.labels, config.clients, scheme=config.partition, alpha=config.alpha,
                      seed=config.seed)
    table = class_count_table(data.train.labels, parts, len(data.class_names))
    log.info("training images per client and class:\n%s", format_class_counts(table, data.class_names))
    out.mkdir(parents=True, exist_ok=True)
    if data.skipped_files:
        _write_skipped(out, data.skipped_files)
        log.warning("skipped %d unreadable image file(s) under %s; listed with reasons in %s", data.skipped,
                    data.source, out / SKIPPED_FILES)
    start_round = _last_complete_round(out) + 1 if resume else 1
    if not resume:
        for stale in ("metrics.jsonl",):
            (out / stale).unlink(missing_ok=True)
    if config.privacy == "paillier" and config.keys is None and not (out / LEGACY_PRIVATE_KEY_FILE).exists():
        config.keys = str(default_keys_dir(config.run_id))  # recorded in config.json, so --resume finds it
    private_key = _load_or_create_keys(config, out, resume)
    dealer_secret = _load_or_create_dealer_secret(config, out, resume)
    saved = dataclasses.asdict(config)
    if config.privacy == "dp":
        saved["model_conversion"] = DP_CONVERSION_NOTE
    if config.privacy == "split":
        saved["cut"] = resolve_cut(config.model, config.cut)
    saved.update(class_names=list(data.class_names), data_source=data.source, split=data.split,
                 skipped_images=data.skipped,
                 train_images=len(data.train), test_images=len(data.test),
                 client_class_counts=table.tolist(), device_used=str(device))
    _atomic_write(out / "config.json", json.dumps(saved, indent=2).encode())

    num_classes = len(data.class_names)
    if config.privacy == "split":
        split = SplitLearning(model_name=config.model, num_classes=num_classes, cut=config.cut,
                              client_data=[data.train.subset(idx) for idx in parts], training=config.training(),
                              device=device, seed=config.seed, weights=config.weights, progress=progress,
                              on_phase=on_phase)
        if start_round > 1:
            state = _load_checkpoint(out, start_round - 1)
            split.load_state_vector(state["vector"].numpy())
            log.info("resuming %s after round %d", out, start_round - 1)
        if resume:
            _truncate_metrics(out, start_round - 1)
        return RunContext(config, out, data, None, {}, None, None, start_round, split=split, device=device)
    fed = _federation(config, data, parts, device, private_key, dealer_secret, progress, on_phase)
    shadow = None
    if config.shadow_plain:
        plain_config = dataclasses.replace(config, privacy="none", shadow_plain=False)
        # Two plain federations: clients answer each round once (issue 12), and the shadow runs every round
        # twice, from the encrypted start and from its own trajectory.
        shadow = PlainShadow(_federation(plain_config, data, parts, device, None, None, None),
                             _federation(plain_config, data, parts, device, None, None, None), fed.models.vector())
    if start_round > 1:
        state = _load_checkpoint(out, start_round - 1)
        vector = state["vector"].numpy()
        if private_key is not None:
            fed.server.install_global(fed.clients[0].seal_global(vector, start_round - 1))
        else:
            fed.server.install_global(plain_global(vector, start_round - 1))
        if shadow is not None:
            if "shadow_vector" not in state:
                raise CheckpointError(f"{checkpoint_path(out, start_round - 1)} holds no plain shadow model; "
                                      "resume without --shadow-plain or start a new run")
            last = [rec for rec in load_metrics(out) if int(rec["round"]) == start_round - 1]
            shadow.restore(state["shadow_vector"].numpy(), last[-1].get("shadow", {}) if last else {})
        log.info("resuming %s after round %d", out, start_round - 1)
    if resume:  # even with no round complete: drop a half-written line the next round would append to
        _truncate_metrics(out, start_round - 1)
    return RunContext(config, out, data, fed.server, fed.clients, fed.evaluator, fed.transport, start_round,
                      device=device, shadow=shadow)


@dataclass
class Federation:
    """The parties of one FedAvg run: server, clients, their transport and the evaluator."""

    server: Server
    clients: dict[int, Client]
    transport: InProcessTransport
    evaluator: Evaluator
    models: ModelCodec


def _federation(config: RunConfig, data: DataBundle, parts: list[np.ndarray], device: torch.device,
                private_key: fp.PrivateKey | None, dealer_secret: bytes | None,
                progress: Callable[[int, int], Any] | None, on_phase: PhaseHook | None = None) -> Federation:
    """Clients, server (holding the round-0 model) and evaluator of `config` on a partitioned data set."""
    num_classes = len(data.class_names)
    signers, verifiers = derive_all(dealer_secret, run_id=config.run_id, num_clients=config.clients) \
        if dealer_secret is not None else ({}, None)
    clients = {}
    for cid, idx in enumerate(parts):
        key = fp.PrivateKey.from_bytes(private_key.to_bytes(), insecure=config.insecure_keys) \
            if private_key is not None else None  # each client loads its own copy of the shared key
        clients[cid] = Client(cid, data.train.subset(idx), model_name=config.model, num_classes=num_classes,
                              training=config.training(), device=device, seed=config.seed,
                              private_key=key, run_id=config.run_id, precompute=config.precompute,
                              progress=progress, on_phase=on_phase, dp=config.dp_config(),
                              total_epochs=config.rounds * config.local_epochs, num_clients=config.clients,
                              min_clients=config.min_clients, signer=signers.get(cid), verifiers=verifiers)
    dp = config.privacy == "dp"
    with torch.random.fork_rng(devices=[]):
        seed_everything(config.seed, 0, 0xA11)
        initial = build_model(config.model, num_classes=num_classes, weights=config.weights, dp_compatible=dp)
    models = ModelCodec(config.model, num_classes, dp_compatible=dp)
    models.model.load_state_dict(initial.state_dict())
    server = Server(num_clients=config.clients, fraction=config.fraction, seed=config.seed,
                    privacy=config.privacy, avg=config.avg, value_bits=config.value_bits,
                    rounding=config.rounding, model_size=models.layout.size, num_tensors=models.layout.num_tensors,
                    min_clients=config.min_clients, verifiers=verifiers,
                    public_key=private_key.public_key if private_key is not None else None)
    server.initialize(models.vector())
    sealing = SignedSealing(SealingKey(private_key, run_id=config.run_id), verifiers) \
        if private_key is not None else None
    evaluator = Evaluator(ModelCodec(config.model, num_classes, dp_compatible=dp), data.test, device, sealing)
    return Federation(server, clients, InProcessTransport(clients, deadline=config.deadline), evaluator, models)


def plain_global(vector: np.ndarray, model_round: int) -> bytes:
    """A plain 'global' message holding `vector` after `model_round` rounds."""
    return Message("global", model_round, "client:0", {"model_round": model_round},
                   {"global": vector.astype("<f4").tobytes()}).to_bytes()


def _l2(x: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(x, dtype=np.float64)))


class PlainShadow:
    """Plain FedAvg beside an encrypted run, to measure what encryption changes (--shadow-plain).

    Each round it runs plain FedAvg twice with the same clients, data and seeds: once
    from the encrypted run's own start model (the one-round check: the two results may
    differ by the codec's rounding only, K 2^-f S_t per position), and once from its own
    previous model (an independent plain run of the same seed: the trajectory distance).
    With e_t the encrypted round's rounding, P_t the plain round from the encrypted start
    and d_t the trajectory distance, d_t <= |e_t| + |P_t - plain_t| = |e_t| + lambda_t d_(t-1),
    where lambda_t is the measured expansion of one plain round; so
    d_t <= B_t = |bound_t| + lambda_t B_(t-1), the codec's bound of every round carried forward
    by plain training's own sensitivity.  Costs two more local trainings per round (two plain federations).
    """

    def __init__(self, synced: Federation, trajectory: Federation, initial: np.ndarray) -> None:
        self.synced = synced  # runs each round from the encrypted run's start model
        self.fed = trajectory  # runs the independent plain trajectory
        self.vector = initial.astype(np.float32)
        self.distance = 0.0  # d_(t-1), absolute L2
        self.bound = 0.0  # B_(t-1), absolute L2

    def restore(self, vector: np.ndarray, last: dict) -> None:
        """Continues after a resumed round: the shadow model and the last round's distance and bound."""
        self.vector = vector.astype(np.float32)
        self.distance = float(last.get("distance_l2", 0.0))
        self.bound = float(last.get("growth_bound_l2", 0.0))

    @staticmethod
    def _plain_round(fed: Federation, start: np.ndarray, round_: int) -> np.ndarray:
        fed.server.install_global(plain_global(start, round_ - 1))
        run_round(fed.server, fed.transport, round_)
        vector, _ = fed.evaluator.open(fed.server.global_message())
        return vector

    def step(self, round_: int, encrypted_start: np.ndarray, encrypted: np.ndarray,
             bound: np.ndarray) -> dict[str, Any]:
        """Runs round `round_` in plain twice and returns the shadow metrics of the encrypted result."""
        t0 = time.perf_counter()
        synced = self._plain_round(self.synced, encrypted_start, round_)
        plain = self._plain_round(self.fed, self.vector, round_)
        test_loss, y_true, probs = self.fed.evaluator.evaluate(plain)
        enc64, synced64, plain64 = (v.astype(np.float64) for v in (encrypted, synced, plain))
        ulp = np.spacing(np.maximum(np.abs(encrypted), np.abs(synced)).astype(np.float32)).astype(np.float64)
        step_error = np.abs(enc64 - synced64)
        step_limit = bound + ulp  # the codec's bound plus one float32 rounding of the stored model
        distance = _l2(enc64 - plain64)
        carried = _l2(synced64 - plain64)
        expansion = carried / self.distance if self.distance > 0 else None
        growth = _l2(step_limit) + (expansion or 0.0) * self.bound
        if self.distance == 0 and carried > 0:  # equal starts gave different plain rounds: not deterministic
            growth = float("inf")
        layout = self.fed.models.layout
        worst, worst_rel = "", 0.0
        for slot in layout.slots:
            a, b = slice(slot.offset, slot.offset + slot.size), plain64[slot.offset:slot.offset + slot.size]
            rel = _l2(enc64[a] - b) / max(_l2(b), 1e-12)
            if rel > worst_rel:
                worst, worst_rel = slot.name, rel
        norm = max(_l2(plain64), 1e-30)
        self.vector, self.distance, self.bound = plain, distance, growth
        return {
            "plain_accuracy": float((probs.argmax(axis=1) == y_true).mean()), "plain_test_loss": test_loss,
            "distance": distance / norm, "distance_l2": distance, "max_abs": float(np.abs(enc64 - plain64).max()),
            "worst_tensor": worst, "worst_tensor_distance": worst_rel,
            "growth_bound": growth / norm, "growth_bound_l2": growth, "expansion": expansion,
            "step_error": _l2(step_error) / norm, "step_bound": _l2(step_limit) / norm,
            "step_bound_ratio": float(np.max(step_error / step_limit)),
            "step_within_bound": bool(np.all(step_error <= step_limit)),
            "seconds": time.perf_counter() - t0,
        }


def _run_round_with_retries(ctx: RunContext, r: int) -> dict[str, Any]:
    """Round r, tried again with a new selection (up to --round-attempts) while it fails before decryption."""
    return run_round_with_retries(ctx.server, ctx.transport, r, ctx.config.round_attempts,
                                  f"resume it with `fedtrain run --resume {ctx.out_dir}` once the clients are back")


def run_rounds(ctx: RunContext, *, on_round: Callable[[dict], None] | None = None) -> list[dict]:
    """Runs the remaining rounds, writing a checkpoint, predictions and a metrics line after each."""
    records = []
    for r in range(ctx.start_round, ctx.config.rounds + 1):
        t0 = time.perf_counter()
        if ctx.split is not None:
            selected = select_clients(ctx.config.clients, ctx.config.fraction, ctx.config.seed, r)
            result = ctx.split.run_round(r, selected)
            train_loss = result.pop("train_loss")
            t = time.perf_counter()
            vector = ctx.split.state_vector()
            test_loss, y_true, probs = predict(ctx.split.full_model(), ctx.data.test, device=ctx.device)
        else:
            start = ctx.evaluator.open(ctx.server.global_message())[0] if ctx.shadow is not None else None
            result = _run_round_with_retries(ctx, r)
            t = time.perf_counter()
            opened = ctx.evaluator.open_model(ctx.server.global_message(),
                                              sealed_by={result["leader"]} if ctx.server.secure else None)
            vector, model_round = opened.vector, opened.model_round
            if model_round != r:
                raise ProtocolError(f"after round {r} the server holds a model of round {model_round}")
            test_loss, y_true, probs = ctx.evaluator.evaluate(vector)
            train_loss = ctx.evaluator.train_loss(ctx.server.reports, r)
            if ctx.shadow is not None:
                leader = ctx.clients[result["leader"] if ctx.server.secure else result["selected_clients"][0]]
                shadow = ctx.shadow.step(r, start, vector, leader.rounding_bound())
            if ctx.config.privacy == "paillier":  # the key holders' view: the server cannot read either
                result["refused"] = opened.refused
                result["refusals"] = {str(c): [why for rr, _, why in ctx.clients[c].refusals if rr == r]
                                      for c in result["selected_clients"]
                                      if any(rr == r for rr, _, _ in ctx.clients[c].refusals)}
        metrics = evaluate_predictions(y_true, probs, ctx.data.class_names)
        evaluate_time = time.perf_counter() - t - (shadow["seconds"] if ctx.shadow is not None else 0.0)
        record = {"round": r, "train_loss": train_loss, "test_loss": test_loss, **metrics, **result}
        if ctx.config.privacy == "dp":
            spent = [c.dp.epsilon() for c in ctx.clients.values()]
            record["epsilon"] = max(spent)
            record["epsilon_per_client"] = {str(c): e for c, e in zip(ctx.clients, spent)}
            record["delta"] = ctx.config.delta
            record["noise_multiplier"] = max(c.dp.noise_multiplier for c in ctx.clients.values())
        record["timings"]["evaluate"] = evaluate_time
        record["timings"]["round"] = time.perf_counter() - t0
        record["wall_time"] = record["timings"]["round"]
        extra = None
        if ctx.shadow is not None:
            record["shadow"] = shadow
            record["timings"]["round"] -= shadow["seconds"]  # the shadow is a measurement, not part of the round
            record["wall_time"] = record["timings"]["round"]
            extra = {"shadow_vector": torch.from_numpy(ctx.shadow.vector.copy())}
        _save_round(ctx.out_dir, r, vector, y_true, probs, record, extra=extra)
        records.append(record)
        if on_round is not None:
            on_round(record)
    return records


def _save_round(out: Path, r: int, vector: np.ndarray, y_true: np.ndarray, probs: np.ndarray,
                record: dict, extra: dict | None = None) -> None:
    """Checkpoint and predictions first, the metrics line last: a line means the round is complete."""
    path = checkpoint_path(out, r)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"round": r, "vector": torch.from_numpy(vector.copy()), **(extra or {})}, tmp)
    os.replace(tmp, path)
    pred = predictions_path(out, r)
    pred.parent.mkdir(parents=True, exist_ok=True)
    with open(pred.with_name(pred.name + ".tmp"), "wb") as fh:
        np.savez(fh, y_true=y_true, probs=probs)
    os.replace(pred.with_name(pred.name + ".tmp"), pred)
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def run(config: RunConfig, out_dir: str | os.PathLike, *, resume: bool = False,
        progress: Callable[[int, int], Any] | None = None, on_phase: PhaseHook | None = None,
        on_round: Callable[[dict], None] | None = None) -> Path:
    """A whole run: set-up, rounds, report.  Returns the path of report.md."""
    ctx = setup_run(config, out_dir, resume=resume, progress=progress, on_phase=on_phase)
    run_rounds(ctx, on_round=on_round)
    return write_report(ctx.out_dir)
