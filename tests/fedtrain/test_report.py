"""Tests for fedtrain.report on a synthetic run directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedtrain.errors import CheckpointError
from fedtrain.metrics import evaluate_predictions
from fedtrain.report import load_metrics, write_report

CLASSES = ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]
FIGURE_FILES = ["accuracy_loss.png", "confusion_matrix.png", "confusion_one_vs_all.png", "roc.png", "timings.png"]
# Last round: 10 test samples; rows = true class, columns = predicted.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3], dtype=np.int64)
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 0, 2, 1, 3], dtype=np.int64)
# By hand: NonDemented recall 3/4, precision 3/4 (one VeryMild predicted as NonDemented), F1 75.0;
# VeryMild recall 2/3, precision 2/4, F1 = 2*(1/2*2/3)/(7/6) = 4/7 = 57.1; Mild recall 1/2, precision 1, F1 2/3;
# Moderate all 1; accuracy 7/10.
TABLE1_ROWS = [
    "| NonDemented | 75.0 | 75.0 | 75.0 |",
    "| VeryMildDemented | 66.7 | 50.0 | 57.1 |",
    "| MildDemented | 50.0 | 100.0 | 66.7 |",
    "| ModerateDemented | 100.0 | 100.0 | 100.0 |",
    "| Accuracy | 70.0 |  |  |",
]


def make_probs(preds: np.ndarray, num_classes: int = 4) -> np.ndarray:
    """Probability rows whose argmax is preds, with a little per-sample variation for the ROC."""
    probs = np.full((len(preds), num_classes), 0.1)
    probs[np.arange(len(preds)), preds] = 0.6
    probs += np.linspace(0.0, 0.02, len(preds))[:, None] * np.arange(num_classes)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def round_record(round_num: int, preds: np.ndarray, paillier: bool = True) -> dict[str, Any]:
    """One metrics.jsonl record as the training loop writes it."""
    record: dict[str, Any] = {"round": round_num, "train_loss": 1.0 / round_num, "test_loss": 1.2 / round_num}
    record.update(evaluate_predictions(Y_TRUE, make_probs(preds), CLASSES))
    enc = 2.0 if paillier else 0.0
    record.update(
        {
            "selected_clients": [0, 1, 2],
            "timings": {"train": 4.0, "encrypt": enc, "aggregate": 1.0, "decrypt": enc / 2, "evaluate": 1.0,
                        "round": 10.0, "checkpoint": 0.5},
            "bytes": {"sent_per_client": {"0": 1000, "1": 2000, "2": 3000},
                      "received_per_client": {"0": 500, "1": 500, "2": 500}},
            "wall_time": 10.0 * round_num,
            "extra_key": "ignored",
        }
    )
    return record


def make_run_dir(path: Path, rounds: int = 3) -> Path:
    """Write config.json, `rounds` metrics lines and the last round's predictions into path."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"model": "resnet18", "privacy": "paillier", "clients": 3, "rounds": 5, "class_names": CLASSES,
              "seed": 7, "data_source": "synthetic", "lr": 0.001, "note": "a|b"}
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    early = np.zeros_like(Y_PRED)
    records = [round_record(r, early if r < rounds else Y_PRED) for r in range(1, rounds + 1)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (path / "predictions").mkdir(exist_ok=True)
    np.savez(path / "predictions" / f"round_{rounds:04d}.npz", y_true=Y_TRUE, probs=make_probs(Y_PRED))
    return path


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A synthetic run directory with its report written once for the module."""
    run = make_run_dir(tmp_path_factory.mktemp("run") / "run")
    report = write_report(run)
    return run, report.read_text(encoding="utf-8")


def test_all_files_written(report_run: tuple[Path, str]) -> None:
    run, text = report_run
    assert (run / "report.md").is_file()
    for name in FIGURE_FILES:
        data = (run / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in text
    assert not list(run.glob("*.tmp"))


def test_table1_rows(report_run: tuple[Path, str]) -> None:
    _, text = report_run
    assert "# fedtrain report: resnet18, privacy: paillier" in text
    assert "| Class | Recall | Precision | F1-Score |" in text
    for row in TABLE1_ROWS:
        assert row in text


def test_round_timing_and_bytes_tables(report_run: tuple[Path, str]) -> None:
    _, text = report_run
    lines = text.splitlines()
    assert "Completed rounds: 3 (last: round 3 of 5)" in text
    assert any(line.startswith("| 3 | 70.0 | ") and line.endswith("| 0.3333 | 0.4000 | 10.00 |") for line in lines)
    assert any(line.startswith("| 1 | 40.0 | ") for line in lines)  # all predicted NonDemented
    assert "| train | 4.000 | 40.0 |" in text
    assert "| encrypt | 2.000 | 20.0 |" in text
    assert "| checkpoint | 0.500 | 5.0 |" in text
    assert "| other | 0.500 | 5.0 |" in text
    assert "| round (total) | 10.000 | 100.0 |" in text
    assert "Encryption overhead (encrypt + aggregate + decrypt): 4.000 s per round, 40.0 % of the round." in text
    assert "| 1 | 3 | 2000 (2.0 KiB) | 500 (500 B) |" in text
    assert "| all clients | 3 | 6000 (5.9 KiB) | 1500 (1.5 KiB) |" in text
    assert "`data_source` | synthetic |" in text
    assert "a\\|b" in text


def test_a_run_without_encryption_has_no_encryption_rows(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", rounds=2)
    records = [round_record(r, Y_PRED, paillier=False) for r in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    text = write_report(run).read_text(encoding="utf-8")
    assert "| train | 4.000 | 40.0 |" in text and "| aggregate | 1.000 | 10.0 |" in text
    assert "| encrypt |" not in text and "| decrypt |" not in text and "Encryption overhead" not in text


def test_truncated_last_line_is_ignored(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", rounds=3)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"round": 4, "train_loss": 0.2, "accu')
    with pytest.warns(RuntimeWarning, match="incomplete"):
        records = load_metrics(run)
    assert [r["round"] for r in records] == [1, 2, 3]
    with pytest.warns(RuntimeWarning, match="incomplete"):
        text = write_report(run).read_text(encoding="utf-8")
    assert "last: round 3 of 5" in text
    assert TABLE1_ROWS[0] in text


def test_corrupt_middle_line_raises(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", rounds=2)
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0][:20], lines[1]]) + "\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="line 1"):
        load_metrics(run)


def test_rewritten_round_keeps_last(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", rounds=2)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"round": 1, "accuracy": 0.99}) + "\n")
    records = load_metrics(run)
    assert [r["round"] for r in records] == [1, 2]
    assert records[0]["accuracy"] == 0.99


def test_missing_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        write_report(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_metrics(tmp_path / "nope")


@pytest.mark.parametrize("content", [None, "", "\n", '{"round": 1, "acc'])
def test_no_completed_round_raises(tmp_path: Path, content: str | None) -> None:
    run = make_run_dir(tmp_path / "run")
    if content is None:
        (run / "metrics.jsonl").unlink()
    else:
        (run / "metrics.jsonl").write_text(content, encoding="utf-8")
    with pytest.warns(RuntimeWarning) if content and content.strip() else _nullcontext():
        with pytest.raises(CheckpointError, match="no completed round in metrics.jsonl; run `fedtrain run` first"):
            write_report(run)


def test_missing_predictions_skips_roc(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", rounds=1)
    shutil.rmtree(run / "predictions")
    with pytest.warns(RuntimeWarning, match="roc.png not drawn"):
        text = write_report(run).read_text(encoding="utf-8")
    assert not (run / "roc.png").exists()
    assert "`roc.png` not drawn" in text
    assert (run / "confusion_matrix.png").is_file()


def _nullcontext() -> Any:
    """A do-nothing context manager."""
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize("rounds", [[1], [3, 4], list(range(1, 31))])
def test_round_axes_have_whole_numbers_only(rounds):
    """One round, a resumed pair, or thirty: every tick on the round axis is a whole number."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from fedtrain.report import _integer_rounds

    ax = Figure().subplots()
    ax.bar(rounds, np.ones(len(rounds)))
    _integer_rounds(ax, rounds)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
