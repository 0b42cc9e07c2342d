"""Export and predict on a real run over a small ImageFolder of real images (sklearn's digits); skipped files."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fedtrain.cli import main
from fedtrain.errors import CheckpointError, ConfigError
from fedtrain.export import export_model, load_exported, load_run_model, predict_images, image_paths
from fedtrain.report import load_predictions
from fedtrain.runner import RunConfig, run

CLASSES = ("digit0", "digit1", "digit7")


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
def digits_folder(tmp_path_factory) -> Path:
    """train/ and test/ class folders of 16x16 PNGs from load_digits, plus two unreadable files."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    for c, name in enumerate(CLASSES):
        idx = np.flatnonzero(digits.target == int(name[-1]))
        for split, part in (("train", idx[:24]), ("test", idx[24:32])):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                image = Image.fromarray((digits.images[i] / 16.0 * 255).astype(np.uint8))
                image.resize((16, 16), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
    (root / "train" / "digit0" / "broken.png").write_bytes(b"not an image")
    good = next((root / "train" / "digit1").iterdir()).read_bytes()
    (root / "train" / "digit1" / "truncated.png").write_bytes(good[:60])
    return root


@pytest.fixture(scope="module")
def trained(digits_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    config = RunConfig(data=str(digits_folder), model="smallcnn", clients=2, rounds=2, privacy="none",
                       image_size=16, device="cpu", seed=3, batch_size=8)
    run(config, out)
    return out


def test_skipped_files_are_listed_once_with_reasons(trained, digits_folder):
    with open(trained / "skipped_files.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(Path(r["file"]).name for r in rows) == ["broken.png", "truncated.png"]
    assert all(r["reason"] for r in rows)
    report = (trained / "report.md").read_text()
    assert "2 image file(s) could not be read" in report and "skipped_files.csv" in report


def test_run_model_reproduces_the_runs_own_predictions(trained, digits_folder, tmp_path):
    model, info = load_run_model(trained)
    assert info.round == 2 and info.class_names == CLASSES and info.image_size == 16
    saved = load_predictions(trained, 2)
    assert saved is not None
    out, scored, unreadable = predict_images(model, info, image_paths(digits_folder / "test"), tmp_path / "p.csv")
    assert (scored, unreadable) == (24, 0)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    probs = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    np.testing.assert_allclose(probs, saved[1], atol=2e-6)  # the test set is read in the same order
    assert [r["predicted"] for r in rows] == [CLASSES[k] for k in saved[1].argmax(axis=1)]


@pytest.mark.parametrize("fmt", ["state_dict", "torchscript", "onnx"])
def test_exported_model_gives_the_same_outputs(trained, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    model, info = load_run_model(trained, 1)
    path = export_model(trained, tmp_path / f"model.{fmt}", fmt=fmt, round_=1)
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        expected = model(x).numpy()
    if fmt == "onnx":
        import onnx

        onnx.checker.check_model(onnx.load(str(path)))
        assert '"image_size": 16' in path.with_name(path.name + ".json").read_text()
        return
    loaded, loaded_info = load_exported(path)
    assert loaded_info == info
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="exists"):
        export_model(trained, path, fmt=fmt)


def test_damaged_and_foreign_files_are_named(trained, tmp_path):
    with pytest.raises(CheckpointError, match="round 9"):
        load_run_model(trained, 9)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_exported(bad)
    damaged = tmp_path / "run"
    (damaged / "checkpoints").mkdir(parents=True)
    (damaged / "config.json").write_text((trained / "config.json").read_text())
    (damaged / "checkpoints" / "round_0001.pt").write_bytes((trained / "checkpoints" / "round_0001.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="round_0001.pt.*damaged or truncated"):
        load_run_model(damaged)


def test_cli_export_and_predict(trained, digits_folder, tmp_path):
    code, out, err = run_cli(["export", str(trained), "--format", "torchscript", "--out", str(tmp_path / "m.ts")])
    assert code == 0 and "Model: " in out and "Warning" not in err, err
    csv_path = tmp_path / "pred.csv"
    code, out, err = run_cli(["predict", str(tmp_path / "m.ts"), str(digits_folder / "train" / "digit1"),
                              "--out", str(csv_path)])
    assert code == 0 and "1 unreadable file(s)" in out, (out, err)
    with open(csv_path, newline="") as fh:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    assert rows["truncated.png"]["error"].startswith("unreadable") and rows["truncated.png"]["predicted"] == ""
    assert sum(1 for r in rows.values() if r["predicted"]) == 24
    code, _, err = run_cli(["predict", str(trained), str(digits_folder), "--out", str(csv_path)])
    assert code == 2 and "exists" in err
    code, _, err = run_cli(["predict", str(trained), str(tmp_path / "nothing-here")])
    assert code == 2 and "does not exist" in err


def test_run_refuses_an_existing_run_folder(trained, tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "metrics.jsonl").write_text("{}\n")
    argv = ["run", "--data", "x", "--out", str(target), "--quiet"]
    code, _, err = run_cli(argv)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert (target / "metrics.jsonl").read_text() == "{}\n"
    code, _, err = run_cli([*argv, "--resume", str(target), "--overwrite"])
    assert code == 2 and "choose one" in err
    code, _, err = run_cli([*argv, "--overwrite"])  # bad --data: nothing is moved
    assert code == 2 and (target / "metrics.jsonl").read_text() == "{}\n"


def test_overwrite_moves_the_old_run_aside(digits_folder, tmp_path):
    target = tmp_path / "again"
    target.mkdir()
    (target / "metrics.jsonl").write_text("{}\n")
    code, out, err = run_cli(["run", "--data", str(digits_folder), "--out", str(target), "--overwrite", "--quiet",
                              "--privacy", "none", "--rounds", "1", "--clients", "2", "--image-size", "16",
                              "--device", "cpu"])
    assert code == 0, err
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("again.old-")]
    assert (aside / "metrics.jsonl").read_text() == "{}\n"
    assert (target / "report.md").is_file() and "moved the previous contents" in err


def test_resume_names_a_damaged_checkpoint_and_the_round_before(trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    last = copy / "checkpoints" / "round_0002.pt"
    last.write_bytes(last.read_bytes()[:200])
    code, _, err = run_cli(["run", "--resume", str(copy), "--rounds", "3", "--quiet"])
    errors = [line for line in err.splitlines() if line.startswith("fedtrain: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert "round_0002.pt" in err and "round 1 is the last round before it" in err
    last.rename(tmp_path / "damaged.pt")  # as the message says: move it aside, resume again
    (copy / "predictions" / "round_0002.npz").rename(tmp_path / "damaged.npz")
    code, _, err = run_cli(["run", "--resume", str(copy), "--rounds", "3", "--quiet"])
    assert code == 0, err
    rounds = [json.loads(line)["round"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert rounds == [1, 2, 3]
    # round 2 redone from round 1's checkpoint gives the original round 2 (training is deterministic)
    redone = torch.load(copy / "checkpoints" / "round_0002.pt", weights_only=True)["vector"]
    original = torch.load(trained / "checkpoints" / "round_0002.pt", weights_only=True)["vector"]
    assert torch.equal(redone, original)


def test_a_failed_start_leaves_nothing_behind(digits_folder, tmp_path):
    bad_weights = tmp_path / "weights.pt"
    bad_weights.write_bytes(b"not a state dict")
    keys = tmp_path / "keys"
    out = tmp_path / "run"
    code, _, err = run_cli(["run", "--data", str(digits_folder), "--out", str(out), "--keys", str(keys),
                            "--weights", str(bad_weights), "--key-bits", "512", "--insecure-keys", "--rounds", "1", "--min-clients", "2",
                            "--clients", "2", "--image-size", "16", "--device", "cpu", "--quiet"])
    assert code == 2 and "weights" in err, err
    assert not out.exists() and not keys.exists()
