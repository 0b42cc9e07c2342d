"""`fedtrain compare --quick` writes every artifact, and its tables repeat the runs' own metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fedtrain.cli import main
from fedtrain.comparison import METHOD_NAMES, PAPER_TABLE2
from fedtrain.report import load_metrics

TINY = ["--rounds", "2", "--clients", "2", "--min-clients", "2", "--demo-train-per-class", "8", "--demo-test-per-class", "3",
        "--image-size", "32", "--key-bits", "512", "--insecure-keys", "--batch-size", "8", "--device", "cpu",
        "--quiet", "--seeds", "0,1"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    mp = pytest.MonkeyPatch()
    mp.setenv("FEDTRAIN_CACHE", str(out / "cache"))
    try:
        assert main(["compare", "--quick", "--encrypted-images", "--out", str(out / "cmp"), *TINY]) == 0
    finally:
        mp.undo()
    return out / "cmp"


def test_every_artifact_is_written(compared):
    expected = ["comparison.md", "comparison.json", "table2.md", "table1_smallcnn.md", "costs.md", "encryption.md",
                "runs/smallcnn-none-seed1/metrics.jsonl", "runs/smallcnn-paillier-seed1/metrics.jsonl",
                "accuracy_smallcnn.png", "encrypted_images.md", "encrypted_images.json"]
    for method in ("none", "paillier", "dp", "split"):
        expected += [f"confusion_matrix_smallcnn_{method}.png", f"roc_smallcnn_{method}.png",
                     f"runs/smallcnn-{method}/metrics.jsonl", f"runs/smallcnn-{method}/report.md"]
    for name in expected:
        assert (compared / name).is_file(), name
    text = (compared / "comparison.md").read_text()
    for claim in ("DenseNet121 beats ResNet50", "Encryption costs accuracy only marginally", "FL+HE beats DP",
                  "FL+HE beats SPLIT", "Encryption adds 15-30% time"):
        assert claim in text
    assert "EXPERIMENT" in text  # the encrypted-pixels experiment is included and labelled


def test_table2_numbers_equal_the_runs_metrics(compared):
    rows = {}
    for line in (compared / "table2.md").read_text().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[1]] = cells
    assert len(rows) == 4
    for method, name in METHOD_NAMES.items():
        last = load_metrics(compared / "runs" / f"smallcnn-{method}")[-1]
        cells = rows[name]
        assert cells[2:6] == [f"{100 * last[k]:.1f}" for k in
                              ("accuracy", "macro_precision", "macro_recall", "macro_f1")]
        paper = PAPER_TABLE2.get(method)
        if paper:  # the paper's numbers sit in their own, labelled column
            assert cells[6].startswith(f"{paper['accuracy']:.1f} /")


def test_costs_and_epsilon_come_from_the_runs(compared):
    summary = json.loads((compared / "comparison.json").read_text())
    dp = load_metrics(compared / "runs" / "smallcnn-dp")
    assert summary["smallcnn/dp"]["epsilon"] == dp[-1]["epsilon"]
    split = load_metrics(compared / "runs" / "smallcnn-split")
    sent = [v for r in split for v in r["bytes"]["sent_per_client"].values()]
    assert summary["smallcnn/split"]["bytes_sent_per_client"] == pytest.approx(sum(sent) / len(sent))
    costs = (compared / "costs.md").read_text()
    assert re.search(r"\| smallcnn \| paillier \|", costs)


def test_encryption_table_pairs_plain_and_paillier_runs_by_seed(compared):
    import numpy as np
    import torch

    enc = json.loads((compared / "comparison.json").read_text())["encryption_vs_plain"]["smallcnn"]
    assert enc["seeds"] == [0, 1]
    assert not (compared / "runs" / "smallcnn-dp-seed1").exists()  # extra seeds run plain and Paillier only
    dirs = {0: "", 1: "-seed1"}
    for i, seed in enumerate(enc["seeds"]):
        plain = compared / "runs" / f"smallcnn-none{dirs[seed]}"
        paillier = compared / "runs" / f"smallcnn-paillier{dirs[seed]}"
        assert enc["plain_accuracy"][i] == load_metrics(plain)[-1]["accuracy"]
        assert enc["paillier_accuracy"][i] == load_metrics(paillier)[-1]["accuracy"]
        assert json.loads((paillier / "config.json").read_text())["seed"] == seed
        for r, distance in enumerate(enc["distances"][str(seed)], 1):
            a, b = (torch.load(d / "checkpoints" / f"round_{r:04d}.pt", weights_only=True)["vector"].numpy()
                    .astype(np.float64) for d in (plain, paillier))
            assert distance == pytest.approx(np.linalg.norm(b - a) / np.linalg.norm(a))
            assert 0 < distance < 0.5  # encrypted and plain differ, by the rounding carried forward
    gaps = np.array(enc["paillier_accuracy"]) - np.array(enc["plain_accuracy"])
    assert enc["gap_mean"] == pytest.approx(gaps.mean())
    text = (compared / "encryption.md").read_text()
    assert f"{100 * enc['paillier_mean']:.1f} +- {100 * enc['paillier_sd']:.1f}" in text
    assert "Encryption against plain FedAvg over seeds" in (compared / "comparison.md").read_text()
