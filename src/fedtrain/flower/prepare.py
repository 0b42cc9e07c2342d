"""The key holder's set-up of a Flower run (`fedtrain flower-setup`).

Run by whoever makes the keys (the dealer, a key holder like the hospitals):

- the run directory, as `fedtrain run` starts it (config.json; metrics, checkpoints and report come
  later from `fedtrain flower-evaluate`);
- in the keys folder (never inside the run folder or the Flower App folder): the clients' Paillier
  private key and the dealer secret as `fedtrain run` keeps them, and for the hospitals
  signing_key_<c>.bin (client c's own signing key, for hospital c only) and verifiers.json (public);
- the server folder (public material only, for the SuperLink's machine): the public key, the clients'
  verification keys, the round-0 model (random, plain, as in-process) and the model's layout;
- the Flower App folder: a pyproject.toml naming fedtrain's ServerApp and ClientApp, with every run
  option as run config.  `flwr run` uploads this folder; it holds no key.
- optionally, each client's part of the data set as a hospital folder (what the demo's SuperNodes get).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..authentication import derive_all
from ..errors import ConfigError
from .common import (CLASS_NAMES_KEY, CONNECT_TIMEOUT_KEY, FOLD_KEY, INITIAL_MODEL_FILE, MODEL_FILE, NODE_CLIENT_ID,
                     NODE_DATA_DIR, NODE_PRIVATE_KEY, PUBLIC_KEY_FILE, SERVER_DIR_KEY, SIGNING_KEY_NAME,
                     VERIFIERS_FILE, run_config_values, write_json)

SETUP_FILE = "flower.json"  # in the run directory: where the app, server folder, keys and hospitals are
APP_NAME = "fedtrain-flower"
FLWR_VERSION = "1.42.0"


@dataclass
class FlowerSetup:
    """Where a prepared Flower run's pieces are, and each hospital's node config."""

    out_dir: Path
    app_dir: Path
    server_dir: Path
    keys_dir: Path
    run_id: str
    clients: int
    node_configs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def node_config_arg(self, cid: int) -> str:
        """`flower-supernode --node-config` of hospital `cid`: space-separated key=value pairs."""
        parts = []
        for key, value in self.node_configs[cid].items():
            parts.append(f"{key}={value}" if isinstance(value, int) else f"{key}={json.dumps(str(value))}")
        return " ".join(parts)

    def save(self) -> Path:
        path = self.out_dir / SETUP_FILE
        write_json(path, {"app_dir": str(self.app_dir), "server_dir": str(self.server_dir),
                          "keys_dir": str(self.keys_dir), "run_id": self.run_id, "clients": self.clients,
                          "node_configs": {str(c): v for c, v in self.node_configs.items()}})
        return path

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> "FlowerSetup":
        out = Path(out_dir)
        path = out / SETUP_FILE
        if not path.is_file():
            raise ConfigError(f"{out} holds no {SETUP_FILE}: prepare it with `fedtrain flower-setup --out {out}`")
        info = json.loads(path.read_text())
        return cls(out, Path(info["app_dir"]), Path(info["server_dir"]), Path(info["keys_dir"]), info["run_id"],
                   int(info["clients"]), {int(c): v for c, v in info["node_configs"].items()})


def app_pyproject(run_config: dict[str, Any]) -> str:
    """The Flower App's pyproject.toml (Flower's app layout, as `flwr new` makes it), fedtrain's components."""
    import tomli_w

    document = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {
            "name": APP_NAME, "version": "1.0.0", "license": "Apache-2.0",
            "description": "fedtrain: FedAvg over Paillier ciphertexts (statistics, packed update, split "
                           "decryption, sealed global model) as a Flower App",
            # Run with the environment fedtrain is installed in: the SuperLink with
            # --disable-runtime-dependency-installation (fastpaillier is not fetched by Flower).
            "dependencies": [f"flwr=={FLWR_VERSION}"],
        },
        "tool": {
            "hatch": {"build": {"targets": {"wheel": {"packages": ["."]}}}},
            "flwr": {"app": {
                "publisher": "fedtrain",
                "components": {"serverapp": "fedtrain.flower.server_app:app",
                               "clientapp": "fedtrain.flower.client_app:app"},
                "config": run_config,
            }},
        },
    }
    header = ("# A Flower App of fedtrain, written by `fedtrain flower-setup`. `flwr run` uploads this folder:\n"
              "# it holds no key. Override an option with `flwr run . <connection> --run-config 'rounds=10'`.\n")
    return header + tomli_w.dumps(document)


