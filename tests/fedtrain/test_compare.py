"""`fedtrain compare --quick` writes every artifact, and its tables repeat the runs' own metrics."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from pathlib import Path

import pytest

import fedtrain.runner
from fedtrain.cli import main
from fedtrain.comparison import METHOD_NAMES, PAPER_TABLE2
from fedtrain.errors import ProtocolError
from fedtrain.report import load_metrics

TINY = ["--rounds", "2", "--clients", "2", "--min-clients", "2", "--demo-train-per-class", "8", "--demo-test-per-class", "3",
        "--image-size", "32", "--key-bits", "512", "--insecure-keys", "--batch-size", "8", "--device", "cpu",
        "--quiet", "--seeds", "0,1"]
ONE_SEED = [*TINY[:-1], "0", "--models", "smallcnn"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of fedtrain.cli.main(argv) with the fedtrain logger restored after."""
    logger = logging.getLogger("fedtrain")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers.clear()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def compared_run(tmp_path_factory) -> tuple[Path, str]:
    """The comparison's folder, and what it logged."""
    out = tmp_path_factory.mktemp("compare")
    mp = pytest.MonkeyPatch()
    mp.setenv("FEDTRAIN_CACHE", str(out / "cache"))
    try:
        code, _, stderr = run_cli(["compare", "--quick", "--encrypted-images", "--out", str(out / "cmp"), *TINY])
        assert code == 0, stderr
    finally:
        mp.undo()
    return out / "cmp", stderr


@pytest.fixture(scope="module")
def compared(compared_run) -> Path:
    return compared_run[0]


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
    rounds = len(load_metrics(compared / "runs" / "smallcnn-none"))
    assert enc["tail_rounds"] == min(5, rounds)
    for i, seed in enumerate(enc["seeds"]):  # the mean over the last rounds, paired by seed
        runs = [load_metrics(compared / "runs" / f"smallcnn-{m}{dirs[seed]}") for m in ("none", "paillier")]
        tails = [np.mean([r["accuracy"] for r in recs][-enc["tail_rounds"]:]) for recs in runs]
        assert enc["tail_gaps"][i] == pytest.approx(tails[1] - tails[0])
    assert enc["tail_gap_mean"] == pytest.approx(np.mean(enc["tail_gaps"]))
    text = (compared / "encryption.md").read_text()
    assert f"{100 * enc['paillier_mean']:.1f} +- {100 * enc['paillier_sd']:.1f}" in text
    assert f"{100 * enc['tail_gap_mean']:+.1f} +- {100 * enc['tail_gap_sd']:.1f} points (last {enc['tail_rounds']})" in text
    assert "Encryption against plain FedAvg over seeds" in (compared / "comparison.md").read_text()


# -- feedback while it runs, and what a failed comparison leaves ------------------------------------

RUN_START = re.compile(r"^compare: run (\d+) of (\d+): (\w+) with (.+), seed (\d+) \.\.\.$")
RUN_DONE = re.compile(r"^compare: run (\d+) of (\d+) done: (\w+) with (.+), seed (\d+): accuracy (\d\.\d{4}) "
                      r"after (\d+) rounds, (\d+\.\d) s$")


def test_each_run_is_reported_as_it_starts_and_ends(compared_run):
    compared, stderr = compared_run
    lines = stderr.splitlines()
    starts = [(i, RUN_START.match(line)) for i, line in enumerate(lines) if RUN_START.match(line)]
    dones = [(i, RUN_DONE.match(line)) for i, line in enumerate(lines) if RUN_DONE.match(line)]
    assert len(starts) == len(dones) == 6  # 4 methods on seed 0, plain and Paillier on seed 1
    by_name = {name: method for method, name in METHOD_NAMES.items()}
    for k, ((i, start), (j, done)) in enumerate(zip(starts, dones), 1):
        assert int(start[1]) == int(done[1]) == k and int(start[2]) == 6
        assert i < j and (k == 6 or j < starts[k][0])  # a run ends before the next one starts
        assert start.groups()[2:] == done.groups()[2:5]
        method, seed = by_name[done[4]], int(done[5])
        run_dir = compared / "runs" / (f"smallcnn-{method}" if seed == 0 else f"smallcnn-{method}-seed{seed}")
        last = load_metrics(run_dir)[-1]
        assert done[6] == f"{last['accuracy']:.4f}" and int(done[7]) == last["round"] == 2
    assert any(line.startswith("compare: the CNN on Paillier-encrypted pixels done") for line in lines)


def test_tail_mean_takes_the_last_rounds():
    from fedtrain.comparison import tail_mean

    assert tail_mean([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9], 5) == pytest.approx(0.54)  # 0.3 .. 0.9
    assert tail_mean([0.5, 0.7], 5) == pytest.approx(0.6)  # fewer rounds than k: all of them
    assert tail_mean([0.25]) == 0.25


def test_bad_options_leave_no_folder(tmp_path):
    for bad in (["--privacy", "none,rsa"], ["--privacy", "none,dp", "--target-epsilon", "-1"],
                ["--seeds", "0,0"], ["--models", "vgg16"]):
        code, _, err = run_cli(["compare", "--out", str(tmp_path / "cmp"), *ONE_SEED, *bad])
        assert code == 2 and err.startswith("fedtrain: error: ") and len(err.splitlines()) == 1, err
        assert not (tmp_path / "cmp").exists(), bad


def test_compare_refuses_a_folder_that_holds_files(tmp_path):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "comparison.md").write_text("earlier")
    code, _, err = run_cli(["compare", "--out", str(tmp_path / "cmp"), *ONE_SEED])
    assert code == 2 and "already holds files" in err
    assert (tmp_path / "cmp" / "comparison.md").read_text() == "earlier"


def _failing_run(fail_on: str):
    real = fedtrain.runner.run

    def run(config, run_dir, **kwargs):
        if config.privacy == fail_on:
            raise ProtocolError(f"{config.privacy} run failed on purpose")
        return real(config, run_dir, **kwargs)

    return run


def test_a_failed_first_run_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(fedtrain.runner, "run", _failing_run("none"))
    code, _, err = run_cli(["compare", "--out", str(tmp_path / "cmp"), "--privacy", "none", *ONE_SEED])
    assert code == 2 and "fedtrain: error: none run failed on purpose" in err
    assert not (tmp_path / "cmp").exists()


def test_a_failed_later_run_keeps_the_finished_ones_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(fedtrain.runner, "run", _failing_run("paillier"))
    argv = ["compare", "--out", str(tmp_path / "cmp"), "--privacy", "none,paillier", *ONE_SEED, "--rounds", "1"]
    code, _, err = run_cli(argv)
    assert code == 2 and err.splitlines()[-1] == "fedtrain: error: paillier run failed on purpose"
    assert f"the finished runs stay in {tmp_path / 'cmp' / 'runs'} (smallcnn-none)" in err
    assert sorted(p.name for p in (tmp_path / "cmp" / "runs").iterdir()) == ["smallcnn-none"]
    assert [rec["round"] for rec in load_metrics(tmp_path / "cmp" / "runs" / "smallcnn-none")] == [1]
    assert not (tmp_path / "cmp" / "comparison.md").exists()
