"""`fedtrain compare`: every model x privacy method on one split and seed, and the paper's tables beside ours.

Writes into one folder: runs/<model>-<privacy>/ (each a full run directory with its
own report), table2.md, table1_<model>.md, accuracy_<model>.png (encrypted against
unencrypted per round: the paper's Figure 10), confusion and ROC figures per run,
costs.md, encryption.md (plain against Paillier FedAvg over several seeds: mean and
spread of the final accuracy, per-round distance of the global models),
comparison.json and comparison.md (each claim of the paper against what this run measured).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .config import RunConfig
from .errors import ConfigError
from .report import load_metrics

log = logging.getLogger("fedtrain")

METHOD_NAMES = {"paillier": "FL with encryption (Paillier FedAvg)", "none": "FL without encryption",
                "dp": "Differential privacy (DP-SGD FedAvg)", "split": "Split learning"}

# Lim et al. (2025), Table 2 (DenseNet121), in percent.
PAPER_TABLE2 = {
    "paillier": {"accuracy": 86.0, "precision": 91.0, "recall": 93.0, "f1": 90.0},
    "dp": {"accuracy": 80.0, "precision": 87.5, "recall": 88.2, "f1": 86.6},
    "split": {"accuracy": 81.5, "precision": 89.0, "recall": 90.1, "f1": 88.4},
}
# Lim et al. (2025), Table 1 (encrypted models), classes A-D, in percent: (recall, precision, F1).
PAPER_TABLE1 = {
    "resnet50": {"rows": [(93, 91, 92), (90, 81, 85), (76, 75, 75), (72, 75, 80)], "accuracy": 84},
    "densenet121": {"rows": [(93, 88, 90), (90, 85, 88), (76, 83, 79), (77, 83, 75)], "accuracy": 86},
}
PAPER_OVERHEAD = (15.0, 30.0)
ACCURACY_TARGET_POINTS = 1.0  # issue 11: Paillier FedAvg within 1 point of plain FedAvg on average


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def mean_phase_times(records: Sequence[dict]) -> dict[str, float]:
    """Mean seconds per round for each timing phase."""
    phases: dict[str, list[float]] = {}
    for rec in records:
        for phase, value in rec.get("timings", {}).items():
            phases.setdefault(phase, []).append(float(value))
    return {p: sum(v) / len(v) for p, v in phases.items()}


def round_seconds(rec: dict, view: str) -> float:
    """Training + crypto + aggregation time of one round (evaluation excluded); view serial or parallel."""
    source = rec["timings"] if view == "serial" else rec.get("critical_path", rec["timings"])
    return sum(float(source.get(p, 0.0)) for p in ("train", "encrypt", "aggregate", "decrypt", "server"))


def mean_bytes_per_client(records: Sequence[dict], direction: str) -> float:
    """Mean bytes a participating client sends (or receives) per round."""
    values = [v for rec in records for v in rec.get("bytes", {}).get(f"{direction}_per_client", {}).values()]
    return sum(values) / len(values) if values else 0.0


def summarize(runs: dict[tuple[str, str], Path]) -> dict[str, Any]:
    """Numbers of every run, straight from its metrics.jsonl."""
    out: dict[str, Any] = {}
    for (model, privacy), run_dir in runs.items():
        records = load_metrics(run_dir)
        last = records[-1]
        out[f"{model}/{privacy}"] = {
            "model": model, "privacy": privacy, "run_dir": str(run_dir), "rounds": len(records),
            "accuracy": last["accuracy"], "precision": last["macro_precision"], "recall": last["macro_recall"],
            "f1": last["macro_f1"], "macro_auc": last.get("macro_auc"),
            "accuracy_per_round": [r["accuracy"] for r in records],
            "per_class": last["per_class"],
            "seconds_per_round_serial": sum(round_seconds(r, "serial") for r in records) / len(records),
            "seconds_per_round_parallel": sum(round_seconds(r, "parallel") for r in records) / len(records),
            "phases": mean_phase_times(records),
            "bytes_sent_per_client": mean_bytes_per_client(records, "sent"),
            "bytes_received_per_client": mean_bytes_per_client(records, "received"),
            "epsilon": last.get("epsilon"),
        }
    return out


def trajectory_distances(plain_dir: Path, encrypted_dir: Path) -> list[float]:
    """Relative L2 distance |encrypted - plain| / |plain| of the global models after each round both completed."""
    import torch

    out = []
    for rec in load_metrics(encrypted_dir):
        r = int(rec["round"])
        paths = [d / "checkpoints" / f"round_{r:04d}.pt" for d in (plain_dir, encrypted_dir)]
        if not all(p.exists() for p in paths):
            break
        plain, enc = (torch.load(p, map_location="cpu", weights_only=True)["vector"].numpy().astype(np.float64)
                      for p in paths)
        out.append(float(np.linalg.norm(enc - plain) / max(np.linalg.norm(plain), 1e-30)))
    return out


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


TAIL_ROUNDS = 5  # the steadier statistic: mean accuracy over a run's last rounds


def tail_mean(per_round: Sequence[float], k: int = TAIL_ROUNDS) -> float:
    """Mean of the last min(k, rounds) values of a per-round series."""
    tail = list(per_round)[-k:]
    return float(np.mean(tail)) if tail else float("nan")


def encryption_summary(seed_runs: dict[tuple[str, str, int], Path], models: Sequence[str]) -> dict[str, Any]:
    """Per model: final accuracy of plain and Paillier FedAvg over the seeds, their paired gap, per-round distances."""
    out: dict[str, Any] = {}
    for model in models:
        seeds = sorted(s for (m, method, s) in seed_runs if m == model and method == "paillier"
                       and (m, "none", s) in seed_runs)
        if not seeds:
            continue
        plain_rounds = [[r["accuracy"] for r in load_metrics(seed_runs[(model, "none", s)])] for s in seeds]
        enc_rounds = [[r["accuracy"] for r in load_metrics(seed_runs[(model, "paillier", s)])] for s in seeds]
        plain = [r[-1] for r in plain_rounds]
        enc = [r[-1] for r in enc_rounds]
        tail_gaps = [tail_mean(e) - tail_mean(p) for e, p in zip(enc_rounds, plain_rounds)]
        tail_rounds = min(TAIL_ROUNDS, min(len(r) for r in plain_rounds + enc_rounds))
        distances = {str(s): trajectory_distances(seed_runs[(model, "none", s)], seed_runs[(model, "paillier", s)])
                     for s in seeds}
        gaps = [e - p for e, p in zip(enc, plain)]
        (pm, ps), (em, es), (gm, gs) = _mean_sd(plain), _mean_sd(enc), _mean_sd(gaps)
        tm, ts = _mean_sd(tail_gaps)
        largest = max((d for ds in distances.values() for d in ds), default=float("nan"))
        out[model] = {"seeds": seeds, "plain_accuracy": plain, "paillier_accuracy": enc,
                      "plain_mean": pm, "plain_sd": ps, "paillier_mean": em, "paillier_sd": es,
                      "gap_mean": gm, "gap_sd": gs, "tail_rounds": tail_rounds, "tail_gaps": tail_gaps,
                      "tail_gap_mean": tm, "tail_gap_sd": ts, "distances": distances, "largest_distance": largest,
                      "within_target": abs(100 * gm) <= ACCURACY_TARGET_POINTS}
    return out


def encryption_table(enc: dict[str, Any]) -> str:
    """Plain against Paillier FedAvg per model: final accuracy mean +- sd over seeds, gap, largest distance."""
    lines = ["| Model | Seeds | Plain FedAvg: accuracy | Paillier FedAvg: accuracy | Paillier - plain (paired) | "
             f"Within {ACCURACY_TARGET_POINTS:g} point | Paillier - plain, mean of the last rounds (paired) | "
             "Largest per-round distance |",
             "|---|---|---|---|---|---|---|---|"]
    for model, e in enc.items():
        lines.append(f"| {model} | {', '.join(map(str, e['seeds']))} | {100 * e['plain_mean']:.1f} +- "
                     f"{100 * e['plain_sd']:.1f} | {100 * e['paillier_mean']:.1f} +- {100 * e['paillier_sd']:.1f} | "
                     f"{100 * e['gap_mean']:+.1f} +- {100 * e['gap_sd']:.1f} points | "
                     f"{'yes' if e['within_target'] else 'no'} | "
                     f"{100 * e['tail_gap_mean']:+.1f} +- {100 * e['tail_gap_sd']:.1f} points "
                     f"(last {e['tail_rounds']}) | {e['largest_distance']:.2e} |")
    return "\n".join(lines)


def distance_table(enc: dict[str, Any]) -> str:
    """Relative L2 distance of the Paillier and plain global models of the same seed, per round."""
    rounds = max((len(d) for e in enc.values() for d in e["distances"].values()), default=0)
    lines = ["| Model | Seed | " + " | ".join(f"round {r}" for r in range(1, rounds + 1)) + " |",
             "|---|---|" + "---|" * rounds]
    for model, e in enc.items():
        for seed, ds in e["distances"].items():
            lines.append(f"| {model} | {seed} | " + " | ".join(f"{d:.2e}" for d in ds) + " |")
    return "\n".join(lines)


def table2(summary: dict[str, Any], models: Sequence[str], methods: Sequence[str]) -> str:
    """The paper's Table 2 layout (accuracy, macro precision, recall, F1 per method) for each model."""
    lines = ["| Model | Method | Accuracy | Precision | Recall | F1-Score | Paper (DenseNet121): Acc / P / R / F1 |",
             "|---|---|---|---|---|---|---|"]
    for model in models:
        for method in methods:
            s = summary.get(f"{model}/{method}")
            if s is None:
                continue
            paper = PAPER_TABLE2.get(method)
            paper_cell = (f"{paper['accuracy']:.1f} / {paper['precision']:.1f} / {paper['recall']:.1f} / "
                          f"{paper['f1']:.1f}" if paper else "not reported")
            lines.append(f"| {model} | {METHOD_NAMES[method]} | {_pct(s['accuracy'])} | {_pct(s['precision'])} | "
                         f"{_pct(s['recall'])} | {_pct(s['f1'])} | {paper_cell} |")
    return "\n".join(lines)


