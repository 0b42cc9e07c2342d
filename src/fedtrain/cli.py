"""`fedtrain run` and `fedtrain report`: the command line, with one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import fastpaillier as fp

from .errors import FedTrainError

log = logging.getLogger("fedtrain")


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like fedtrain's own errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"fedtrain: error: {message} (see `{self.prog} --help`)\n")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each record."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="fedtrain", description=(
        "Federated learning on MRI images with FedAvg over Paillier ciphertexts (Lim et al. 2025)."))
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train a model with federated learning",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_run_options(run)
    run.add_argument("--out", help="run directory (default: runs/<model>-<privacy>-<time>)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last round")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    compare = sub.add_parser("compare", help="every model x privacy method on one split: the paper's comparison",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_run_options(compare, privacy=False)
    compare.add_argument("--models", default="resnet50,densenet121", help="comma-separated models")
    compare.add_argument("--privacy", default="none,paillier,dp,split", help="comma-separated privacy methods")
    compare.add_argument("--quick", action="store_true",
                         help="demo data, smallcnn, 64x64, 160 images per class, 4 rounds, lr 0.05: a few minutes "
                              "on 2 CPU cores (options given explicitly win)")
    compare.add_argument("--encrypted-images", action="store_true",
                         help="also run the experiment that trains a CNN on Paillier-encrypted pixels")
    compare.add_argument("--out", help="output folder (default: runs/compare-<time>)")
    compare.add_argument("--quiet", action="store_true")
    report = sub.add_parser("report", help="(re)draw the plots and report.md of a run directory")
    report.add_argument("run_dir")
    return parser


def _add_run_options(run: argparse.ArgumentParser, *, privacy: bool = True) -> None:
    """The options of one federated run, shared by `run` and `compare`."""
    run.add_argument("--data", help="ImageFolder root (DATA/train/<class>/..., DATA/test/<class>/...); "
                                    "omit for the built-in demo phantoms")
    run.add_argument("--model", default="smallcnn", help="smallcnn, resnet50 or densenet121")
    run.add_argument("--weights", help="local state-dict file to start from (nothing is downloaded)")
    run.add_argument("--clients", type=int, default=4)
    run.add_argument("--rounds", type=int, default=None,
                     help="number of rounds (default: 5; with --resume, the run's own number)")
    run.add_argument("--local-epochs", type=int, default=1)
    run.add_argument("--fraction", type=float, default=1.0, help="fraction of clients selected per round")
    run.add_argument("--deadline", type=float, default=None,
                     help="paillier: seconds a client may take per exchange; later, silent or malformed replies "
                          "drop it from the round (default: no deadline)")
    run.add_argument("--min-clients", type=int, default=3,
                     help="paillier: fewest updates a round may aggregate (at least 2; clients refuse smaller rounds)")
    if privacy:
        run.add_argument("--privacy", default="paillier",
                         help="paillier (encrypted FedAvg), none (plain FedAvg), dp (FedAvg with DP-SGD "
                              "clients) or split (split learning)")
    run.add_argument("--target-epsilon", type=float, default=8.0, help="dp: privacy budget over all rounds")
    run.add_argument("--delta", type=float, default=1e-5, help="dp: target delta")
    run.add_argument("--max-grad-norm", type=float, default=1.0, help="dp: per-sample gradient clipping norm")
    run.add_argument("--cut", help="split: the layer after which the client part ends (default per model)")
    run.add_argument("--key-bits", type=int, default=2048)
    run.add_argument("--randomness", default="djn",
                     help="encryption randomness: djn (fixed-base h_s^a, fast) or classic (r^n)")
    run.add_argument("--insecure-keys", action="store_true", help="allow keys below 2048 bits (tests only)")
    run.add_argument("--value-bits", type=int, default=16, help="bits per packed update value")
    run.add_argument("--avg", default="weighted", help="weighted (by sample count) or mean (the paper's)")
    run.add_argument("--partition", default="iid", help="iid or dirichlet")
    run.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration (non-IID)")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda")
    run.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--lr", type=float, default=0.01)
    run.add_argument("--optimizer", default="sgd", help="sgd or adam")
    run.add_argument("--image-size", type=int, default=128)
    run.add_argument("--demo-train-per-class", type=int, default=320)
    run.add_argument("--demo-test-per-class", type=int, default=80)
    run.add_argument("--precompute-obfuscators", action="store_true",
                     help="fill each client's obfuscator pool in the background while it trains")


def _config(args: argparse.Namespace):
    from .runner import RunConfig

    privacy = args.privacy if args.command == "run" else "none"
    return RunConfig(data=args.data, model=args.model, weights=args.weights, clients=args.clients,
                     rounds=_rounds(args), local_epochs=args.local_epochs, fraction=args.fraction,
                     min_clients=args.min_clients, deadline=args.deadline,
                     privacy=privacy, key_bits=args.key_bits, insecure_keys=args.insecure_keys,
                     value_bits=args.value_bits, randomness=args.randomness, avg=args.avg,
                     partition=args.partition, alpha=args.alpha,
                     device=args.device, amp=args.amp, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                     optimizer=args.optimizer, image_size=args.image_size,
                     demo_train_per_class=args.demo_train_per_class,
                     demo_test_per_class=args.demo_test_per_class, precompute=args.precompute_obfuscators,
                     cut=args.cut, target_epsilon=args.target_epsilon, delta=args.delta, max_grad_norm=args.max_grad_norm)


def _rounds(args: argparse.Namespace) -> int:
    """--rounds, else 5 for a new run and 0 on --resume (setup_run keeps the larger of it and the saved one)."""
    if args.rounds is not None:
        return args.rounds
    return 0 if getattr(args, "resume", None) else 5  # `compare` has no --resume


class _Bars:
    """tqdm progress bars: one for rounds, one per client's local training."""

    def __init__(self, rounds: int, start: int, enabled: bool) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.enabled = enabled
        self.rounds = tqdm(total=rounds, initial=start - 1, desc="rounds", unit="round", disable=not enabled,
                           position=0)

    def local(self, cid: int, round_: int):
        bar = self._tqdm(desc=f"  round {round_} client {cid}", unit="batch", leave=False,
                         disable=not self.enabled, position=1)

        def update(epoch: int, done: int, total: int) -> None:
            if bar.total != total:
                bar.reset(total=total)
            bar.set_postfix_str(f"epoch {epoch + 1}", refresh=False)
            bar.n = done
            bar.refresh()
            if done == total:
                bar.reset(total=total)

        return update

    def round_done(self, record: dict) -> None:
        self.rounds.update(1)
        self.rounds.set_postfix_str(f"acc {record['accuracy']:.3f} loss {record['test_loss']:.3f}")


