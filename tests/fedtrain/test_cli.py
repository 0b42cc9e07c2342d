"""End-to-end tests of the `fedtrain` command line on tiny configurations (in-process, plus one subprocess)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fedtrain
from fedtrain.cli import main

KEYS = ["--key-bits", "512", "--insecure-keys"]
TINY = ["--model", "smallcnn", "--image-size", "32", "--demo-train-per-class", "6",
        "--demo-test-per-class", "3", "--clients", "3", "--quiet"]
LOUD = [a for a in TINY if a != "--quiet"]  # progress shown: stderr is no terminal here, so as log lines
FIGURES = ["accuracy_loss.png", "confusion_matrix.png", "confusion_one_vs_all.png", "roc.png", "timings.png"]
TIMING_KEYS = {"train", "encrypt", "aggregate", "decrypt", "evaluate", "round"}


@contextlib.contextmanager
def fresh_fedtrain_log():
    """main() gives the "fedtrain" logger a handler on the sys.stderr of the moment; keep it from outliving us."""
    logger = logging.getLogger("fedtrain")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers.clear()
    try:
        yield
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


@pytest.fixture(autouse=True)
def _fresh_log():
    with fresh_fedtrain_log():
        yield


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of fedtrain.cli.main(argv), for module-scoped fixtures (no capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with fresh_fedtrain_log(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def tiny_run(out: Path, *extra: str, quiet: bool = True) -> tuple[int, str, str]:
    return run_cli(["run", *(TINY if quiet else LOUD), *KEYS, "--out", str(out), *extra])


def report_path(stdout: str) -> Path:
    lines = [line for line in stdout.splitlines() if line.startswith("Report: ")]
    assert len(lines) == 1, stdout
    return Path(lines[0][len("Report: "):])


def metrics(run_dir: Path) -> list[dict]:
    text = (run_dir / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def vector(run_dir: Path, round_: int) -> torch.Tensor:
    state = torch.load(run_dir / "checkpoints" / f"round_{round_:04d}.pt", map_location="cpu", weights_only=True)
    assert state["round"] == round_
    return state["vector"]


@pytest.fixture(scope="module")
def secure_run(tmp_path_factory) -> tuple[Path, int, str, str]:
    out = tmp_path_factory.mktemp("cli") / "secure"
    return (out, *tiny_run(out, "--privacy", "paillier", "--rounds", "2", quiet=False))


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> tuple[Path, int, str, str]:
    out = tmp_path_factory.mktemp("cli") / "plain"
    return (out, *tiny_run(out, "--privacy", "none", "--rounds", "2", "--seed", "7", quiet=False))


@pytest.fixture(params=["secure", "plain"])
def any_run(request, secure_run, plain_run):
    return {"secure": secure_run, "plain": plain_run}[request.param], request.param


# -- a run, end to end -------------------------------------------------------------------


def test_run_exits_0_and_prints_the_report_path(any_run):
    (out, code, stdout, stderr), _ = any_run
    assert code == 0, stderr
    assert report_path(stdout) == out / "report.md"
    assert "Traceback" not in stderr


def test_run_directory_layout(any_run):
    (out, code, _, _), mode = any_run
    assert code == 0
    for name in ["config.json", "metrics.jsonl", "report.md", *FIGURES]:
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    for r in (1, 2):
        assert (out / "checkpoints" / f"round_{r:04d}.pt").is_file()
        assert (out / "predictions" / f"round_{r:04d}.npz").is_file()
    assert not list(out.rglob("*.tmp"))
    keys = json.loads((out / "config.json").read_text()).get("keys")
    assert not list(out.rglob("*private_key*"))  # the key is never in the run folder
    if mode == "secure":
        key = Path(keys) / "clients_private_key.bin"
        assert key.is_file() and key.stat().st_mode & 0o777 == 0o600
        assert Path(keys).stat().st_mode & 0o777 == 0o700
    else:
        assert keys is None


def test_config_json(any_run):
    (out, _, _, _), mode = any_run
    config = json.loads((out / "config.json").read_text())
    assert config["privacy"] == ("paillier" if mode == "secure" else "none")
    assert config["model"] == "smallcnn" and config["clients"] == 3 and config["rounds"] == 2
    assert config["key_bits"] == 512 and config["insecure_keys"] is True and config["image_size"] == 32
    assert len(config["class_names"]) == 4
    assert config["train_images"] == 24 and config["test_images"] == 12
    assert np.asarray(config["client_class_counts"]).sum() == 24
    assert config["run_id"]


def test_metrics_jsonl_has_one_complete_line_per_round(any_run):
    (out, _, _, _), mode = any_run
    records = metrics(out)
    assert [rec["round"] for rec in records] == [1, 2]
    for rec in records:
        assert 0.0 <= rec["accuracy"] <= 1.0 and np.isfinite(rec["test_loss"]) and np.isfinite(rec["train_loss"])
        assert len(rec["per_class"]) == 4
        assert all({"precision", "recall", "f1"} <= set(v) for v in rec["per_class"].values())
        matrix = np.asarray(rec["confusion_matrix"])
        assert matrix.shape == (4, 4) and matrix.sum() == 12
        assert np.isclose(np.trace(matrix) / matrix.sum(), rec["accuracy"])
        timings = rec["timings"]
        assert TIMING_KEYS <= set(timings)
        assert all(timings[k] >= 0.0 for k in TIMING_KEYS)
        assert timings["train"] > 0 and timings["round"] > 0
        if mode == "secure":
            assert timings["encrypt"] > 0 and timings["decrypt"] > 0
        else:
            assert timings["encrypt"] == 0 and timings["decrypt"] == 0
        assert rec["selected_clients"] == [0, 1, 2]
        clients = {"0", "1", "2"}
        assert set(rec["bytes"]["sent_per_client"]) == clients
        assert set(rec["bytes"]["received_per_client"]) == clients
        assert all(v > 0 for v in rec["bytes"]["sent_per_client"].values())
        assert all(v > 0 for v in rec["bytes"]["received_per_client"].values())


def test_checkpoints_and_predictions(any_run):
    (out, _, _, _), _ = any_run
    first, second = vector(out, 1), vector(out, 2)
    assert first.dtype == torch.float32 and first.ndim == 1 and first.shape == second.shape
    assert torch.isfinite(second).all() and not torch.equal(first, second)
    with np.load(out / "predictions" / "round_0002.npz") as npz:
        y_true, probs = npz["y_true"], npz["probs"]
    assert y_true.shape == (12,) and probs.shape == (12, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    last = metrics(out)[-1]
    assert np.isclose((probs.argmax(axis=1) == y_true).mean(), last["accuracy"])


def test_report_md(any_run):
    (out, _, _, _), mode = any_run
    text = (out / "report.md").read_text()
    assert text.startswith(f"# fedtrain report: smallcnn, privacy: {'paillier' if mode == 'secure' else 'none'}")
    for figure in FIGURES:
        assert f"({figure})" in text


PHASE_LINE = re.compile(r"^round (\d+) client (\d+): ([a-z ]+?) (\d+\.\d) s(?: \(([\d,]+) ciphertexts?\))?$")
SECURE_STEPS = ["train", "encrypt statistics", "decrypt summed statistics", "encrypt update",
                "decrypt its slice of the sum"]


def phase_lines(stderr: str) -> list[tuple[int, int, str, int]]:
    """(round, client, step, ciphertexts) of each progress line, in order."""
    found = []
    for line in stderr.splitlines():
        m = PHASE_LINE.match(line)
        if m:
            found.append((int(m[1]), int(m[2]), m[3], int(m[5].replace(",", "")) if m[5] else 0))
    return found


def test_a_log_shows_each_client_phase_as_it_ends(secure_run):
    _, code, _, stderr = secure_run
    assert code == 0
    steps = phase_lines(stderr)
    for r in (1, 2):
        for c in (0, 1, 2):
            assert [s for rr, cc, s, _ in steps if (rr, cc) == (r, c)][:len(SECURE_STEPS)] == SECURE_STEPS
        assert sum(1 for rr, _, s, _ in steps if rr == r and s == "assemble the global model") == 1
    updates = [n for _, _, s, n in steps if s == "encrypt update"]
    assert len(updates) == 6 and all(n > 0 for n in updates)
    assert all(n == 0 for _, _, s, n in steps if s.startswith("decrypt") or s == "train")
    lines = stderr.splitlines()  # each step is logged as it ends: between the ends of its round and the last
    ends = {0: -1, **{r: next(i for i, line in enumerate(lines) if line.startswith(f"round {r}: accuracy"))
                      for r in (1, 2)}}
    for i, line in enumerate(lines):
        if m := PHASE_LINE.match(line):
            assert ends[int(m[1]) - 1] < i < ends[int(m[1])], line


def test_a_run_without_encryption_shows_no_crypto_phases(plain_run):
    _, code, _, stderr = plain_run
    assert code == 0
    steps = phase_lines(stderr)
    assert [(r, c, s) for r, c, s, _ in steps] == [(r, c, "train") for r in (1, 2) for c in (0, 1, 2)]
    assert "encrypt" not in stderr and "decrypt" not in stderr and "aggregate" not in stderr


def test_report_command_redraws(secure_run, capsys):
    out = secure_run[0]
    (out / "roc.png").unlink()
    (out / "timings.png").unlink()
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    captured = capsys.readouterr()
    assert report_path(captured.out) == out / "report.md"
    assert captured.err == ""
    for name in ["report.md", *FIGURES]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0


def test_same_seed_gives_the_same_result(plain_run, tmp_path):
    first = plain_run[0]
    code, _, stderr = tiny_run(tmp_path / "again", "--privacy", "none", "--rounds", "2", "--seed", "7")
    assert code == 0, stderr
    assert "client 0: train" not in stderr  # --quiet: no progress, the round lines only
    a, b = metrics(first), metrics(tmp_path / "again")
    for ra, rb in zip(a, b, strict=True):
        assert ra["accuracy"] == rb["accuracy"]
        assert ra["test_loss"] == rb["test_loss"]
        assert ra["train_loss"] == rb["train_loss"]
        assert ra["confusion_matrix"] == rb["confusion_matrix"]
    for r in (1, 2):
        assert torch.equal(vector(first, r), vector(tmp_path / "again", r))


def test_python_dash_m_fedtrain_end_to_end(tmp_path, demo_cache):
    src = Path(fedtrain.__file__).resolve().parents[1]
    env = dict(os.environ, FEDTRAIN_CACHE=str(demo_cache),
               PYTHONPATH=os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = tmp_path / "sub"
    proc = subprocess.run([sys.executable, "-m", "fedtrain", "run", *TINY, *KEYS, "--clients", "2",
                           "--min-clients", "2", "--rounds", "1", "--privacy", "paillier", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert report_path(proc.stdout) == out / "report.md"
    assert (out / "report.md").is_file() and (out / "checkpoints" / "round_0001.pt").is_file()
    assert [rec["round"] for rec in metrics(out)] == [1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


# -- bad input: exit code 2 and one line on stderr -----------------------------------------


def write_pngs(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"img{i}.png")


def _missing_folder(tmp: Path) -> list[str]:
    return ["--data", str(tmp / "no-such-data")]


def _no_images(tmp: Path) -> list[str]:
    for name in ("A", "B"):
        (tmp / "DATA" / "train" / name).mkdir(parents=True)
        (tmp / "DATA" / "train" / name / "notes.txt").write_text("not an image")
    return ["--data", str(tmp / "DATA")]


def _no_class_folders(tmp: Path) -> list[str]:
    (tmp / "DATA").mkdir()
    return ["--data", str(tmp / "DATA")]


def _one_class(tmp: Path) -> list[str]:
    write_pngs(tmp / "DATA" / "train" / "A", 4)
    write_pngs(tmp / "DATA" / "test" / "A", 2)
    return ["--data", str(tmp / "DATA")]


def _class_mismatch(tmp: Path) -> list[str]:
    for name in ("A", "B"):
        write_pngs(tmp / "DATA" / "train" / name, 3)
    write_pngs(tmp / "DATA" / "test" / "A", 2)
    return ["--data", str(tmp / "DATA")]


def _too_many_clients_for_folder(tmp: Path) -> list[str]:
    for name in ("A", "B"):
        write_pngs(tmp / "DATA" / "train" / name, 3)
        write_pngs(tmp / "DATA" / "test" / name, 1)
    return ["--data", str(tmp / "DATA"), "--clients", "7"]


def _not_a_run_dir(tmp: Path) -> list[str]:
    (tmp / "some-folder").mkdir()
    (tmp / "some-folder" / "metrics.jsonl").write_text("")
    return ["--resume", str(tmp / "some-folder")]


def _missing_weights(tmp: Path) -> list[str]:
    return ["--weights", str(tmp / "missing.pt")]


BAD_RUNS = {
    "missing data folder": (_missing_folder, "does not exist"),
    "folder without images": (_no_images, "no images"),
    "folder without class folders": (_no_class_folders, "no class folders"),
    "one class only": (_one_class, "only one class"),
    "train and test classes differ": (_class_mismatch, "class folders differ"),
    "more clients than images in a folder": (_too_many_clients_for_folder, "clients"),
    "unknown model": (lambda t: ["--model", "vgg16"], "unknown model 'vgg16'"),
    "fraction 0": (lambda t: ["--fraction", "0"], "--fraction must be in (0, 1]"),
    "fraction 1.5": (lambda t: ["--fraction", "1.5"], "--fraction must be in (0, 1]"),
    "negative fraction": (lambda t: ["--fraction", "-0.5"], "--fraction"),
    "more clients than demo images": (lambda t: ["--clients", "500"], "500 clients"),
    "zero clients": (lambda t: ["--clients", "0"], "--clients"),
    "zero rounds": (lambda t: ["--rounds", "0"], "--rounds"),
    "unknown privacy": (lambda t: ["--privacy", "rsa"], "unknown --privacy 'rsa'"),
    "unknown averaging": (lambda t: ["--avg", "median"], "--avg"),
    "unknown partition": (lambda t: ["--partition", "skewed"], "partition"),
    "unknown optimizer": (lambda t: ["--optimizer", "lbfgs"], "optimizer"),
    "value bits out of range": (lambda t: ["--value-bits", "2"], "--value-bits"),
    "unknown device": (lambda t: ["--device", "tpu"], "device"),
    "missing weights file": (_missing_weights, "--weights"),
    "resume a folder that is not a run dir": (_not_a_run_dir, "not a fedtrain run directory"),
    "resume a missing folder": (lambda t: ["--resume", str(t / "nope")], "not a fedtrain run directory"),
}


def assert_one_line_error(code: int, captured, hint: str) -> None:
    assert code == 2, captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.err.endswith("\n"), captured.err
    assert lines[0].startswith("fedtrain: error: ")
    assert hint in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize("case", list(BAD_RUNS), ids=list(BAD_RUNS))
def test_bad_run_options_give_one_line_errors(case, tmp_path, capsys):
    make_args, hint = BAD_RUNS[case]
    extra = make_args(tmp_path)
    code = main(["run", *TINY, *KEYS, "--out", str(tmp_path / "run"), *extra])
    assert_one_line_error(code, capsys.readouterr(), hint)


def test_small_key_without_insecure_keys(tmp_path, capsys):
    code = main(["run", *TINY, "--key-bits", "512", "--out", str(tmp_path / "run")])
    assert_one_line_error(code, capsys.readouterr(), "--insecure-keys")
    assert not (tmp_path / "run" / "keys").exists()


def test_report_on_a_missing_dir(tmp_path, capsys):
    code = main(["report", str(tmp_path / "nope")])
    assert_one_line_error(code, capsys.readouterr(), "does not exist")


def test_report_on_a_dir_without_rounds(tmp_path, capsys):
    code = main(["report", str(tmp_path)])
    assert_one_line_error(code, capsys.readouterr(), "no completed round")


# -- bad input is reported before torch and the other heavy libraries are imported -----------------

HEAVY = ("torch", "torchvision", "opacus", "sklearn", "matplotlib")
# Runs `python -m fedtrain ARGS` and writes, at exit, which of HEAVY had been imported.
RECORD_IMPORTS = f"""
import atexit, os, runpy, sys
def _record():
    with open(os.environ["FEDTRAIN_TEST_IMPORTED"], "w") as fh:
        fh.write(" ".join(m for m in {HEAVY!r} if m in sys.modules))