def table1(summary: dict[str, Any], model: str, class_names: Sequence[str], methods: Sequence[str]) -> str:
    """Per-class recall, precision and F1 (the paper's Table 1 layout) of each method of one model."""
    lines = []
    paper = PAPER_TABLE1.get(model)
    for method in methods:
        s = summary.get(f"{model}/{method}")
        if s is None:
            continue
        lines += [f"### {model}, {METHOD_NAMES[method]}", "",
                  "| Class | Recall | Precision | F1-Score | Paper (encrypted): R / P / F1 |", "|---|---|---|---|---|"]
        for k, name in enumerate(class_names):
            c = s["per_class"][name]
            ref = paper["rows"][k] if paper and k < len(paper["rows"]) else None
            ref_cell = f"{ref[0]} / {ref[1]} / {ref[2]}" if ref and method == "paillier" else ""
            lines.append(f"| {chr(65 + k)}: {name} | {_pct(c['recall'])} | {_pct(c['precision'])} | "
                         f"{_pct(c['f1'])} | {ref_cell} |")
        ref_acc = f"{paper['accuracy']}" if paper and method == "paillier" else ""
        lines += [f"| Accuracy | {_pct(s['accuracy'])} | | | {ref_acc} |", ""]
    return "\n".join(lines)


def costs_table(summary: dict[str, Any], models: Sequence[str], methods: Sequence[str]) -> str:
    """Time per round by phase and bytes per client per round for every run."""
    lines = ["| Model | Method | train s | encrypt s | aggregate s | decrypt s | server s | round s (serial) | "
             "round s (parallel) | sent/client | received/client |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        for method in methods:
            s = summary.get(f"{model}/{method}")
            if s is None:
                continue
            ph = s["phases"]
            lines.append(
                f"| {model} | {method} | {ph.get('train', 0):.1f} | {ph.get('encrypt', 0):.1f} | "
                f"{ph.get('aggregate', 0):.2f} | {ph.get('decrypt', 0):.1f} | {ph.get('server', 0):.1f} | "
                f"{s['seconds_per_round_serial']:.1f} | {s['seconds_per_round_parallel']:.1f} | "
                f"{s['bytes_sent_per_client'] / 1e6:.2f} MB | {s['bytes_received_per_client'] / 1e6:.2f} MB |")
    return "\n".join(lines)


def claims(summary: dict[str, Any], models: Sequence[str], enc: dict[str, Any] | None = None) -> list[str]:
    """Each claim of the paper, with what this run measured and whether it holds here."""
    out = []
    get = summary.get
    seeds_summary = enc or {}
    if get("densenet121/paillier") and get("resnet50/paillier"):
        d, r = get("densenet121/paillier")["accuracy"], get("resnet50/paillier")["accuracy"]
        out.append(f"- **DenseNet121 beats ResNet50** (paper: 86% vs 84%). Measured with encryption: DenseNet121 "
                   f"{_pct(d)}%, ResNet50 {_pct(r)}%: {'holds' if d > r else 'does not hold'} in this run.")
    else:
        out.append("- **DenseNet121 beats ResNet50**: not measured (this run did not train both models with "
                   "encryption).")
    for model in models:
        e = seeds_summary.get(model)
        enc, plain = get(f"{model}/paillier"), get(f"{model}/none")
        if e:
            out.append(f"- **Encryption costs accuracy only marginally** ({model}). Over {len(e['seeds'])} seed(s): "
                       f"encrypted {100 * e['paillier_mean']:.1f} +- {100 * e['paillier_sd']:.1f}% vs unencrypted "
                       f"{100 * e['plain_mean']:.1f} +- {100 * e['plain_sd']:.1f}%, paired difference "
                       f"{100 * e['gap_mean']:+.1f} +- {100 * e['gap_sd']:.1f} points "
                       f"({'within' if e['within_target'] else 'outside'} {ACCURACY_TARGET_POINTS:g} point); "
                       f"largest per-round relative distance of the global models {e['largest_distance']:.2e}. "
                       "Each encrypted round differs from plain FedAvg of the same round only by the codec's "
                       "rounding (tests/fedtrain/test_trajectory.py); later rounds carry that difference forward "
                       "as plain training carries any difference in its start model.")
        elif enc and plain:
            gap = enc["accuracy"] - plain["accuracy"]
            out.append(f"- **Encryption costs accuracy only marginally** ({model}). Encrypted {_pct(enc['accuracy'])}% "
                       f"vs unencrypted {_pct(plain['accuracy'])}% (difference {100 * gap:+.1f} points, one seed).")
        for other in ("dp", "split"):
            o = get(f"{model}/{other}")
            if enc and o:
                better = enc["accuracy"] > o["accuracy"]
                out.append(f"- **FL+HE beats {other.upper()}** ({model}). Encrypted FedAvg {_pct(enc['accuracy'])}% "
                           f"vs {METHOD_NAMES[other]} {_pct(o['accuracy'])}%: "
                           f"{'holds' if better else 'does not hold'} in this run"
                           + (f" (DP spent epsilon = {o['epsilon']:.2f})" if other == "dp" and o.get("epsilon")
                              is not None else "") + ".")
        if enc and plain:
            ser = 100 * (enc["seconds_per_round_serial"] / plain["seconds_per_round_serial"] - 1)
            par = 100 * (enc["seconds_per_round_parallel"] / plain["seconds_per_round_parallel"] - 1)
            lo, hi = PAPER_OVERHEAD
            verdict = ("within" if lo <= par <= hi else "below" if par < lo else "above")
            out.append(f"- **Encryption adds 15-30% time** ({model}). Measured: {ser:+.1f}% with all clients "
                       f"simulated on this machine, {par:+.1f}% with each client on its own machine (slowest client "
                       f"per phase): {verdict} the paper's range.")
    return out


def accuracy_figure(summary: dict[str, Any], model: str, methods: Sequence[str], path: Path) -> bool:
    """Accuracy per round of each method of one model (Figure 10: encrypted against unencrypted)."""
    series = {m: summary[f"{model}/{m}"]["accuracy_per_round"] for m in methods if f"{model}/{m}" in summary}
    if not series:
        return False
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for method, acc in series.items():
        ax.plot(range(1, len(acc) + 1), [100 * a for a in acc], marker="o", label=METHOD_NAMES[method])
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{model}: accuracy per round")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_comparison(out_dir: Path, runs: dict[tuple[str, str], Path], models: Sequence[str],
                     methods: Sequence[str], class_names: Sequence[str],
                     extra_sections: Sequence[str] = (),
                     seed_runs: dict[tuple[str, str, int], Path] | None = None) -> Path:
    """Writes every comparison artifact into out_dir and returns the path of comparison.md."""
    summary = summarize(runs)
    enc = encryption_summary(seed_runs or {}, models)
    (out_dir / "comparison.json").write_text(json.dumps({**summary, "encryption_vs_plain": enc}, indent=2))
    enc_lines: list[str] = []
    if enc:
        enc_lines = ["## Encryption against plain FedAvg over seeds", "",
                     "Final-round test accuracy in percent, mean +- sample standard deviation over the seeds; the "
                     "difference is paired by seed (same data split, partition, initial model and client "
                     "randomness). The target is on the final round; the mean over each run's last rounds (up to "
                     f"{TAIL_ROUNDS}) is steadier, since one run's accuracy moves by several points from round to "
                     "round. Distance: |paillier - plain| / |plain| of the global model vectors (L2, BatchNorm "
                     "statistics included) after the same round with the same seed.", "",
                     encryption_table(enc), "", "Per-round distance:", "", distance_table(enc), ""]
        (out_dir / "encryption.md").write_text("\n".join(enc_lines) + "\n")
    t2 = table2(summary, models, methods)
    (out_dir / "table2.md").write_text(t2 + "\n")
    figures = []
    for model in models:
        (out_dir / f"table1_{model}.md").write_text(table1(summary, model, class_names, methods) + "\n")
        if accuracy_figure(summary, model, methods, out_dir / f"accuracy_{model}.png"):
            figures.append(f"accuracy_{model}.png")
        for method in methods:
            run_dir = runs.get((model, method))
            if run_dir is None:
                continue
            for name in ("confusion_matrix.png", "confusion_one_vs_all.png", "roc.png"):
                if (run_dir / name).exists():
                    target = f"{name[:-4]}_{model}_{method}.png"
                    shutil.copyfile(run_dir / name, out_dir / target)
                    figures.append(target)
    costs = costs_table(summary, models, methods)
    (out_dir / "costs.md").write_text(costs + "\n")
    lines = ["# Reproduction of Lim et al. (2025): privacy methods compared", "",
             "The runs of Tables 1 and 2 share one data split, partition and seed (the first of the seeds). "
             "Percentages are of the final round on the test "
             "set; precision, recall and F1 are macro averages over the classes. The paper's numbers are copied "
             "from its Tables 1 and 2 and labelled as such; they come from a different dataset size, "
             "training length and hardware.", "",
             "## Claims of the paper against this run", "", *claims(summary, models, enc), "",
             *enc_lines,
             "## Table 2: methods compared", "", t2, "",
             "## Table 1: per class", ""]
    for model in models:
        lines += [table1(summary, model, class_names, methods)]
    lines += ["## Cost per round", "", costs, "",
              "Serial: all clients simulated one after another on this machine (phases summed over clients). "
              "Parallel: each client on its own machine (slowest client per phase). Split learning is "
              "sequential by design, so its two views coincide.", "",
              *extra_sections,
              "## Figures", "", *[f"![{f}]({f})" for f in figures], ""]
    path = out_dir / "comparison.md"
    path.write_text("\n".join(lines))
    return path