def _run(args: argparse.Namespace) -> int:
    from .runner import run_rounds, setup_run
    from .report import write_report

    config = _config(args)
    if args.resume:
        out = Path(args.resume)
    else:
        out = Path(args.out or f"runs/{config.model}-{config.privacy}-{time.strftime('%Y%m%d-%H%M%S')}")
    bars: _Bars | None = None
    holder: dict = {}

    def progress(cid: int, round_: int):
        return holder["bars"].local(cid, round_) if "bars" in holder else None

    ctx = setup_run(config, out, resume=bool(args.resume), progress=progress)
    bars = _Bars(ctx.config.rounds, ctx.start_round, enabled=not args.quiet and sys.stderr.isatty())
    holder["bars"] = bars
    log.info("run directory: %s (%s, privacy=%s, %d clients, rounds %d..%d)", out, ctx.config.model,
             ctx.config.privacy, ctx.config.clients, ctx.start_round, ctx.config.rounds)

    def on_round(record: dict) -> None:
        bars.round_done(record)
        t = record["timings"]
        log.info("round %d: accuracy %.4f, macro F1 %.4f, test loss %.4f | train %.1fs, encrypt %.1fs, "
                 "aggregate %.1fs, decrypt %.1fs%s", record["round"], record["accuracy"], record["macro_f1"],
                 record["test_loss"], t["train"], t["encrypt"], t["aggregate"], t["decrypt"],
                 f" | epsilon spent {record['epsilon']:.2f}" if "epsilon" in record else "")

    run_rounds(ctx, on_round=on_round)
    bars.rounds.close()
    report = write_report(out)
    print(f"Report: {report}")
    return 0


QUICK = dict(models="smallcnn", image_size=64, rounds=4, demo_train_per_class=160, demo_test_per_class=20,
             lr=0.05)


def _compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .comparison import run_comparison

    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    if args.quick:
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
    base = _config(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    methods = [m.strip() for m in args.privacy.split(",") if m.strip()]
    out = Path(args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    path = run_comparison(base, out, models=models, methods=methods, encrypted_images=args.encrypted_images)
    print(f"Comparison: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fedtrain` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "compare":
            return _compare(args, argv)
        from .report import write_report

        print(f"Report: {write_report(args.run_dir)}")
        return 0
    except (FedTrainError, fp.FastPaillierError) as exc:
        print(f"fedtrain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedtrain: interrupted; continue with `fedtrain run --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
