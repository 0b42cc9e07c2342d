"""`fedtrain run`, `compare`, `report`, `export` and `predict`: the command line, with one-line errors.

Each command checks its options and paths before it imports torch, torchvision, Opacus,
scikit-learn or matplotlib (seconds of imports): a wrong option is reported at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import fastpaillier as fp

from .config import RunConfig, resumed_config
from .errors import ConfigError, FedTrainError
from .paths import check_model_source, check_new_file, export_target, image_paths

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


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where there is a default and the help does not already state it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is argparse.SUPPRESS or "default" in text \
                or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="fedtrain", description=(
        "Federated learning on MRI images with FedAvg over Paillier ciphertexts (Lim et al. 2025)."))
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train a model with federated learning",
                         formatter_class=_Defaults)
    _add_run_options(run)
    run.add_argument("--out", help="run directory (default: runs/<model>-<privacy>-<time>)")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last round")
    run.add_argument("--overwrite", action="store_true",
                     help="start again in an existing --out folder: the old run is moved aside to "
                          "<out>.old-<time>, never deleted")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    compare = sub.add_parser("compare", help="every model x privacy method on one split: the paper's comparison",
                             formatter_class=_Defaults)
    _add_run_options(compare, privacy=False)
    compare.add_argument("--models", default="resnet50,densenet121", help="comma-separated models")
    compare.add_argument("--privacy", default="none,paillier,dp,split", help="comma-separated privacy methods")
    compare.add_argument("--quick", action="store_true",
                         help="demo data, smallcnn, 64x64, 160 images per class, 4 rounds: a few minutes "
                              "on 2 CPU cores (options given explicitly win)")
    compare.add_argument("--encrypted-images", action="store_true",
                         help="also run the experiment that trains a CNN on Paillier-encrypted pixels")
    compare.add_argument("--seeds", default=None,
                         help="comma-separated seeds for plain against Paillier FedAvg (default: the --seed and the "
                              "next two); the first runs every method")
    compare.add_argument("--out", help="output folder (default: runs/compare-<time>)")
    compare.add_argument("--quiet", action="store_true")
    report = sub.add_parser("report", help="(re)draw the plots and report.md of a run directory")
    report.add_argument("run_dir")
    export = sub.add_parser("export", help="write a run's trained model to a file others can load",
                            formatter_class=_Defaults)
    export.add_argument("run_dir", help="a fedtrain run directory")
    export.add_argument("--format", default="state_dict",
                        help="state_dict (torch.load: weights, model name, classes, image size), torchscript "
                             "(torch.jit.load, no fedtrain needed) or onnx (needs the `onnx` extra: `pip install .[fl,onnx]`)")
    export.add_argument("--round", type=int, default=None, help="round to export (default: the last checkpoint)")
    export.add_argument("--out", default=None, help="output file (default: RUN_DIR/model-round<N>.<ext>)")
    predict = sub.add_parser("predict", help="class probabilities of image files, as a CSV",
                             formatter_class=_Defaults)
    predict.add_argument("model", help="a fedtrain run directory or a file written by `fedtrain export`")
    predict.add_argument("images", help="an image file or a folder of images (searched recursively)")
    predict.add_argument("--round", type=int, default=None,
                         help="with a run directory: the round's model (default: the last checkpoint)")
    predict.add_argument("--out", default="predictions.csv", help="CSV file to write (never overwritten)")
    from .flower.commands import add_flower_commands

    add_flower_commands(sub, _add_run_options, _Defaults)
    return parser


def _add_run_options(run: argparse.ArgumentParser, *, privacy: bool = True) -> None:
    """The options of one federated run, shared by `run` and `compare`."""
    run.add_argument("--data", help="ImageFolder root (DATA/train/<class>/..., DATA/test/<class>/...); "
                                    "omit for the built-in demo phantoms")
    run.add_argument("--model", default="smallcnn", help="smallcnn, resnet50 or densenet121")
    run.add_argument("--weights", help="local state-dict file to start from (nothing is downloaded)")
    run.add_argument("--clients", type=int, default=4, help="number of hospitals (clients) the training set is split over")
    run.add_argument("--rounds", type=int, default=None,
                     help="number of FedAvg rounds; if not given: 5, or with --resume the run's own number"
                     if privacy else "number of FedAvg rounds of each run; if not given: 5 (4 with --quick)")
    run.add_argument("--local-epochs", type=int, default=1, help="passes over its data each client makes per round")
    run.add_argument("--fraction", type=float, default=1.0, help="fraction of clients selected per round")
    run.add_argument("--deadline", type=float, default=None,
                     help="paillier: seconds a client may take per exchange; later, silent or malformed replies "
                          "drop it from the round (default: no deadline)")
    run.add_argument("--round-attempts", type=int, default=3,
                     help="paillier: tries of a round, each with a new selection, when fewer than --min-clients "
                          "remain before decryption; then the run stops (resume it later)")
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
    run.add_argument("--key-bits", type=int, default=2048, help="Paillier modulus size (2048 or more)")
    if privacy:
        run.add_argument("--keys", metavar="DIR", default=None,
                         help="folder for the clients' private key, created with mode 0700 (default: "
                              "$FEDTRAIN_KEYS/<run id> or ~/.fedtrain/keys/<run id>; never inside the run folder)")
    run.add_argument("--randomness", default="djn",
                     help="encryption randomness: djn (fixed-base h_s^a, fast) or classic (r^n)")
    run.add_argument("--insecure-keys", action="store_true", help="allow keys below 2048 bits (tests only)")
    run.add_argument("--value-bits", type=int, default=16, help="bits per packed update value")
    run.add_argument("--rounding", default="nearest",
                     help="rounding of the encoded updates: nearest (error at most half a grid step) or "
                          "stochastic (unbiased, error below one grid step, bits from seed, round and client); "
                          "on 3 seeds neither gave better accuracy or distance (docs/encrypted_vs_plain_fedavg.md)")
    if privacy:
        run.add_argument("--shadow-plain", action="store_true",
                         help="paillier: also run plain FedAvg with the same seed and record the per-round distance "
                              "and its bound (3x the training time)")
    run.add_argument("--avg", default="weighted", help="weighted (by sample count) or mean (the paper's)")
    run.add_argument("--partition", default="iid", help="iid or dirichlet")
    run.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration (non-IID)")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda")
    run.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    run.add_argument("--seed", type=int, default=0,
                     help="seed of the data split, partition, initial model, data order and client selection")
    run.add_argument("--batch-size", type=int, default=16, help="local training batch size")
    run.add_argument("--lr", type=float, default=0.05, help="local (client) learning rate")
    run.add_argument("--optimizer", default="sgd", help="sgd or adam")
    run.add_argument("--momentum", type=float, default=0.0,
                     help="SGD momentum of the clients (their optimizer restarts every round)")
    run.add_argument("--bn-stats", default="recompute",
                     help="BatchNorm running statistics each client sends: recompute (one pass over its data with "
                          "the final local weights) or running (PyTorch's moving average during training)")
    run.add_argument("--image-size", type=int, default=128, help="images are resized to this many pixels square")
    run.add_argument("--demo-train-per-class", type=int, default=320, help="demo data: training images per class")
    run.add_argument("--demo-test-per-class", type=int, default=80, help="demo data: test images per class")
    run.add_argument("--precompute-obfuscators", action="store_true",
                     help="fill each client's obfuscator pool in the background while it trains")


def _config(args: argparse.Namespace) -> RunConfig:
    privacy = args.privacy if args.command == "run" else "none"
    return RunConfig(data=args.data, model=args.model, weights=args.weights, clients=args.clients,
                     rounds=_rounds(args), local_epochs=args.local_epochs, fraction=args.fraction,
                     min_clients=args.min_clients, deadline=args.deadline,
                     round_attempts=args.round_attempts,
                     privacy=privacy, key_bits=args.key_bits, insecure_keys=args.insecure_keys,
                     value_bits=args.value_bits, rounding=args.rounding, randomness=args.randomness, avg=args.avg,
                     partition=args.partition, alpha=args.alpha,
                     device=args.device, amp=args.amp, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                     optimizer=args.optimizer, momentum=args.momentum, bn_stats=args.bn_stats,
                     image_size=args.image_size, shadow_plain=getattr(args, "shadow_plain", False),
                     demo_train_per_class=args.demo_train_per_class,
                     demo_test_per_class=args.demo_test_per_class, precompute=args.precompute_obfuscators,
                     cut=args.cut, target_epsilon=args.target_epsilon, delta=args.delta, max_grad_norm=args.max_grad_norm,
                     keys=getattr(args, "keys", None))


def _rounds(args: argparse.Namespace) -> int:
    """--rounds, else 5 for a new run and 0 on --resume (setup_run keeps the larger of it and the saved one)."""
    if args.rounds is not None:
        return args.rounds
    return 0 if getattr(args, "resume", None) else 5  # `compare` has no --resume


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.resume:
        out = Path(args.resume)
        if args.overwrite:
            raise ConfigError("--resume continues a run and --overwrite starts a new one; choose one")
        resumed_config(out, config.rounds).validate()
    else:
        out = Path(args.out or f"runs/{config.model}-{config.privacy}-{time.strftime('%Y%m%d-%H%M%S')}")
        in_use = _run_dir_in_use(out, overwrite=args.overwrite)
        config.validate()  # before anything is moved: a bad option leaves the old run where it was
        if in_use:
            aside = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            out.rename(aside)
            log.info("moved the previous contents of %s to %s", out, aside)
    # The options and paths are good: now the seconds of importing torch and the rest.
    from .progress import RunProgress
    from .report import write_report
    from .runner import run_rounds, setup_run

    terminal = sys.stderr.isatty()
    progress = RunProgress(bars=not args.quiet and terminal, lines=not args.quiet and not terminal)
    ctx = setup_run(config, out, resume=bool(args.resume), progress=progress.local, on_phase=progress.phase)
    log.info("run directory: %s (%s, privacy=%s, %d clients, rounds %d..%d)", out, ctx.config.model,
             ctx.config.privacy, ctx.config.clients, ctx.start_round, ctx.config.rounds)
    progress.start(ctx.config.rounds, ctx.start_round)

    def on_round(record: dict) -> None:
        progress.round_done(record)
        log.info("%s", _round_line(record, ctx.config.privacy))
        if record.get("dropped"):
            log.warning("round %d: dropped %s; completed with %s (leader: client %s)", record["round"],
                        "; ".join(f"client {c}: {why}" for c, why in record["dropped"].items()),
                        record["survivors"], record["leader"])

    try:
        run_rounds(ctx, on_round=on_round)
    finally:
        progress.close()
    report = write_report(out)
    print(f"Report: {report}")
    return 0


def _round_line(record: dict, privacy: str) -> str:
    """The log line of a finished round: metrics, time by phase (the crypto phases only where there are any)."""
    t = record["timings"]
    sh = record.get("shadow")
    phases = f"train {t['train']:.1f}s"
    if privacy == "paillier":  # the other modes neither encrypt nor decrypt
        phases += f", encrypt {t['encrypt']:.1f}s, aggregate {t['aggregate']:.1f}s, decrypt {t['decrypt']:.1f}s"
    return (f"round {record['round']}: accuracy {record['accuracy']:.4f}, macro F1 {record['macro_f1']:.4f}, "
            f"test loss {record['test_loss']:.4f} | {phases}"
            + (f" | epsilon spent {record['epsilon']:.2f}" if "epsilon" in record else "")
            + (f" | plain shadow: accuracy {sh['plain_accuracy']:.4f}, distance {sh['distance']:.2e} "
               f"(growth bound {sh['growth_bound']:.2e}), one round within the codec bound: "
               f"{'yes' if sh['step_within_bound'] else 'NO'}" if sh else ""))


def _run_dir_in_use(out: Path, *, overwrite: bool) -> bool:
    """Whether --out holds files (to be moved aside); raises unless overwrite was asked for."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder")
    if not any(out.iterdir()):
        return False
    if not overwrite:
        raise ConfigError(f"--out {out} already holds files (a previous run?); continue it with "
                          f"`--resume {out}`, choose another --out, or pass --overwrite to move it aside")
    return True