@dataclass(frozen=True)
class PlannedRun:
    """One run of a comparison: its configuration and folder."""

    model: str
    method: str
    seed: int
    first_seed: bool  # the first seed's runs make Tables 1 and 2
    config: RunConfig
    run_dir: Path

    @property
    def name(self) -> str:
        """E.g. 'smallcnn with FL with encryption (Paillier FedAvg), seed 0'."""
        return f"{self.model} with {METHOD_NAMES[self.method]}, seed {self.seed}"


def plan_comparison(base: RunConfig, out: Path, *, models: Sequence[str], methods: Sequence[str],
                    seeds: Sequence[int]) -> list[PlannedRun]:
    """Every run of the comparison, each configuration validated (data folder included); nothing is written."""
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        raise ConfigError(f"unknown --privacy {unknown[0]!r} in compare; choose from {', '.join(METHOD_NAMES)}")
    if not models or not methods:
        raise ConfigError("compare needs at least one model (--models) and one method (--privacy)")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds lists a seed twice: {list(seeds)}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds files (a previous comparison?); choose another --out")
    planned = []
    for model in models:
        for i, seed in enumerate(seeds):
            for method in methods:
                if i > 0 and method not in ("none", "paillier"):
                    continue
                # Each run gets its own id (the sealing context, and the folder of its key).
                config = dataclasses.replace(base, model=model, privacy=method, seed=seed,
                                             run_id=f"{base.run_id}-{model}-{method}-seed{seed}")
                config.validate()
                run_dir = out / "runs" / (f"{model}-{method}" if i == 0 else f"{model}-{method}-seed{seed}")
                planned.append(PlannedRun(model, method, seed, i == 0, config, run_dir))
    return planned


