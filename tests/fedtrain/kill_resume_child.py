"""Child process of test_kill_resume.py: runs fedtrain, killed (os._exit) at chosen file-system events.

Usage: python kill_resume_child.py WORK_DIR EVENT [EVENT ...] -- FEDTRAIN_RUN_ARGS...
It imports torch and fedtrain once, then forks, for the reference and for each EVENT, a fresh
process (no torch computation has run in this one, so each fork starts its thread pools anew):
the reference run goes to WORK_DIR/reference; for EVENT k a run to WORK_DIR/kill-k is killed just
before its k-th file-system event (an open for writing, fsync, replace or rename, torch.save,
np.savez), then resumed with `--resume` (or started again if it died before writing config.json)
until it finishes.  Prints one JSON line: the number of events of the reference run and, per EVENT,
how many restarts it took.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from fedtrain.cli import main

KILLED = 137


def _hook(kill_at: int | None, counter: list[int]) -> None:
    """Wraps the file-system calls fedtrain makes so that the kill_at-th one exits the process first."""

    def tick() -> None:
        counter[0] += 1
        if kill_at is not None and counter[0] >= kill_at:
            os._exit(KILLED)

    def wrap(owner, name):
        real = getattr(owner, name)

        def wrapped(*args, **kwargs):
            tick()
            return real(*args, **kwargs)

        setattr(owner, name, wrapped)

    for owner, name in ((os, "fsync"), (os, "replace"), (os, "rename"), (torch, "save"), (np, "savez")):
        wrap(owner, name)
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            tick()
        return real_open(file, mode, *args, **kwargs)

    builtins.open = open_


def _fork_run(argv: list[str], kill_at: int | None) -> tuple[int, int]:
    """(exit status, events seen) of fedtrain main(argv) in a forked child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        counter = [0]
        _hook(kill_at, counter)
        sys.stdout = sys.stderr = open(os.devnull, "w")
        code = main(argv)
        os.write(write, str(counter[0]).encode())
        os._exit(code)
    os.close(write)
    events = os.read(read, 64)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), int(events or b"-1")


def main_() -> None:
    split = sys.argv.index("--")
    work, kills, args = Path(sys.argv[1]), [int(k) for k in sys.argv[2:split]], sys.argv[split + 1:]
    code, events = _fork_run(["run", *args, "--out", str(work / "reference")], None)
    if code != 0:
        raise SystemExit(f"reference run failed with {code}")
    restarts = {}
    for k in kills:
        out = work / f"kill-{k}"
        code, _ = _fork_run(["run", *args, "--out", str(out)], k)
        tries = 0
        while code != 0:
            if code != KILLED or tries > 3:
                raise SystemExit(f"event {k}: run ended with {code} after {tries} restarts")
            tries += 1
            resume = (out / "config.json").exists()
            argv = ["run", "--resume", str(out), "--quiet"] if resume else ["run", *args, "--out", str(out),
                                                                            "--overwrite"]
            code, _ = _fork_run(argv, None)
        restarts[k] = tries
    print(json.dumps({"events": events, "restarts": restarts}))


if __name__ == "__main__":
    main_()
