"""Figures and a Markdown report drawn from a run directory, so `fedtrain report RUN_DIR` can redo them anytime."""

from __future__ import annotations

import json
import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from .errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "load_config",
    "load_metrics",
    "load_predictions",
    "plot_accuracy_loss",
    "plot_confusion",
    "plot_one_vs_all",
    "plot_roc",
    "plot_timings",
    "predictions_path",
    "write_report",
]

PathLike = Union[str, "os.PathLike[str]"]

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
REPORT_FILE = "report.md"
PHASES = ("train", "encrypt", "aggregate", "decrypt", "evaluate")
OVERHEAD_PHASES = ("encrypt", "aggregate", "decrypt")
CRYPTO_PHASES = ("encrypt", "decrypt")
METHOD_LABELS = {"paillier": "encrypted FedAvg (Paillier)", "none": "plain FedAvg", "dp": "FedAvg + DP-SGD",
                 "split": "split learning"}
FIGURES = {
    "accuracy_loss.png": "Accuracy and loss per round",
    "confusion_matrix.png": "Confusion matrix (last round)",
    "confusion_one_vs_all.png": "One-vs-all confusion matrices (last round)",
    "roc.png": "One-vs-all ROC curves (last round)",
    "timings.png": "Time per round by phase",
}


# ---------------------------------------------------------------- loading


def _existing_dir(run_dir: PathLike) -> Path:
    """Return run_dir as a Path, raising CheckpointError if it is not a directory."""
    path = Path(run_dir)
    if not path.is_dir():
        raise CheckpointError(f"run directory {path} does not exist; run `fedtrain run` first")
    return path