def prepare(config, out_dir: str | os.PathLike, *, server_dir: str | os.PathLike | None = None,
            app_dir: str | os.PathLike | None = None, hospitals_dir: str | os.PathLike | None = None,
            connect_timeout: float = 120.0, fold: bool = True, progress=None) -> FlowerSetup:
    """Sets up a Flower run of `config` (a runner.RunConfig, privacy 'paillier') in `out_dir`."""
    from ..runner import DEALER_SECRET_NAME, KEY_FILE_NAME, private_key_path, setup_run
    from .data import export_hospital_folder

    if config.privacy != "paillier":
        raise ConfigError("fedtrain on Flower runs the secure round only: use --privacy paillier")
    if config.shadow_plain:
        raise ConfigError("--shadow-plain runs plain FedAvg beside the run in one process; it has no Flower form")
    out = Path(out_dir)
    ctx = setup_run(config, out, progress=progress)
    config = ctx.config
    key_file = private_key_path(config, out)
    keys_dir = key_file.parent
    signers, verifiers = derive_all((keys_dir / DEALER_SECRET_NAME).read_bytes(), run_id=config.run_id,
                                    num_clients=config.clients)
    for cid, signer in signers.items():
        path = keys_dir / SIGNING_KEY_NAME.format(cid=cid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(signer.to_bytes())
        os.chmod(path, 0o600)
    (keys_dir / VERIFIERS_FILE).write_text(verifiers.to_json())

    server = Path(server_dir) if server_dir is not None else out / "server"
    server.mkdir(parents=True, exist_ok=True)
    ctx.server.public_key.save(server / PUBLIC_KEY_FILE)
    (server / VERIFIERS_FILE).write_text(verifiers.to_json())
    (server / INITIAL_MODEL_FILE).write_bytes(ctx.server.global_message())
    write_json(server / MODEL_FILE, {"run_id": config.run_id, "model": config.model, "clients": config.clients,
                                     "model_size": ctx.server.model_size, "num_tensors": ctx.server.num_tensors,
                                     "class_names": list(ctx.data.class_names)})

    values = dataclasses.asdict(config)
    values.update(keys=None, weights=None)  # the keys come by node config; the start model is in the server folder
    run_config = run_config_values(values)
    run_config.update({SERVER_DIR_KEY: str(server.resolve()), CLASS_NAMES_KEY: ",".join(ctx.data.class_names),
                       CONNECT_TIMEOUT_KEY: float(connect_timeout), FOLD_KEY: bool(fold),
                       # Flower's simulation engine only (its nodes have no node config): the key file's path
                       NODE_PRIVATE_KEY: ""})
    app = Path(app_dir) if app_dir is not None else out / "flower_app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(app_pyproject(run_config))

    nodes: dict[int, dict[str, Any]] = {}
    for cid in range(config.clients):
        node: dict[str, Any] = {NODE_CLIENT_ID: cid, NODE_PRIVATE_KEY: str((keys_dir / KEY_FILE_NAME).resolve())}
        if hospitals_dir is not None:
            folder = export_hospital_folder(ctx.clients[cid].data, Path(hospitals_dir) / f"hospital_{cid}")
            node[NODE_DATA_DIR] = str(folder.resolve())
        nodes[cid] = node
    setup = FlowerSetup(out, app.resolve(), server.resolve(), keys_dir.resolve(), config.run_id, config.clients,
                        nodes)
    setup.save()
    return setup


def instructions(setup: FlowerSetup, *, superlink: str = "127.0.0.1:8000") -> str:
    """The commands that run a prepared app on one machine (insecure: 127.0.0.1 only; TLS across machines)."""
    host, port = superlink.rsplit(":", 1)
    lines = [f"# SuperLink (on the server's machine; the server folder is {setup.server_dir}):",
             f"flower-superlink --insecure --host {host} --port {port} --disable-runtime-dependency-installation"]
    for cid in range(setup.clients):
        lines.append(f"# hospital {cid} (on its own machine, with its key files and data):")
        lines.append(f"flower-supernode --insecure --superlink {superlink} --port {9200 + cid} "
                     f"--node-config {shlex.quote(setup.node_config_arg(cid))}")
    lines += ["# the run: a connection in the Flower configuration ($FLWR_HOME/config.toml, else ~/.flwr/config.toml)",
              "#   [superlink.fedtrain]",
              f'#   address = "{superlink}"',
              "#   insecure = true",
              f"flwr run {shlex.quote(str(setup.app_dir))} fedtrain --stream",
              "# its outcome is its status (flwr run can exit 0 for a run that failed): finished:completed",
              "flwr ls fedtrain --format json",
              "# then a key holder writes the metrics, checkpoints and report:",
              f"fedtrain flower-evaluate {shlex.quote(str(setup.out_dir))}"]
    return "\n".join(lines)
