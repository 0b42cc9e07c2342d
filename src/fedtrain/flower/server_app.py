"""The Flower ServerApp of fedtrain: the secure round of `fedtrain run`, the server holding the public key only.

It reads the server folder the key holder's `fedtrain flower-setup` wrote (public key, the clients'
verification keys, the round-0 model, the model's layout; run config `server-dir`), asks the
connected nodes which fedtrain client each is, then runs every round with `fedtrain.rounds`
(the same Server and the same sequence of exchanges as in-process) over a FlowerTransport.  After
each round's model is kept it writes rounds/round_NNNN.msg: the sealed global model, the sealed training
reports and the round's protocol record (what the server knows anyway).  Rounds are folded by default
(run config fold-rounds): a round's model comes back, sealed, during the next round, so its record is
written then (the last round's at once); a later Flower run of the same server folder goes on after the
last of them (with `--run-config 'rounds=N'`, to more rounds).  A key holder turns them into the run
directory's metrics and report (`fedtrain flower-evaluate`).  Imports no torch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

import fastpaillier as fp

from ..authentication import Verifiers
from ..errors import ConfigError
from ..messages import Message
from ..rounds import run_round_with_retries
from ..server import Server
from .common import (CONNECT_TIMEOUT_KEY, EVENTS_FILE, FOLD_KEY, INITIAL_MODEL_FILE, MODEL_FILE, PUBLIC_KEY_FILE,
                     ROUNDS_DIR, RUN_FILE, SERVER_DIR_KEY, VERIFIERS_FILE, EventLog, completed_rounds, config_values,
                     require, round_file, write_json)
from .transport import FlowerTransport, discover, refresh

DEFAULT_CONNECT_TIMEOUT = 120.0  # seconds to wait for the hospitals' nodes to connect and say who they are

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Runs every round of the run over the grid's nodes."""
    serve(grid, dict(context.run_config), flower_run_id=context.run_id)


def round_record(round_: int, result: dict[str, Any], global_message: bytes, reports: dict[int, bytes]) -> bytes:
    """What the ServerApp keeps of a completed round, as a fedtrain message (sealed blobs only)."""
    blobs = {"global": global_message}
    blobs.update({f"report{cid}": report for cid, report in sorted(reports.items())})
    return Message("server_round", round_, "server", {"result": result}, blobs).to_bytes()


def write_kept_rounds(server_dir: Path, server: Server, unwritten: dict[int, tuple[dict, dict[int, bytes]]],
                      events: EventLog) -> None:
    """Writes the record of each completed round whose sealed model the server now holds (and forgets it)."""
    for r in sorted(unwritten):
        kept = server.kept_global(r)
        if kept is None:
            continue
        result, reports = unwritten.pop(r)
        result["sealed_by"] = server.sealed_by.get(r)
        path = round_file(server_dir, r)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(round_record(r, result, kept, reports))
        tmp.replace(path)
        events("round kept", round=r, sealed_by=result["sealed_by"])


def serve(grid: Grid, run_config: dict[str, Any], *, flower_run_id: int | None = None) -> list[dict]:
    """The ServerApp's work; returns the protocol record of each round."""
    values = config_values(run_config)
    server_dir = Path(require(run_config, SERVER_DIR_KEY)).expanduser()
    if not (server_dir / MODEL_FILE).is_file():
        raise ConfigError(f"{server_dir} holds no {MODEL_FILE}: point run config {SERVER_DIR_KEY!r} at the server "
                          "folder `fedtrain flower-setup` wrote")
    model = json.loads((server_dir / MODEL_FILE).read_text())
    run_id = str(require(run_config, "run-id"))
    if model.get("run_id") != run_id:
        raise ConfigError(f"the server folder {server_dir} belongs to fedtrain run {model.get('run_id')!r}, "
                          f"the run config to {run_id!r}")
    if values.get("privacy", "paillier") != "paillier":
        raise ConfigError("fedtrain on Flower runs the secure round only (privacy 'paillier')")
    events = EventLog(server_dir / EVENTS_FILE)
    try:
        return _serve(grid, run_config, values, server_dir, model, run_id, events, flower_run_id)
    except BaseException as exc:
        events("failed", error=f"{type(exc).__name__}: {exc}")
        _finish(server_dir, "failed", f"{type(exc).__name__}: {exc}")
        raise