def _parse_line(line: str, lineno: int, path: Path) -> Optional[dict[str, Any]]:
    """Parse one metrics line; None if it is not valid JSON (caller decides whether that is fatal)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("round"), int) or record["round"] < 1:
        raise CheckpointError(f"{path} line {lineno} is not a round record with an integer 'round' >= 1")
    return record


def load_metrics(run_dir: PathLike) -> list[dict[str, Any]]:
    """Round records of metrics.jsonl sorted by round; a truncated last line is skipped with a warning."""
    path = _existing_dir(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    lines = [(i, text) for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text.strip()]
    by_round: dict[int, dict[str, Any]] = {}
    for pos, (lineno, text) in enumerate(lines):
        record = _parse_line(text, lineno, path)
        if record is None:
            if pos == len(lines) - 1:
                warnings.warn(f"{path} line {lineno} is incomplete (interrupted write); ignoring it", RuntimeWarning)
                break
            raise CheckpointError(f"{path} line {lineno} is not valid JSON; the metrics file is corrupt")
        by_round[record["round"]] = record  # a resumed run may rewrite a round: the last one wins
    return [by_round[r] for r in sorted(by_round)]


def load_config(run_dir: PathLike) -> dict[str, Any]:
    """The run's config.json as a dict, raising CheckpointError if it is missing or malformed."""
    path = _existing_dir(run_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; run `fedtrain run` first") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return config


def predictions_path(run_dir: PathLike, round_num: int) -> Path:
    """Where the test predictions of a round are stored: predictions/round_0003.npz."""
    return Path(run_dir) / "predictions" / f"round_{round_num:04d}.npz"


def load_predictions(run_dir: PathLike, round_num: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(y_true, probs) of a round, or None when that round's predictions file is absent."""
    path = predictions_path(run_dir, round_num)
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return np.asarray(data["y_true"], dtype=np.int64), np.asarray(data["probs"], dtype=np.float64)
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is unreadable or lacks y_true/probs ({exc})") from None


def _class_names(config: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """Class names from the config, checked against the size of the last confusion matrix."""
    names = config.get("class_names")
    if not isinstance(names, list) or not names:
        names = list(record.get("per_class", {}))
    num = len(record.get("confusion_matrix") or names)
    if len(names) != num:
        raise CheckpointError(f"config.json has {len(names)} class_names but the confusion matrix has {num} classes")
    return [str(n) for n in names]


# ---------------------------------------------------------------- numbers and formatting


def _num(value: Any) -> float:
    """Value as float, NaN when missing or not a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _pct(value: Any) -> str:
    """A fraction in [0, 1] as a percentage with one decimal ("97.3"), or "n/a"."""
    v = _num(value)
    return "n/a" if math.isnan(v) else f"{100.0 * v:.1f}"


def _fixed(value: Any, digits: int) -> str:
    """A number with a fixed number of decimals, or "n/a"."""
    v = _num(value)
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def _human_bytes(n: float) -> str:
    """Byte count with a binary unit (B, KiB, MiB, GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _letter(k: int) -> str:
    """Paper-style class label: A, B, ..., Z, AA, AB, ..."""
    return (_letter(k // 26 - 1) if k >= 26 else "") + chr(ord("A") + k % 26)


def _cell(value: Any) -> str:
    """A config value as one Markdown table cell (JSON unless a string, pipes escaped)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table as lines."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _phase_names(records: Sequence[dict[str, Any]]) -> list[str]:
    """Timing phases present in the records: the standard ones first, then extra keys, never 'round'.

    Encryption and decryption are left out of runs that never took time for them (no encryption).
    """
    extra: list[str] = []
    for rec in records:
        for key, value in (rec.get("timings") or {}).items():
            if key not in PHASES and key != "round" and key not in extra and not math.isnan(_num(value)):
                extra.append(key)
    encrypted = any(_num((rec.get("timings") or {}).get(p, 0.0)) > 0 for rec in records for p in CRYPTO_PHASES)
    return [p for p in PHASES if encrypted or p not in CRYPTO_PHASES] + extra


def _phase_matrix(records: Sequence[dict[str, Any]], phases: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per (round, phase) with missing as 0, and the round totals (sum of phases when absent)."""
    times = np.array([[_num((r.get("timings") or {}).get(p, 0.0)) for p in phases] for r in records], dtype=float)
    times = np.nan_to_num(times, nan=0.0)
    totals = np.array([_num((r.get("timings") or {}).get("round")) for r in records], dtype=float)
    totals = np.where(np.isnan(totals), times.sum(axis=1), totals)
    return times, totals


# ---------------------------------------------------------------- figures


def _figure(width: float, height: float) -> "Figure":
    """A pyplot-free matplotlib figure rendered with the Agg canvas (no screen, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: "Figure", path: Path) -> None:
    """Save a figure as PNG atomically (write a temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", bbox_inches="tight")
    os.replace(tmp, path)


def _draw_matrix(ax: Any, matrix: np.ndarray, labels: Sequence[str], title: str, *, normalized: bool = False) -> None:
    """Heat map of a count matrix (or of its row fractions) with each cell annotated, true class on rows."""
    if normalized:
        support = matrix.sum(axis=1, keepdims=True)
        shown = np.divide(matrix, support, out=np.zeros(matrix.shape, dtype=float), where=support > 0)
        ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
        texts = [[f"{100 * v:.0f}%" for v in row] for row in shown]
        threshold = 0.5
    else:
        shown = matrix
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
        texts = [[str(int(v)) for v in row] for row in matrix]
        threshold = matrix.max() / 2.0
    for (i, j), value in np.ndenumerate(shown):
        ax.text(j, i, texts[i][j], ha="center", va="center", color="white" if value > threshold else "black")
    ticks = range(len(labels))
    ax.set_xticks(list(ticks), labels=list(labels), rotation=30, ha="right")
    ax.set_yticks(list(ticks), labels=list(labels))
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(title)


def _integer_rounds(ax: Any, rounds: Sequence[int]) -> None:
    """Only whole round numbers on the x axis: each round while there are few, else a whole-number locator."""
    from matplotlib.ticker import MaxNLocator

    if len(rounds) <= 20:
        ax.set_xticks(list(rounds))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_accuracy_loss(records: Sequence[dict[str, Any]], path: Path, who: str = "",
                       num_classes: int | None = None) -> None:
    """Two panels: test accuracy (and macro F1) per round; train and test loss per round."""
    rounds = [r["round"] for r in records]
    fig = _figure(11, 4)
    ax_acc, ax_loss = fig.subplots(1, 2)
    ax_acc.plot(rounds, [100 * _num(r.get("accuracy")) for r in records], marker="o", label="Accuracy")
    ax_acc.plot(rounds, [100 * _num(r.get("macro_f1")) for r in records], marker=".", ls="--", label="Macro F1")
    if num_classes:
        ax_acc.axhline(100 / num_classes, color="grey", ls=":", lw=1, label=f"Chance ({100 / num_classes:.0f}%)")
    ax_acc.set(xlabel="Round", ylabel="%", title="Test accuracy per round")
    ax_loss.plot(rounds, [_num(r.get("train_loss")) for r in records], marker="o", label="Train loss")
    ax_loss.plot(rounds, [_num(r.get("test_loss")) for r in records], marker="s", label="Test loss")
    ax_loss.set(xlabel="Round", ylabel="Loss", title="Loss per round")
    for ax in (ax_acc, ax_loss):
        _integer_rounds(ax, rounds)
        ax.grid(alpha=0.3)
        ax.legend()
    if who:
        fig.suptitle(who)
    _save(fig, path)


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    """Confusion matrix: counts, and beside them each row as fractions of the true class."""
    n = len(class_names)
    fig = _figure(2 * (1.3 * n + 2.5), 1.2 * n + 2.4)
    counts, rows = fig.subplots(1, 2)
    _draw_matrix(counts, confusion, class_names, "Counts")
    _draw_matrix(rows, confusion, class_names, "Share of each true class", normalized=True)
    fig.suptitle(title)
    _save(fig, path)


def plot_one_vs_all(confusion: np.ndarray, class_names: Sequence[str], path: Path, title: str = "") -> None:
    """Grid of 2x2 one-vs-all confusion matrices, one per class (paper Figure 8 style)."""
    from .metrics import one_vs_all_confusion  # scikit-learn: imported when a figure is drawn, not before

    n = len(class_names)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = _figure(3.6 * cols, 3.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for k, name in enumerate(class_names):
        _draw_matrix(axes[k], one_vs_all_confusion(confusion, k), ["Other", name], f"{name} vs all")
    for ax in axes[n:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_roc(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    """One-vs-all ROC curve per class with its AUC in the legend."""
    from .metrics import roc_curves

    fig = _figure(6, 5)
    ax = fig.subplots()
    curves = roc_curves(y_true, probs)
    for k, (fpr, tpr, area) in curves.items():
        ax.plot(fpr, tpr, label=f"{class_names[k]} (AUC = {area:.3f})")
    if len(curves) > 1:  # macro average: the mean of the class curves on a common false-positive grid
        grid = np.linspace(0, 1, 201)
        mean_tpr = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr, _ in curves.values()], axis=0)
        mean_auc = float(np.mean([area for _, _, area in curves.values()]))
        ax.plot(grid, mean_tpr, color="black", lw=2, ls="--", label=f"macro average (AUC = {mean_auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance (AUC = 0.5)")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="False positive rate", ylabel="True positive rate", title=title)
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_timings(records: Sequence[dict[str, Any]], path: Path, who: str = "") -> None:
    """Stacked bar per round of the seconds spent in each phase (rest of the round as 'other')."""
    phases = _phase_names(records)
    times, totals = _phase_matrix(records, phases)
    other = np.clip(totals - times.sum(axis=1), 0.0, None)
    rounds = np.array([r["round"] for r in records])
    fig = _figure(max(6.0, 0.35 * len(records) + 4), 4)
    ax = fig.subplots()
    bottom = np.zeros(len(records))
    for j, phase in enumerate(phases):
        if times[:, j].any():
            ax.bar(rounds, times[:, j], bottom=bottom, label=phase)
            bottom += times[:, j]
    if other.any():
        ax.bar(rounds, other, bottom=bottom, label="other", color="lightgrey")
    ax.set(xlabel="Round", ylabel="Seconds", title=f"Time per round by phase{': ' + who if who else ''}")
    _integer_rounds(ax, rounds.tolist())
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


# ---------------------------------------------------------------- report.md sections


def _results_section(config: dict[str, Any], records: Sequence[dict[str, Any]], class_names: Sequence[str],
                     confusion: np.ndarray, predictions: Optional[tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Results first: accuracy, balanced accuracy, best and final round, per-class rates with 95% intervals."""
    from .clinical import bootstrap_intervals, per_class, wilson

    last = records[-1]
    best = max(records, key=lambda r: _num(r.get("accuracy")) if not math.isnan(_num(r.get("accuracy"))) else -1)
    done = f"Completed rounds: {len(records)}"
    done += f" of {config['rounds']}." if "rounds" in config else "."
    lines = ["## Results", "", done + f" Final round: {last['round']}; best test accuracy in round "
             f"{best['round']} ({_pct(best.get('accuracy'))} %). Figures below are for the final round.", ""]
    if confusion.shape != (len(class_names), len(class_names)):
        return lines + ["No confusion matrix was recorded for the final round.", ""]
    aucs = balanced = macro_auc = None
    if predictions is not None and predictions[1].shape[1] == len(class_names):
        aucs, macro_auc, balanced = bootstrap_intervals(predictions[0], predictions[1], len(class_names))
    total = int(confusion.sum())
    accuracy = wilson(int(np.trace(confusion)), total)
    summary = f"Accuracy {accuracy.percent()} % of {total} test images"
    if balanced is not None:
        summary += f"; balanced accuracy {balanced.percent()} %; macro AUC {macro_auc.fixed()}"
    lines += [summary + f" (chance level for {len(class_names)} balanced classes: "
                        f"{100 / len(class_names):.1f} %).", ""]
    rows = [[r.name, str(r.support), r.sensitivity.percent(), r.specificity.percent(), r.ppv.percent(),
             r.npv.percent(), _pct(r.f1), r.auc.fixed()] for r in per_class(confusion, class_names, aucs)]
    lines += [
        *_table(["Class", "Test images", "Sensitivity (recall) %", "Specificity %", "Precision (PPV) %", "NPV %",
                 "F1 %", "AUC"], rows),
        "",
        "Each class against all others. In brackets: 95% intervals, Wilson score intervals for the "
        "proportions and percentile bootstrap intervals (1000 resamples of the test images, fixed seed) for "
        "AUC, macro AUC and balanced accuracy. With few test images per class these intervals are wide: "
        "read them before the point values.",
        "",
    ]
    return lines


LEARNED = {
    "paillier": (
        "Encrypted FedAvg. The server holds only the public key: it sees ciphertexts, their sizes and "
        "timing, which clients took part in each round, and the number of rounds; it does not see any "
        "client's update, sample count or the global model (sealed with a key the server lacks), provided "
        "it follows the protocol (see the README's threat model for a server that deviates). Every client "
        "holds the shared private key and sees the aggregate of each round, i.e. the global model; a client "
        "that obtained another client's ciphertexts (for example from a colluding server) could decrypt "
        "them. An eavesdropper on the links sees what the server sees."),
    "none": (
        "Plain FedAvg. Images never leave the clients, but the server, and an eavesdropper on an "
        "unencrypted link, see every client's full model update and sample count in every round, from "
        "which properties of the training images can be inferred (membership and reconstruction attacks "
        "are known for such updates)."),
    "dp": (
        "FedAvg with DP-SGD clients. The server sees every client's model update in plain, but DP-SGD "
        "(per-sample clipping and Gaussian noise) bounds what the updates of all rounds together reveal "
        "about any single training image to the (epsilon, delta) stated in the per-round table."),
    "split": (
        "Split learning. The server sees, for every training batch, the activations at the cut layer and "
        "the labels (vanilla split learning shares labels), and it holds the part of the model after the "
        "cut; activations of early layers can reveal much of an image. Clients see their own part only."),
}


def _learned_section(config: dict[str, Any]) -> list[str]:
    """One paragraph on what the server, each client and an eavesdropper could learn in this run's mode."""
    text = LEARNED.get(config.get("privacy", ""))
    return ["## What each party could learn", "", text, ""] if text else []


def _data_section(config: dict[str, Any]) -> list[str]:
    """Where the images came from, how many were used, and how many were skipped (listed in a file)."""
    if "train_images" not in config:
        return []
    line = (f"Data: {config.get('data_source', 'unknown source')} ({config.get('split', 'unknown')} split): "
            f"{config['train_images']} training and {config.get('test_images', 'n/a')} test images.")
    skipped = int(config.get("skipped_images", 0) or 0)
    if skipped:
        line += (f" **{skipped} image file(s) could not be read and were not used**; each is listed with "
                 "the reason in `skipped_files.csv`.")
    else:
        line += " Every image file found was read."
    return ["## Data", "", line, ""]


def _config_section(config: dict[str, Any], records: Sequence[dict[str, Any]]) -> list[str]:
    """Configuration table (every option) and how many rounds are done."""
    rows = [[f"`{k}`", _cell(v)] for k, v in config.items()]
    done = f"Completed rounds: {len(records)} (last: round {records[-1]['round']}"
    done += f" of {config['rounds']})" if "rounds" in config else ")"
    return ["## Configuration", "", "Every option of the run, as saved in `config.json`.", "", done, "",
            *_table(["Option", "Value"], rows), ""]


def _table1_section(record: dict[str, Any], class_names: Sequence[str]) -> list[str]:
    """Final-round per-class table in the form of the paper's Table 1 (percent, one decimal)."""
    per_class = record.get("per_class") or {}
    rows = []
    detail = []
    for k, name in enumerate(class_names):
        c = per_class.get(name, {})
        rows.append([name, _pct(c.get("recall")), _pct(c.get("precision")), _pct(c.get("f1"))])
        detail.append([_letter(k), name, str(c.get("support", "n/a")), _fixed(c.get("auc"), 3)])
    rows.append(["Accuracy", _pct(record.get("accuracy")), "", ""])
    summary = (
        f"Macro precision {_pct(record.get('macro_precision'))} %, macro recall {_pct(record.get('macro_recall'))} %, "
        f"macro F1 {_pct(record.get('macro_f1'))} %, weighted F1 {_pct(record.get('weighted_f1'))} %, "
        f"macro AUC {_fixed(record.get('macro_auc'), 3)}."
    )
    return [
        f"## Final round (round {record['round']}): per-class results",
        "",
        "In the form of the paper's Table 1; values in percent.",
        "",
        *_table(["Class", "Recall", "Precision", "F1-Score"], rows),
        "",
        summary,
        "",
        "The paper labels the classes A, B, C, ... in this order:",
        "",
        *_table(["Label", "Class", "Support", "AUC"], detail),
        "",
    ]


def _rounds_section(records: Sequence[dict[str, Any]]) -> list[str]:
    """One row per round: accuracy, macro F1, macro AUC, losses and round time."""
    _, totals = _phase_matrix(records, _phase_names(records))
    rows = [
        [
            str(r["round"]),
            _pct(r.get("accuracy")),
            _pct(r.get("macro_f1")),
            _fixed(r.get("macro_auc"), 3),
            _fixed(r.get("train_loss"), 4),
            _fixed(r.get("test_loss"), 4),
            _fixed(total, 2),
        ]
        for r, total in zip(records, totals)
    ]
    header = ["Round", "Accuracy (%)", "Macro F1 (%)", "Macro AUC", "Train loss", "Test loss", "Round time (s)"]
    if any("epsilon" in r for r in records):  # DP runs: the privacy budget spent so far, and the noise
        header += ["Epsilon spent", "Noise multiplier"]
        for row, r in zip(rows, records):
            row += [_fixed(r.get("epsilon"), 2), _fixed(r.get("noise_multiplier"), 3)]
    lines = ["## Per round", "", *_table(header, rows), ""]
    last = records[-1] if records else {}
    if "epsilon" in last:
        lines += [f"Differential privacy: epsilon spent {_fixed(last['epsilon'], 2)} at delta "
                  f"{last.get('delta')} after round {last['round']} (the largest over clients; RDP accountant), "
                  f"Gaussian noise multiplier {_fixed(last.get('noise_multiplier'), 3)} (noise standard deviation "
                  "over the per-sample clipping norm `max_grad_norm` of the Configuration).", ""]
    return lines


def _sci(value: Any) -> str:
    """A number in 2-digit scientific notation, or "n/a"."""
    v = _num(value)
    return "n/a" if math.isnan(v) else f"{v:.2e}"


def _shadow_section(records: Sequence[dict[str, Any]]) -> list[str]:
    """--shadow-plain: the encrypted model against plain FedAvg, per round, with the bounds it must meet."""
    rows = []
    for r in records:
        sh = r.get("shadow")
        if not sh:
            continue
        rows.append([str(r["round"]), _pct(r.get("accuracy")), _pct(sh.get("plain_accuracy")),
                     _sci(sh.get("distance")), _sci(sh.get("growth_bound")),
                     _fixed(sh.get("expansion"), 2) if sh.get("expansion") is not None else "-",
                     f"{sh.get('worst_tensor', '')} ({_sci(sh.get('worst_tensor_distance'))})",
                     _sci(sh.get("step_error")), _sci(sh.get("step_bound")),
                     "yes" if sh.get("step_within_bound") else "**NO**"])
    if not rows:
        return []
    return [
        "## Encrypted against plain FedAvg (--shadow-plain)",
        "",
        "Plain FedAvg with the same seed, data and clients ran beside this run. Distances are relative L2 "
        "norms over the whole model vector (BatchNorm statistics included), relative to the plain model.",
        "",
        "- *Distance*: this run's global model against the independent plain run's after the same round.",
        "- *One round*: this round's encrypted aggregate against plain FedAvg of the same round from the same "
        "start model; it may differ by the codec's rounding only, at most K 2^-f S_t per position "
        "(stochastic rounding; K 2^-(f+1) S_t to nearest), plus one float32 rounding (*bound*). "
        "*Within bound* checks every position.",
        "- *Growth bound* B_t = |bound_t| + lambda_t B_(t-1) >= distance, where lambda_t (*expansion*) is how "
        "much one plain round magnified the difference between the two start models (measured on plain rounds).",
        "",
        *_table(["Round", "Accuracy (%)", "Plain accuracy (%)", "Distance", "Growth bound", "Expansion",
                 "Furthest tensor (relative)", "One round: error", "One round: bound", "Within bound"], rows),
        "",
    ]


def _dropouts_section(records: Sequence[dict[str, Any]]) -> list[str]:
    """Secure rounds that lost clients or needed more than one try: who, in which phase, and why."""
    rows = []
    for rec in records:
        for tried in rec.get("failed_attempts", []):
            for cid, why in tried.get("dropped", {}).items():
                rows.append([str(rec["round"]), str(tried["attempt"] + 1) + " (failed)", cid, _cell(why)])
        for cid, why in rec.get("dropped", {}).items():
            rows.append([str(rec["round"]), str(rec.get("attempts", 1)), cid, _cell(why)])
    if not rows:
        return []
    return ["## Dropped clients", "",
            "Clients dropped from a round (silent, late, malformed or failing a check), by try; a round completes "
            "with the others when at least the minimum remain, and its model is that of a round over them.", "",
            *_table(["Round", "Try", "Client", "Phase and reason"], rows), ""]


def _timing_section(records: Sequence[dict[str, Any]]) -> list[str]:
    """Mean seconds per round of each phase, its share of the round, and the encryption overhead."""
    if not any(rec.get("timings") for rec in records):
        return ["## Time by phase", "", "No timings recorded.", ""]
    phases = _phase_names(records)
    times, totals = _phase_matrix(records, phases)
    means = dict(zip(phases, times.mean(axis=0)))
    round_mean = float(totals.mean())
    other = max(round_mean - sum(means.values()), 0.0)

    def share(seconds: float) -> str:
        return f"{100.0 * seconds / round_mean:.1f}" if round_mean > 0 else "n/a"

    rows = [[p, f"{means[p]:.3f}", share(means[p])] for p in phases]
    if other > 1e-9:
        rows.append(["other", f"{other:.3f}", share(other)])
    rows.append(["round (total)", f"{round_mean:.3f}", share(round_mean)])
    lines = ["## Time by phase", "", *_table(["Phase", "Mean s / round", "Share of round (%)"], rows), ""]
    if any(p in phases for p in CRYPTO_PHASES):
        overhead = sum(means.get(p, 0.0) for p in OVERHEAD_PHASES)
        lines += [f"Encryption overhead (encrypt + aggregate + decrypt): {overhead:.3f} s per round, "
                  f"{share(overhead)} % of the round.", ""]
    return lines


def _bytes_section(records: Sequence[dict[str, Any]]) -> list[str]:
    """Mean bytes sent and received per client per round (over the rounds the client took part in)."""
    sent: dict[str, list[float]] = {}
    received: dict[str, list[float]] = {}
    totals: list[tuple[float, float]] = []
    for rec in records:
        info = rec.get("bytes") or {}
        s = {str(k): _num(v) for k, v in (info.get("sent_per_client") or {}).items()}
        r = {str(k): _num(v) for k, v in (info.get("received_per_client") or {}).items()}
        for k, v in s.items():
            sent.setdefault(k, []).append(v)
        for k, v in r.items():
            received.setdefault(k, []).append(v)
        if s or r:
            totals.append((sum(s.values()), sum(r.values())))
    if not totals:
        return ["## Communication", "", "No byte counts recorded.", ""]

    def mean(values: list[float]) -> str:
        return "n/a" if not values else f"{np.mean(values):.0f} ({_human_bytes(float(np.mean(values)))})"

    clients = sorted(set(sent) | set(received), key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
    rows = [[c, str(max(len(sent.get(c, [])), len(received.get(c, [])))), mean(sent.get(c, [])),
             mean(received.get(c, []))] for c in clients]
    rows.append(["all clients", str(len(totals)), mean([t[0] for t in totals]), mean([t[1] for t in totals])])
    header = ["Client", "Rounds", "Sent bytes / round (mean)", "Received bytes / round (mean)"]
    note = ("From `bytes.sent_per_client` and `bytes.received_per_client`, averaged over the rounds each client "
            "took part in; the last row is the mean per-round total.")
    counts = [f"{rec['round']}: {rec['exchanges']}" for rec in records if isinstance(rec.get("exchanges"), int)]
    if counts:
        note += " Message exchanges (server to the round's clients and back) per round: " + ", ".join(counts) + "."
    if any(isinstance(rec.get("exchanges"), int) and rec["exchanges"] > 1 for rec in records):
        note += (" A secure round has four (statistics, update, decryption, assembly), one fewer where its model "
                 "is assembled by the next round's clients (folded, on Flower), more where clients are lost.")
    return ["## Communication", "", note, "", *_table(header, rows), ""]


def _figures_section(drawn: Sequence[str], skipped: dict[str, str]) -> list[str]:
    """Embedded image links of the figures drawn, and why any was skipped."""
    lines = ["## Figures", ""]
    for name in drawn:
        lines += [f"### {FIGURES[name]}", "", f"![{FIGURES[name]}]({name})", ""]
    lines += [f"- `{name}` not drawn: {why}" for name, why in skipped.items()]
    return lines + ([""] if skipped else [])


# ---------------------------------------------------------------- entry point


def _plot_saved_roc(predictions: tuple[np.ndarray, np.ndarray], class_names: Sequence[str], source: Path,
                    round_num: int, who: str = "") -> None:
    """Draw roc.png next to predictions/ from a saved round, turning bad arrays into CheckpointError."""
    y_true, probs = predictions
    if probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise CheckpointError(f"{source} has probs of shape {probs.shape}, expected (N, {len(class_names)})")
    try:
        plot_roc(y_true, probs, class_names, source.parent.parent / "roc.png", f"ROC one vs all: {who + ', ' if who else ''}round {round_num}")
    except ConfigError as exc:
        raise CheckpointError(f"{source} holds invalid predictions: {exc}") from None


def write_report(run_dir: PathLike) -> Path:
    """Draw every figure and write report.md into run_dir from its saved files; return report.md's path."""
    path = _existing_dir(run_dir)
    records = load_metrics(path)
    if not records:
        raise CheckpointError(f"{path} has no completed round in {METRICS_FILE}; run `fedtrain run` first")
    config = load_config(path)
    last = records[-1]
    class_names = _class_names(config, last)
    confusion = np.asarray(last.get("confusion_matrix"), dtype=np.int64)
    drawn: list[str] = []
    skipped: dict[str, str] = {}

    model, privacy = config.get("model", "unknown model"), config.get("privacy", "unknown privacy")
    who = f"{model}, {METHOD_LABELS.get(privacy, privacy)}"
    plot_accuracy_loss(records, path / "accuracy_loss.png", who, len(class_names))
    drawn.append("accuracy_loss.png")
    if confusion.shape == (len(class_names), len(class_names)):
        title = f"Confusion matrix: {who}, round {last['round']}"
        plot_confusion(confusion, class_names, path / "confusion_matrix.png", title)
        plot_one_vs_all(confusion, class_names, path / "confusion_one_vs_all.png",
                        f"One vs all: {who}, round {last['round']}")
        drawn += ["confusion_matrix.png", "confusion_one_vs_all.png"]
    else:
        skipped["confusion_matrix.png"] = skipped["confusion_one_vs_all.png"] = "no confusion matrix recorded"
    predictions = load_predictions(path, last["round"])
    if predictions is None:
        missing = predictions_path(path, last["round"]).relative_to(path)
        warnings.warn(f"{path / missing} is missing; roc.png not drawn", RuntimeWarning)
        skipped["roc.png"] = f"`{missing}` is missing"
    else:
        _plot_saved_roc(predictions, class_names, predictions_path(path, last["round"]), last["round"], who)
        drawn.append("roc.png")
    plot_timings(records, path / "timings.png", who)
    drawn.append("timings.png")

    lines = [
        f"# fedtrain report: {model}, privacy: {privacy}",
        "",
        *_results_section(config, records, class_names, confusion, predictions),
        *_learned_section(config),
        *_table1_section(last, class_names),
        *_data_section(config),
        *_rounds_section(records),
        *_dropouts_section(records),
        *_shadow_section(records),
        *_timing_section(records),
        *_bytes_section(records),
        *_figures_section(drawn, skipped),
        *_config_section(config, records),
    ]
    report = path / REPORT_FILE
    tmp = report.with_name(REPORT_FILE + ".tmp")
    tmp.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    os.replace(tmp, report)
    return report