atexit.register(_record)
sys.argv = ["fedtrain", *sys.argv[1:]]
runpy.run_module("fedtrain", run_name="__main__", alter_sys=True)
"""


def _used_out(tmp: Path) -> list[str]:
    (tmp / "used").mkdir()
    (tmp / "used" / "metrics.jsonl").write_text("{}\n")
    return ["run", "--out", str(tmp / "used")]


def _data_is_a_file(tmp: Path) -> list[str]:
    (tmp / "data.txt").write_text("not a folder")
    return ["run", "--data", str(tmp / "data.txt")]


def _export_over_a_file(tmp: Path) -> list[str]:
    run_dir = tmp / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    (run_dir / "checkpoints" / "round_0001.pt").write_bytes(b"")
    (tmp / "model.pt").write_bytes(b"taken")
    return ["export", str(run_dir), "--out", str(tmp / "model.pt")]


FAST_ERRORS = {
    "run: missing data folder": (lambda t: ["run", "--data", str(t / "no-such-data")], "does not exist"),
    "run: data path is a file": (_data_is_a_file, "is not a directory"),
    "run: folder without images": (lambda t: ["run", *_no_images(t)], "no images"),
    "run: unknown model": (lambda t: ["run", "--model", "vgg16"], "unknown model"),
    "run: bad fraction": (lambda t: ["run", "--fraction", "1.5"], "--fraction"),
    "run: small key": (lambda t: ["run", "--key-bits", "512"], "--insecure-keys"),
    "run: used --out": (_used_out, "already holds files"),
    "run: resume a missing folder": (lambda t: ["run", "--resume", str(t / "nope")], "not a fedtrain run directory"),
    "compare: unknown method": (lambda t: ["compare", "--privacy", "none,rsa", "--out", str(t / "cmp")],
                                "unknown --privacy"),
    "compare: missing data folder": (lambda t: ["compare", "--data", str(t / "nope"), "--out", str(t / "cmp")],
                                     "does not exist"),
    "export: not a run folder": (lambda t: ["export", str(t / "nope")], "no config.json"),
    "export: unknown format": (lambda t: ["export", str(t / "nope"), "--format", "zip"], "--format"),
    "export: output exists": (_export_over_a_file, "exists"),
    "predict: missing images": (lambda t: ["predict", str(t / "run"), str(t / "nope")], "does not exist"),
    "report: missing folder": (lambda t: ["report", str(t / "nope")], "does not exist"),
}


@pytest.mark.parametrize("case", list(FAST_ERRORS), ids=list(FAST_ERRORS))
def test_bad_input_is_reported_before_torch_is_imported(case, tmp_path, demo_cache):
    make_args, hint = FAST_ERRORS[case]
    argv = make_args(tmp_path)
    src = Path(fedtrain.__file__).resolve().parents[1]
    record = tmp_path / "imported.txt"
    env = dict(os.environ, FEDTRAIN_CACHE=str(demo_cache), FEDTRAIN_TEST_IMPORTED=str(record),
               PYTHONPATH=os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, "-c", RECORD_IMPORTS, *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedtrain: error: ") and hint in lines[0], proc.stderr
    assert record.read_text() == "", f"imported before the error: {record.read_text()}"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cmp").exists()
