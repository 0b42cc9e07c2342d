"""A run killed at any file-system event, then resumed, ends with exactly the model of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fedtrain

ARGS = ["--model", "smallcnn", "--image-size", "16", "--demo-train-per-class", "4", "--demo-test-per-class", "2",
        "--clients", "2", "--rounds", "2", "--privacy", "none", "--quiet", "--seed", "5"]


def _vectors(run: Path) -> list[torch.Tensor]:
    return [torch.load(run / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"] for r in (1, 2)]


def _records(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if k not in ("timings", "critical_path", "cpu_seconds",
                                                                "round_wall", "wall_time")})
    return out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the child forks one process per run")
def test_killed_at_any_event_resumes_to_the_same_result(tmp_path, demo_cache):
    src = Path(fedtrain.__file__).resolve().parents[1]
    env = dict(os.environ, FEDTRAIN_CACHE=str(demo_cache),
               PYTHONPATH=os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])]))
    child = Path(__file__).with_name("kill_resume_child.py")
    # Events are counted in the child (31 for this run): config.json takes the first three, each round
    # seven (checkpoint temporary file, its rename, predictions file, savez, rename, metrics append, fsync),
    # the report the rest.  5: inside round 1's checkpoint write; 9: predictions written, no metrics line;
    # 16: round 2's metrics line opened, not synced; 25: while the report is drawn.
    kills = [5, 9, 16, 25]
    proc = subprocess.run([sys.executable, str(child), str(tmp_path), *map(str, kills), "--", *ARGS],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["events"] > max(kills), summary  # every kill point lies inside the run
    reference = tmp_path / "reference"
    for k in kills:
        run = tmp_path / f"kill-{k}"
        assert summary["restarts"][str(k)] >= 1
        assert all(torch.equal(a, b) for a, b in zip(_vectors(run), _vectors(reference))), f"event {k}"
        assert _records(run) == _records(reference), f"event {k}"
        assert not list(run.rglob("*.tmp")), f"event {k}: a temporary file was left"