def _serve(grid: Grid, run_config: dict[str, Any], values: dict[str, Any], server_dir: Path, model: dict,
           run_id: str, events: EventLog, flower_run_id: int | None) -> list[dict]:
    num_clients = int(require(run_config, "clients"))
    rounds = int(require(run_config, "rounds"))
    deadline = values.get("deadline")
    deadline = None if deadline is None else float(deadline)
    insecure = bool(values.get("insecure_keys", False))
    public_key = fp.PublicKey.load(server_dir / PUBLIC_KEY_FILE, insecure=insecure)
    verifiers = Verifiers.from_json((server_dir / VERIFIERS_FILE).read_text())
    server = Server(num_clients=num_clients, fraction=float(values.get("fraction", 1.0)),
                    seed=int(values.get("seed", 0)), privacy="paillier", avg=str(values.get("avg", "weighted")),
                    value_bits=int(values.get("value_bits", 16)), rounding=str(values.get("rounding", "nearest")),
                    model_size=int(model["model_size"]), num_tensors=int(model["num_tensors"]),
                    min_clients=int(require(run_config, "min-clients")), verifiers=verifiers,
                    public_key=public_key)
    server.install_global((server_dir / INITIAL_MODEL_FILE).read_bytes())
    done = completed_rounds(server_dir)
    if done:  # an earlier Flower run of this server folder: go on after its last round, as `fedtrain run --resume`
        if done != list(range(1, len(done) + 1)):
            raise ConfigError(f"the rounds kept in {server_dir / ROUNDS_DIR} are {done}, not 1..{len(done)}")
        last = Message.from_bytes(round_file(server_dir, done[-1]).read_bytes())
        server.install_global(last.blob("global"))  # sealed, and signed by that round's leader (checked)
    write_json(server_dir / RUN_FILE, {"flower_run_id": flower_run_id, "run_id": run_id, "status": "running",
                                       "started": time.time(), "run_config": run_config})
    events("start", flower_run_id=flower_run_id, run_id=run_id, rounds=rounds, clients=num_clients,
           after_round=len(done))
    nodes = discover(grid, num_clients, run_id=run_id, events=events,
                     timeout=float(run_config.get(CONNECT_TIMEOUT_KEY, DEFAULT_CONNECT_TIMEOUT)))
    events("nodes", nodes={str(c): n for c, n in sorted(nodes.items())})
    current = {"round": 0}
    transport = FlowerTransport(grid, nodes, deadline=deadline, events=events, group=lambda: str(current["round"]))
    records: list[dict] = []
    fold = bool(run_config.get(FOLD_KEY, True))
    unwritten: dict[int, tuple[dict, dict[int, bytes]]] = {}  # completed rounds whose model is not back yet
    try:
        for r in range(len(done) + 1, rounds + 1):
            current["round"] = r
            refresh(grid, nodes, num_clients, run_id=run_id, events=events)
            events("round", round=r, nodes={str(c): n for c, n in sorted(nodes.items())})
            result = run_round_with_retries(server, transport, r, int(values.get("round_attempts", 3)),
                                            "submit the app again once the clients are back: the "
                                            "ServerApp goes on after the last round it completed",
                                            fold_next=fold and r < rounds)
            unwritten[r] = (result, dict(server.reports))
            records.append(result)
            events("round done", round=r, survivors=result["survivors"], dropped=result["dropped"],
                   leader=result["leader"], attempts=result["attempts"], exchanges=result["exchanges"],
                   assembly_deferred=result["assembly_deferred"])
            write_kept_rounds(server_dir, server, unwritten, events)
    finally:  # a run that stops keeps every round whose model came back
        write_kept_rounds(server_dir, server, unwritten, events)
    events("done", rounds=len(records))
    _finish(server_dir, "completed", "")
    return records


def _finish(server_dir: Path, status: str, error: str) -> None:
    path = server_dir / RUN_FILE
    info = json.loads(path.read_text()) if path.exists() else {}
    info.update(status=status, error=error, finished=time.time())
    write_json(path, info)