def run_comparison(base: RunConfig, out_dir: str | Path, *, models: Sequence[str], methods: Sequence[str],
                   encrypted_images: bool = False, seeds: Sequence[int] | None = None) -> Path:
    """Runs every (model, method) with `base` (a RunConfig) and writes the comparison; returns comparison.md.

    The first of `seeds` (default: base.seed) runs every method; the other seeds run
    plain and Paillier FedAvg only, for the mean and spread of encryption's effect.
    Every option is checked before the first run; a line is logged as each run starts and ends.
    If a run fails, an output folder without a finished run is removed; one with finished runs stays.
    """
    out = Path(out_dir)
    seeds = list(seeds) if seeds else [base.seed]
    planned = plan_comparison(base, out, models=models, methods=methods, seeds=seeds)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    finished: list[PlannedRun] = []
    try:
        return _run_planned(base, out, planned, finished, models, methods, encrypted_images, seeds)
    except BaseException:
        _after_failure(out, created, finished, planned)
        raise


def _run_planned(base: RunConfig, out: Path, planned: list[PlannedRun], finished: list[PlannedRun],
                 models: Sequence[str], methods: Sequence[str], encrypted_images: bool,
                 seeds: Sequence[int]) -> Path:
    """Runs the planned runs in order (appending each to `finished`) and writes the comparison."""
    from .models import build_model
    from .runner import run
    from .training import resolve_device, warm_up

    for model in models:  # keep one-time start-up costs out of the first run's timings
        warm_up(build_model(model), device=resolve_device(base.device), image_size=base.image_size)
    runs: dict[tuple[str, str], Path] = {}
    seed_runs: dict[tuple[str, str, int], Path] = {}
    class_names: Sequence[str] = ()
    for k, job in enumerate(planned, 1):
        log.info("compare: run %d of %d: %s ...", k, len(planned), job.name)
        t0 = time.perf_counter()

        def on_round(record: dict, job: PlannedRun = job) -> None:
            log.info("compare:   %s %s, round %d of %d: accuracy %.4f", job.model, job.method, record["round"],
                     job.config.rounds, record["accuracy"])

        run(job.config, job.run_dir, on_round=on_round)
        finished.append(job)
        seed_runs[(job.model, job.method, job.seed)] = job.run_dir
        if job.first_seed:
            runs[(job.model, job.method)] = job.run_dir
        last = load_metrics(job.run_dir)[-1]
        log.info("compare: run %d of %d done: %s: accuracy %.4f after %d rounds, %.1f s", k, len(planned),
                 job.name, last["accuracy"], last["round"], time.perf_counter() - t0)
        class_names = json.loads((job.run_dir / "config.json").read_text())["class_names"]
    extra: list[str] = []
    if encrypted_images:
        log.info("compare: the CNN on Paillier-encrypted pixels ...")
        t0 = time.perf_counter()
        extra = _encrypted_images_section(dataclasses.replace(base, seed=seeds[0]), out)
        log.info("compare: the CNN on Paillier-encrypted pixels done, %.1f s", time.perf_counter() - t0)
    return write_comparison(out, runs, models, methods, class_names, extra, seed_runs=seed_runs)


