"""Time per round on Flower's deployment engine: fedtrain's secure app beside plain Flower FedAvg, one run.

    python benchmarks/bench_flower_round.py [--clients 3 --rounds 4 --image-size 64 --per-class 40]

Three Flower Apps run one after another on this machine, each on its own SuperLink and one
SuperNode per hospital (127.0.0.1, Flower's deployment engine), with the same model, demo data,
hospital folders, seed and local training:

- plain Flower FedAvg (fedtrain.flower.plain_app: Flower's own `FedAvg` strategy, the model in the clear);
- fedtrain's secure app with every round's leader exchange (`--no-fold`);
- fedtrain's secure app as it runs by default (folded: a round's model is assembled by the next
  round's clients, so a round costs one Flower exchange fewer; the last round keeps its leader).

A round's time runs from the ServerApp sending its first message to the round's result being in
(node discovery before round 1 is left out).  An exchange is one Flower round trip: messages
pushed to the SuperLink, each SuperNode starting a ClientApp process for its message, the replies
pulled back; its fixed cost is the floor of a round.  Exchanges per round are counted by the
ServerApp (plain FedAvg: one `train` message per node and round).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model

import fastpaillier as fp
from fedtrain.config import RunConfig
from fedtrain.flower.common import read_events
from fedtrain.flower.local import run_local
from fedtrain.flower.plain_app import PLAIN_ROUNDS_FILE
from fedtrain.flower.prepare import FlowerSetup, prepare

PLAIN_COMPONENTS = {"fedtrain.flower.server_app:app": "fedtrain.flower.plain_app:server",
                    "fedtrain.flower.client_app:app": "fedtrain.flower.plain_app:client"}


def plain_setup(secure: FlowerSetup, folder: Path) -> FlowerSetup:
    """The secure app's set-up with the plain app's components (same run config, hospitals, round-0 model)."""
    app = folder / "plain_app"
    app.mkdir(parents=True, exist_ok=True)
    text = (secure.app_dir / "pyproject.toml").read_text()
    for ours, plain in PLAIN_COMPONENTS.items():
        text = text.replace(ours, plain)
    text = re.sub(r'^name = "fedtrain-flower"$', 'name = "fedtrain-flower-plain"', text, flags=re.M)
    (app / "pyproject.toml").write_text(text)
    return FlowerSetup(secure.out_dir, app.resolve(), secure.server_dir, secure.keys_dir, secure.run_id,
                       secure.clients, secure.node_configs)


def secure_rounds(setup: FlowerSetup) -> list[dict]:
    """(seconds, exchanges) of each round, from the ServerApp's events."""
    events = read_events(setup.server_dir / "events.jsonl")
    starts = {e["round"]: e["time"] for e in events if e["event"] == "round"}
    return [{"round": e["round"], "seconds": e["time"] - starts[e["round"]], "exchanges": e["exchanges"]}
            for e in events if e["event"] == "round done"]


def plain_rounds(setup: FlowerSetup) -> list[dict]:
    info = json.loads((setup.server_dir / PLAIN_ROUNDS_FILE).read_text())
    return [{"round": r["round"], "seconds": r["seconds"], "exchanges": 1} for r in info["rounds"]]


def run(setup: FlowerSetup, work: Path, timeout: float) -> float:
    t0 = time.perf_counter()
    run_local(setup, work, timeout=timeout)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--model", default="smallcnn")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=40, help="demo training images per class")
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds each Flower run may take")
    parser.add_argument("--work-dir", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the measurements to this file")
    args = parser.parse_args(argv)

    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench-flower-"))
    base = dict(model=args.model, image_size=args.image_size, demo_train_per_class=args.per_class,
                demo_test_per_class=10, clients=args.clients, rounds=args.rounds, min_clients=2, seed=0,
                privacy="paillier", key_bits=args.key_bits, insecure_keys=args.key_bits < fp.MIN_SECURE_BITS,
                device="cpu")
    folded = prepare(RunConfig(**base, keys=str(work / "keys_folded")), work / "folded",
                     hospitals_dir=work / "hospitals_folded")
    unfolded = prepare(RunConfig(**base, keys=str(work / "keys_unfolded")), work / "unfolded",
                       hospitals_dir=work / "hospitals_unfolded", fold=False)
    plain = plain_setup(folded, work / "plain")
    apps = [("plain Flower FedAvg (no encryption)", plain, plain_rounds),
            ("fedtrain Paillier, --no-fold", unfolded, secure_rounds),
            ("fedtrain Paillier, folded (default)", folded, secure_rounds)]
    rows = []
    for name, setup, rounds_of in apps:
        wall = run(setup, work / f"flower_{len(rows)}", args.timeout)
        rounds = rounds_of(setup)
        rows.append({"app": name, "wall": wall, "rounds": rounds})
        print(f"{name}: {wall:.1f} s in all, rounds {[round(r['seconds'], 1) for r in rounds]}", file=sys.stderr)

    plain_mean = statistics.mean(r["seconds"] for r in rows[0]["rounds"])
    print(f"\nFlower {__import__('flwr').__version__} deployment engine on 127.0.0.1: {args.clients} SuperNodes, "
          f"{args.model} at {args.image_size}x{args.image_size}, {args.per_class * 4} demo images, {args.rounds} "
          f"rounds, {args.key_bits}-bit key")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores (every process of the federation on it); "
          f"fastpaillier threads per process: {fp.get_num_threads()}\n")
    print("| app | exchanges per round | seconds per round (each) | mean s/round | vs plain |")
    print("|---|---|---|---:|---:|")
    for row in rows:
        seconds = [r["seconds"] for r in row["rounds"]]
        exchanges = "/".join(str(r["exchanges"]) for r in row["rounds"])
        mean = statistics.mean(seconds)
        print(f"| {row['app']} | {exchanges} | {' / '.join(f'{s:.1f}' for s in seconds)} | {mean:.1f} | "
              f"{mean / plain_mean:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
