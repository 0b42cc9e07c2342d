"""What Paillier encryption adds to a federated round: the same configuration plain and encrypted, one run.

    python benchmarks/bench_overhead.py --models smallcnn,densenet121 [--markdown]

For each model it runs one federated round without encryption and one with
encrypted FedAvg (fastpaillier, 2048-bit key, packed updates, CRT encryption,
split decryption), on demo data of 4 clients x 1,280 images of 128x128 (the size
of a 4-class Kaggle Alzheimer set split four ways), 1 local epoch, and prints the
time per phase, the bytes each client sends and receives, and the overhead in
percent beside the paper's claim (encryption adds 15-30%).

Two views of the round time are printed:
- serial: this machine simulates every client one after another, so a phase's
  time is the sum over clients (what this benchmark's wall clock spends);
- parallel: each hospital on its own machine of this kind, so a client phase
  costs its slowest client (the deployment the paper describes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Sequence

import torch

import fastpaillier as fp
from machine import cpu_model
from fedtrain.comparison import mean_bytes_per_client, round_seconds
from fedtrain.models import build_model, count_parameters
from fedtrain.runner import RunConfig, run_rounds, setup_run
from fedtrain.secure_aggregation import EncodingPlan
from fedtrain.training import resolve_device, warm_up

PAPER_CLAIM = "15-30%"


def measure(model: str, privacy: str, args: argparse.Namespace, work_dir: str) -> dict:
    """Runs one round of `model` in `privacy` mode and returns its metrics record."""
    config = RunConfig(model=model, clients=args.clients, rounds=1, local_epochs=1, privacy=privacy,
                       key_bits=args.key_bits, value_bits=args.value_bits, device=args.device,
                       randomness=args.randomness,
                       batch_size=args.batch_size, seed=0, image_size=128,
                       demo_train_per_class=args.images_per_client * args.clients // 4,
                       demo_test_per_class=args.test_per_class, precompute=args.precompute,
                       insecure_keys=args.key_bits < fp.MIN_SECURE_BITS)
    ctx = setup_run(config, os.path.join(work_dir, f"{model}-{privacy}"))
    (record,) = run_rounds(ctx)
    return record


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def rows_for(model: str, plain: dict, secure: dict, params: int, ciphertexts: int) -> list[list[str]]:
    rows = []
    for mode, rec in (("plain FedAvg", plain), ("Paillier FedAvg", secure)):
        t, cp = rec["timings"], rec["critical_path"]
        ser, par = round_seconds(rec, "serial"), round_seconds(rec, "parallel")
        ser0, par0 = round_seconds(plain, "serial"), round_seconds(plain, "parallel")
        overhead = "" if rec is plain else f"{100 * (ser / ser0 - 1):+.1f}% / {100 * (par / par0 - 1):+.1f}%"
        crypto_ser = t["encrypt"] + t["decrypt"] + t["aggregate"] - plain["timings"]["aggregate"]
        crypto_par = cp["encrypt"] + cp["decrypt"] + cp["aggregate"] - plain["critical_path"]["aggregate"]
        crypto = "" if rec is plain else f"{100 * crypto_ser / ser0:.1f}% / {100 * crypto_par / par0:.1f}%"
        c, c0 = rec["cpu_seconds"], plain["cpu_seconds"]
        plain_cpu = sum(c0.values())
        crypto_cpu = c["encrypt"] + c["decrypt"] + c["aggregate"] - c0["aggregate"]
        cpu_cell = f"{sum(c.values()):.0f}" + ("" if rec is plain else f" ({100 * crypto_cpu / plain_cpu:.1f}%)")
        rows.append([
            model, f"{params / 1e6:.2f}M", mode,
            f"{t['train']:.1f} / {cp['train']:.1f}", f"{t['encrypt']:.1f} / {cp['encrypt']:.1f}",
            f"{t['aggregate']:.2f}", f"{t['decrypt']:.1f} / {cp['decrypt']:.1f}",
            f"{ser:.1f} / {par:.1f}", fmt_bytes(mean_bytes_per_client([rec], "sent")),
            fmt_bytes(mean_bytes_per_client([rec], "received")),
            str(ciphertexts) if rec is secure else "", overhead, crypto, cpu_cell,
            PAPER_CLAIM if rec is secure else "",
        ])
    return rows


HEADER = ["model", "params", "mode", "train s", "encode+encrypt s", "aggregate s", "decrypt+decode s",
          "round s", "sent/client", "received/client", "ciphertexts/client", "overhead", "crypto / plain round", "CPU s (crypto / plain)", "paper"]


def render(rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smallcnn,densenet121")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--images-per-client", type=int, default=1280)
    parser.add_argument("--test-per-class", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--value-bits", type=int, default=16)
    parser.add_argument("--randomness", default="djn", help="djn or classic encryption randomness")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precompute", action="store_true",
                        help="fill obfuscator pools in the background while clients train")
    parser.add_argument("--markdown", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    print(f"# bench_overhead: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# machine: {cpu_model()}, {os.cpu_count()} cores, device {device}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), fastpaillier {fp.__version__} ({fp.get_num_threads()} threads)")
    print(f"# {args.clients} clients x {args.images_per_client} images (128x128, demo phantoms), 1 local epoch, "
          f"batch {args.batch_size}, {args.key_bits}-bit key, {args.value_bits}-bit packed values, "
          f"{args.randomness} randomness, "
          f"precompute={'on' if args.precompute else 'off'}")
    print("# overhead: encrypted round time / plain round time - 1 (includes run-to-run noise of training); "
          "crypto / plain round: (encrypt + decrypt + extra aggregation time) / plain round time; "
          "CPU s: CPU seconds of the round on all threads (robust to other load on the machine), in brackets "
          "the crypto CPU time as a share of the plain round's")
    print("# cells 'a / b': a = serial (all clients simulated on this machine, phases summed over clients), "
          "b = parallel (each client on its own machine: slowest client per phase)")
    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        os.environ.setdefault("FEDTRAIN_CACHE", os.path.join(work_dir, "cache"))
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            net = build_model(model)
            warm_up(net, device=resolve_device(args.device), image_size=128)
            params = count_parameters(net)
            state_values = sum(v.numel() for v in net.state_dict().values() if torch.is_floating_point(v))
            pk, _ = fp.generate_keypair(args.key_bits, insecure=args.key_bits < fp.MIN_SECURE_BITS)
            slots = EncodingPlan(args.value_bits, args.clients).update_codec(pk).slots
            ciphertexts = -(-state_values // slots)
            print(f"# {model}: {params:,} parameters, {state_values:,} floating-point state values, "
                  f"{slots} values per ciphertext", flush=True)
            plain = measure(model, "none", args, work_dir)
            print(f"#   plain round done in {plain['round_wall']:.1f} s", flush=True)
            secure = measure(model, "paillier", args, work_dir)
            print(f"#   encrypted round done in {secure['round_wall']:.1f} s", flush=True)
            rows += rows_for(model, plain, secure, params, ciphertexts)
    print(render(rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
