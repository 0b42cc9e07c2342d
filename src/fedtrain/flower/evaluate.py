"""A key holder's evaluation of a Flower run (`fedtrain flower-evaluate`): the run directory of `fedtrain run`.

The ServerApp keeps, per completed round, the sealed global model, the sealed training reports and the
round's protocol record (server folder, rounds/round_NNNN.msg); it cannot read the first two.  A key
holder (who made the keys with `fedtrain flower-setup`, and holds the test set) opens them here,
checks that the model is signed by the client that sealed it (the round's leader, or for a folded round
the next round's client the server asked), scores it on the test set and writes what
`fedtrain run` writes after each round: the checkpoint, the predictions and the metrics line (with the
same keys), then report.md and its plots.  Rounds already in metrics.jsonl are skipped, so it can be
run again while the Flower run goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ProtocolError
from ..messages import Message
from .common import RUN_FILE, completed_rounds, round_file
from .prepare import FlowerSetup

log = logging.getLogger("fedtrain")


def evaluate_run(out_dir: str | os.PathLike, *, server_dir: str | os.PathLike | None = None,
                 report: bool = True) -> list[dict[str, Any]]:
    """Writes the metrics, checkpoints and predictions of every completed round not yet evaluated; returns them."""
    import torch  # noqa: F401 - a key holder's step

    import fastpaillier as fp

    from ..authentication import Verifiers
    from ..client import ModelCodec
    from ..data import load_data
    from ..metrics import evaluate_predictions
    from ..report import load_metrics, write_report
    from ..runner import Evaluator, RunConfig, _atomic_write, _save_round, private_key_path
    from ..sealing import SealingKey, SignedSealing
    from ..training import resolve_device
    from .common import VERIFIERS_FILE

    out = Path(out_dir)
    config_path = out / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{out} holds no config.json; prepare it with `fedtrain flower-setup --out {out}`")
    config = RunConfig.from_dict(json.loads(config_path.read_text()))
    server = Path(server_dir) if server_dir is not None else FlowerSetup.load(out).server_dir
    key = fp.PrivateKey.load(private_key_path(config, out), insecure=config.insecure_keys)
    verifiers = Verifiers.from_json((server / VERIFIERS_FILE).read_text())
    sealing = SignedSealing(SealingKey(key, run_id=config.run_id), verifiers)
    data = load_data(config.data, image_size=config.image_size, test_fraction=config.test_fraction,
                     seed=config.seed, demo_train_per_class=config.demo_train_per_class,
                     demo_test_per_class=config.demo_test_per_class)
    device = resolve_device(config.device)
    evaluator = Evaluator(ModelCodec(config.model, len(data.class_names)), data.test, device, sealing)
    done = {int(rec["round"]) for rec in load_metrics(out)} if (out / "metrics.jsonl").exists() else set()
    records = []
    for r in completed_rounds(server):
        if r in done:
            continue
        if r - 1 not in done and r > 1:
            raise CheckpointError(f"round {r} of {server} follows no evaluated round {r - 1}")
        t0 = time.perf_counter()
        message = Message.from_bytes(round_file(server, r).read_bytes())
        if message.kind != "server_round" or message.round != r:
            raise ProtocolError(f"{round_file(server, r)} is not the server's record of round {r}")
        result = dict(message.get("result"))
        reports = {int(name[len("report"):]): blob for name, blob in message.blobs.items()
                   if name.startswith("report")}
        # sealed by the round's leader, or (a folded round) by the next round's client the server asked
        sealer = result.get("sealed_by", result["leader"])
        opened = evaluator.open_model(message.blob("global"), sealed_by={int(sealer)})
        if opened.model_round != r:
            raise ProtocolError(f"the server's record of round {r} holds a model of round {opened.model_round}")
        test_loss, y_true, probs = evaluator.evaluate(opened.vector)
        train_loss = evaluator.train_loss(reports, r)
        metrics = evaluate_predictions(y_true, probs, data.class_names)
        record = {"round": r, "train_loss": train_loss, "test_loss": test_loss, **metrics, **result,
                  "refused": opened.refused, "transport": "flower"}
        record["timings"]["evaluate"] = time.perf_counter() - t0
        record["timings"]["round"] = result["round_wall"] + record["timings"]["evaluate"]
        record["wall_time"] = record["timings"]["round"]
        _save_round(out, r, opened.vector, y_true, probs, record)
        done.add(r)
        records.append(record)
        log.info("round %d: accuracy %.4f, macro F1 %.4f, test loss %.4f (survivors %s, sealed by client %s)", r,
                 record["accuracy"], record["macro_f1"], test_loss, result["survivors"], sealer)
    ran = server_status(server).get("run_config", {}).get("rounds")
    if isinstance(ran, int) and ran > config.rounds:  # the Flower run was given more rounds (--run-config)
        saved = json.loads(config_path.read_text())
        saved["rounds"] = ran
        _atomic_write(config_path, json.dumps(saved, indent=2).encode())
    if report and done:
        write_report(out)
    return records


def server_status(server_dir: str | os.PathLike) -> dict[str, Any]:
    """The ServerApp's own account of the run (run.json): status running, completed or failed."""
    path = Path(server_dir) / RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