def _after_failure(out: Path, created: bool, finished: Sequence[PlannedRun], planned: Sequence[PlannedRun]) -> None:
    """After a failed run: keeps the finished runs only, and removes the output folder if none finished."""
    done = {job.run_dir for job in finished}
    for job in planned:
        if job.run_dir not in done:
            shutil.rmtree(job.run_dir, ignore_errors=True)
    if finished:
        log.info("compare: stopped after %d of %d runs; the finished runs stay in %s (%s); the comparison "
                 "tables were not written", len(finished), len(planned), out / "runs",
                 ", ".join(job.run_dir.name for job in finished))
        return
    if created:
        shutil.rmtree(out, ignore_errors=True)
        log.info("compare: stopped before a run finished; %s was removed", out)
    else:  # it was an empty folder: empty again
        shutil.rmtree(out / "runs", ignore_errors=True)


def _encrypted_images_section(base: Any, out: Path) -> list[str]:
    """Runs the 'CNN on Paillier-encrypted pixels' experiment and returns its markdown section."""
    from .data import load_data
    from .encrypted_images import run_encrypted_image_experiment, write_experiment_report

    data = load_data(base.data, image_size=base.image_size, test_fraction=base.test_fraction, seed=base.seed,
                     demo_train_per_class=base.demo_train_per_class, demo_test_per_class=base.demo_test_per_class)
    result = run_encrypted_image_experiment(train=data.train, test=data.test, seed=base.seed)
    md = write_experiment_report(result, out)
    return [md.read_text(), ""]
