"""What the ServerApp, the ClientApp and the key holder's steps agree on: records, config keys, files.

Torch-free (the ServerApp imports it).  A fedtrain protocol message travels as one Flower Array of
uint8 (stype STYPE) in the ArrayRecord RECORD_KEY of a Message of type MESSAGE_TYPE ("train.fedtrain":
Flower routes it to the ClientApp's `@app.train("fedtrain")`); Flower chunks large arrays itself.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MESSAGE_TYPE = "train.fedtrain"  # a protocol message: ClientApp.train("fedtrain")
HELLO_TYPE = "query.fedtrain"  # which fedtrain client a node is: ClientApp.query("fedtrain")
RECORD_KEY = "fedtrain"
ARRAY_KEY = "message"
STYPE = "fedtrain.Message"
TIMINGS_KEY = "fedtrain.timings"
HELLO_KEY = "fedtrain.hello"

# Files of the server folder: written by the key holder's set-up (public only), then by the ServerApp.
PUBLIC_KEY_FILE = "public_key.bin"
VERIFIERS_FILE = "verifiers.json"
INITIAL_MODEL_FILE = "initial_global.msg"
MODEL_FILE = "model.json"
EVENTS_FILE = "events.jsonl"
RUN_FILE = "run.json"
ROUNDS_DIR = "rounds"

# Node config keys of a SuperNode (one per hospital).
NODE_CLIENT_ID = "client-id"
NODE_PRIVATE_KEY = "private-key-file"
NODE_SIGNING_KEY = "signing-key-file"
NODE_VERIFIERS = "verifiers-file"
NODE_DATA_DIR = "data-dir"
NODE_DEVICE = "device"
NODE_MIN_CLIENTS = "min-clients"

SIGNING_KEY_NAME = "signing_key_{cid}.bin"  # beside the private key file, one per client

# RunConfig fields whose default is None: "" in a Flower run config (TOML has no null).
OPTIONAL_FIELDS = frozenset({"data", "weights", "deadline", "cut", "keys"})
# Keys of the Flower run config beyond RunConfig's fields.
SERVER_DIR_KEY = "server-dir"
CLASS_NAMES_KEY = "class-names"
CONNECT_TIMEOUT_KEY = "connect-timeout"
# Whether a round's model may be assembled by the next round's clients (fedtrain.rounds: one exchange fewer).
FOLD_KEY = "fold-rounds"


def round_file(server_dir: Path, round_: int) -> Path:
    """The ServerApp's record of a completed round: the sealed global model, the sealed reports, the protocol log."""
    return Path(server_dir) / ROUNDS_DIR / f"round_{round_:04d}.msg"


def completed_rounds(server_dir: Path) -> list[int]:
    """The rounds whose record the ServerApp wrote in `server_dir` (rounds/round_NNNN.msg)."""
    folder = Path(server_dir) / ROUNDS_DIR
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("round_*.msg")) if folder.is_dir() else []


def to_key(field_name: str) -> str:
    return field_name.replace("_", "-")


def to_field(key: str) -> str:
    return key.replace("-", "_")


def run_config_values(values: dict[str, Any]) -> dict[str, Any]:
    """RunConfig fields (snake_case, None allowed) as Flower run config entries (kebab-case, "" for None)."""
    out = {}
    for name, value in values.items():
        if value is None:
            value = ""
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"run option {name} = {value!r} cannot go in a Flower run config")
        out[to_key(name)] = value
    return out


def config_values(run_config: dict[str, Any]) -> dict[str, Any]:
    """A Flower run config back as RunConfig fields (snake_case; "" is None for the optional ones)."""
    out = {}
    for key, value in run_config.items():
        name = to_field(key)
        out[name] = None if name in OPTIONAL_FIELDS and value == "" else value
    return out


def require(run_config: dict[str, Any], key: str) -> Any:
    if key not in run_config:
        raise ConfigError(f"the Flower run config lacks {key!r}; make the app with `fedtrain flower-setup`")
    return run_config[key]


def write_json(path: Path, value: Any) -> None:
    """JSON written to a temporary file and renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


class EventLog:
    """events.jsonl of the server folder: one JSON line per step the ServerApp takes (a run can be followed)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, **fields: Any) -> None:
        line = json.dumps({"time": time.time(), "event": event, **fields}, default=str)
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()


def read_events(path: Path) -> list[dict]:
    """The complete lines of an events.jsonl (a line being written is skipped)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
