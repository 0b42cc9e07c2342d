"""`fedtrain flower-setup`, `flower-evaluate` and `flower-demo`: fedtrain's secure round on Flower's engines."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("fedtrain")

COMMANDS = ("flower-setup", "flower-evaluate", "flower-demo")
# `flower-demo --quick`: a few minutes on 2 CPU cores (options given explicitly win).
QUICK = dict(image_size=64, demo_train_per_class=40, demo_test_per_class=20, rounds=3, clients=3, min_clients=2)


def add_flower_commands(sub, add_run_options: Callable, formatter) -> None:
    """Adds the Flower commands to `fedtrain`'s sub-command parser (options of `fedtrain run` where they apply)."""
    setup = sub.add_parser("flower-setup", formatter_class=formatter,
                           help="a key holder's set-up of a run on Flower: keys, the server folder, the Flower App")
    add_run_options(setup, privacy=False)
    _add_flower_options(setup)
    setup.add_argument("--hospitals-dir", default=None,
                       help="also write each client's part of the data set as a hospital folder there (the "
                            "SuperNodes' data-dir); without it a node takes its part of --data as `fedtrain run` "
                            "splits it")
    setup.add_argument("--server-dir", default=None, help="server folder (default: OUT/server)")
    setup.add_argument("--app-dir", default=None, help="Flower App folder (default: OUT/flower_app)")
    setup.add_argument("--superlink", default="127.0.0.1:8000", help="SuperLink address for the printed commands")

    evaluate = sub.add_parser("flower-evaluate", formatter_class=formatter,
                              help="a key holder writes a Flower run's metrics, checkpoints and report")
    evaluate.add_argument("run_dir", help="the run directory `fedtrain flower-setup` made")
    evaluate.add_argument("--server-dir", default=None,
                          help="the server folder the ServerApp wrote (default: the one flower-setup made)")

    demo = sub.add_parser("flower-demo", formatter_class=formatter,
                          help="the whole run on Flower's deployment engine on this machine: a SuperLink and "
                               "one SuperNode per hospital on 127.0.0.1, then the report")
    add_run_options(demo, privacy=False)
    _add_flower_options(demo)
    demo.add_argument("--quick", action="store_true",
                      help="demo data at 64x64, 40 images per class, 3 clients (--min-clients 2), 3 rounds "
                           "(options given explicitly win)")
    demo.add_argument("--timeout", type=float, default=3600.0, help="seconds the Flower run may take in all")
    demo.add_argument("--engine", default="deployment",
                      help="deployment (a SuperLink and a SuperNode per hospital) or simulation (Flower's simulation "
                           "engine: needs Ray, pip install 'flwr[simulation]==1.42.0')")
    demo.add_argument("--tls", action="store_true",
                      help="TLS between SuperLink, SuperNodes and flwr, with a throw-away CA made in OUT/flower_local")


def _add_flower_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="run directory (default: runs/flower-<time>)")
    parser.add_argument("--keys", metavar="DIR", default=None,
                        help="folder of the keys, created with mode 0700 (default: $FEDTRAIN_KEYS/<run id> or "
                             "~/.fedtrain/keys/<run id>; never inside the run folder or the Flower App)")
    parser.add_argument("--connect-timeout", type=float, default=120.0,
                        help="seconds the ServerApp waits for the hospitals' nodes to connect")
    parser.add_argument("--no-fold", dest="fold", action="store_false",
                        help="give every round its own assembly exchange (by default a round's model is assembled "
                             "by the next round's clients from the slices in its start: one exchange fewer per "
                             "round)")


def run_flower_command(args: argparse.Namespace, argv: list[str], make_config: Callable) -> int:
    """Runs one of COMMANDS (make_config: the CLI's options -> RunConfig)."""
    import importlib.util

    if importlib.util.find_spec("flwr") is None:
        from ..errors import ConfigError

        raise ConfigError(f"`fedtrain {args.command}` needs Flower: pip install 'fastpaillier[fl,flwr]' (flwr==1.42.0)")
    if args.command == "flower-evaluate":
        from .evaluate import evaluate_run

        records = evaluate_run(args.run_dir, server_dir=args.server_dir)
        print(f"Evaluated {len(records)} round(s); report: {Path(args.run_dir) / 'report.md'}")
        return 0
    if args.command == "flower-demo" and args.quick:
        given = {a.split("=")[0] for a in argv if a.startswith("--")}
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
    config = make_config(args)
    config.privacy = "paillier"
    out = Path(args.out or f"runs/flower-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and any(out.iterdir()):
        from ..errors import ConfigError

        raise ConfigError(f"--out {out} already holds files; choose another folder")
    from .prepare import instructions, prepare

    if args.command == "flower-setup":
        setup = prepare(config, out, server_dir=args.server_dir, app_dir=args.app_dir,
                        hospitals_dir=args.hospitals_dir, connect_timeout=args.connect_timeout, fold=args.fold)
        print(f"Flower App: {setup.app_dir}\nServer folder (public): {setup.server_dir}\n"
              f"Keys (hospital c gets clients_private_key.bin, signing_key_c.bin, verifiers.json): {setup.keys_dir}\n")
        print(instructions(setup, superlink=args.superlink))
        return 0
    from .evaluate import evaluate_run
    from .local import run_local

    if args.engine not in ("deployment", "simulation"):
        from ..errors import ConfigError

        raise ConfigError(f"unknown --engine {args.engine!r}; choose deployment or simulation")
    simulation = args.engine == "simulation"
    setup = prepare(config, out, hospitals_dir=None if simulation else out / "hospitals",
                    connect_timeout=args.connect_timeout, fold=args.fold)
    log.info("Flower run of %d hospitals on 127.0.0.1 (%s engine); SuperLink%s and logs in %s", config.clients,
             args.engine, "" if simulation else ", SuperNodes", out / "flower_local")
    info = run_local(setup, out / "flower_local", timeout=args.timeout, tls=args.tls, simulation=simulation)
    log.info("Flower run %s: %s", info.get("run-id"), info.get("status"))
    evaluate_run(out)
    print(f"Report: {out / 'report.md'}")
    return 0