def _export(args: argparse.Namespace) -> int:
    export_target(args.run_dir, args.out, args.format, args.round)  # before torch is imported
    from .export import export_model

    path = export_model(args.run_dir, args.out, fmt=args.format, round_=args.round)
    print(f"Model: {path}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    files = image_paths(args.images)
    check_model_source(args.model, args.round)
    check_new_file(Path(args.out), "predictions")
    from .export import load_any_model, predict_images

    model, info = load_any_model(args.model, args.round)
    path, scored, unreadable = predict_images(model, info, files, args.out)
    note = f"; {unreadable} unreadable file(s), see the error column" if unreadable else ""
    print(f"Predictions: {path} ({scored} image(s), {info.model} of round {info.round}{note})")
    return 0


QUICK = dict(models="smallcnn", image_size=64, rounds=4, demo_train_per_class=160, demo_test_per_class=20)


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
    try:
        seeds = ([int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds
                 else [base.seed, base.seed + 1, base.seed + 2])
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    path = run_comparison(base, out, models=models, methods=methods, encrypted_images=args.encrypted_images,
                          seeds=seeds)
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
        if args.command == "export":
            return _export(args)
        if args.command == "predict":
            return _predict(args)
        if args.command.startswith("flower-"):
            from .flower.commands import run_flower_command

            return run_flower_command(args, argv, _config)
        from .report import write_report

        print(f"Report: {write_report(args.run_dir)}")
        return 0
    except (FedTrainError, fp.FastPaillierError) as exc:
        print(f"fedtrain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "run":
            print("fedtrain: interrupted; continue with `fedtrain run --resume RUN_DIR`", file=sys.stderr)
        else:
            print("fedtrain: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
